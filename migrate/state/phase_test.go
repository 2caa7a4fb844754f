package state

import (
	"flag"
	"os"
	"strings"
	"testing"
)

var updateDoc = flag.Bool("update-doc", false, "rewrite the transition table in docs/migrate.md")

// The table is the one rule: every phase has a hint, every step names
// known phases, and every phase but the first is entered by exactly one
// step, so the hint status prints is the hint of the step that led there.
func TestTransitionsConsistent(t *testing.T) {
	known := map[Phase]bool{}
	for _, p := range Phases {
		known[p] = true
		if _, ok := Hints[p]; !ok {
			t.Errorf("phase %s has no hint", p)
		}
	}
	entered := map[Phase]int{}
	steps := map[Step]bool{}
	for _, tr := range Transitions {
		if steps[tr.Step] {
			t.Errorf("step %s twice", tr.Step)
		}
		steps[tr.Step] = true
		if len(tr.Commands) == 0 {
			t.Errorf("step %s: no command takes it", tr.Step)
		}
		for _, f := range tr.From {
			if !known[f] {
				t.Errorf("step %s starts from unknown phase %q", tr.Step, f)
			}
		}
		for p := range tr.Refusals {
			if tr.Allows(p) {
				t.Errorf("step %s has a refusal for %s, which it allows", tr.Step, p)
			}
		}
		if tr.To != "" {
			if !known[tr.To] {
				t.Errorf("step %s leaves unknown phase %q", tr.Step, tr.To)
			}
			entered[tr.To]++
		}
		if tr.Rerun && tr.To == "" {
			t.Errorf("step %s: rerun without a phase to be in", tr.Step)
		}
	}
	for _, p := range Phases {
		if entered[p] != 1 {
			t.Errorf("phase %s is entered by %d steps, want 1", p, entered[p])
		}
	}
}

func TestCheckMessages(t *testing.T) {
	for _, tc := range []struct {
		step  Step
		phase Phase
		want  string // "" : allowed
	}{
		{StepSwap, PhaseReady, ""},
		{StepSwap, PhaseRolledBack, ""},
		{StepSwap, PhaseSwapped, "already swapped"},
		{StepSwap, PhaseAborted, "swap applies only to a migration that is ready or rolled_back"},
		{StepAbort, PhaseSwapped, "roll it back first"},
		{StepAbort, PhaseRolledBack, ""},
		{StepRollback, PhaseDropped, "migration 7 is dropped: rollback applies only to a migration that is swapped (next: nothing: finished)"},
		{StepDropOld, PhaseRolledBack, "drop-old applies only to a migration that is swapped"},
		{StepResume, PhaseAborted, "nothing to resume"},
		{StepValidate, PhaseCopying, "resume 7"},
	} {
		err := TransitionFor(tc.step).Check(7, tc.phase)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s from %s: %v, want allowed", tc.step, tc.phase, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s from %s: %v, want %q", tc.step, tc.phase, err, tc.want)
		}
	}
}

// docs/migrate.md shows the table as generated from Transitions.
func TestDocShowsTransitionTable(t *testing.T) {
	const path = "../../docs/migrate.md"
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const begin, end = "<!-- transitions:begin (generated from migrate/state.Transitions; go test ./migrate/state -update-doc) -->\n", "<!-- transitions:end -->"
	i, j := strings.Index(string(doc), begin), strings.Index(string(doc), end)
	if i < 0 || j < i {
		t.Fatalf("%s lacks the markers %q … %q", path, begin, end)
	}
	want := string(doc[:i+len(begin)]) + TransitionTable() + string(doc[j:])
	if string(doc) == want {
		return
	}
	if *updateDoc {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("%s shows an old transition table: run go test ./migrate/state -run TestDocShowsTransitionTable -update-doc", path)
}
