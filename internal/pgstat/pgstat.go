// Package pgstat makes a session's pending table statistics visible.
//
// A backend reports its row counts to the shared statistics at most once a
// second (PostgreSQL 15+) or every 500 ms (13–14, through the collector).
// An ANALYZE that runs before that report sets n_live_tup, and the late
// report then adds the same rows again. Loaders and tests call Flush
// between writing and ANALYZE so counts stay exact.
package pgstat

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Flush reports conn's pending statistics before it returns.
func Flush(ctx context.Context, conn *pgx.Conn) error {
	var version int
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&version); err != nil {
		return fmt.Errorf("reading the server version: %w", err)
	}
	if version >= 150000 {
		// The flush happens when this statement's transaction ends.
		if _, err := conn.Exec(ctx, "SELECT pg_catalog.pg_stat_force_next_flush()"); err != nil {
			return fmt.Errorf("flushing statistics: %w", err)
		}
		return nil
	}
	// Before 15, a transaction ending 500 ms after the last report sends the
	// next one; the collector receives it before anything sent later.
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(600 * time.Millisecond):
	}
	if _, err := conn.Exec(ctx, "SELECT 1"); err != nil {
		return fmt.Errorf("flushing statistics: %w", err)
	}
	return nil
}
