package migrate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/sigid/pgcapacity/migrate/state"
)

// Phases of a migration (the store in migrate/state owns them).
const (
	PhaseCopying    = state.PhaseCopying
	PhaseCatchingUp = state.PhaseCatchingUp
	PhaseReady      = state.PhaseReady
	PhaseSwapped    = state.PhaseSwapped
	PhaseRolledBack = state.PhaseRolledBack
	PhaseDropped    = state.PhaseDropped
	PhaseAborted    = state.PhaseAborted
)

// Phase is where a migration stands.
type Phase = state.Phase

// Migration is one row of pgcapacity.migration.
type Migration = state.Migration

// Event is one line of a migration's audit trail.
type Event = state.Event

// ErrNoMigration is returned for an unknown migration id.
var ErrNoMigration = state.ErrNoMigration

// advisoryNamespace is the first key of every pgcapacity advisory lock.
const advisoryNamespace = state.AdvisoryNamespace

// ListMigrations returns every migration, newest first.
func ListMigrations(ctx context.Context, q db) ([]*Migration, error) { return state.List(ctx, q) }

// admit makes step s of migration id start: it checks the phase, takes the
// table's migration lock and re-reads the migration under it, so that a
// command that waited for another (swap behind abort, rollback behind
// drop-old) sees the phase that one left. done reports a step that may be
// rerun and was already taken: nothing is locked then.
func (m *Migrator) admit(ctx context.Context, id int64, s state.Step) (mig *Migration, lock *tableLock, done bool, err error) {
	tr := state.TransitionFor(s)
	// A state written by an older pgcapacity is upgraded before it is read,
	// and a newer one refused: this binary must not change what it cannot
	// read.
	if err := state.Upgrade(ctx, m.pool); err != nil {
		return nil, nil, false, err
	}
	if mig, err = state.Load(ctx, m.pool, id); err != nil {
		return nil, nil, false, err
	}
	if tr.Done(mig.Phase) {
		return mig, nil, true, nil
	}
	if err := tr.Check(id, mig.Phase); err != nil {
		return nil, nil, false, err
	}
	if lock, err = lockTable(ctx, m.pool, mig.OriginalOID); err != nil {
		return nil, nil, false, err
	}
	if mig, err = state.Load(ctx, m.pool, id); err == nil {
		if tr.Done(mig.Phase) {
			lock.release()
			return mig, nil, true, nil
		}
		err = tr.Check(id, mig.Phase)
	}
	if err != nil {
		lock.release()
		return nil, nil, false, err
	}
	return mig, lock, false, nil
}

// guard re-reads migration id FOR UPDATE in tx, the transaction that will
// apply step s, and checks that the step may still start from its phase.
func guard(ctx context.Context, tx pgx.Tx, id int64, s state.Step) (*Migration, error) {
	mig, err := state.LoadForUpdate(ctx, tx, id)
	if err != nil {
		return nil, err
	}
	return mig, state.TransitionFor(s).Check(id, mig.Phase)
}

// tableLock holds the session advisory lock that makes one process at a
// time work on a table's migration.
type tableLock struct {
	conn *pgxpool.Conn
	key  int32
	pid  uint32 // the backend holding it
}

// lockTable takes the per-table advisory lock on a dedicated connection, or
// fails naming the process that holds it. The caller binds it to its
// context (see bind), so that the steps run with it check it first.
// NewPool's session settings keep timeouts from ending the idle lock session.
func lockTable(ctx context.Context, pool *pgxpool.Pool, tableOID uint32) (*tableLock, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("connecting for the migration lock: %w", err)
	}
	key := int32(tableOID)
	var ok bool
	var pid uint32
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, $2), pg_backend_pid()`, advisoryNamespace, key).Scan(&ok, &pid); err != nil {
		conn.Release()
		return nil, fmt.Errorf("taking the migration lock: %w", err)
	}
	if !ok {
		var holder string
		_ = conn.QueryRow(ctx, `
			SELECT coalesce(a.pid::text || ' (' || coalesce(nullif(a.application_name, ''), 'unknown') || ' from ' || coalesce(a.client_addr::text, 'local') || ')', 'another session')
			FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
			WHERE l.locktype = 'advisory' AND l.classid = $1::bigint::oid AND l.objid = ($2::bigint & 4294967295)::oid AND l.granted LIMIT 1`,
			advisoryNamespace, key).Scan(&holder)
		conn.Release()
		return nil, fmt.Errorf("another pgcapacity process is working on this table's migration (backend %s): wait for it to finish or stop it, then rerun", holder)
	}
	return &tableLock{conn: conn, key: key, pid: pid}, nil
}

func (l *tableLock) release() {
	if l == nil || l.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := l.conn.Exec(ctx, `SELECT pg_advisory_unlock($1, $2)`, advisoryNamespace, l.key); err != nil {
		// The session is unusable; closing it releases the lock server-side.
		_ = l.conn.Conn().Close(ctx)
	}
	l.conn.Release()
	l.conn = nil
}

func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}
