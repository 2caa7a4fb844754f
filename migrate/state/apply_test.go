package state

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Two transactions take conflicting steps of one migration at once: the
// second waits for the first's row lock, then finds the phase the first
// left and is refused, changing nothing. This is the last guard behind the
// per-table lock and the re-read under it (cmd/pgcapacity's
// TestMigrateRaces races the real commands).
func TestApplyGuardsConcurrentSteps(t *testing.T) {
	for _, tc := range []struct {
		from          Phase
		first, second Step
		want          string // the second's refusal
	}{
		{PhaseReady, StepSwap, StepAbort, "is swapped: roll it back first"},
		{PhaseReady, StepAbort, StepSwap, "is aborted: swap applies only"},
		{PhaseReady, StepSwap, StepSwap, "is already swapped"},
		{PhaseRolledBack, StepSwap, StepAbort, "is swapped: roll it back first"},
		{PhaseSwapped, StepRollback, StepDropOld, "is rolled_back: drop-old applies only"},
		{PhaseSwapped, StepDropOld, StepRollback, "is dropped: rollback applies only"},
	} {
		t.Run(string(tc.first)+"/"+string(tc.second)+" from "+string(tc.from), func(t *testing.T) {
			ctx := context.Background()
			pool := newPool(t)
			if err := Ensure(ctx, pool); err != nil {
				t.Fatal(err)
			}
			id, err := Insert(ctx, pool, New{Schema: "public", Table: "t", OriginalOID: 1, From: 2, To: 4, Key: []string{"k"}, Reason: "r", Requester: "a", Approver: "b"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := pool.Exec(ctx, `UPDATE pgcapacity.migration SET phase = $2, new_oid = 2, swapped_at = now() WHERE id = $1`, id, string(tc.from)); err != nil {
				t.Fatal(err)
			}
			args := func(s Step) []any {
				if s == StepSwap {
					return []any{3600.0}
				}
				return nil
			}
			tx1, err := pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx1.Rollback(ctx)
			if _, err := LoadForUpdate(ctx, tx1, id); err != nil {
				t.Fatal(err)
			}
			if err := Apply(ctx, tx1, id, tc.first, args(tc.first)...); err != nil {
				t.Fatalf("first %s: %v", tc.first, err)
			}
			second := make(chan error, 1)
			go func() {
				second <- pgx.BeginFunc(ctx, pool, func(tx2 pgx.Tx) error {
					return Apply(ctx, tx2, id, tc.second, args(tc.second)...)
				})
			}()
			// The second waits for the row lock while the first is open.
			deadline := time.Now().Add(10 * time.Second)
			for waiting := false; !waiting; {
				if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'UPDATE pgcapacity.migration%')`).Scan(&waiting); err != nil {
					t.Fatal(err)
				}
				select {
				case err := <-second:
					t.Fatalf("the second %s returned before the first committed: %v", tc.second, err)
				default:
				}
				if time.Now().After(deadline) {
					t.Fatalf("the second %s never waited for the first's row lock", tc.second)
				}
				time.Sleep(10 * time.Millisecond)
			}
			if err := tx1.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			err = <-second
			var pe *PhaseError
			if !errors.As(err, &pe) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("second %s: %v, want a refusal with %q", tc.second, err, tc.want)
			}
			m, err := Load(ctx, pool, id)
			if err != nil {
				t.Fatal(err)
			}
			if want := TransitionFor(tc.first).To; m.Phase != want {
				t.Errorf("phase %s, want %s (the first's)", m.Phase, want)
			}
			if wantSwaps := map[bool]int{true: 1, false: 0}[tc.first == StepSwap]; m.Swaps != wantSwaps {
				t.Errorf("%d swaps recorded, want %d", m.Swaps, wantSwaps)
			}
		})
	}
}
