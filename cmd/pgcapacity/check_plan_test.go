package main

import (
	"context"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sigid/pgcapacity/internal/config"
	"github.com/sigid/pgcapacity/internal/pgstat"
	"github.com/sigid/pgcapacity/internal/playbook"
	"github.com/sigid/pgcapacity/migrate"
)

// TestCheckAndMigratePlanAgree: check and migrate plan's decrease decision
// judge the rules they share, 4 (vacuum lag) and 6 (planning time), by the
// playbook; on one database state, under each set of thresholds, both give
// the same verdict. The state: a hot table whose partitions hold dead rows
// above their autovacuum trigger (autovacuum off), and tenant-scoped
// lookups that pg_stat_statements (plan) and the probes (check) both time.
func TestCheckAndMigratePlanAgree(t *testing.T) {
	ctx := context.Background()
	dbURL := newDatabase(t,
		`CREATE TABLE session (tenant_id uuid NOT NULL, id bigint NOT NULL, note text, PRIMARY KEY (tenant_id, id)) PARTITION BY HASH (tenant_id)`,
		`CREATE TABLE session_p0 PARTITION OF session FOR VALUES WITH (MODULUS 4, REMAINDER 0) WITH (autovacuum_enabled = false)`,
		`CREATE TABLE session_p1 PARTITION OF session FOR VALUES WITH (MODULUS 4, REMAINDER 1) WITH (autovacuum_enabled = false)`,
		`CREATE TABLE session_p2 PARTITION OF session FOR VALUES WITH (MODULUS 4, REMAINDER 2) WITH (autovacuum_enabled = false)`,
		`CREATE TABLE session_p3 PARTITION OF session FOR VALUES WITH (MODULUS 4, REMAINDER 3) WITH (autovacuum_enabled = false)`,
		`INSERT INTO session SELECT ('00000000-0000-0000-0000-0000000000' || lpad((g % 40)::text, 2, '0'))::uuid, g FROM generate_series(1, 2000) g`,
		`ANALYZE session`,
		`UPDATE session SET note = 'dead rows'`,
	)
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := pgstat.Flush(ctx, conn); err != nil {
		t.Fatal(err)
	}
	// Only the lookups below (and the probes' EXPLAINs) count for rule 6 on
	// the plan's side; the simple protocol plans every one of them.
	if _, err := conn.Exec(ctx, `SELECT pg_stat_statements_reset()`); err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		if _, err := conn.Exec(ctx, `SELECT id, note FROM session WHERE tenant_id = $1 LIMIT 10`, pgx.QueryExecModeSimpleProtocol,
			"00000000-0000-0000-0000-0000000000"+[]string{"01", "02", "03", "04"}[i%4]); err != nil {
			t.Fatal(err)
		}
	}
	// Dead rows above the trigger reach pg_stat within a round or so.
	eventually(t, "dead rows above the trigger in every partition", 30*time.Second, func() bool {
		var n int
		err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_user_tables WHERE relname LIKE 'session_p%' AND n_dead_tup > 50 + 0.2 * 500`).Scan(&n)
		return err == nil && n == 4
	})

	cases := []struct {
		name                     string
		retention, planningMin   time.Duration
		planningShare            float64
		wantVacuumLag, wantPlans bool
	}{
		{name: "both rules hold", retention: time.Millisecond, planningShare: 0.001, wantVacuumLag: true, wantPlans: true},
		{name: "neither holds", retention: 1000 * time.Hour, planningMin: time.Hour, planningShare: 0.001},
		{name: "planning share out of reach", retention: time.Millisecond, planningShare: 1, wantVacuumLag: true},
		{name: "vacuum lag within target", retention: 1000 * time.Hour, planningShare: 0.001, wantPlans: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, dbURL)
			cfg.WriteRetentionTarget = config.Duration(tc.retention)
			cfg.PlanningMin = config.Duration(tc.planningMin)
			cfg.PlanningShare = tc.planningShare
			pool, err := pgxpool.New(ctx, dbURL)
			if err != nil {
				t.Fatal(err)
			}
			defer pool.Close()

			report, err := sampleReport(ctx, cfg, pool)
			if err != nil {
				t.Fatal(err)
			}
			var checkLag *playbook.Finding
			for i, f := range report.Capacity.Findings {
				if f.Rule == playbook.RuleVacuumLag && f.Table == "session" {
					checkLag = &report.Capacity.Findings[i]
				}
			}
			if checkLag == nil {
				t.Fatalf("check judged no %s on session: %+v", playbook.RuleVacuumLag, report.Capacity.Findings)
			}
			var checkPlanning *latencyTable
			for i, l := range report.Latency.Tables {
				if l.Table == "session" && l.Samples > 0 {
					checkPlanning = &report.Latency.Tables[i]
				}
			}
			if checkPlanning == nil {
				t.Fatalf("check probed no session lookups: %+v", report.Latency.Tables)
			}

			plan, err := migrate.New(pool, slog.New(slog.DiscardHandler)).Plan(ctx, migrate.PlanRequest{
				Table: "session", Partitions: 2, Thresholds: cfg.Thresholds})
			if err != nil {
				t.Fatal(err)
			}
			d := plan.Decrease
			if d == nil || d.PlanningShare == nil {
				t.Fatalf("plan judged no decrease from pg_stat_statements: %+v", d)
			}

			t.Logf("vacuum lag: check %.2f s, plan %s; planning: probes share %.3f p95 %s, statements share %.3f mean %s",
				checkLag.Value, d.VacuumLag, checkPlanning.PlanningShare, checkPlanning.Planning.P95, *d.PlanningShare, d.PlanningMean)
			if checkLag.Holds != tc.wantVacuumLag || d.VacuumLagHolds != tc.wantVacuumLag {
				t.Errorf("%s: check holds %v (%.1f s), plan holds %v (%s); want both %v",
					playbook.RuleVacuumLag, checkLag.Holds, checkLag.Value, d.VacuumLagHolds, d.VacuumLag, tc.wantVacuumLag)
			}
			// The same lag definition: plan runs after check, so its lag is
			// at most the time between them larger.
			if diff := d.VacuumLag.Seconds() - checkLag.Value; math.Abs(diff) > 10 {
				t.Errorf("vacuum lag: check %.1f s, plan %s: not one definition", checkLag.Value, d.VacuumLag)
			}
			if checkPlanning.AboveThreshold != tc.wantPlans || d.PlanningHolds != tc.wantPlans {
				t.Errorf("%s: check (probes) holds %v (share %.3f, p95 %s), plan (pg_stat_statements) holds %v (share %.3f, mean %s); want both %v",
					playbook.RulePlanning, checkPlanning.AboveThreshold, checkPlanning.PlanningShare, checkPlanning.Planning.P95,
					d.PlanningHolds, *d.PlanningShare, d.PlanningMean, tc.wantPlans)
			}
			refusals := plan.Refusals
			if cluster.Get(t).Major() < 14 {
				// migrate needs 14; the rules' verdicts above are judged all the same.
				if len(refusals) == 0 || !strings.Contains(refusals[0], "PostgreSQL 14 or newer") {
					t.Errorf("PostgreSQL %d: want the plan refused first for the version, got %v", cluster.Get(t).Major(), refusals)
				} else {
					refusals = refusals[1:]
				}
			}
			refused := len(refusals) > 0
			if want := !tc.wantVacuumLag && !tc.wantPlans; refused != want {
				t.Errorf("decrease refused %v, want %v: %v", refused, want, refusals)
			}
		})
	}
}
