package main

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sigid/pgcapacity/internal/pgstat"
	"github.com/sigid/pgcapacity/internal/playbook"
)

// A partition with autovacuum off held above its trigger, the exporter
// restarted: the lag starts from the database's bound (the README's
// estimate), not from 0, and check, a fresh process too, reports the same
// lag and can hold rule 4.
func TestVacuumLagSurvivesAnExporterRestart(t *testing.T) {
	ctx := context.Background()
	dbURL := newDatabase(t,
		`CREATE TABLE session (tenant_id uuid NOT NULL, id bigint NOT NULL, PRIMARY KEY (tenant_id, id)) PARTITION BY HASH (tenant_id)`,
		`CREATE TABLE session_p0 PARTITION OF session FOR VALUES WITH (MODULUS 1, REMAINDER 0)
		   WITH (autovacuum_enabled = false, autovacuum_vacuum_threshold = 50, autovacuum_vacuum_scale_factor = 0.2)`,
		`INSERT INTO session SELECT gen_random_uuid(), g FROM generate_series(1, 2000) g`,
		`ANALYZE session`,
		`VACUUM session_p0`, // the last vacuum; the trigger is now 50 + 0.2 × 2000 = 450 dead rows
	)
	t.Setenv("PGCAPACITY_WRITE_RETENTION_TARGET", "1s")
	cfg := testConfig(t, dbURL)
	const (
		tableLag   = `pgcapacity_table_vacuum_lag_seconds{schema="public",table="session"}`
		partition  = `{partition="session_p0",schema="public",table="session"}`
		lastVacuum = `pgcapacity_partition_last_vacuum_timestamp_seconds` + partition
		deadRows   = `pgcapacity_partition_dead_rows` + partition
		trigger    = `pgcapacity_partition_autovacuum_threshold_rows` + partition
	)

	addr, stop := serveInProcess(t, cfg)
	statsRound(t, addr)
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `DELETE FROM session WHERE id <= 1900`); err != nil {
		t.Fatal(err)
	}
	if err := pgstat.Flush(ctx, conn); err != nil {
		t.Fatal(err)
	}
	eventually(t, "vacuum lag held above 2 s before the restart", 30*time.Second, func() bool {
		_, body := scrape(t, addr)
		_, ok := metricValue(body, tableLag)
		return ok && sampleFloat(t, body, tableLag) > 2
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	// The first round's now() comes after the restart.
	restarted := float64(time.Now().UnixNano()) / 1e9
	addr, stop = serveInProcess(t, cfg)
	defer stop()
	body := statsRound(t, addr)
	lag := sampleFloat(t, body, tableLag)
	dead, trig := sampleFloat(t, body, deadRows), sampleFloat(t, body, trigger)
	bound := (restarted - sampleFloat(t, body, lastVacuum)) * (dead - trig) / dead
	if dead <= trig || lag <= 0 || lag < bound {
		t.Fatalf("after the restart: lag %v s, documented bound at least %.3f s (dead rows %v, trigger %v)", lag, bound, dead, trig)
	}
	scraped := time.Now()

	var stdout, stderr bytes.Buffer
	t.Setenv("PGCAPACITY_DATABASE_URL", dbURL)
	if code := run([]string{"check", "--json"}, &stdout, &stderr); code != exitFinding {
		t.Fatalf("check --json: exit %d, want %d (rule 4 holds)\n%s%s", code, exitFinding, stdout.String(), stderr.String())
	}
	var report checkReport
	if err := json.Unmarshal(stdout.Bytes(), &report); err != nil {
		t.Fatal(err)
	}
	if len(report.Capacity.Tables) != 1 {
		t.Fatalf("check reports %d tables", len(report.Capacity.Tables))
	}
	// The same estimate at check's later now().
	got := report.Capacity.Tables[0].VacuumLagSeconds
	// The estimate grows by less than a second a second; serve's round ran
	// at most a round's duration and a poll before the scrape.
	if slack := time.Since(scraped).Seconds() + 2; got < lag || got > lag+slack {
		t.Errorf("check reports vacuum lag %v s, serve after the restart %v s (up to %.1f s later)", got, lag, slack)
	}
	holds := false
	for _, f := range report.Capacity.Holding() {
		holds = holds || f.Rule == playbook.RuleVacuumLag
	}
	if !holds {
		t.Errorf("%s does not hold in check with %v s of lag against a 1s target: %+v", playbook.RuleVacuumLag, got, report.Capacity.Findings)
	}
}
