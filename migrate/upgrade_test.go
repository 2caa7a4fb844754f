package migrate

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/sigid/pgcapacity/migrate/state"
)

// createReleaseState creates the pgcapacity state schema from the exact DDL
// of the releases before the schema version row (migrate/state/testdata).
func createReleaseState(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	b, err := os.ReadFile("state/testdata/schema-v1.sql")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(l, "--") {
			lines = append(lines, l)
		}
	}
	if _, err := pool.Exec(context.Background(), strings.Join(lines, "\n")); err != nil {
		t.Fatalf("creating the release's state schema: %v", err)
	}
}

// tableSum is a table's row count and a checksum of all its rows.
func tableSum(t *testing.T, pool *pgxpool.Pool, table string) string {
	t.Helper()
	return scalar[string](t, pool, `SELECT count(*) || ' ' || coalesce(md5(string_agg(r::text, ',' ORDER BY r::text)), '') FROM `+table+` r`)
}

// A migration recorded mid-copy in today's state schema (created from the
// release's DDL, without the version row) is upgraded by the first command
// of this pgcapacity, and resume completes it with every row; a state newer
// than this pgcapacity is then refused by every command, changing nothing.
func TestUpgradeResumesMigrationFromReleaseState(t *testing.T) {
	ctx := context.Background()
	pool, _ := sigidDB(t, "session", 4)
	createReleaseState(t, pool)
	m := New(pool, testLogger(t))
	startStopped(t, m, "session", 8)
	// Start wrote the migration with the statements of the release (the
	// state's rows are unchanged since); without the version row the state
	// is what the release left.
	if _, err := pool.Exec(ctx, `DROP TABLE pgcapacity.schema_version`); err != nil {
		t.Fatal(err)
	}
	if mig := loadMig(t, pool, 1); mig.Phase != PhaseCopying {
		t.Fatalf("phase %s after the interrupted copy, want copying", mig.Phase)
	}
	if left := scalar[int64](t, pool, `SELECT count(*) FROM pgcapacity.copy_progress WHERE NOT done`); left == 0 {
		t.Fatal("the copy finished before the interruption: interrupt earlier")
	}
	// Writes while no process runs arrive through the capture the release
	// installed.
	for _, s := range []string{
		`UPDATE public.session SET user_agent = 'upgraded' WHERE session_id IN (SELECT session_id FROM public.session ORDER BY session_id LIMIT 20)`,
		`DELETE FROM public.session WHERE session_id IN (SELECT session_id FROM public.session ORDER BY session_id DESC LIMIT 5)`,
	} {
		if _, err := pool.Exec(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	before := tableSum(t, pool, "public.session")

	if err := m.Resume(ctx, 1, CopyOptions{BatchSize: 50}, 0); err != nil {
		t.Fatalf("resume on the release's state: %v", err)
	}
	if v := scalar[int](t, pool, `SELECT version FROM pgcapacity.schema_version`); v != state.SchemaVersion {
		t.Errorf("state at version %d after resume, want %d", v, state.SchemaVersion)
	}
	if mig := loadMig(t, pool, 1); mig.Phase != PhaseReady {
		t.Fatalf("phase %s after resume, want ready", mig.Phase)
	}
	v, err := m.Validate(ctx, 1, CopyOptions{})
	if err != nil || !v.OK {
		t.Fatalf("validation after the upgrade: %+v %v", v, err)
	}
	if after := tableSum(t, pool, "public.session"); after != before {
		t.Errorf("the original changed: %s, was %s", after, before)
	}
	if got, want := tableSum(t, pool, "public.n1_session"), before; got != want {
		t.Errorf("the new table holds %s, the original %s", got, want)
	}

	// A newer pgcapacity upgraded the state: this one refuses it.
	if _, err := pool.Exec(ctx, `UPDATE pgcapacity.schema_version SET version = version + 1, release = '9.9.9'`); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cmd string
		run func() error
	}{
		{"plan", func() error {
			_, err := m.Plan(ctx, PlanRequest{Schema: "public", Table: "tenant_membership", Partitions: 32, Thresholds: thresholds()})
			return err
		}},
		{"status", func() error { _, err := m.Status(ctx, 1); return err }},
		{"status (all)", func() error { _, err := m.List(ctx); return err }},
		{"resume", func() error { return m.Resume(ctx, 1, CopyOptions{}, 0) }},
		{"validate", func() error { _, err := m.Validate(ctx, 1, CopyOptions{}); return err }},
		{"swap", func() error { _, err := m.Swap(ctx, 1, SwapOptions{NowReason: "test"}); return err }},
		{"abort", func() error { return m.Abort(ctx, 1, CopyOptions{}) }},
		{"start", func() error {
			_, err := m.Start(ctx, StartRequest{PlanRequest: PlanRequest{Schema: "public", Table: "tenant_membership", Partitions: 32, Thresholds: thresholds()},
				Reason: "r", Requester: "alice", Approver: "bob"})
			return err
		}},
	} {
		err := tc.run()
		var newer *state.NewerError
		if !errors.As(err, &newer) || !strings.Contains(err.Error(), "upgrade pgcapacity to 9.9.9") {
			t.Errorf("%s on a newer state: %v, want the refusal naming the release", tc.cmd, err)
		}
	}
	if mig := loadMig(t, pool, 1); mig.Phase != PhaseReady || mig.Swaps != 0 {
		t.Errorf("the refused commands changed the migration: phase %s, %d swaps", mig.Phase, mig.Swaps)
	}
	if n := scalar[int64](t, pool, `SELECT count(*) FROM pgcapacity.migration`); n != 1 {
		t.Errorf("%d migrations after the refused start, want 1", n)
	}
}
