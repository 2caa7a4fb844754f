package state

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Phase is where a migration stands. Only Apply changes it, and only as
// Transitions allow.
type Phase string

// Phases of a migration.
const (
	PhaseCopying    Phase = "copying"     // capture installed, copy in progress
	PhaseCatchingUp Phase = "catching_up" // copy done, replaying the backlog
	PhaseReady      Phase = "ready"       // backlog small: validate, then swap
	PhaseSwapped    Phase = "swapped"     // new table live, original retained and kept current
	PhaseRolledBack Phase = "rolled_back" // original live again, new table kept current
	PhaseDropped    Phase = "dropped"     // original dropped after the rollback period: done
	PhaseAborted    Phase = "aborted"     // everything the migration created removed
)

// Phases lists every phase in the order a migration meets them.
var Phases = []Phase{PhaseCopying, PhaseCatchingUp, PhaseReady, PhaseSwapped, PhaseRolledBack, PhaseDropped, PhaseAborted}

// Active reports whether a migration in phase p still holds objects in the
// database.
func (p Phase) Active() bool { return p != PhaseDropped && p != PhaseAborted }

// Step names one row of Transitions.
type Step string

// The steps of a migration.
const (
	StepStart    Step = "start"
	StepCopied   Step = "copied"
	StepCaughtUp Step = "caught_up"
	StepResume   Step = "resume"
	StepValidate Step = "validate"
	StepSwap     Step = "swap"
	StepRollback Step = "rollback"
	StepDropOld  Step = "drop_old"
	StepAbort    Step = "abort"
)

// Transition is one row of the table: which commands take the step, the
// phases it may start from, the phase it leaves (empty: unchanged) and the
// columns it sets besides the phase.
type Transition struct {
	Step     Step
	Commands []string
	From     []Phase
	To       Phase
	// Rerun: taking the step again once the migration is in To succeeds
	// and changes nothing.
	Rerun bool
	// Refusals are the messages, more helpful than the generic one, for a
	// phase outside From (%[1]d is the migration id, %[2]s its phase).
	Refusals map[Phase]string
	// set is the SET clause besides phase and last_error; $1 is the id,
	// $3 onwards the arguments Apply is given.
	set string
}

// Transitions is the one definition of which command may move a migration
// from which phase to which. docs/migrate.md shows it (TransitionTable).
var Transitions = []Transition{
	{Step: StepStart, Commands: []string{"start"}, To: PhaseCopying},
	{Step: StepCopied, Commands: []string{"start", "resume"}, From: []Phase{PhaseCopying}, To: PhaseCatchingUp,
		set: `copy_finished_at = now(), estimated_rows = (SELECT coalesce(sum(copied_rows), 0) FROM pgcapacity.copy_progress WHERE migration_id = $1)`},
	{Step: StepCaughtUp, Commands: []string{"start", "resume", "validate", "swap"}, From: []Phase{PhaseCatchingUp}, To: PhaseReady},
	{Step: StepResume, Commands: []string{"resume"}, From: []Phase{PhaseCopying, PhaseCatchingUp, PhaseReady, PhaseSwapped, PhaseRolledBack},
		Refusals: map[Phase]string{PhaseDropped: "migration %[1]d is %[2]s: nothing to resume", PhaseAborted: "migration %[1]d is %[2]s: nothing to resume"}},
	{Step: StepValidate, Commands: []string{"validate"}, From: []Phase{PhaseCatchingUp, PhaseReady, PhaseSwapped, PhaseRolledBack},
		Refusals: map[Phase]string{
			PhaseCopying: "migration %[1]d is %[2]s: validation needs a finished copy (run `pgcapacity migrate resume %[1]d` first)",
			PhaseDropped: "migration %[1]d is %[2]s: validation needs both tables", PhaseAborted: "migration %[1]d is %[2]s: validation needs both tables"}},
	{Step: StepSwap, Commands: []string{"swap"}, From: []Phase{PhaseReady, PhaseRolledBack}, To: PhaseSwapped,
		Refusals: map[Phase]string{
			PhaseCopying:    "migration %[1]d is still %[2]s: run `pgcapacity migrate resume %[1]d` until it is ready, then validate",
			PhaseCatchingUp: "migration %[1]d is still %[2]s: run `pgcapacity migrate resume %[1]d` until it is ready, then validate",
			PhaseSwapped:    "migration %[1]d is already swapped",
		},
		set: `swapped_at = now(), rollback_deadline = now() + make_interval(secs => $3), swaps = swaps + 1, post_swap_pending = true`},
	{Step: StepRollback, Commands: []string{"rollback"}, From: []Phase{PhaseSwapped}, To: PhaseRolledBack,
		set: `rolled_back_at = now(), rollback_deadline = NULL, post_swap_pending = true`},
	{Step: StepDropOld, Commands: []string{"drop-old"}, From: []Phase{PhaseSwapped}, To: PhaseDropped, Rerun: true,
		set: `finished_at = now()`},
	{Step: StepAbort, Commands: []string{"abort"}, From: []Phase{PhaseCopying, PhaseCatchingUp, PhaseReady, PhaseRolledBack}, To: PhaseAborted, Rerun: true,
		Refusals: map[Phase]string{
			PhaseSwapped: "migration %[1]d is swapped: roll it back first (`pgcapacity migrate rollback %[1]d`), then abort",
			PhaseDropped: "migration %[1]d is finished (the original was dropped): nothing to abort",
		},
		set: `finished_at = now()`},
}

// Hints are what `status` prints as the next step in each phase (%[1]d is
// the migration id, %[2]s the end of the rollback period); Hint fills them.
var Hints = map[Phase]string{
	PhaseCopying:    "pgcapacity migrate resume %[1]d   (continues from the last checkpoint)",
	PhaseCatchingUp: "pgcapacity migrate resume %[1]d   (continues from the last checkpoint)",
	PhaseReady:      "pgcapacity migrate validate %[1]d, then pgcapacity migrate swap %[1]d --window \"Sat 02:00-04:00 Europe/Berlin\"",
	PhaseSwapped:    "keep the original until %[2]s (rollback: pgcapacity migrate rollback %[1]d), then pgcapacity migrate drop-old %[1]d",
	PhaseRolledBack: "pgcapacity migrate swap %[1]d again, or pgcapacity migrate abort %[1]d",
	PhaseDropped:    "nothing: finished",
	PhaseAborted:    "nothing: finished",
}

// Hint is what to do next with migration id in phase p.
func Hint(p Phase, id int64, rollbackDeadline *time.Time) string {
	until := "the rollback period has passed"
	if rollbackDeadline != nil {
		until = rollbackDeadline.UTC().Format(time.RFC3339)
	}
	h, ok := Hints[p]
	if !ok {
		return "unknown phase " + string(p) + ": this pgcapacity is older than the state it reads"
	}
	return strings.NewReplacer("%[1]d", strconv.FormatInt(id, 10), "%[2]s", until).Replace(h)
}

// TransitionFor returns the row of step s.
func TransitionFor(s Step) Transition {
	for _, t := range Transitions {
		if t.Step == s {
			return t
		}
	}
	panic("state: no transition " + string(s))
}

// Allows reports whether the step may start from phase p.
func (t Transition) Allows(p Phase) bool {
	for _, f := range t.From {
		if f == p {
			return true
		}
	}
	return false
}

// Done reports whether a migration in phase p has already taken the step
// and the step may be rerun as a no-op.
func (t Transition) Done(p Phase) bool { return t.Rerun && p == t.To }

// Check returns nil when the step may start from phase p, else the error
// to show (it names the phase and what to do).
func (t Transition) Check(id int64, p Phase) error {
	if t.Allows(p) {
		return nil
	}
	if msg, ok := t.Refusals[p]; ok {
		return &PhaseError{ID: id, Step: t.Step, Phase: p, msg: fmt.Sprintf(msg, id, p)}
	}
	from := make([]string, len(t.From))
	for i, f := range t.From {
		from[i] = string(f)
	}
	return &PhaseError{ID: id, Step: t.Step, Phase: p, msg: fmt.Sprintf("migration %d is %s: %s applies only to a migration that is %s (next: %s)",
		id, p, strings.Join(t.Commands, "/"), orList(from), Hint(p, id, nil))}
}

// PhaseError refuses a step the migration's phase does not allow.
type PhaseError struct {
	ID    int64
	Step  Step
	Phase Phase
	msg   string
}

func (e *PhaseError) Error() string { return e.msg }

func orList(s []string) string {
	if len(s) <= 1 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}

// Apply takes step s in transaction q: it moves migration id to the step's
// phase, setting the step's columns (args are their parameters from $3),
// only if the migration is still in a phase the step may start from. The
// caller has taken the table's migration lock and read the row with
// LoadForUpdate in q; the guard in the UPDATE makes the table the rule even
// for a caller that did not.
func Apply(ctx context.Context, q DB, id int64, s Step, args ...any) error {
	t := TransitionFor(s)
	if t.To == "" {
		return fmt.Errorf("state: step %s changes no phase", s)
	}
	set := "phase = $2, last_error = NULL"
	if t.set != "" {
		set += ", " + t.set
	}
	from := make([]string, len(t.From))
	for i, f := range t.From {
		from[i] = string(f)
	}
	args = append([]any{id, string(t.To)}, args...)
	args = append(args, from)
	tag, err := q.Exec(ctx, fmt.Sprintf(`UPDATE pgcapacity.migration SET %s WHERE id = $1 AND phase = ANY($%d::text[])`, set, len(args)), args...)
	if err != nil {
		return fmt.Errorf("recording the %s step of migration %d: %w", s, id, err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	m, err := Load(ctx, q, id)
	if err != nil {
		return err
	}
	return t.Check(id, m.Phase)
}

// TransitionTable renders Transitions and Hints as the Markdown table
// docs/migrate.md shows.
func TransitionTable() string {
	var b strings.Builder
	b.WriteString("| step | command | may start from | leaves the migration | `status` then says next |\n|---|---|---|---|---|\n")
	for _, t := range Transitions {
		cmds := make([]string, len(t.Commands))
		for i, c := range t.Commands {
			cmds[i] = "`" + c + "`"
		}
		from := "(no migration)"
		if len(t.From) > 0 {
			fs := make([]string, len(t.From))
			for i, f := range t.From {
				fs[i] = "`" + string(f) + "`"
			}
			from = strings.Join(fs, ", ")
		}
		to, next := "(phase unchanged)", "(as before)"
		if t.To != "" {
			to = "`" + string(t.To) + "`"
			if t.Rerun {
				to += " (rerun: no-op)"
			}
			next = strings.NewReplacer("%[1]d", "ID", "%[2]s", "DEADLINE").Replace(Hints[t.To])
			next = strings.ReplaceAll(next, "|", `\|`)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", t.Step, strings.Join(cmds, ", "), from, to, next)
	}
	return b.String()
}
