package migrate

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sigid/pgcapacity/migrate/state"
)

// The steps of swap and rollback, built here for both the commands and
// the plan.

// deadlockTimeoutSQL lets the swap transaction notice a deadlock before
// the application's sessions do (see exclusiveLockSettings).
const deadlockTimeoutSQL = `SELECT pg_catalog.set_config('deadlock_timeout', '50ms', true)`

// exclusiveLockPrivileges reads the server version and whether the role may
// shorten deadlock_timeout. has_parameter_privilege exists from PostgreSQL
// 15; the parser resolves it even in a CASE branch not taken, so choose in Go.
func exclusiveLockPrivileges(ctx context.Context, q db) (version int, mayTune bool, err error) {
	if err := q.QueryRow(ctx, `SELECT current_setting('server_version_num')::int`).Scan(&version); err != nil {
		return 0, false, fmt.Errorf("reading the server version: %w", err)
	}
	mayTuneSQL := `SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user`
	if version >= 150000 {
		mayTuneSQL = `SELECT pg_catalog.has_parameter_privilege('deadlock_timeout', 'SET')`
	}
	if err := q.QueryRow(ctx, mayTuneSQL).Scan(&mayTune); err != nil {
		return 0, false, fmt.Errorf("reading whether deadlock_timeout may be set: %w", err)
	}
	return version, mayTune, nil
}

// exclusiveSettings are the settings of a transaction that takes exclusive
// locks while the application writes: lock_timeout, and (when the role may
// set it) a short deadlock_timeout.
func exclusiveSettings(lockTimeout time.Duration, mayTune bool) []string {
	s := lockSettings(lockTimeout)
	if mayTune {
		s = append(s, deadlockTimeoutSQL)
	}
	return s
}

// dependent is a table or view that references the table, locked with it.
type dependent struct {
	OID  uint32
	Name string
}

// swapDependents reads the referencing tables and views of a table, by
// the names the lock statement uses.
func swapDependents(ctx context.Context, q db, oid uint32) ([]dependent, error) {
	rows, err := q.Query(ctx, `
		SELECT DISTINCT con.conrelid, con.conrelid::pg_catalog.regclass::text FROM pg_catalog.pg_constraint con
		WHERE con.confrelid = $1 AND con.contype = 'f' AND con.conrelid <> $1
		UNION
		SELECT DISTINCT r.ev_class, r.ev_class::pg_catalog.regclass::text FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid
		WHERE d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.refobjid = $1 AND r.ev_class <> $1
		ORDER BY 2`, oid)
	if err != nil {
		return nil, fmt.Errorf("finding dependent tables and views: %w", err)
	}
	deps, err := pgx.CollectRows(rows, pgx.RowToStructByPos[dependent])
	if err != nil {
		return nil, fmt.Errorf("finding dependent tables and views: %w", err)
	}
	return deps, nil
}

func dependentNames(deps []dependent) []string {
	var s []string
	for _, d := range deps {
		s = append(s, d.Name)
	}
	return s
}

// vacuumShadowStep runs before the lock: replay churn cleared the
// shadow's visibility bits, and a vacuum (no lock that blocks anyone) lets
// the count check under the lock use index-only scans.
func vacuumShadowStep(shadow string) Step {
	return Step{Name: "vacuum the table that becomes live", Note: "outside any lock", SQL: []string{"VACUUM " + shadow}}
}

// snapshotCountStep counts both tables in one snapshot, outside any lock.
func snapshotCountStep(t *Table, n names, live, shadow string) Step {
	return Step{Name: "count both tables in one snapshot, outside any lock", When: "without --full-count-check",
		Note: "keys with changes in flight are left out; the two counts must agree. Then replay again, keeping the keys for the check under the lock",
		SQL:  []string{snapshotCountSQL(t, n, live, shadow)}}
}

// lockStep takes the swap's locks (swapLockSQL); the hold counts from the
// request of its first statement.
func lockStep(settings []string, live, shadow string, dependents []string) Step {
	return Step{Name: "take the locks", Note: "one transaction from here to the commit; on lock_timeout or a deadlock it rolls back and retries with backoff",
		Settings: settings, SQL: swapLockSQL(live, shadow, dependents)}
}

// countCheckSteps compare the tables under the lock after the final replay.
func countCheckSteps(st replayStatements, live, shadow string) []Step {
	return []Step{
		{Name: "check every key replayed since the snapshot count", When: "without --full-count-check", SQL: []string{st.check}},
		{Name: "count both tables in full", When: "with --full-count-check", SQL: []string{fullCountSQL(live, shadow)}},
	}
}

func fullCountSQL(live, shadow string) string {
	return fmt.Sprintf("SELECT (SELECT count(*) FROM %s), (SELECT count(*) FROM %s)", live, shadow)
}

// switchStep is the body of the swap transaction (swapScript), sent in one
// round trip.
func switchStep(script []string) Step {
	return Step{Name: "switch the names and carry dependents, privileges and capture", Note: "one round trip; then the state records the new phase and the transaction commits",
		SQL: script, Batch: true}
}

// validateFKStep validates a re-created foreign key after the commit, in its
// own transaction: SHARE UPDATE EXCLUSIVE on the referencing table, ROW
// SHARE on the live one, so writes go on.
func validateFKStep(rel, name string, lockTimeout time.Duration) Step {
	return Step{Name: "validate foreign key " + qi(name) + " on " + rel, Note: "after the commit, its own transaction; writes go on",
		Settings: lockSettings(lockTimeout), SQL: []string{fmt.Sprintf("ALTER TABLE %s VALIDATE CONSTRAINT %s", rel, qi(name))}}
}

// attachFKStep attaches the validated per-leaf copies of a foreign key
// under a key on their partitioned parent (fkPerLeaf), in the swap's lock
// order and with its settings: it takes ACCESS EXCLUSIVE on the live table.
func attachFKStep(settings []string, live, parent, name, def string) Step {
	return Step{Name: "attach foreign key " + qi(name) + " to " + parent, Note: "after the validations, its own transaction; a short hold of the live table, reported with the swap's",
		Settings: settings, SQL: append(swapLockSQL(live, "", []string{parent}), fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s %s", parent, qi(name), strings.TrimSuffix(def, " NOT VALID")))}
}

// analyzeStep ends the post-swap steps.
func analyzeStep(live string) Step {
	return Step{Name: "analyze the live table", SQL: []string{"ANALYZE " + live}}
}

// switchInput builds the swap script's input from the relations the
// migration renames (as state.ObjectNames returns them) and the definitions
// of both tables: live carries the original name now, shadow becomes live.
func switchInput(n names, live, shadow *Table, objects []state.ObjectName, forward bool, serverVersion int) swapInput {
	in := swapInput{n: n, live: live, shadowTriggers: map[string]bool{}, shadowPolicies: map[string]bool{}, serverVersion: serverVersion}
	for _, tr := range shadow.Triggers {
		in.shadowTriggers[tr.Name] = true
	}
	for _, p := range shadow.Policies {
		in.shadowPolicies[p.Name] = true
	}
	in.livePartitions = qualifiedPartitions(live)
	liveSide, shadowSide := "original", "new"
	if !forward {
		liveSide, shadowSide = "new", "original"
	}
	for _, o := range objects {
		switch o.Side {
		case liveSide:
			in.renamesLive = append(in.renamesLive, rename{o.Kind, o.Schema, o.Current, o.ShadowName})
			if o.IsLiveParent {
				in.liveAfter = qi(o.Schema, o.ShadowName)
			}
		case shadowSide:
			in.renamesShadow = append(in.renamesShadow, rename{o.Kind, o.Schema, o.Current, o.LiveName})
			if o.Kind == "r" {
				in.shadowPartitions = append(in.shadowPartitions, qi(o.Schema, o.LiveName))
			}
		}
	}
	return in
}

// predictedObjects are the object names state.ObjectNames will return
// before the swap (forward) or the rollback, in its order.
func predictedObjects(rows []objectRow, forward bool) []state.ObjectName {
	out := make([]state.ObjectName, 0, len(rows))
	for _, r := range rows {
		o := state.ObjectName{Side: r.side, Kind: r.kind, Schema: r.schema, LiveName: r.live, ShadowName: r.shadow}
		liveNow := (r.side == "original") == forward
		o.Current = r.shadow
		if liveNow {
			o.Current = r.live
		}
		o.IsLiveParent = liveNow && r.kind == "p"
		out = append(out, o)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind > out[j].Kind
		}
		return out[i].Current < out[j].Current
	})
	return out
}

// switchPlan is what the plan reads to build the swap and rollback steps
// as the commands will build them.
type switchPlan struct {
	version int
	mayTune bool
	deps    []dependent
	// nt is the new table as start will create it: created in a savepoint
	// that is rolled back, so that the names PostgreSQL chooses for the
	// new partitions' indexes are known.
	nt   *Table
	note string // set when nt had to be guessed instead
}

const planSavepoint = "pgcapacity_plan"

// readSwitchPlan reads what switchPlanSteps needs. It changes nothing: the
// new table it creates is rolled back at once.
func readSwitchPlan(ctx context.Context, tx pgx.Tx, t *Table, n names, currentUser string) (switchPlan, error) {
	var sp switchPlan
	var err error
	if sp.version, sp.mayTune, err = exclusiveLockPrivileges(ctx, tx); err != nil {
		return sp, err
	}
	if sp.deps, err = swapDependents(ctx, tx, t.OID); err != nil {
		return sp, err
	}
	create, err := createNewTableSQL(t, n, currentUser)
	if err != nil {
		return sp, err
	}
	if _, err := tx.Exec(ctx, "SAVEPOINT "+planSavepoint); err != nil {
		return sp, err
	}
	sp.nt, err = func() (*Table, error) {
		for _, s := range create {
			if _, err := tx.Exec(ctx, s); err != nil {
				return nil, err
			}
		}
		return ReadTable(ctx, tx, n.schema, n.newTable)
	}()
	if _, rerr := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT "+planSavepoint); rerr != nil {
		return sp, rerr
	}
	if err != nil {
		sp.note = fmt.Sprintf("the new table could not be tried out in a rolled-back savepoint (%v): the renames of the new partitions' indexes, whose names PostgreSQL chooses at start, are left out", err)
		sp.nt = guessNewTable(t, n)
	}
	return sp, nil
}

// guessNewTable is the new table without the indexes of its partitions.
func guessNewTable(t *Table, n names) *Table {
	nt := &Table{Schema: n.schema, Name: n.newTable, Columns: t.Columns}
	for i := 0; i < n.partitions; i++ {
		nt.Partitions = append(nt.Partitions, Partition{Name: n.newPartitionShadow(i), Modulus: n.partitions, Remainder: i})
	}
	for _, ix := range t.Indexes {
		name := ix.Name
		if ix.Constraint != "" {
			name = ix.Constraint
		}
		nt.Indexes = append(nt.Indexes, Index{Name: shadowNewName(n.id, name)})
	}
	return nt
}

// afterSwap predicts the new table's definition once it is live: what the
// swap carried from t, under t's names.
func afterSwap(t, nt *Table, n names) *Table {
	a := *t
	a.OID = nt.OID
	a.Columns = nt.Columns
	a.Partitions = nil
	var parts []string
	for _, p := range nt.Partitions {
		parts = append(parts, qi(t.Schema, n.newPartitionLive(p.Remainder)))
	}
	grants := carriedPartitionGrants(t, parts)
	prefix := fmt.Sprintf("n%d_", n.id)
	for i, p := range nt.Partitions {
		p.Name = n.newPartitionLive(p.Remainder)
		p.Grants = grants[i]
		var ixs []NamedRel
		for _, ix := range p.Indexes {
			ixs = append(ixs, NamedRel{ix.OID, strings.TrimPrefix(ix.Name, prefix)})
		}
		p.Indexes = ixs
		a.Partitions = append(a.Partitions, p)
	}
	return &a
}

// switchPlanSteps are the steps of a swap (forward) or of the rollback
// after it, as switchOver builds them, from the plan's reads.
func switchPlanSteps(t *Table, n names, sp switchPlan, lockTimeout time.Duration, forward bool) ([]Step, error) {
	rows, err := objectRows(n.id, t, sp.nt, n)
	if err != nil {
		return nil, err
	}
	objects := predictedObjects(rows, forward)
	live, shadow := t, sp.nt
	liveName, shadowName := t.Qualified(), n.newQualified()
	if !forward {
		live, shadow = afterSwap(t, sp.nt, n), t
		shadowName = qi(t.Schema, n.retained)
	}
	in := switchInput(n, live, shadow, objects, forward, sp.version)
	script, err := swapScript(in)
	if err != nil {
		return nil, err
	}
	catchUp := replaySQL(t, n, liveName, shadowName)
	final := replaySQL(live, n, liveName, shadowName)
	steps := []Step{vacuumShadowStep(shadowName)}
	steps = append(steps, replaySteps(catchUp)...)
	steps = append(steps, snapshotCountStep(t, n, liveName, shadowName))
	lock := lockStep(exclusiveSettings(lockTimeout, sp.mayTune), liveName, shadowName, dependentNames(sp.deps))
	if t.hasIdentity() {
		lock.Note += "; the switch below also moves each identity sequence past the highest value in use (SELECT pg_catalog.setval(sequence, value, true)), values read under the lock"
	}
	steps = append(steps, lock)
	for i, s := range replaySteps(final) {
		s.Name = "under the lock: " + s.Name
		if i == 0 {
			s.Note = "until the log is empty"
		}
		steps = append(steps, s)
	}
	steps = append(steps, countCheckSteps(final, liveName, shadowName)...)
	steps = append(steps, switchStep(script))
	// After the commit: what pendingFKsSQL will find, in its order.
	rel := map[uint32]string{}
	for _, d := range sp.deps {
		rel[d.OID] = d.Name
	}
	type pending struct{ rel, name, parent, def string }
	var todo []pending
	for _, fk := range live.ReferencingFKs {
		switch fkFormOf(fk, sp.version) {
		case fkNotValid:
			todo = append(todo, pending{rel: rel[fk.TableOID], name: fk.Name})
		case fkPerLeaf:
			for _, leaf := range fk.LeafPartitions {
				todo = append(todo, pending{rel: leaf.Name, name: fk.Name, parent: rel[fk.TableOID], def: fk.Def})
			}
		}
	}
	sort.SliceStable(todo, func(i, j int) bool {
		if todo[i].rel != todo[j].rel {
			return todo[i].rel < todo[j].rel
		}
		return todo[i].name < todo[j].name
	})
	for _, p := range todo {
		steps = append(steps, validateFKStep(p.rel, p.name, lockTimeout))
	}
	attached := map[string]bool{}
	for _, p := range todo {
		if p.parent == "" || attached[p.parent+"\x00"+p.name] {
			continue
		}
		attached[p.parent+"\x00"+p.name] = true
		steps = append(steps, attachFKStep(exclusiveSettings(lockTimeout, sp.mayTune), liveName, p.parent, p.name, p.def))
	}
	return append(steps, analyzeStep(liveName)), nil
}

func (t *Table) hasIdentity() bool {
	for _, s := range t.Sequences {
		if s.Identity {
			return true
		}
	}
	return false
}
