package migrate

import (
	"context"
	"errors"
	"fmt"
)

// ErrLockLost reports that the session holding the per-table migration lock
// ended while the command ran (terminated, or dropped by a timeout).
var ErrLockLost = errors.New("the per-table migration lock was lost")

type lockContextKey struct{}

// bind returns ctx carrying the lock: every step run with it (each copy and
// replay batch, each transaction of inTx) first checks that the lock is
// still held, so that a command whose lock session ended stops at the next
// step instead of working alongside another process that took the lock.
func (l *tableLock) bind(ctx context.Context) context.Context {
	return context.WithValue(ctx, lockContextKey{}, l)
}

// checkLock verifies, through q (any connection or transaction), that the
// session that took the per-table lock of ctx still holds it. Without a
// lock in ctx it does nothing.
func checkLock(ctx context.Context, q db) error {
	l, _ := ctx.Value(lockContextKey{}).(*tableLock)
	if l == nil {
		return nil
	}
	var held bool
	err := q.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_catalog.pg_locks
		WHERE locktype = 'advisory' AND classid = $1::bigint::oid AND objid = ($2::bigint & 4294967295)::oid AND objsubid = 2 AND pid = $3 AND granted)`,
		advisoryNamespace, l.key, l.pid).Scan(&held)
	if err != nil {
		return fmt.Errorf("checking the per-table migration lock: %w", err)
	}
	if !held {
		return fmt.Errorf("%w: its session (backend %d) ended, terminated or dropped by a timeout; stopped before the next step so that no second process works alongside: rerun the command", ErrLockLost, l.pid)
	}
	return nil
}
