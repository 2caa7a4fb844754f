package migrate

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/sigid/pgcapacity/migrate/state"
)

// Step is one step of a command: the statements it sends, in order, and
// the settings of the transaction they run in. Each command builds its
// steps with the functions in this file from what it reads, then runs
// them; `plan` builds them with the same functions from the definition it
// reads (and the names it predicts) and prints them, so the plan is what
// runs.
type Step struct {
	Name string
	Note string
	// Settings open the step's transaction (lock_timeout, deadlock_timeout),
	// before the reads the statements are built from, so they cover those too.
	Settings []string
	SQL      []string
	// Batch sends SQL in one round trip (joined), as the swap does under its
	// exclusive locks.
	Batch bool
	// Repeat: the step runs once per batch until its work is done.
	Repeat bool
	// When is set on a step that runs only in that case, instead of or
	// after the one before it.
	When string
}

// Sent is what the step sends, in order: its settings, then its statements.
func (s Step) Sent() []string {
	out := append([]string(nil), s.Settings...)
	if s.Batch && len(s.SQL) > 0 {
		return append(out, strings.Join(s.SQL, ";\n"))
	}
	return append(out, s.SQL...)
}

// CommandSteps is what one command runs, in order.
type CommandSteps struct {
	Command string // as typed: start, swap, rollback, drop-old, abort
	Note    string
	Steps   []Step
}

// DefaultLockTimeout is the lock_timeout of every step that waits for a
// lock, unless --lock-timeout says otherwise; steps retry with backoff.
const DefaultLockTimeout = 2 * time.Second

// lockSettings are the settings of a step that takes locks other sessions
// may hold: give up after lockTimeout and retry, rather than queue every
// writer behind the waiting lock.
func lockSettings(lockTimeout time.Duration) []string {
	return []string{fmt.Sprintf("SET LOCAL lock_timeout = %d", lockTimeout.Milliseconds())}
}

// applySettings sends a step's settings (built by the function that builds
// the step, with the same options), first in its transaction: the
// statements are built from reads made under them.
func applySettings(ctx context.Context, tx db, settings []string) error {
	for _, sql := range settings {
		if _, err := tx.Exec(ctx, sql); err != nil {
			return fmt.Errorf("%s: %w", sql, err)
		}
	}
	return nil
}

// runStatements sends a step's statements, after its settings.
func runStatements(ctx context.Context, tx db, s Step) error {
	sent := s.Sent()[len(s.Settings):]
	for _, sql := range sent {
		if _, err := tx.Exec(ctx, sql); err != nil {
			return fmt.Errorf("%s: %w\nstatement: %s", s.Name, err, sql)
		}
	}
	return nil
}

// dropOldSteps is what drop-old runs once the rollback period is over, in
// one transaction: the reverse capture on the live table and its
// partitions, the retained original, the change log and functions.
func dropOldSteps(n names, live string, liveParts []string, retained string, lockTimeout time.Duration) []Step {
	sql := append(dropCaptureSQL(n, live, liveParts), "DROP TABLE "+retained)
	return []Step{{
		Name:     "drop the reverse capture, the retained original and the change log",
		Note:     "one transaction, after the post-swap steps if they are still pending",
		Settings: lockSettings(lockTimeout),
		SQL:      append(sql, dropStateSQL(n)...),
		Batch:    true,
	}}
}

// abortSteps is what abort runs, in one transaction: the capture on the
// original, the new table (when it was created) and the migration's log
// and functions. The original is left as it was.
func abortSteps(n names, orig string, origParts []string, newTable string, lockTimeout time.Duration) []Step {
	sql := dropCaptureSQL(n, orig, origParts)
	if newTable != "" {
		sql = append(sql, "DROP TABLE "+newTable)
	}
	return []Step{{
		Name:     "drop the capture, the new table and the change log",
		Note:     "one transaction; the original table is left as it was",
		Settings: lockSettings(lockTimeout),
		SQL:      append(sql, dropStateSQL(n)...),
		Batch:    true,
	}}
}

func dropStateSQL(n names) []string {
	return []string{
		fmt.Sprintf("DROP TABLE IF EXISTS %s", n.logTable),
		fmt.Sprintf("DROP FUNCTION IF EXISTS %s()", n.captureFunc),
		fmt.Sprintf("DROP FUNCTION IF EXISTS %s()", n.guardFunc),
	}
}

// qualifiedPartitions names a table's partitions, schema-qualified.
func qualifiedPartitions(t *Table) []string {
	parts := make([]string, 0, len(t.Partitions))
	for _, p := range t.Partitions {
		parts = append(parts, qi(t.Schema, p.Name))
	}
	return parts
}

// Savepoint of the replay's upsert: a collision rolls back to it and
// resynchronises instead.
const (
	upsertSavepoint         = "SAVEPOINT pgcapacity_upsert"
	upsertSavepointRelease  = "RELEASE SAVEPOINT pgcapacity_upsert"
	upsertSavepointRollback = "ROLLBACK TO SAVEPOINT pgcapacity_upsert"
)

// setupSteps is what start runs in the transaction that records the
// migration (the store writes the record): the change log and capture
// functions, the new table, then capture on the original, before any row
// is copied. currentUser decides whether the new table needs an owner.
func setupSteps(t *Table, n names, currentUser string, lockTimeout time.Duration) ([]Step, error) {
	setup, err := captureSetupSQL(t, n)
	if err != nil {
		return nil, err
	}
	create, err := createNewTableSQL(t, n, currentUser)
	if err != nil {
		return nil, err
	}
	return []Step{
		{Name: "create the change log and the capture functions", Note: "in the transaction that records the migration, with the reason, requester and approver",
			Settings: lockSettings(lockTimeout), SQL: setup},
		{Name: "create the new partitioned table", SQL: create},
		{Name: "install change capture on the original, before any row is copied", Note: "taking the trigger lock waits for in-flight writes, so every write after it is captured",
			SQL: installCaptureSQL(n, t.Qualified(), qualifiedPartitions(t))},
	}, nil
}

// copySteps is the batch start (or resume) runs for one original
// partition, once per block range ($1, $2), each batch and its checkpoint
// in one short transaction; the second step replaces the first when a row
// updated during the copy reappears in a later block range.
func copySteps(t *Table, n names, source string) []Step {
	plain, onConflict, count := copyBatchSQL(t, n, source)
	return []Step{
		{Name: "copy " + source + " in block-range batches", Repeat: true, SQL: []string{plain, state.CheckpointSQL}},
		{Name: "copy the batch skipping rows already copied", When: "when a row updated during the copy reappears in a later block range", SQL: []string{onConflict, count, state.CheckpointSQL}},
	}
}

// vacuumNewStep follows the copy: it leaves every page without visibility
// bits and the table without statistics, so vacuum now, outside any lock.
func vacuumNewStep(n names) Step {
	return Step{Name: "vacuum and analyze the new table", SQL: []string{"VACUUM (ANALYZE) " + n.newQualified()}}
}

// replaySteps is one replay batch, in a REPEATABLE READ transaction (or
// under the swap's lock): take the oldest changes from the log and
// resynchronise their keys from the live table's current rows.
func replaySteps(st replayStatements) []Step {
	return []Step{
		{Name: "take a batch of captured changes from the log", Repeat: true, Note: "one REPEATABLE READ transaction per batch, until the backlog is small",
			SQL: []string{st.take}},
		{Name: "resynchronise the batch's keys from the live table's current rows", When: "when the batch took changes",
			SQL: []string{st.remove, upsertSavepoint, st.upsert, upsertSavepointRelease}},
		{Name: "resynchronise the batch and every key still in the log", When: "when another unique key collides (a value moved between rows), instead of the upsert",
			SQL: []string{upsertSavepointRollback, st.resyncStale, st.resyncAdd}},
	}
}

// startSteps is everything start runs, in order, for the plan.
func startSteps(t *Table, n names, currentUser string, lockTimeout time.Duration) ([]Step, error) {
	steps, err := setupSteps(t, n, currentUser, lockTimeout)
	if err != nil {
		return nil, err
	}
	for _, p := range qualifiedPartitions(t) {
		steps = append(steps, copySteps(t, n, p)...)
	}
	steps = append(steps, vacuumNewStep(n))
	return append(steps, replaySteps(replaySQL(t, n, t.Qualified(), n.newQualified()))...), nil
}
