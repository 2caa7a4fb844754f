package migrate

import (
	"context"
	"errors"
	"testing"
)

// Ctrl-C while the copy's workers are between batches (here: at once,
// before the first batch) stops the copy as interrupted, which resume
// continues, never as a failure to "fix": a worker that meets the
// cancellation in a catalog lookup must not turn it into an error.
func TestCopyInterruptedBetweenBatchesIsAnInterruption(t *testing.T) {
	ctx := context.Background()
	pool, _ := sigidDB(t, "session", 4)
	m := New(pool, testLogger(t))
	startStopped(t, m, "session", 8)
	// The workers and the feeder race for the first source partition once
	// the context is cancelled; every round must end the same way.
	for round := 0; round < 150; round++ {
		rctx, cancel := context.WithCancel(ctx)
		m.Progress = func(Progress) { cancel() }
		err := m.Resume(rctx, 1, CopyOptions{BatchSize: 50, Jobs: 32}, 0)
		cancel()
		if !errors.Is(err, ErrInterrupted) {
			t.Fatalf("round %d: resume cancelled before its first batch: %v, want the interruption", round, err)
		}
	}
	m.Progress = nil
	// An interruption is no failure: pgcapacity_migration_failing stays 0.
	if mig := loadMig(t, pool, 1); mig.Phase != PhaseCopying || mig.LastError != nil {
		t.Errorf("after the interruptions: phase %s, last error %v; want copying and none", mig.Phase, derefOr(mig.LastError))
	}
	if err := m.Resume(ctx, 1, CopyOptions{BatchSize: 50}, 0); err != nil {
		t.Fatal(err)
	}
	if v, err := m.Validate(ctx, 1, CopyOptions{}); err != nil || !v.OK {
		t.Fatalf("validation: %+v %v", v, err)
	}
}

func derefOr(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}
