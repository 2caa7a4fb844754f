package migrate

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sigid/pgcapacity/migrate/state"
	"golang.org/x/time/rate"
)

// CopyOptions tune the copy and the replay.
type CopyOptions struct {
	BatchSize        int           // rows per copy batch (approximate: batches are block ranges)
	MaxRowsPerSecond float64       // 0: unlimited
	Jobs             int           // source partitions copied in parallel
	BacklogTarget    int64         // catch-up ends when the backlog is at most this
	LockTimeout      time.Duration // lock_timeout for the short DDL steps
	Retries          int           // attempts for steps that wait on locks
	StopWhenStalled  bool          // catch-up also ends when the backlog stops shrinking at or below MaxFinalReplay (before a swap)
	MaxFinalReplay   int64         // with StopWhenStalled: the most changes left for the final replay under the lock
	CatchUpDeadline  time.Time     // with StopWhenStalled: give up when the backlog is still above MaxFinalReplay then
}

func (o CopyOptions) withDefaults() CopyOptions {
	if o.BatchSize <= 0 {
		o.BatchSize = 10000
	}
	if o.Jobs <= 0 {
		o.Jobs = 1
	}
	if o.BacklogTarget <= 0 {
		o.BacklogTarget = int64(o.BatchSize)
	}
	if o.LockTimeout <= 0 {
		o.LockTimeout = DefaultLockTimeout
	}
	if o.Retries <= 0 {
		o.Retries = 10
	}
	return o
}

// StartRequest starts a migration.
type StartRequest struct {
	PlanRequest
	Reason    string
	Requester string
	Approver  string
	Copy      CopyOptions
}

// ErrInterrupted reports a copy or replay stopped at a batch boundary by
// cancellation; `resume` continues it.
var ErrInterrupted = errors.New("stopped at a batch boundary")

// Start records a migration, creates the new table, installs change
// capture on the original, copies and catches up. It returns the migration
// id as soon as it is recorded, also when a later step fails or is
// interrupted: `resume ID` continues from the last checkpoint.
func (m *Migrator) Start(ctx context.Context, req StartRequest) (int64, error) {
	req.Reason, req.Requester, req.Approver = strings.TrimSpace(req.Reason), strings.TrimSpace(req.Requester), strings.TrimSpace(req.Approver)
	switch {
	case req.Reason == "":
		return 0, errors.New("--reason is required: say why the partition count changes (it is recorded for the audit)")
	case req.Requester == "":
		return 0, errors.New("--requester is required: name who asked for the change")
	case req.Approver == "":
		return 0, errors.New("--approver is required: name who approved the change (not the requester)")
	case strings.EqualFold(req.Requester, req.Approver):
		return 0, fmt.Errorf("the approver %q is the requester: a repartition needs a second person's approval", req.Approver)
	}
	opts := req.Copy.withDefaults()
	// Plan before creating the state schema: bad input (a missing table, a
	// refusal) must leave the database unchanged. Plan reads the state only
	// when the schema exists.
	plan, err := m.Plan(ctx, req.PlanRequest)
	if err != nil {
		return 0, err
	}
	if len(plan.Refusals) > 0 {
		return 0, &RefusedError{Reasons: plan.Refusals}
	}
	if err := state.Ensure(ctx, m.pool); err != nil {
		return 0, err
	}
	lock, err := lockTable(ctx, m.pool, plan.Table.OID)
	if err != nil {
		return 0, err
	}
	defer lock.release()
	ctx = lock.bind(ctx)

	var id int64
	err = m.retry(ctx, "installing change capture", opts.Retries, func() error {
		return m.inTx(ctx, m.pool, func(tx pgx.Tx) error {
			var err error
			id, err = m.setup(ctx, tx, req, plan, opts)
			return err
		})
	})
	if err != nil {
		return 0, err
	}
	m.logger.Info("migration recorded, change capture installed", "id", id, "table", plan.Table.Qualified(), "from", plan.From, "to", plan.To)
	return id, m.run(ctx, id, opts)
}

// RefusedError lists why a migration may not start.
type RefusedError struct{ Reasons []string }

func (e *RefusedError) Error() string {
	return "refused: " + strings.Join(e.Reasons, "; ")
}

func (m *Migrator) setup(ctx context.Context, tx pgx.Tx, req StartRequest, plan *Plan, opts CopyOptions) (int64, error) {
	if err := applySettings(ctx, tx, lockSettings(opts.LockTimeout)); err != nil {
		return 0, err
	}
	// Re-read inside the transaction: the definition the DDL copies is the
	// one locked by it.
	t, err := ReadTable(ctx, tx, plan.Table.Schema, plan.Table.Name)
	if err != nil {
		return 0, err
	}
	if len(t.Problems) > 0 {
		return 0, &RefusedError{Reasons: t.Problems}
	}
	var id int64
	var forced *string
	if req.ForceDecreaseReason != "" {
		forced = &req.ForceDecreaseReason
	}
	id, err = state.Insert(ctx, tx, state.New{Schema: t.Schema, Table: t.Name, OriginalOID: t.OID, From: len(t.Partitions), To: req.Partitions, Key: t.Key,
		Reason: req.Reason, Requester: req.Requester, Approver: req.Approver, ForceDecreaseReason: forced, EstimatedRows: int64(t.Rows())})
	if err != nil {
		if sqlState(err) == "23505" {
			return 0, fmt.Errorf("%s already has a migration in progress: see `pgcapacity migrate status`, then resume, finish or abort it", t.Qualified())
		}
		return 0, fmt.Errorf("recording the migration: %w", err)
	}
	n := newNames(id, t, req.Partitions)
	var currentUser string
	if err := tx.QueryRow(ctx, `SELECT current_user`).Scan(&currentUser); err != nil {
		return 0, err
	}
	steps, err := setupSteps(t, n, currentUser, opts.LockTimeout)
	if err != nil {
		return 0, err
	}
	for _, s := range steps {
		if err := runStatements(ctx, tx, s); err != nil {
			return 0, fmt.Errorf("preparing migration %d: %w", id, err)
		}
	}
	nt, err := ReadTable(ctx, tx, n.schema, n.newTable)
	if err != nil {
		return 0, err
	}
	if err := state.SetNewTable(ctx, tx, id, nt.OID, n.newTable, n.retained); err != nil {
		return 0, err
	}
	if err := recordNames(ctx, tx, id, t, nt, n); err != nil {
		return 0, err
	}
	for _, p := range t.Partitions {
		if err := state.AddCopySource(ctx, tx, id, p.OID, p.Name); err != nil {
			return 0, err
		}
	}
	detail := fmt.Sprintf("%s from %d to %d partitions; reason: %s; requester: %s; approver: %s", t.Qualified(), len(t.Partitions), req.Partitions, req.Reason, req.Requester, req.Approver)
	if forced != nil {
		detail += "; decrease forced: " + *forced
	}
	return id, state.RecordEvent(ctx, tx, id, "start", detail)
}

// objectRow is a relation the swap renames: which side it is on, its
// kind (p, r: tables; I, i: indexes; S: sequences), and its names while
// live and while retained or new.
type objectRow struct {
	side, kind   string
	oid          uint32
	schema       string
	live, shadow string
}

// objectRows lists the relations the swap renames: both parents, their
// partitions, indexes and identity sequences. start records them; plan
// predicts the swap and the rollback from them.
func objectRows(id int64, t, nt *Table, n names) ([]objectRow, error) {
	var rows []objectRow
	rows = append(rows, objectRow{"original", "p", t.OID, t.Schema, t.Name, n.retained})
	for _, p := range t.Partitions {
		rows = append(rows, objectRow{"original", "r", p.OID, t.Schema, p.Name, shadowOldName(id, p.Name)})
		for _, ix := range p.Indexes {
			rows = append(rows, objectRow{"original", "i", ix.OID, t.Schema, ix.Name, shadowOldName(id, ix.Name)})
		}
	}
	liveIndexName := map[string]string{} // new shadow index name -> original index name
	for _, ix := range t.Indexes {
		rows = append(rows, objectRow{"original", "I", ix.OID, t.Schema, ix.Name, shadowOldName(id, ix.Name)})
		if ix.Constraint != "" {
			liveIndexName[shadowNewName(id, ix.Constraint)] = ix.Name
		} else {
			liveIndexName[shadowNewName(id, ix.Name)] = ix.Name
		}
	}
	identitySeq := map[string]string{}
	for _, s := range t.Sequences {
		if s.Identity {
			rows = append(rows, objectRow{"original", "S", s.OID, s.Schema, s.Name, shadowOldName(id, s.Name)})
			identitySeq[s.Column] = s.Name
		}
	}
	rows = append(rows, objectRow{"new", "p", nt.OID, nt.Schema, t.Name, nt.Name})
	prefix := fmt.Sprintf("n%d_", id)
	for _, p := range nt.Partitions {
		rows = append(rows, objectRow{"new", "r", p.OID, nt.Schema, n.newPartitionLive(p.Remainder), p.Name})
		for _, ix := range p.Indexes {
			rows = append(rows, objectRow{"new", "i", ix.OID, nt.Schema, strings.TrimPrefix(ix.Name, prefix), ix.Name})
		}
	}
	for _, ix := range nt.Indexes {
		live, ok := liveIndexName[ix.Name]
		if !ok {
			return nil, fmt.Errorf("index %s of the new table matches no index of %s", qi(nt.Schema, ix.Name), t.Qualified())
		}
		rows = append(rows, objectRow{"new", "I", ix.OID, nt.Schema, live, ix.Name})
	}
	for _, s := range nt.Sequences {
		if s.Identity {
			live, ok := identitySeq[s.Column]
			if !ok {
				return nil, fmt.Errorf("identity sequence %s of the new table matches no sequence of %s", qi(s.Schema, s.Name), t.Qualified())
			}
			rows = append(rows, objectRow{"new", "S", s.OID, s.Schema, live, s.Name})
		}
	}
	seen := map[string]bool{}
	for _, r := range rows {
		for _, name := range []string{"live:" + r.side + ":" + r.live, "shadow:" + r.shadow} {
			if seen[name] && !strings.HasPrefix(name, "live:") {
				return nil, fmt.Errorf("two objects would share the retained name %q: shorten the long partition or index names of %s", r.shadow, t.Qualified())
			}
			seen[name] = true
		}
	}
	return rows, nil
}

// recordNames stores objectRows in the state.
func recordNames(ctx context.Context, tx pgx.Tx, id int64, t, nt *Table, n names) error {
	rows, err := objectRows(id, t, nt, n)
	if err != nil {
		return err
	}
	for _, r := range rows {
		if err := state.AddObjectName(ctx, tx, id, r.side, r.kind, r.oid, r.live, r.shadow); err != nil {
			return err
		}
	}
	return nil
}

// run continues a migration from its phase up to ready (or finishes the
// post-swap steps); it is what start does after setup and what resume does.
func (m *Migrator) run(ctx context.Context, id int64, opts CopyOptions) error {
	mig, err := state.Load(ctx, m.pool, id)
	if err != nil {
		return err
	}
	var runErr error
	switch mig.Phase {
	case PhaseCopying:
		if runErr = m.copy(ctx, mig, opts); runErr == nil {
			runErr = m.catchUp(ctx, id, opts)
		}
	case PhaseCatchingUp, PhaseReady:
		runErr = m.catchUp(ctx, id, opts)
	case PhaseSwapped, PhaseRolledBack:
		if mig.PostSwapPending {
			runErr = m.postSwap(ctx, id, opts)
		}
		if runErr == nil {
			runErr = m.catchUp(ctx, id, opts)
		}
	}
	m.setError(ctx, id, runErr)
	return runErr
}

func (m *Migrator) copy(ctx context.Context, mig *Migration, opts CopyOptions) error {
	t, err := tableByOID(ctx, m.pool, mig.OriginalOID)
	if err != nil {
		return err
	}
	n := newNames(mig.ID, t, mig.ToPartitions)
	// Rows appended after this point arrive through capture: the copy never
	// chases the end of a growing partition.
	if err := state.MeasureCopySources(ctx, m.pool, mig.ID); err != nil {
		return err
	}
	parts, err := state.CopySources(ctx, m.pool, mig.ID)
	if err != nil {
		return err
	}
	// In the order of the table's partitions, as the plan lists them.
	order := map[uint32]int{}
	for i, p := range t.Partitions {
		order[p.OID] = i
	}
	sort.SliceStable(parts, func(i, j int) bool { return order[parts[i].SourceOID] < order[parts[j].SourceOID] })
	var totalBlocks, doneBlocks, copied atomic.Int64
	for _, p := range parts {
		totalBlocks.Add(p.TotalBlocks)
		doneBlocks.Add(min(p.NextBlock, p.TotalBlocks))
		copied.Add(p.CopiedRows)
	}
	var limiter *rate.Limiter
	if opts.MaxRowsPerSecond > 0 {
		limiter = newRowLimiter(opts.MaxRowsPerSecond, opts.BatchSize, time.Now())
	}
	started, startBlocks := time.Now(), doneBlocks.Load()
	report := func() {
		if m.Progress == nil {
			return
		}
		p := Progress{ID: mig.ID, Phase: PhaseCopying, CopiedRows: copied.Load(), EstimatedRows: max(mig.EstimatedRows, copied.Load()),
			DoneBlocks: doneBlocks.Load(), TotalBlocks: totalBlocks.Load()}
		if el := time.Since(started).Seconds(); el > 0 {
			blocksPerSec := float64(p.DoneBlocks-startBlocks) / el
			if p.DoneBlocks > 0 {
				p.RowsPerSecond = blocksPerSec * float64(p.CopiedRows) / float64(p.DoneBlocks)
			}
			if blocksPerSec > 0 {
				p.ETA = time.Duration(float64(p.TotalBlocks-p.DoneBlocks) / blocksPerSec * float64(time.Second))
			}
		}
		m.Progress(p)
	}
	report()
	// The first failed batch stops the feeder and, at their next batch
	// boundary, the other workers: a worker that returned must not leave
	// the feeder waiting for a taker that never comes.
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	work := make(chan state.CopySource)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for w := 0; w < opts.Jobs; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				err := m.copyPartition(wctx, mig.ID, t, n, p, opts, limiter, func(blocks, rows int64) {
					doneBlocks.Add(blocks)
					copied.Add(rows)
					report()
				})
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					stop()
					return
				}
			}
		}()
	}
feed:
	for _, p := range parts {
		if p.Done || p.NextBlock >= p.TotalBlocks {
			continue
		}
		select {
		case work <- p:
		case <-wctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	// A worker that met the cancellation outside a batch (looking up its
	// next partition) was interrupted, not failed.
	if firstErr != nil && !(ctx.Err() != nil && errors.Is(firstErr, context.Canceled)) {
		return fmt.Errorf("copy of migration %d: %w: fix the cause, then run `pgcapacity migrate resume %d`", mig.ID, firstErr, mig.ID)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("copy of migration %d %w: run `pgcapacity migrate resume %d` to continue", mig.ID, ErrInterrupted, mig.ID)
	}
	if err := state.Apply(ctx, m.pool, mig.ID, state.StepCopied); err != nil {
		return err
	}
	_ = state.RecordEvent(ctx, m.pool, mig.ID, "copied", fmt.Sprintf("%d rows copied", copied.Load()))
	// The copy left every page without visibility bits and the table
	// without statistics: vacuum it now, outside any lock, so that reads
	// (and the swap's count check) need not.
	if err := runStatements(ctx, m.pool, vacuumNewStep(n)); err != nil {
		return err
	}
	m.logger.Info("copy finished", "id", mig.ID, "rows", copied.Load(), "elapsed", time.Since(started).Round(time.Millisecond))
	return nil
}

// copyPartition copies one source partition batch by batch, each batch and
// its checkpoint in one short transaction. A batch once begun is finished
// even when ctx is cancelled: cancellation stops at a batch boundary.
func (m *Migrator) copyPartition(ctx context.Context, id int64, t *Table, n names, p state.CopySource, opts CopyOptions, limiter *rate.Limiter, done func(blocks, rows int64)) error {
	perBlock := 1.0
	if p.Pages > 0 && p.Tuples > 0 {
		perBlock = max(1, p.Tuples/float64(p.Pages))
	}
	step := max(int64(1), int64(float64(opts.BatchSize)/perBlock))
	source, err := relName(ctx, m.pool, p.SourceOID)
	if err != nil {
		return err
	}
	steps := copySteps(t, n, source)
	plain, onConflict, count := steps[0].SQL[0], steps[1].SQL[0], steps[1].SQL[1]
	next := p.NextBlock
	for next < p.TotalBlocks {
		if ctx.Err() != nil {
			return nil
		}
		end := min(next+step, p.TotalBlocks)
		var read int64
		bctx := context.WithoutCancel(ctx)
		conflict := false
		err := m.retryConflicts(bctx, func() error {
			return pgx.BeginFunc(bctx, m.pool, func(tx pgx.Tx) error {
				if err := checkLock(bctx, tx); err != nil {
					return err
				}
				if !conflict {
					tag, err := tx.Exec(bctx, plain, next, end)
					if sqlState(err) == "23505" {
						conflict = true
						return err // retried in the conflict form
					}
					if err != nil {
						return err
					}
					read = tag.RowsAffected()
				} else {
					if _, err := tx.Exec(bctx, onConflict, next, end); err != nil {
						return err
					}
					if err := tx.QueryRow(bctx, count, next, end).Scan(&read); err != nil {
						return err
					}
				}
				return state.Checkpoint(bctx, tx, id, p.SourceOID, end, read)
			})
		})
		if err != nil {
			return fmt.Errorf("copying blocks %d-%d of %s: %w", next, end, source, err)
		}
		done(end-next, read)
		next = end
		if limiter != nil && read > 0 {
			select {
			case <-time.After(chargeRows(limiter, time.Now(), read)):
			case <-ctx.Done():
			}
		}
	}
	return nil
}

// newRowLimiter limits the copy to rowsPerSecond, charged after each batch
// (chargeRows). It starts empty: a full bucket let the first burst (a batch
// or a second's rows, whichever is more) through free, so a copy of a few
// bursts ran far above the limit.
func newRowLimiter(rowsPerSecond float64, batch int, now time.Time) *rate.Limiter {
	limiter := rate.NewLimiter(rate.Limit(rowsPerSecond), max(batch, int(rowsPerSecond), 1))
	limiter.ReserveN(now, limiter.Burst())
	return limiter
}

// chargeRows charges every copied row to the limiter, in pieces of at most
// its burst (a larger ReserveN is refused), and returns how long to wait
// before the next batch. Charging at most one burst per batch let a batch
// larger than the burst overshoot --max-rows-per-second.
func chargeRows(limiter *rate.Limiter, now time.Time, rows int64) time.Duration {
	var delay time.Duration
	for rows > 0 {
		n := min(rows, int64(limiter.Burst()))
		delay = limiter.ReserveN(now, int(n)).DelayFrom(now)
		rows -= n
	}
	return delay
}

// retryConflicts retries a batch that lost a race with a concurrent write:
// a foreign key whose referenced row was deleted after the batch's snapshot
// (the delete is captured and replayed), or a serialization failure.
func (m *Migrator) retryConflicts(ctx context.Context, fn func() error) error {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		err = fn()
		switch sqlState(err) {
		case "23503", "23505", "40001", "40P01":
			time.Sleep(time.Duration(attempt+1) * 50 * time.Millisecond)
			continue
		}
		return err
	}
	return err
}

func relName(ctx context.Context, q db, oid uint32) (string, error) {
	var schema, name string
	if err := q.QueryRow(ctx, `SELECT n.nspname, c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1`, oid).Scan(&schema, &name); err != nil {
		return "", fmt.Errorf("finding relation OID %d: %w", oid, err)
	}
	return qi(schema, name), nil
}
