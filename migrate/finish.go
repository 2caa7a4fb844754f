package migrate

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sigid/pgcapacity/migrate/state"
)

// DropOld drops the retained original once the rollback period has passed
// since the swap, with its capture triggers and change log.
func (m *Migrator) DropOld(ctx context.Context, id int64, rollbackPeriod time.Duration, opts CopyOptions) error {
	opts = opts.withDefaults()
	mig, lock, done, err := m.admit(ctx, id, state.StepDropOld)
	if err != nil {
		return err
	}
	if done {
		m.logger.Info("already dropped", "id", id)
		return nil
	}
	defer lock.release()
	ctx = lock.bind(ctx)
	if deadline := mig.SwappedAt.Add(rollbackPeriod); m.now().Before(deadline) {
		return fmt.Errorf("migration %d was swapped at %s and the rollback period (%s) runs until %s: the original stays until then so the swap can be rolled back; rerun after that, or pass a shorter --rollback-period if the release owners agreed",
			id, mig.SwappedAt.UTC().Format(time.RFC3339), rollbackPeriod, deadline.UTC().Format(time.RFC3339))
	}
	if mig.PostSwapPending {
		if err := m.postSwap(ctx, id, opts); err != nil {
			return err
		}
	}
	err = m.retry(ctx, "drop-old", opts.Retries, func() error {
		return m.inTx(ctx, m.pool, func(tx pgx.Tx) error {
			if err := applySettings(ctx, tx, lockSettings(opts.LockTimeout)); err != nil {
				return err
			}
			if _, err := guard(ctx, tx, id, state.StepDropOld); err != nil {
				return err
			}
			live, err := tableByOID(ctx, tx, *mig.NewOID)
			if err != nil {
				return err
			}
			retained, err := relName(ctx, tx, mig.OriginalOID)
			if err != nil {
				return err
			}
			n := newNames(id, live, mig.ToPartitions)
			for _, s := range dropOldSteps(n, live.Qualified(), qualifiedPartitions(live), retained, opts.LockTimeout) {
				if err := runStatements(ctx, tx, s); err != nil {
					return fmt.Errorf("dropping the original: %w", err)
				}
			}
			if err := state.Apply(ctx, tx, id, state.StepDropOld); err != nil {
				return err
			}
			return state.RecordEvent(ctx, tx, id, "drop_old", "dropped "+retained)
		})
	})
	if err != nil {
		return fmt.Errorf("drop-old of migration %d: %w", id, err)
	}
	return nil
}

// Abort removes everything the migration created before a swap (or after
// a rollback); the original table is left as it was.
func (m *Migrator) Abort(ctx context.Context, id int64, opts CopyOptions) error {
	opts = opts.withDefaults()
	mig, lock, done, err := m.admit(ctx, id, state.StepAbort)
	if err != nil {
		return err
	}
	if done {
		m.logger.Info("already aborted", "id", id)
		return nil
	}
	defer lock.release()
	ctx = lock.bind(ctx)
	err = m.retry(ctx, "abort", opts.Retries, func() error {
		return m.inTx(ctx, m.pool, func(tx pgx.Tx) error {
			if err := applySettings(ctx, tx, lockSettings(opts.LockTimeout)); err != nil {
				return err
			}
			if _, err := guard(ctx, tx, id, state.StepAbort); err != nil {
				return err
			}
			orig, err := tableByOID(ctx, tx, mig.OriginalOID)
			if err != nil {
				return err
			}
			n := newNames(id, orig, mig.ToPartitions)
			newTable := ""
			if mig.NewOID != nil {
				if newTable, err = relName(ctx, tx, *mig.NewOID); err != nil {
					return err
				}
			}
			for _, s := range abortSteps(n, orig.Qualified(), qualifiedPartitions(orig), newTable, opts.LockTimeout) {
				if err := runStatements(ctx, tx, s); err != nil {
					return fmt.Errorf("removing the migration's objects: %w", err)
				}
			}
			if err := state.DeleteCopyProgress(ctx, tx, id); err != nil {
				return err
			}
			if err := state.Apply(ctx, tx, id, state.StepAbort); err != nil {
				return err
			}
			return state.RecordEvent(ctx, tx, id, "abort", "removed "+newTable+", the change log and the capture triggers")
		})
	})
	if err != nil {
		return fmt.Errorf("abort of migration %d: %w", id, err)
	}
	return nil
}
