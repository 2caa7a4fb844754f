package migrate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/sigid/pgcapacity/migrate/state"
)

// Migrator runs migrations against one database.
type Migrator struct {
	pool   *pgxpool.Pool
	logger *slog.Logger
	now    func() time.Time
	// Progress, when set, receives copy progress after every batch.
	Progress func(Progress)
}

// Progress is a snapshot of a running copy or replay.
type Progress struct {
	ID            int64
	Phase         Phase
	CopiedRows    int64
	EstimatedRows int64
	DoneBlocks    int64
	TotalBlocks   int64
	Backlog       int64
	RowsPerSecond float64
	ETA           time.Duration
}

// New returns a Migrator on pool. The pool's connections should come from
// NewPool (or carry the same settings).
func New(pool *pgxpool.Pool, logger *slog.Logger) *Migrator {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Migrator{pool: pool, logger: logger, now: time.Now}
}

// SetClock replaces the clock (tests use it for windows and rollback periods).
func (m *Migrator) SetClock(now func() time.Time) { m.now = now }

// NewPool connects with the session settings every migration step relies
// on: row_security off (a policy that would hide rows raises an error
// instead of silently filtering the copy), no statement or idle timeouts, and an
// application name that shows in pg_stat_activity.
func NewPool(ctx context.Context, url string, maxConns int32) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parsing the database URL: %w", err)
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	rp := cfg.ConnConfig.RuntimeParams
	rp["application_name"] = "pgcapacity-migrate"
	rp["row_security"] = "off"
	rp["statement_timeout"] = "0"
	rp["idle_in_transaction_session_timeout"] = "0"
	// idle_session_timeout (PostgreSQL 14+; unknown before, so not a
	// startup parameter) would end the idle session that holds the
	// per-table lock, and the lock with it.
	cfg.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, `SELECT pg_catalog.set_config('idle_session_timeout', '0', false) WHERE current_setting('server_version_num')::int >= 140000`)
		return err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to PostgreSQL: %w", err)
	}
	var scs string
	if err := pool.QueryRow(ctx, `SHOW standard_conforming_strings`).Scan(&scs); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connecting to PostgreSQL: %w", err)
	}
	if scs != "on" {
		pool.Close()
		return nil, errors.New("standard_conforming_strings is off on this server: turn it on (the default since PostgreSQL 9.1)")
	}
	return pool, nil
}

// inTx runs fn in a transaction with search_path empty, so that every
// definition read from the catalog comes back schema-qualified and every
// name written must be qualified.
func (m *Migrator) inTx(ctx context.Context, q interface {
	Begin(context.Context) (pgx.Tx, error)
}, fn func(pgx.Tx) error) error {
	tx, err := q.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, `SELECT pg_catalog.set_config('search_path', '', true)`); err != nil {
		return err
	}
	if err := checkLock(ctx, tx); err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// retry runs fn until it succeeds, fails with an error other than a lock
// timeout, deadlock or serialization failure, or runs out of attempts.
func (m *Migrator) retry(ctx context.Context, what string, attempts int, fn func() error) error {
	backoff := 100 * time.Millisecond
	var err error
	for attempt := 1; attempt <= attempts; attempt++ {
		if err = fn(); err == nil {
			return nil
		}
		switch sqlState(err) {
		case "55P03", "40P01", "40001":
		default:
			return err
		}
		if attempt == attempts {
			break
		}
		wait := backoff + time.Duration(rand.Int64N(int64(backoff)))
		m.logger.Warn("lock not granted in time, retrying", "step", what, "attempt", attempt, "of", attempts, "wait", wait.Round(time.Millisecond), "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
	return fmt.Errorf("%s: gave up after %d attempts: %w", what, attempts, err)
}

// tableByOID reads a table's definition by OID.
func tableByOID(ctx context.Context, q db, oid uint32) (*Table, error) {
	var schema, name string
	if err := q.QueryRow(ctx, `SELECT n.nspname, c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1`, oid).Scan(&schema, &name); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("table with OID %d no longer exists: was it dropped outside pgcapacity?", oid)
		}
		return nil, fmt.Errorf("finding table OID %d: %w", oid, err)
	}
	return ReadTable(ctx, q, schema, name)
}

func (m *Migrator) setError(ctx context.Context, id int64, err error) {
	// An interruption (Ctrl-C, SIGTERM) is no failure: recording it would
	// raise pgcapacity_migration_failing for a migration resume continues.
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, ErrInterrupted) {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	state.SetError(ctx, m.pool, id, err.Error())
}
