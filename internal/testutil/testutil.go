// Package testutil holds the helpers that tests of several packages share;
// only tests import it.
package testutil

import (
	"bytes"
	"context"
	"net"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

// FreeAddress returns a loopback address nothing listens on right now, for
// a process the test starts (a server, Prometheus, Alertmanager).
func FreeAddress(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free loopback port: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}

// LockedBuffer collects the output of a subprocess or a logger that other
// goroutines write while the test reads it.
type LockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *LockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// PoolWithLockTimeout opens a pool on url whose sessions give up waiting
// for a lock after lockTimeout (a PostgreSQL interval such as "200ms"), so
// a query that takes a relation lock fails with 55P03 instead of waiting.
func PoolWithLockTimeout(ctx context.Context, t testing.TB, url, lockTimeout string) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["lock_timeout"] = lockTimeout
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// HoldLocks runs the LOCK statements in a transaction of pool's that stays
// open until the test ends, as a swap, a DDL or VACUUM FULL would.
func HoldLocks(ctx context.Context, t testing.TB, pool *pgxpool.Pool, locks ...string) {
	t.Helper()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	for _, lock := range locks {
		if _, err := tx.Exec(ctx, lock); err != nil {
			t.Fatal(err)
		}
	}
}
