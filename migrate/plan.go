package migrate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sigid/pgcapacity/internal/config"
	"github.com/sigid/pgcapacity/internal/playbook"
	"github.com/sigid/pgcapacity/internal/playbook/vacuumlag"
	"github.com/sigid/pgcapacity/internal/units"
	"github.com/sigid/pgcapacity/migrate/state"
)

// PlanRequest asks for a plan to move a table to a partition count.
type PlanRequest struct {
	Schema              string
	Table               string
	Partitions          int
	ForceDecreaseReason string // non-empty: a decrease proceeds whatever the rules say, and the reason is recorded
	Thresholds          config.Thresholds
	TenantColumn        string
	// AssumedRowsPerSecond is the copy rate the time estimate uses.
	AssumedRowsPerSecond float64
	// LockTimeout is the --lock-timeout the commands will be given
	// (default DefaultLockTimeout); the steps shown carry it.
	LockTimeout time.Duration
}

// Plan is what a migration would do, and whether it may.
type Plan struct {
	Table                 *Table
	AssumedID             int64
	From, To              int
	Rows                  float64
	RowsPerPartitionNow   float64
	RowsPerPartitionAfter float64
	TenantColumn          string
	TenantIndexBytes      int64
	TenantIndexNow        float64 // per partition
	TenantIndexAfter      float64 // per partition
	SharedBuffersBytes    int64
	AssumedRowsPerSecond  float64
	EstimatedCopy         time.Duration
	Relation              string
	Decrease              *DecreaseCheck
	Refusals              []string
	Notes                 []string
	// Commands are the steps each command runs, built by the functions the
	// commands use (steps.go), with the names this plan predicts.
	Commands []CommandSteps
}

// DecreaseCheck is the evaluation of what allows a decrease: the
// playbook's rule 4 (vacuum lag) or rule 6 (planning time, here from
// pg_stat_statements) holding now, and the merged tenant indexes fitting.
type DecreaseCheck struct {
	PlanningShare      *float64 // share of planning in total time of statements on the table; nil: no data
	PlanningShareLimit float64
	PlanningNote       string
	PlanningMean       time.Duration // mean planning time per call of those statements
	PlanningMin        time.Duration // PGCAPACITY_PLANNING_MIN
	PlanningHolds      bool
	VacuumLag          time.Duration
	VacuumLagLimit     time.Duration
	VacuumLagHolds     bool
	IndexShareAfter    float64
	IndexShareLimit    float64
	IndexFits          bool
	Forced             string
}

// MaxPartitions is the largest partition count migrate creates: every
// query that cannot prune plans and locks every partition, and the swap
// locks all of them, old and new, in one transaction.
const MaxPartitions = 4096

// swapLocks estimates the relation locks the swap transaction holds at
// once: both parents and all their partitions, each with its indexes, the
// identity sequences, and the referencing tables and views.
func swapLocks(t *Table, to int) int {
	perTable := 1 + len(t.Indexes)
	n := (1+len(t.Partitions))*perTable + (1+to)*perTable + 2*len(t.Sequences) + len(t.Views)
	for _, fk := range t.ReferencingFKs {
		n += 1 + len(fk.LeafPartitions)
	}
	return n
}

// Plan reads the table and builds the plan; refusals are in Plan.Refusals.
func (m *Migrator) Plan(ctx context.Context, req PlanRequest) (*Plan, error) {
	if req.Table == "" {
		return nil, errors.New("--table is required: name the hash-partitioned table to change")
	}
	if req.Partitions < 1 {
		return nil, fmt.Errorf("--partitions %d is not a partition count: give the target number of hash partitions, such as 32", req.Partitions)
	}
	if req.Partitions > MaxPartitions {
		return nil, fmt.Errorf("--partitions %d is above the limit of %d: past a few thousand partitions planning and locking cost more than they save; choose a smaller count", req.Partitions, MaxPartitions)
	}
	if req.AssumedRowsPerSecond <= 0 {
		req.AssumedRowsPerSecond = 50000
	}
	if req.LockTimeout <= 0 {
		req.LockTimeout = DefaultLockTimeout
	}
	var plan *Plan
	err := m.inTx(ctx, m.pool, func(tx pgx.Tx) error {
		if req.Schema == "" {
			if err := tx.QueryRow(ctx, `SELECT coalesce((SELECT n.nspname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
				WHERE c.relname = $1 AND n.nspname = ANY (pg_catalog.current_schemas(false)) ORDER BY array_position(pg_catalog.current_schemas(false), n.nspname) LIMIT 1), 'public')`, req.Table).Scan(&req.Schema); err != nil {
				return fmt.Errorf("resolving the schema of %q: %w", req.Table, err)
			}
		}
		t, err := ReadTable(ctx, tx, req.Schema, req.Table)
		if err != nil {
			return err
		}
		plan, err = m.buildPlan(ctx, tx, t, req)
		return err
	})
	if err != nil {
		return nil, err
	}
	return plan, nil
}

func (m *Migrator) buildPlan(ctx context.Context, tx pgx.Tx, t *Table, req PlanRequest) (*Plan, error) {
	p := &Plan{Table: t, From: len(t.Partitions), To: req.Partitions, Rows: t.Rows(), AssumedRowsPerSecond: req.AssumedRowsPerSecond}
	p.Refusals = append(p.Refusals, t.Problems...)
	var version int
	if err := tx.QueryRow(ctx, `SELECT current_setting('server_version_num')::int`).Scan(&version); err != nil {
		return nil, fmt.Errorf("reading the server version: %w", err)
	}
	if version < 140000 {
		p.Refusals = append(p.Refusals, "PostgreSQL 14 or newer is needed (block-range copy uses TID range scans)")
	}
	if len(t.Problems) > 0 && (t.Strategy != "h" || len(t.Partitions) == 0) {
		return p, nil
	}
	if p.To == p.From {
		p.Refusals = append(p.Refusals, fmt.Sprintf("%s already has %d partitions", t.Qualified(), p.From))
	}
	// The lock table is shared by every session and sized by these
	// settings; a swap that needs more fails out of shared memory every time.
	var locksPerTx, conns, prepared int
	if err := tx.QueryRow(ctx, `SELECT current_setting('max_locks_per_transaction')::int, current_setting('max_connections')::int,
		current_setting('max_prepared_transactions')::int`).Scan(&locksPerTx, &conns, &prepared); err != nil {
		return nil, fmt.Errorf("reading the lock table size: %w", err)
	}
	if need, capacity := swapLocks(t, p.To), locksPerTx*(conns+prepared); need > capacity {
		p.Refusals = append(p.Refusals, fmt.Sprintf("the swap to %d partitions would lock about %d relations in one transaction, more than the server's lock table holds for all sessions together (max_locks_per_transaction %d × (max_connections %d + max_prepared_transactions %d) = %d): choose fewer partitions, or raise max_locks_per_transaction (a restart) to at least %d",
			p.To, need, locksPerTx, conns, prepared, capacity, (need+conns+prepared-1)/(conns+prepared)))
	}
	var err error
	if p.AssumedID, err = state.NextID(ctx, tx); err != nil {
		return nil, err
	}
	if err := tx.QueryRow(ctx, `SELECT pg_catalog.pg_size_bytes(current_setting('shared_buffers'))`).Scan(&p.SharedBuffersBytes); err != nil {
		return nil, fmt.Errorf("reading shared_buffers: %w", err)
	}
	p.TenantColumn = tenantColumn(t, req.TenantColumn)
	for _, ix := range t.Indexes {
		if ix.LeadColumn != "" && ix.LeadColumn == p.TenantColumn {
			p.TenantIndexBytes += ix.Bytes
		}
	}
	if p.From > 0 {
		p.RowsPerPartitionNow = p.Rows / float64(p.From)
		p.TenantIndexNow = float64(p.TenantIndexBytes) / float64(p.From)
	}
	if p.To > 0 {
		p.RowsPerPartitionAfter = p.Rows / float64(p.To)
		p.TenantIndexAfter = float64(p.TenantIndexBytes) / float64(p.To)
	}
	p.EstimatedCopy = time.Duration(p.Rows / req.AssumedRowsPerSecond * float64(time.Second))
	p.Relation = relation(p.From, p.To)
	if p.To < p.From {
		d, err := decreaseCheck(ctx, tx, t, p, req)
		if err != nil {
			return nil, err
		}
		p.Decrease = d
		if req.ForceDecreaseReason == "" {
			if !d.PlanningHolds && !d.VacuumLagHolds {
				p.Refusals = append(p.Refusals, fmt.Sprintf("a decrease needs planning or autovacuum overhead to be the bottleneck now, and neither rule holds (%s: planning share %s, mean planning %s, limit %.0f%% and above %s; %s: worst vacuum lag %s, limit %s): pass --force-decrease \"reason\" to override",
					playbook.RulePlanning, fmtShare(d.PlanningShare, d.PlanningNote), d.PlanningMean, d.PlanningShareLimit*100, d.PlanningMin,
					playbook.RuleVacuumLag, d.VacuumLag.Round(time.Second), d.VacuumLagLimit))
			}
			if !d.IndexFits {
				p.Refusals = append(p.Refusals, fmt.Sprintf("after the merge each partition's tenant indexes would take %.1f%% of shared_buffers, above the %.0f%% limit (PGCAPACITY_DECREASE_INDEX_SHARE): choose more partitions or pass --force-decrease \"reason\"",
					d.IndexShareAfter*100, d.IndexShareLimit*100))
			}
		} else {
			d.Forced = req.ForceDecreaseReason
		}
	}
	if len(commonReloptions(t)) == 0 && len(t.Partitions) > 0 && len(t.Partitions[0].Reloptions) > 0 {
		p.Notes = append(p.Notes, "the partitions have different storage parameters: the new partitions get none; set them after the swap")
	}
	if t.ReplicaIdentity == "i" {
		p.Notes = append(p.Notes, "REPLICA IDENTITY USING INDEX is not carried: set it on the new table after the swap")
	}
	for _, fk := range t.ReferencingFKs {
		if !fk.Validated {
			p.Notes = append(p.Notes, fmt.Sprintf("foreign key %s on %s is NOT VALID today; after the swap it is validated", qi(fk.Name), qi(fk.Schema, fk.Table)))
		}
		if fkFormOf(fk, version) == fkChecked {
			p.Notes = append(p.Notes, fmt.Sprintf("foreign key %s on %s moves rows between its partitions (its action writes the partition key): before PostgreSQL 18 the swap and the rollback check it under their lock, reading every row of %s (about 3 µs a row); upgrade to 18 first if it is large", qi(fk.Name), qi(fk.Schema, fk.Table), qi(fk.Schema, fk.Table)))
		}
	}
	if len(p.Refusals) == 0 {
		// The new table gets an owner only when the one running start is
		// not the original's: the plan assumes it is the one planning.
		var currentUser string
		if err := tx.QueryRow(ctx, `SELECT current_user`).Scan(&currentUser); err != nil {
			return nil, fmt.Errorf("reading the current user: %w", err)
		}
		sp, err := readSwitchPlan(ctx, tx, t, newNames(p.AssumedID, t, p.To), currentUser)
		if err != nil {
			return nil, err
		}
		if sp.note != "" {
			p.Notes = append(p.Notes, sp.note)
		}
		commands, err := planSteps(t, p, currentUser, req.LockTimeout, sp)
		if err != nil {
			return nil, err
		}
		p.Commands = commands
	}
	return p, nil
}

func tenantColumn(t *Table, configured string) string {
	for _, c := range t.Columns {
		if c.Name == configured {
			return configured
		}
	}
	if len(t.KeyColumns) > 0 {
		return t.KeyColumns[0]
	}
	return configured
}

func relation(from, to int) string {
	switch {
	case from <= 0 || to <= 0:
		return ""
	case to%from == 0:
		return fmt.Sprintf("%d is a multiple of %d: each new partition draws from exactly one original partition (new i from original i mod %d), so copy, checkpoint and validation go partition by partition and each original partition is read once into %d new ones.", to, from, from, to/from)
	case from%to == 0:
		return fmt.Sprintf("%d divides %d: each original partition goes whole into one new partition (original j into new j mod %d), so copy, checkpoint and validation go partition by partition.", to, from, to)
	default:
		g := gcd(from, to)
		return fmt.Sprintf("%d is neither a multiple nor a divisor of %d: the rows of each original partition spread over %d new partitions and each new partition draws from %d original ones, so every batch writes across many partitions and validation reads every original partition against several new ones. It works; %s would be cheaper.",
			to, from, to/g, from/g, cheaperTargets(from, to))
	}
}

// cheaperTargets names the multiples or divisors of from nearest to to.
func cheaperTargets(from, to int) string {
	var c []string
	if to > from {
		if lo := to / from * from; lo > from {
			c = append(c, strconv.Itoa(lo))
		}
		c = append(c, strconv.Itoa((to+from-1)/from*from))
	} else {
		for d := to; d >= 1; d-- {
			if from%d == 0 {
				c = append(c, strconv.Itoa(d))
				break
			}
		}
		for d := to + 1; d < from; d++ {
			if from%d == 0 {
				c = append(c, strconv.Itoa(d))
				break
			}
		}
	}
	return strings.Join(c, " or ")
}

var regexpSpecial = regexp.MustCompile(`[\\^$.|?*+()\[\]{}]`)

func decreaseCheck(ctx context.Context, tx pgx.Tx, t *Table, p *Plan, req PlanRequest) (*DecreaseCheck, error) {
	d := &DecreaseCheck{
		PlanningShareLimit: req.Thresholds.PlanningShare,
		PlanningMin:        req.Thresholds.PlanningMin.D(),
		VacuumLagLimit:     req.Thresholds.WriteRetentionTarget.D(),
		IndexShareLimit:    req.Thresholds.DecreaseIndexShare,
	}
	// vacuumlag's trigger (TriggersOf) and lag (Since) are the definitions
	// serve and check use; a plan is a fresh process, so each partition
	// starts from the database's bound.
	var set vacuumlag.Settings
	var maxThreshold *string
	if err := tx.QueryRow(ctx, `SELECT `+vacuumlag.SettingsSQL).Scan(&set.VacuumThreshold, &set.VacuumScaleFactor, &maxThreshold,
		&set.AnalyzeThreshold, &set.AnalyzeScaleFactor); err != nil {
		return nil, fmt.Errorf("reading the autovacuum settings: %w", err)
	}
	set.VacuumMaxThreshold = vacuumlag.ParseMaxThreshold(maxThreshold)
	rows, err := tx.Query(ctx, `
		SELECT coalesce(c.reloptions, '{}'), c.reltuples::float8, coalesce(pg_catalog.pg_stat_get_dead_tuples(c.oid), 0)::float8,
		       greatest(pg_catalog.pg_stat_get_last_vacuum_time(c.oid), pg_catalog.pg_stat_get_last_autovacuum_time(c.oid)),
		       pg_catalog.pg_postmaster_start_time(), now()
		FROM pg_catalog.pg_inherits i
		JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = $1`, t.OID)
	if err != nil {
		return nil, fmt.Errorf("reading autovacuum lag: %w", err)
	}
	for rows.Next() {
		var o vacuumlag.Observation
		var reloptions []string
		var reltuples float64
		var last *time.Time
		if err := rows.Scan(&reloptions, &reltuples, &o.DeadRows, &last, &o.CountingSince, &o.Now); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading autovacuum lag: %w", err)
		}
		if last != nil {
			o.LastVacuum = *last
		}
		o.Trigger = vacuumlag.TriggersOf(set, reloptions, reltuples).Vacuum
		_, lag := vacuumlag.Since(o, time.Time{})
		d.VacuumLag = max(d.VacuumLag, lag)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading autovacuum lag: %w", err)
	}
	// The playbook's rule 4 judges the table being merged whether or not it
	// is hot: its autovacuum overhead is what a decrease would relieve.
	v := playbook.Get(playbook.VacuumLag).Judge(req.Thresholds, playbook.Sample{},
		playbook.TableSample{Schema: t.Schema, Table: t.Name, Hot: true, VacuumLagSeconds: d.VacuumLag.Seconds()})
	d.VacuumLagHolds = v.Judged && v.Holds

	var pgssSchema string
	err = tx.QueryRow(ctx, `SELECT n.nspname FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_stat_statements'`).Scan(&pgssSchema)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		d.PlanningNote = "pg_stat_statements is not installed in this database"
	case err != nil:
		return nil, fmt.Errorf("looking for pg_stat_statements: %w", err)
	default:
		var plan, total, meanPlanMS *float64
		var statements int64
		pattern := `\m` + regexpSpecial.ReplaceAllString(t.Name, `\$0`) + `\M`
		err := tx.QueryRow(ctx, fmt.Sprintf(`SELECT sum(total_plan_time), sum(total_plan_time + total_exec_time), count(*), sum(total_plan_time) / nullif(sum(plans), 0)
			FROM %s WHERE dbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()) AND query ~* $1`, qi(pgssSchema, "pg_stat_statements")),
			pattern).Scan(&plan, &total, &statements, &meanPlanMS)
		if err != nil {
			d.PlanningNote = "pg_stat_statements cannot be read: " + err.Error()
			break
		}
		if statements == 0 || total == nil || *total == 0 {
			d.PlanningNote = "pg_stat_statements has no statements on this table yet"
			break
		}
		share, _ := playbook.PlanningShare(*plan, *total)
		d.PlanningShare = &share
		if meanPlanMS != nil {
			d.PlanningMean = time.Duration(*meanPlanMS * float64(time.Millisecond))
		}
		// Rule 6's condition, on the statements' sums and mean planning
		// time where the probes give p95s.
		d.PlanningHolds = playbook.PlanningTimeHolds(req.Thresholds, share, d.PlanningMean)
		var track string
		if err := tx.QueryRow(ctx, `SELECT coalesce(current_setting('pg_stat_statements.track_planning', true), 'off')`).Scan(&track); err == nil && track != "on" {
			d.PlanningNote = "pg_stat_statements.track_planning is off, so planning time reads as zero"
		}
	}
	if p.SharedBuffersBytes > 0 {
		d.IndexShareAfter = p.TenantIndexAfter / float64(p.SharedBuffersBytes)
	}
	d.IndexFits = d.IndexShareAfter < d.IndexShareLimit
	return d, nil
}

func fmtShare(s *float64, note string) string {
	if s == nil {
		return "unknown: " + note
	}
	return fmt.Sprintf("%.1f%%", *s*100)
}

func planSteps(t *Table, p *Plan, currentUser string, lockTimeout time.Duration, sp switchPlan) ([]CommandSteps, error) {
	n := newNames(p.AssumedID, t, p.To)
	start, err := startSteps(t, n, currentUser, lockTimeout)
	if err != nil {
		return nil, err
	}
	parts := qualifiedPartitions(t)
	var newParts []string
	for i := 0; i < p.To; i++ {
		newParts = append(newParts, qi(t.Schema, n.newPartitionLive(i)))
	}
	first := qi(t.Schema, t.Partitions[0].Name)
	swap, err := switchPlanSteps(t, n, sp, lockTimeout, true)
	if err != nil {
		return nil, err
	}
	rollback, err := switchPlanSteps(t, n, sp, lockTimeout, false)
	if err != nil {
		return nil, err
	}
	return []CommandSteps{
		{Command: "start", Note: "first the state store creates (or upgrades) the pgcapacity schema and records the migration; resume continues from the last checkpoint of the copy or the replay", Steps: start},
		{Command: "validate", Steps: []Step{
			{Name: "counts and checksums per new partition, constraints and indexes", Note: "in one snapshot; keys with changes still in the log are left out on both sides; shown for the first partitions",
				SQL: []string{validateOriginalSQL(t, n, first), validateNewSQL(t, n, qi(t.Schema, n.newPartitionShadow(0)))}},
		}},
		{Command: "swap", Note: "a window check and the Alertmanager silence first; the steps from the catch-up to the commit are retried as one on a lock timeout or deadlock", Steps: swap},
		{Command: "rollback", Note: "the swap in the other direction: the original takes its names back, reverse capture stops, capture to the new table resumes", Steps: rollback},
		{Command: "drop-old", Note: "after the rollback period", Steps: dropOldSteps(n, t.Qualified(), newParts, qi(t.Schema, n.retained), lockTimeout)},
		{Command: "abort", Note: "before the swap, or after a rollback", Steps: abortSteps(n, t.Qualified(), parts, n.newQualified(), lockTimeout)},
	}, nil
}

// Print writes the plan for a person.
func (p *Plan) Print(w io.Writer) {
	t := p.Table
	fmt.Fprintf(w, "table:                 %s\n", t.Qualified())
	fmt.Fprintf(w, "partitions:            %d -> %d\n", p.From, p.To)
	if len(t.Key) > 0 {
		fmt.Fprintf(w, "capture key:           (%s) from %s\n", strings.Join(t.Key, ", "), t.KeyName)
	}
	fmt.Fprintf(w, "rows (estimate):       %.0f\n", p.Rows)
	fmt.Fprintf(w, "rows per partition:    %.0f now, %.0f after\n", p.RowsPerPartitionNow, p.RowsPerPartitionAfter)
	fmt.Fprintf(w, "tenant indexes (%s):  %s in all; per partition %s now, %s after; shared_buffers %s (%.1f%% after)\n",
		p.TenantColumn, units.Bytes(float64(p.TenantIndexBytes)), units.Bytes(p.TenantIndexNow), units.Bytes(p.TenantIndexAfter),
		units.Bytes(float64(p.SharedBuffersBytes)), 100*p.TenantIndexAfter/max(float64(p.SharedBuffersBytes), 1))
	fmt.Fprintf(w, "estimated copy time:   %s (at %.0f rows/s; measure yours with bench/migrate)\n", p.EstimatedCopy.Round(time.Second), p.AssumedRowsPerSecond)
	if p.Relation != "" {
		fmt.Fprintf(w, "\n%s\n", p.Relation)
	}
	if d := p.Decrease; d != nil {
		fmt.Fprintf(w, "\ndecrease rule: planning share %s, mean planning %s (holds above %.0f%% and %s: %v); worst autovacuum lag %s (holds above %s: %v); tenant indexes per partition after the merge %.1f%% of shared_buffers (limit %.0f%%: fits %v)\n",
			fmtShare(d.PlanningShare, d.PlanningNote), d.PlanningMean, d.PlanningShareLimit*100, d.PlanningMin, d.PlanningHolds, d.VacuumLag.Round(time.Second), d.VacuumLagLimit, d.VacuumLagHolds,
			d.IndexShareAfter*100, d.IndexShareLimit*100, d.IndexFits)
		if d.Forced != "" {
			fmt.Fprintf(w, "decrease forced: %s\n", d.Forced)
		}
	}
	fmt.Fprintf(w, "\ncarried at the swap: %d indexes, %d constraints, %d triggers, %d policies (row security %v, forced %v), %d grants, %d referencing foreign keys, %d views, %d publications, %d owned sequences\n",
		len(t.Indexes), len(t.Constraints), len(t.Triggers), len(t.Policies), t.RowSecurity, t.ForceRowSecurity, len(t.Grants), len(t.ReferencingFKs), len(t.Views), len(t.Publications), len(t.Sequences))
	for _, n := range p.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	if len(p.Refusals) > 0 {
		fmt.Fprintf(w, "\nREFUSED:\n")
		for _, r := range p.Refusals {
			fmt.Fprintf(w, "  - %s\n", r)
		}
		return
	}
	fmt.Fprintf(w, "\nsteps of each command (names assume migration id %d, the next free one):\n", p.AssumedID)
	for _, c := range p.Commands {
		fmt.Fprintf(w, "\n== pgcapacity migrate %s\n", c.Command)
		if c.Note != "" {
			fmt.Fprintf(w, "-- %s\n", c.Note)
		}
		for i, s := range c.Steps {
			fmt.Fprintf(w, "\n%d. %s\n", i+1, s.Name)
			if s.When != "" {
				fmt.Fprintf(w, "   -- only %s\n", s.When)
			}
			if s.Repeat {
				fmt.Fprintf(w, "   -- repeated, once per batch, until done\n")
			}
			if s.Note != "" {
				fmt.Fprintf(w, "   -- %s\n", s.Note)
			}
			for _, sql := range s.Settings {
				fmt.Fprintf(w, "%s;\n", sql)
			}
			for _, sql := range s.SQL {
				fmt.Fprintf(w, "%s;\n", sql)
			}
		}
	}
}
