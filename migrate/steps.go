package migrate

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
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
func applySettings(ctx context.Context, tx pgx.Tx, settings []string) error {
	for _, sql := range settings {
		if _, err := tx.Exec(ctx, sql); err != nil {
			return fmt.Errorf("%s: %w", sql, err)
		}
	}
	return nil
}

// runStatements sends a step's statements, after its settings.
func runStatements(ctx context.Context, tx pgx.Tx, s Step) error {
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
