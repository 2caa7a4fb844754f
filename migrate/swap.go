package migrate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sigid/pgcapacity/migrate/state"
)

// SwapOptions tune swap and rollback.
type SwapOptions struct {
	Window         string        // maintenance window, such as "Sat 02:00-04:00 Europe/Berlin" (swap only)
	NowReason      string        // non-empty: swap outside the window, recording this reason
	LockTimeout    time.Duration // per attempt (default 2s)
	Retries        int           // attempts (default 10)
	BatchSize      int           // replay batch
	BacklogTarget  int64         // replay outside the lock until the backlog is at most this
	RollbackPeriod time.Duration // recorded as the rollback deadline
	// FullCountCheck counts both tables in full under the lock. By default
	// both are counted in one snapshot just before the lock, and under the
	// lock only the rows of keys changed since are compared, which keeps
	// the lock short whatever the table size.
	FullCountCheck bool
	// MaxFinalReplay is the most captured changes the swap leaves for the
	// replay under its lock (default 5000): a backlog that stays above it
	// makes the swap wait, and fail after CatchUpTimeout (default 10m).
	MaxFinalReplay int64
	CatchUpTimeout time.Duration
	// Silence, when set, is called before the locked transaction of a swap
	// (after the window check) to silence the table's capacity alerts; its
	// result is recorded.
	Silence func(ctx context.Context, schema, table string, until time.Time) (string, error)
}

// SwapResult reports a swap or rollback.
type SwapResult struct {
	SnapshotRows int64 // rows counted in both tables just before the lock (keys in flight left out)
	CheckedKeys  int64 // batches of changed keys compared (before and under the lock)
	Attempts     int
	// LockHold is how long the step held locks that block writes, each
	// from its first lock's request (writers queue behind it) to its
	// commit or rollback: every attempt of the locked transaction, and any
	// attach of per-leaf foreign keys after it (fkPerLeaf). LockHolds
	// lists them.
	LockHold      time.Duration
	LockHolds     []LockHold
	FinalReplayed int64
	Rows          int64
	SilenceID     string
}

// LockHold is one hold of locks that block writes.
type LockHold struct {
	Step string
	Hold time.Duration
}

// ErrOutsideWindow is returned by a swap outside its maintenance window.
var ErrOutsideWindow = errors.New("outside the maintenance window")

// Swap makes the new table live under the original name.
func (m *Migrator) Swap(ctx context.Context, id int64, opts SwapOptions) (*SwapResult, error) {
	return m.switchOver(ctx, id, opts, true)
}

// Rollback makes the original table live again, losing no write made since
// the swap. It is allowed until drop-old.
func (m *Migrator) Rollback(ctx context.Context, id int64, opts SwapOptions) (*SwapResult, error) {
	return m.switchOver(ctx, id, opts, false)
}

func (m *Migrator) switchOver(ctx context.Context, id int64, opts SwapOptions, forward bool) (*SwapResult, error) {
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = DefaultLockTimeout
	}
	if opts.Retries <= 0 {
		opts.Retries = 10
	}
	if opts.BacklogTarget <= 0 {
		opts.BacklogTarget = 200
	}
	if opts.MaxFinalReplay <= 0 {
		opts.MaxFinalReplay = 5000
	}
	if opts.CatchUpTimeout <= 0 {
		opts.CatchUpTimeout = 10 * time.Minute
	}
	copts := CopyOptions{BatchSize: opts.BatchSize, BacklogTarget: opts.BacklogTarget, LockTimeout: opts.LockTimeout, Retries: opts.Retries, StopWhenStalled: true, MaxFinalReplay: opts.MaxFinalReplay}.withDefaults()
	verb, step := "swap", state.StepSwap
	if !forward {
		verb, step = "rollback", state.StepRollback
	}
	mig, lock, _, err := m.admit(ctx, id, step)
	if err != nil {
		return nil, err
	}
	defer lock.release()
	ctx = lock.bind(ctx)
	if forward && mig.ValidatedAt == nil {
		return nil, fmt.Errorf("migration %d has not been validated: run `pgcapacity migrate validate %d` first", id, id)
	}
	res := &SwapResult{}
	var until time.Time
	if forward {
		now := m.now()
		if opts.Window == "" && opts.NowReason == "" {
			return nil, errors.New("--window is required (such as \"Sat 02:00-04:00 Europe/Berlin\"), or --now \"reason\" to swap outside a window")
		}
		if opts.Window != "" {
			w, err := ParseWindow(opts.Window)
			if err != nil {
				return nil, err
			}
			if !w.Contains(now) {
				if opts.NowReason == "" {
					return nil, fmt.Errorf("%w: it is %s, the window is %s (next opens %s): wait for it, or pass --now \"reason\"",
						ErrOutsideWindow, now.In(w.Location).Format("Mon 15:04 MST"), w, w.NextStart(now).Format("Mon 2006-01-02 15:04 MST"))
				}
				until = now.Add(time.Hour)
			} else {
				until = w.EndOf(now)
			}
		} else {
			until = now.Add(time.Hour)
		}
	}
	if mig.PostSwapPending {
		if err := m.postSwap(ctx, id, copts); err != nil {
			return nil, err
		}
	}
	if forward && opts.Silence != nil {
		sid, err := opts.Silence(ctx, mig.Schema, mig.Table, until)
		if err != nil {
			return nil, fmt.Errorf("creating the Alertmanager silence: %w", err)
		}
		res.SilenceID = sid
		_ = state.RecordEvent(ctx, m.pool, id, "silence", fmt.Sprintf("Alertmanager silence %s until %s", sid, until.UTC().Format(time.RFC3339)))
	}
	// Outside the lock: find the highest identity values in use, then
	// (before every attempt) shrink the backlog so the final replay under
	// the lock is short.
	maxima, err := m.identityMaxima(ctx, mig)
	if err != nil {
		return nil, err
	}
	// Replay churn cleared the shadow's visibility bits; a vacuum (no lock
	// that blocks anyone) lets the count check under the lock use
	// index-only scans.
	shadow, err := relName(ctx, m.pool, mig.ShadowOID())
	if err != nil {
		return nil, err
	}
	if err := runStatements(ctx, m.pool, vacuumShadowStep(shadow)); err != nil {
		return nil, err
	}
	err = m.retry(ctx, verb, opts.Retries, func() error {
		res.Attempts++
		copts.CatchUpDeadline = time.Now().Add(opts.CatchUpTimeout)
		if err := m.catchUp(ctx, id, copts); err != nil {
			return err
		}
		var changed []string
		if !opts.FullCountCheck {
			rows, err := m.snapshotCount(ctx, mig)
			if err != nil {
				return err
			}
			res.SnapshotRows = rows
			// The snapshot count took a while: catch up again, keeping
			// every key replayed from now on for the check under the lock.
			if err := m.catchUpCollect(ctx, id, copts, func(k []byte) { changed = append(changed, string(k)) }); err != nil {
				return err
			}
		}
		var t0 time.Time
		err := m.inTx(ctx, m.pool, func(tx pgx.Tx) error {
			if _, err := guard(ctx, tx, id, step); err != nil {
				return err
			}
			var err error
			t0, err = m.switchTx(ctx, tx, mig, opts, forward, maxima, changed, res)
			return err
		})
		// Writers queue behind the first lock from its request on, also
		// in an attempt that then gives up.
		if !t0.IsZero() {
			h := LockHold{Step: verb + " transaction", Hold: time.Since(t0)}
			if err != nil {
				h.Step = fmt.Sprintf("%s attempt %d, rolled back (%s)", verb, res.Attempts, sqlState(err))
			}
			res.LockHolds = append(res.LockHolds, h)
			res.LockHold += h.Hold
		}
		return err
	})
	if err != nil {
		m.setError(ctx, id, err)
		return res, fmt.Errorf("%s of migration %d: %w", verb, id, err)
	}
	m.logger.Info(verb+" committed", "id", id, "lock_hold", res.LockHold.Round(time.Microsecond), "attempts", res.Attempts, "final_replay", res.FinalReplayed)
	if err := state.SetLockHold(ctx, m.pool, id, res.LockHold); err != nil {
		return res, err
	}
	_ = state.RecordEvent(ctx, m.pool, id, verb+"_lock", fmt.Sprintf("exclusive lock held %s, %d attempt(s)", res.LockHold.Round(time.Microsecond), res.Attempts))
	holds, err := m.finishSwap(ctx, id, copts)
	for _, h := range holds {
		res.LockHolds = append(res.LockHolds, h)
		res.LockHold += h.Hold
	}
	return res, err
}

// identityMaxima reads max() of each identity column of the live table.
func (m *Migrator) identityMaxima(ctx context.Context, mig *Migration) (map[string]int64, error) {
	t, err := tableByOID(ctx, m.pool, mig.LiveOID())
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, s := range t.Sequences {
		if !s.Identity {
			continue
		}
		var v *int64
		if err := m.pool.QueryRow(ctx, fmt.Sprintf("SELECT max(%s)::bigint FROM %s", qi(s.Column), t.Qualified())).Scan(&v); err != nil {
			return nil, fmt.Errorf("reading the highest %s of %s: %w", s.Column, t.Qualified(), err)
		}
		if v != nil {
			out[s.Column] = *v
		}
	}
	return out, nil
}

// exclusiveLockSettings prepares a transaction that takes exclusive locks
// while the application writes: lock_timeout, and a short deadlock_timeout
// so that when the lock order of a writer crosses ours (an INSERT ...
// SELECT that reads the table before it locks a referencing one, a cascade
// from the table to a referencing one) this transaction notices the
// deadlock first and is the one that retries, not the application. It
// returns server_version_num.
func exclusiveLockSettings(ctx context.Context, tx pgx.Tx, lockTimeout time.Duration) (int, error) {
	version, mayTune, err := exclusiveLockPrivileges(ctx, tx)
	if err != nil {
		return 0, err
	}
	return version, applySettings(ctx, tx, exclusiveSettings(lockTimeout, mayTune))
}

// switchTx is the locked transaction, in the steps switchPlanSteps lists:
// take the locks, replay the rest of the log, check the counts, switch the
// names, record the new phase. It returns when the locks were granted.
func (m *Migrator) switchTx(ctx context.Context, tx pgx.Tx, mig *Migration, opts SwapOptions, forward bool, maxima map[string]int64, changed []string, res *SwapResult) (time.Time, error) {
	sw, err := takeSwitchLocks(ctx, tx, mig, opts.LockTimeout)
	if err != nil {
		return sw.t0, err
	}
	final, err := sw.finalReplay(ctx, tx, opts.BatchSize, res)
	if err != nil {
		return sw.t0, err
	}
	res.CheckedKeys = int64(len(changed) + len(final))
	tReplay := time.Now()
	if err := sw.countCheck(ctx, tx, mig.ID, opts.FullCountCheck, final, res); err != nil {
		return sw.t0, err
	}
	tCount := time.Now()
	statements, err := sw.switchNames(ctx, tx, mig, forward, maxima)
	if err != nil {
		return sw.t0, err
	}
	m.logger.Debug("swap transaction timing", "id", mig.ID, "read_and_final_replay", tReplay.Sub(sw.t0), "count_check", tCount.Sub(tReplay),
		"switch", time.Since(tCount), "statements", statements)
	return sw.t0, recordSwitch(ctx, tx, mig, opts, forward, res)
}

// switchLocked is what the locked transaction knows once it holds its locks.
type switchLocked struct {
	t0                   time.Time // when the first lock was granted
	version              int       // server_version_num
	liveName, shadowName string
	live                 *Table // read under the locks
	n                    names
	st                   replayStatements
}

// takeSwitchLocks applies the settings and takes the locks (lockStep), then
// re-reads the live table under them.
func takeSwitchLocks(ctx context.Context, tx pgx.Tx, mig *Migration, lockTimeout time.Duration) (*switchLocked, error) {
	sw := &switchLocked{}
	var err error
	if sw.version, err = exclusiveLockSettings(ctx, tx, lockTimeout); err != nil {
		return sw, err
	}
	if sw.liveName, err = relName(ctx, tx, mig.LiveOID()); err != nil {
		return sw, err
	}
	if sw.shadowName, err = relName(ctx, tx, mig.ShadowOID()); err != nil {
		return sw, err
	}
	// The referencing tables and views, locked with the table (see
	// swapLockSQL).
	dependents, err := swapDependents(ctx, tx, mig.LiveOID())
	if err != nil {
		return sw, err
	}
	locked := map[uint32]bool{}
	for _, d := range dependents {
		locked[d.OID] = true
	}
	// Writes to the table queue behind the first lock from its request:
	// the hold counts from there. (The settings are applied above.)
	sw.t0 = time.Now()
	for _, st := range lockStep(nil, sw.liveName, sw.shadowName, dependentNames(dependents)).SQL {
		if _, err := tx.Exec(ctx, st); err != nil {
			return sw, err
		}
	}
	// The per-table lock may have been lost while this waited for its locks.
	if err := checkLock(ctx, tx); err != nil {
		return sw, err
	}
	if sw.live, err = tableByOID(ctx, tx, mig.LiveOID()); err != nil {
		return sw, err
	}
	sw.live.Key = mig.KeyColumns
	for _, fk := range sw.live.ReferencingFKs {
		if !locked[fk.TableOID] {
			return sw, fmt.Errorf("%s gained a foreign key to the table while the swap waited for its locks: rerun", qi(fk.Schema, fk.Table))
		}
	}
	sw.n = newNames(mig.ID, sw.live, mig.ToPartitions)
	sw.st = replaySQL(sw.live, sw.n, sw.liveName, sw.shadowName)
	return sw, nil
}

// finalReplay replays the log until it is empty (replaySteps) and returns
// the keys replayed. Keys replayed before the lock were each checked in
// their replay's snapshot; only these are checked under the lock.
func (sw *switchLocked) finalReplay(ctx context.Context, tx pgx.Tx, batch int, res *SwapResult) ([]string, error) {
	var final []string
	for {
		c, keys, err := replayBatchKeys(ctx, tx, sw.st, max(batch, 10000))
		if err != nil {
			return nil, err
		}
		res.FinalReplayed += c
		if c == 0 {
			return final, nil
		}
		final = append(final, string(keys))
	}
}

// countCheck compares the tables after the final replay (countCheckSteps).
func (sw *switchLocked) countCheck(ctx context.Context, tx pgx.Tx, id int64, full bool, final []string, res *SwapResult) error {
	if full {
		var liveRows, shadowRows int64
		if err := tx.QueryRow(ctx, fullCountSQL(sw.liveName, sw.shadowName)).Scan(&liveRows, &shadowRows); err != nil {
			return fmt.Errorf("counting rows: %w", err)
		}
		if liveRows != shadowRows {
			return fmt.Errorf("count check failed: %s has %d rows, %s has %d after the final replay: nothing was changed; run `pgcapacity migrate validate %d` to find the difference",
				sw.liveName, liveRows, sw.shadowName, shadowRows, id)
		}
		res.Rows = liveRows
		return nil
	}
	var differ int64
	if err := tx.QueryRow(ctx, sw.st.check, final).Scan(&differ); err != nil {
		return fmt.Errorf("checking the rows changed since the count: %w", err)
	}
	if differ != 0 {
		return fmt.Errorf("count check failed: %d row(s) changed since the snapshot count differ between %s and %s after the final replay: nothing was changed; run `pgcapacity migrate validate %d`",
			differ, sw.liveName, sw.shadowName, id)
	}
	res.Rows = res.SnapshotRows
	return nil
}

// switchNames reads what the switch carries and runs it (switchStep); it
// returns the number of statements.
func (sw *switchLocked) switchNames(ctx context.Context, tx pgx.Tx, mig *Migration, forward bool, maxima map[string]int64) (int, error) {
	shadow, err := tableByOID(ctx, tx, mig.ShadowOID())
	if err != nil {
		return 0, err
	}
	objects, err := state.ObjectNames(ctx, tx, mig.ID, mig.LiveOID())
	if err != nil {
		return 0, err
	}
	in := switchInput(sw.n, sw.live, shadow, objects, forward, sw.version)
	if in.identity, err = identityCarries(ctx, tx, sw.live, shadow, maxima); err != nil {
		return 0, err
	}
	script, err := swapScript(in)
	if err != nil {
		return 0, err
	}
	return len(script), runStatements(ctx, tx, switchStep(script))
}

// identityCarries moves each identity sequence of the table becoming live
// past every value in use: the highest read before the lock, and the live
// sequence's position.
func identityCarries(ctx context.Context, tx pgx.Tx, live, shadow *Table, maxima map[string]int64) ([]identityCarry, error) {
	shadowSeq := map[string]uint32{}
	for _, s := range shadow.Sequences {
		if s.Identity {
			shadowSeq[s.Column] = s.OID
		}
	}
	var out []identityCarry
	for _, s := range live.Sequences {
		if !s.Identity {
			continue
		}
		var last int64
		var called bool
		if err := tx.QueryRow(ctx, fmt.Sprintf("SELECT last_value, is_called FROM %s", qi(s.Schema, s.Name))).Scan(&last, &called); err != nil {
			return nil, fmt.Errorf("reading sequence %s: %w", qi(s.Schema, s.Name), err)
		}
		v, ok := maxima[s.Column]
		if called || ok {
			if !called {
				last = v
			}
			out = append(out, identityCarry{shadowSeqOID: shadowSeq[s.Column], value: max(last, v)})
		}
	}
	return out, nil
}

// recordSwitch records the new phase and the audit entry, in the locked
// transaction.
func recordSwitch(ctx context.Context, tx pgx.Tx, mig *Migration, opts SwapOptions, forward bool, res *SwapResult) error {
	var err error
	if forward {
		err = state.Apply(ctx, tx, mig.ID, state.StepSwap, opts.RollbackPeriod.Seconds())
	} else {
		err = state.Apply(ctx, tx, mig.ID, state.StepRollback)
	}
	if err != nil {
		return err
	}
	event, detail := "swap", fmt.Sprintf("%d rows; final replay %d changes", res.Rows, res.FinalReplayed)
	if !forward {
		event = "rollback"
	} else if opts.NowReason != "" {
		detail += "; outside the window: " + opts.NowReason
	}
	return state.RecordEvent(ctx, tx, mig.ID, event, detail)
}

// postSwap finishes a swap or rollback after its commit: validates the
// foreign keys that now reference the live table without blocking writes
// and analyzes the live table.
func (m *Migrator) postSwap(ctx context.Context, id int64, opts CopyOptions) error {
	_, err := m.finishSwap(ctx, id, opts)
	return err
}

// finishSwap is postSwap; it returns the holds of locks that block writes
// it took, which it adds to the migration's recorded lock hold: only ever
// the attach of per-leaf foreign keys (fkPerLeaf).
func (m *Migrator) finishSwap(ctx context.Context, id int64, opts CopyOptions) ([]LockHold, error) {
	mig, err := state.Load(ctx, m.pool, id)
	if err != nil {
		return nil, err
	}
	liveOID := mig.LiveOID()
	type pending struct {
		rel, name, def string
		validated      bool
		parent         *string
	}
	var todo []pending
	err = m.inTx(ctx, m.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, pendingFKsSQL, liveOID)
		if err != nil {
			return err
		}
		for rows.Next() {
			var p pending
			if err := rows.Scan(&p.rel, &p.name, &p.def, &p.validated, &p.parent); err != nil {
				rows.Close()
				return err
			}
			todo = append(todo, p)
		}
		rows.Close()
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("finding foreign keys to validate: %w", err)
	}
	live, err := relName(ctx, m.pool, liveOID)
	if err != nil {
		return nil, err
	}
	steps := 0
	for _, p := range todo {
		if p.validated {
			continue
		}
		steps++
		// SHARE UPDATE EXCLUSIVE on the referencing table, ROW SHARE on
		// the live one: writes go on.
		step := validateFKStep(p.rel, p.name, opts.LockTimeout)
		err := m.retry(ctx, "validating "+p.name, opts.Retries, func() error {
			return m.inTx(ctx, m.pool, func(tx pgx.Tx) error {
				if err := applySettings(ctx, tx, step.Settings); err != nil {
					return err
				}
				return runStatements(ctx, tx, step)
			})
		})
		if err != nil {
			return nil, fmt.Errorf("validating foreign key %s on %s: %w", qi(p.name), p.rel, err)
		}
	}
	var holds []LockHold
	var hold time.Duration
	attached := map[string]bool{}
	for _, p := range todo {
		if p.parent == nil || attached[*p.parent+"\x00"+p.name] {
			continue
		}
		attached[*p.parent+"\x00"+p.name] = true
		steps++
		h, err := m.attachFK(ctx, live, *p.parent, p.name, p.def, opts)
		if err != nil {
			return holds, fmt.Errorf("attaching foreign key %s to %s: %w", qi(p.name), *p.parent, err)
		}
		hold += h
		holds = append(holds, LockHold{Step: fmt.Sprintf("attach %s to %s", qi(p.name), *p.parent), Hold: h})
	}
	if hold > 0 {
		total := hold
		if mig.LastLockHoldSeconds != nil {
			total += time.Duration(*mig.LastLockHoldSeconds * float64(time.Second))
		}
		m.logger.Info("per-leaf foreign keys attached", "id", id, "lock_hold", hold.Round(time.Microsecond), "total_lock_hold", total.Round(time.Microsecond))
		if err := state.SetLockHold(ctx, m.pool, id, total); err != nil {
			return holds, err
		}
		_ = state.RecordEvent(ctx, m.pool, id, "post_swap_lock", fmt.Sprintf("exclusive lock held %s attaching per-leaf foreign keys", hold.Round(time.Microsecond)))
	}
	if err := runStatements(ctx, m.pool, analyzeStep(live)); err != nil {
		return holds, err
	}
	if err := state.ClearPostSwap(ctx, m.pool, id); err != nil {
		return holds, err
	}
	return holds, state.RecordEvent(ctx, m.pool, id, "post_swap", fmt.Sprintf("%d foreign key step(s); analyzed %s", steps, live))
}

// attachFK adds a foreign key to a partitioned referencing table whose
// leaves all carry a validated copy of it: PostgreSQL attaches those
// instead of checking rows, but removes their triggers on the live table
// and each of its partitions, under ACCESS EXCLUSIVE. So it is done as the
// swap is: the same lock order (swapLockSQL),
// lock_timeout with retries, the short deadlock_timeout; and the time the
// locks were held is returned to be reported with the swap's.
func (m *Migrator) attachFK(ctx context.Context, live, parent, name, def string, opts CopyOptions) (time.Duration, error) {
	var hold time.Duration
	err := m.retry(ctx, "attaching "+name, opts.Retries, func() error {
		var t0 time.Time
		err := m.inTx(ctx, m.pool, func(tx pgx.Tx) error {
			if _, err := exclusiveLockSettings(ctx, tx, opts.LockTimeout); err != nil {
				return err
			}
			// The settings are applied above.
			t0 = time.Now()
			return runStatements(ctx, tx, attachFKStep(nil, live, parent, name, def))
		})
		if !t0.IsZero() { // attempts that gave up held their first locks too
			hold += time.Since(t0)
		}
		return err
	})
	return hold, err
}

// snapshotCount counts both tables in one snapshot, outside any lock,
// leaving out keys whose changes are still in the log; the two must agree.
func (m *Migrator) snapshotCount(ctx context.Context, mig *Migration) (int64, error) {
	t, _, err := m.replayState(ctx, m.pool, mig)
	if err != nil {
		return 0, err
	}
	live, err := relName(ctx, m.pool, mig.LiveOID())
	if err != nil {
		return 0, err
	}
	shadow, err := relName(ctx, m.pool, mig.ShadowOID())
	if err != nil {
		return 0, err
	}
	var a, b int64
	if err := m.pool.QueryRow(ctx, snapshotCountSQL(t, newNames(mig.ID, t, mig.ToPartitions), live, shadow)).Scan(&a, &b); err != nil {
		return 0, fmt.Errorf("counting both tables: %w", err)
	}
	if a != b {
		return 0, fmt.Errorf("count check failed: %s has %d rows and %s has %d (keys with changes in flight left out): nothing was changed; run `pgcapacity migrate validate %d`", live, a, shadow, b, mig.ID)
	}
	return a, nil
}
