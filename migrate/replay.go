package migrate

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sigid/pgcapacity/migrate/state"
)

var errReplayCheck = errors.New("replay check failed")

// maxReplayBatch bounds one replay transaction.
const maxReplayBatch = 50000

// replayBatchKeys consumes up to limit log entries inside tx, resynchronises
// their keys from the live table into the shadow table and returns those
// keys, as a JSON array of key objects. tx must read the log and the live
// table in one snapshot (REPEATABLE READ, or under the swap's lock).
func replayBatchKeys(ctx context.Context, tx db, st replayStatements, limit int) (int64, []byte, error) {
	var consumed int64
	var keys []byte
	if err := tx.QueryRow(ctx, st.take, limit).Scan(&consumed, &keys); err != nil {
		return 0, nil, fmt.Errorf("reading the change log: %w", err)
	}
	if consumed == 0 {
		return 0, nil, nil
	}
	if _, err := tx.Exec(ctx, st.remove, keys); err != nil {
		return 0, nil, fmt.Errorf("replaying changes (removing deleted rows): %w", err)
	}
	if _, err := tx.Exec(ctx, upsertSavepoint); err != nil {
		return 0, nil, err
	}
	_, err := tx.Exec(ctx, st.upsert, keys)
	if err == nil {
		_, err = tx.Exec(ctx, upsertSavepointRelease)
		return consumed, keys, err
	}
	if sqlState(err) != "23505" {
		return 0, nil, fmt.Errorf("replaying changes (upserting current rows): %w", err)
	}
	// Another unique key collided: a value moved to a key of this batch
	// from a key whose change may lie in a later batch. Resynchronise this
	// batch and every key still in the log (see replaySQL).
	if _, err := tx.Exec(ctx, upsertSavepointRollback); err != nil {
		return 0, nil, err
	}
	if _, err := tx.Exec(ctx, st.resyncStale, keys); err != nil {
		return 0, nil, fmt.Errorf("replaying changes (removing stale rows): %w", err)
	}
	if _, err := tx.Exec(ctx, st.resyncAdd, keys); err != nil {
		return 0, nil, fmt.Errorf("replaying changes (copying current rows): %w", err)
	}
	return consumed, keys, nil
}

// backlog counts the change log entries not yet replayed.
func backlog(ctx context.Context, q db, id int64) (int64, error) {
	var n int64
	if err := q.QueryRow(ctx, fmt.Sprintf(`SELECT count(*) FROM %s`, qi(StateSchema, logTableName(id)))).Scan(&n); err != nil {
		return 0, fmt.Errorf("counting the change log of migration %d: %w", id, err)
	}
	return n, nil
}

// replayState is what a replay loop needs about a migration right now.
func (m *Migrator) replayState(ctx context.Context, q db, mig *Migration) (*Table, replayStatements, error) {
	t, err := tableByOID(ctx, q, mig.OriginalOID)
	if err != nil {
		return nil, replayStatements{}, err
	}
	t.Key = mig.KeyColumns
	live, err := relName(ctx, q, mig.LiveOID())
	if err != nil {
		return nil, replayStatements{}, err
	}
	shadow, err := relName(ctx, q, mig.ShadowOID())
	if err != nil {
		return nil, replayStatements{}, err
	}
	return t, replaySQL(t, newNames(mig.ID, t, mig.ToPartitions), live, shadow), nil
}

// catchUp replays the change log into the shadow table until at most
// opts.BacklogTarget entries remain, then marks a copied migration ready.
func (m *Migrator) catchUp(ctx context.Context, id int64, opts CopyOptions) error {
	return m.catchUpCollect(ctx, id, opts, nil)
}

// catchUpCollect is catchUp that hands the keys of every replayed batch to
// collect.
func (m *Migrator) catchUpCollect(ctx context.Context, id int64, opts CopyOptions, collect func([]byte)) error {
	mig, err := state.Load(ctx, m.pool, id)
	if err != nil {
		return err
	}
	_, st, err := m.replayState(ctx, m.pool, mig)
	if err != nil {
		return err
	}
	started := time.Now()
	limit := opts.BatchSize
	best, sinceBest := int64(math.MaxInt64), 0
	var replayed int64
	lastLog := time.Now()
	for {
		if ctx.Err() != nil {
			return fmt.Errorf("replay of migration %d %w: run `pgcapacity migrate resume %d` to continue", id, ErrInterrupted, id)
		}
		var consumed int64
		bctx := context.WithoutCancel(ctx)
		// Each batch reads the log and the live rows in one snapshot: the
		// collision fallback relies on it. With a collector (before a
		// swap) it checks its own keys in it too: the rows it wrote must
		// equal the live rows it read.
		txOpts := pgx.TxOptions{IsoLevel: pgx.RepeatableRead}
		err := m.retryConflicts(bctx, func() error {
			return pgx.BeginTxFunc(bctx, m.pool, txOpts, func(tx pgx.Tx) error {
				if err := checkLock(bctx, tx); err != nil {
					return err
				}
				var err error
				var keys []byte
				consumed, keys, err = replayBatchKeys(bctx, tx, st, limit)
				if err != nil || collect == nil || keys == nil {
					return err
				}
				var differ int64
				if err := tx.QueryRow(bctx, st.check, []string{string(keys)}).Scan(&differ); err != nil {
					return fmt.Errorf("checking replayed rows: %w", err)
				}
				if differ != 0 {
					return fmt.Errorf("%w: %d replayed row(s) differ from the live table", errReplayCheck, differ)
				}
				collect(keys)
				return nil
			})
		})
		if err != nil {
			return fmt.Errorf("migration %d: %w", id, err)
		}
		replayed += consumed
		if consumed >= int64(limit) && time.Since(lastLog) < 10*time.Second {
			continue
		}
		left, err := backlog(ctx, m.pool, id)
		if err != nil {
			return err
		}
		// A backlog that outgrows the batch gets bigger batches, so replay
		// does not fall behind a busy table for good.
		limit = int(min(max(left/2, int64(opts.BatchSize)), maxReplayBatch))
		if m.Progress != nil {
			m.Progress(Progress{ID: id, Phase: mig.Phase, Backlog: left, RowsPerSecond: float64(replayed) / max(time.Since(started).Seconds(), 1e-3)})
		}
		if time.Since(lastLog) >= 10*time.Second {
			m.logger.Info("replaying captured changes", "id", id, "replayed", replayed, "backlog", left)
			lastLog = time.Now()
		}
		if left <= opts.BacklogTarget {
			break
		}
		// Under a steady stream of writes the backlog settles at a floor
		// that replay cannot beat; a swap then stops here and replays the
		// rest under its lock instead of chasing the writers for ever.
		if left < best {
			best, sinceBest = left, 0
		} else if sinceBest++; opts.StopWhenStalled && sinceBest >= 5 {
			if left <= opts.MaxFinalReplay {
				m.logger.Info("backlog no longer shrinking: the swap replays the rest under its lock", "id", id, "backlog", left)
				break
			}
			if !opts.CatchUpDeadline.IsZero() && time.Now().After(opts.CatchUpDeadline) {
				return fmt.Errorf("writes outpace the replay of migration %d: %d changes wait, more than the %d the swap may replay under its lock: swap at a quieter time, or raise --max-final-replay (the lock is then held longer)",
					id, left, opts.MaxFinalReplay)
			}
		}
	}
	if mig.Phase == PhaseCatchingUp {
		if err := state.Apply(ctx, m.pool, id, state.StepCaughtUp); err != nil {
			return err
		}
		_ = state.RecordEvent(ctx, m.pool, id, "ready", fmt.Sprintf("caught up: %d changes replayed", replayed))
		m.logger.Info("caught up: validate, then swap", "id", id, "replayed", replayed)
	}
	return nil
}

// Resume continues migration id from its last checkpoint: the copy, the
// replay, or the steps after a swap. With follow it keeps replaying (so the
// shadow table stays current) until ctx ends.
func (m *Migrator) Resume(ctx context.Context, id int64, opts CopyOptions, follow time.Duration) error {
	opts = opts.withDefaults()
	_, lock, _, err := m.admit(ctx, id, state.StepResume)
	if err != nil {
		return err
	}
	defer lock.release()
	ctx = lock.bind(ctx)
	if err := m.run(ctx, id, opts); err != nil {
		return err
	}
	for follow > 0 {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(follow):
		}
		if err := m.catchUp(ctx, id, opts); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
	return nil
}
