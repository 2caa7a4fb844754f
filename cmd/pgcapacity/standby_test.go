package main

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sigid/pgcapacity/internal/playbook"
	"github.com/sigid/pgcapacity/internal/throwaway/pgtest"
)

// skewedSession is a hot hash-partitioned table whose skew rule holds: one
// tenant fills one of four partitions.
var skewedSession = []string{
	`CREATE TABLE session (tenant_id uuid NOT NULL, id bigint NOT NULL, PRIMARY KEY (tenant_id, id)) PARTITION BY HASH (tenant_id)`,
	`CREATE TABLE session_p0 PARTITION OF session FOR VALUES WITH (MODULUS 4, REMAINDER 0)`,
	`CREATE TABLE session_p1 PARTITION OF session FOR VALUES WITH (MODULUS 4, REMAINDER 1)`,
	`CREATE TABLE session_p2 PARTITION OF session FOR VALUES WITH (MODULUS 4, REMAINDER 2)`,
	`CREATE TABLE session_p3 PARTITION OF session FOR VALUES WITH (MODULUS 4, REMAINDER 3)`,
	`INSERT INTO session SELECT '11111111-1111-1111-1111-111111111111', g FROM generate_series(1, 5000) g`,
	`INSERT INTO session SELECT gen_random_uuid(), g FROM generate_series(5001, 5800) g`,
}

// A real streaming standby of the test cluster, with serve and check on it:
// the standby says so, publishes the primary's row counts (reltuples) and no
// vacuum lag, check judges no rule there, and a promotion shows at the next
// round with the vacuum lag back.
func TestServeAndCheckOnAStreamingStandby(t *testing.T) {
	primaryURL := newDatabase(t, append(skewedSession, `ANALYZE session`)...)
	standby := pgtest.NewStandby(t, &cluster)
	standby.CatchUp(t)
	standbyURL := standby.URL(t, primaryURL)

	primaryAddr, stopPrimary := serveInProcess(t, testConfig(t, primaryURL))
	defer stopPrimary()
	standbyAddr, stopStandby := serveInProcess(t, testConfig(t, standbyURL))
	defer stopStandby()
	primary, onStandby := statsRound(t, primaryAddr), statsRound(t, standbyAddr)

	t.Run("serve", func(t *testing.T) {
		for _, c := range []struct {
			name, body, want string
		}{{"primary", primary, "0"}, {"standby", onStandby, "1"}} {
			if v, ok := metricValue(c.body, "pgcapacity_in_recovery"); !ok || v != c.want {
				t.Errorf("%s: pgcapacity_in_recovery %q (present %v), want %s", c.name, v, ok, c.want)
			}
			if v, _ := metricValue(c.body, `pgcapacity_server_role_info{role="`+c.name+`"}`); v != "1" || strings.Count(c.body, "\npgcapacity_server_role_info{") != 1 {
				t.Errorf("%s: not one pgcapacity_server_role_info, role %s", c.name, c.name)
			}
		}
		const liveRows = `pgcapacity_table_live_rows{schema="public",table="session"}`
		p, s := sampleFloat(t, primary, liveRows), sampleFloat(t, onStandby, liveRows)
		if p < 5000 || math.Abs(s-p) > 0.02*p {
			t.Errorf("live rows: standby %v, primary %v: not within 2%%", s, p)
		}
		for _, family := range []string{"pgcapacity_table_vacuum_lag_seconds", "pgcapacity_partition_vacuum_lag_seconds",
			"pgcapacity_table_analyze_lag_seconds", "pgcapacity_partition_analyze_lag_seconds"} {
			if !hasSeries(primary, family) {
				t.Errorf("the primary publishes no %s", family)
			}
			if hasSeries(onStandby, family) {
				t.Errorf("the standby publishes %s", family)
			}
		}
	})

	t.Run("check", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		t.Setenv("PGCAPACITY_DATABASE_URL", primaryURL)
		if code := run([]string{"check"}, &stdout, &stderr); code != exitFinding || !strings.Contains(stdout.String(), "HOLDS  "+playbook.RuleSkew) {
			t.Fatalf("check on the primary: exit %d, want %d with %s holding\n%s%s", code, exitFinding, playbook.RuleSkew, stdout.String(), stderr.String())
		}
		stdout.Reset()
		t.Setenv("PGCAPACITY_DATABASE_URL", standbyURL)
		code := run([]string{"check"}, &stdout, &stderr)
		out := stdout.String()
		if code != exitOK || strings.Contains(out, "HOLDS") || !strings.Contains(out, "This server is a standby") ||
			!strings.Contains(out, "parent statistics of public.session: present in the replicated catalog; not judged: standby") {
			t.Fatalf("check on the standby: exit %d, want %d, no verdict\n%s%s", code, exitOK, out, stderr.String())
		}
		for _, rule := range playbook.Rules() {
			if rule.Catalog && !strings.Contains(out, "n/a    "+rule.Name) {
				t.Errorf("check on the standby does not say %s is not judged:\n%s", rule.Name, out)
			}
		}
		stdout.Reset()
		if code := run([]string{"check", "--json"}, &stdout, &stderr); code != exitOK {
			t.Fatalf("check --json on the standby: exit %d\n%s", code, stderr.String())
		}
		var report checkReport
		if err := json.Unmarshal(stdout.Bytes(), &report); err != nil {
			t.Fatal(err)
		}
		if !report.InRecovery || len(report.Capacity.Findings) == 0 || len(report.Capacity.Holding()) != 0 {
			t.Fatalf("check --json on the standby: in_recovery %v, %d findings, %d holding", report.InRecovery, len(report.Capacity.Findings), len(report.Capacity.Holding()))
		}
		for _, f := range report.Capacity.Findings {
			if f.Detail != notJudgedOnStandby {
				t.Errorf("%s on the standby: %q", f.Rule, f.Detail)
			}
		}
	})

	t.Run("migrate", func(t *testing.T) {
		t.Setenv("PGCAPACITY_DATABASE_URL", standbyURL)
		for _, args := range [][]string{
			{"migrate", "plan", "--table", "session", "--partitions", "8"},
			{"migrate", "start", "--table", "session", "--partitions", "8", "--reason", "r", "--requester", "a", "--approver", "b"},
		} {
			var stdout, stderr bytes.Buffer
			code := run(args, &stdout, &stderr)
			if want := "this server is a standby"; code != exitError || !strings.Contains(stderr.String(), want) || strings.Count(stderr.String(), "\n") != 1 {
				t.Errorf("%s on the standby: exit %d, want %d and one line saying %q\n%s%s", strings.Join(args[:2], " "), code, exitError, want, stdout.String(), stderr.String())
			}
		}
		var stdout, stderr bytes.Buffer
		if code := run([]string{"migrate", "status"}, &stdout, &stderr); code != exitOK {
			t.Errorf("migrate status on the standby: exit %d, want %d (it only reads)\n%s%s", code, exitOK, stdout.String(), stderr.String())
		}
	})

	t.Run("promotion", func(t *testing.T) {
		standby.Promote(t)
		promoted := time.Now()
		// The round under way at the promotion may have read either; the
		// next one must see the primary.
		var body string
		rounds := map[string]bool{}
		eventually(t, "two stats rounds after the promotion", 30*time.Second, func() bool {
			_, body = scrape(t, standbyAddr)
			at, ok := metricValue(body, `pgcapacity_collector_last_success_timestamp_seconds{collector="stats"}`)
			if f, err := strconv.ParseFloat(at, 64); ok && err == nil && f > float64(promoted.UnixNano())/1e9 {
				rounds[at] = true
			}
			return len(rounds) >= 2
		})
		if v, _ := metricValue(body, "pgcapacity_in_recovery"); v != "0" {
			t.Errorf("pgcapacity_in_recovery %q a round after the promotion", v)
		}
		if v, _ := metricValue(body, `pgcapacity_server_role_info{role="primary"}`); v != "1" || strings.Contains(body, `role="standby"`) {
			t.Errorf("pgcapacity_server_role_info does not say primary a round after the promotion")
		}
		for _, family := range []string{"pgcapacity_table_vacuum_lag_seconds", "pgcapacity_partition_vacuum_lag_seconds"} {
			if !hasSeries(body, family) {
				t.Errorf("no %s a round after the promotion", family)
			}
		}
	})
}

// statsRound waits for serve's first successful stats round and returns
// the scrape that shows it.
func statsRound(t *testing.T, addr string) string {
	t.Helper()
	var body string
	eventually(t, "a stats round", 30*time.Second, func() bool {
		_, body = scrape(t, addr)
		v, _ := metricValue(body, `pgcapacity_collector_success{collector="stats"}`)
		return v == "1"
	})
	return body
}

// hasSeries reports whether the exposition has a sample of family.
func hasSeries(body, family string) bool {
	return strings.Contains(body, "\n"+family+"{") || strings.Contains(body, "\n"+family+" ")
}

// sampleFloat is metricValue as a number; t fails when it is missing.
func sampleFloat(t *testing.T, body, series string) float64 {
	t.Helper()
	v, ok := metricValue(body, series)
	if !ok {
		t.Fatalf("no %s in:\n%s", series, body)
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		t.Fatalf("%s: %v", series, err)
	}
	return f
}
