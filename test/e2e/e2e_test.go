// Package e2e runs the whole alerting path for real: a throwaway PostgreSQL
// with the SigID schema, `pgcapacity serve`, Debian's Prometheus with the
// rules `pgcapacity rules` generates, and Debian's Alertmanager with the
// shipped routing, whose receivers post to a webhook in the test.
package e2e

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sigid/pgcapacity/internal/sigid"
	"github.com/sigid/pgcapacity/internal/throwaway/pgtest"
	"github.com/sigid/pgcapacity/test/harness"
	"go.yaml.in/yaml/v3"
)

var cluster pgtest.Cluster

func TestMain(m *testing.M) { pgtest.Main(m, &cluster) }

const runbook = "https://github.com/sigid/pgcapacity/blob/main/docs/runbooks.md#"

// ruleSettings shorten the business week to 20 seconds through the
// generator. The latency and planning-time rules are switched out of reach
// (regression 100x, planning share 100 %): on a table of a few hundred rows
// planning really is a large share of a sub-millisecond query, and this
// test is about the path, not that judgement, which promtool tests cover.
var ruleSettings = []string{
	"PGCAPACITY_RULE_WINDOW=20s",
	"PGCAPACITY_RULES_EVALUATION_INTERVAL=1s",
	"PGCAPACITY_ADMINOPS_FINDING_FOR=1s",
	"PGCAPACITY_LATENCY_REGRESSION=100",
	"PGCAPACITY_PLANNING_SHARE=1",
}

// seed loads a small SigID data set: 200 tenants spread evenly over 8
// partitions of every table, except that tenant 1 has 3000 extra sessions
// (session is skewed about 25x) and one of its two administrators has no
// MFA. Every other table and check is healthy.
func seed(t *testing.T, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	partitions := map[string]int{}
	for _, table := range sigid.HashTables() {
		partitions[table] = 8
	}
	if err := sigid.Apply(ctx, conn, sigid.SchemaOptions{Partitions: partitions}); err != nil {
		t.Fatalf("applying the SigID schema: %v", err)
	}
	for _, stmt := range []string{
		`INSERT INTO tenant (tenant_id, name)
		 SELECT md5('tenant' || i)::uuid, 'tenant ' || i FROM generate_series(1, 200) AS i`,
		`INSERT INTO tenant_membership (tenant_id, user_id, role, mfa_enabled)
		 SELECT md5('tenant' || i)::uuid, md5('user' || i || '-' || j)::uuid,
		        CASE WHEN j <= 2 THEN 'admin' ELSE 'member' END, NOT (i = 1 AND j = 2)
		 FROM generate_series(1, 200) AS i, generate_series(1, 5) AS j`,
		`INSERT INTO session (tenant_id, session_id, user_id, expires_at)
		 SELECT md5('tenant' || i)::uuid, md5('session' || i || '-' || j)::uuid, md5('user' || i || '-1')::uuid, now() + interval '1 day'
		 FROM generate_series(1, 200) AS i, generate_series(1, CASE WHEN i = 1 THEN 3005 ELSE 5 END) AS j`,
		`INSERT INTO tenant_subject_identifier (tenant_id, subject, issuer, user_id)
		 SELECT md5('tenant' || i)::uuid, 'subject-' || j, 'https://idp.example', md5('user' || i || '-' || j)::uuid
		 FROM generate_series(1, 200) AS i, generate_series(1, 5) AS j`,
		`ANALYZE`,
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			t.Fatalf("seeding: %v\n%s", err, stmt)
		}
	}
}

// generatedRules runs `pgcapacity rules` with the test's settings and
// returns the file and its alerts by name.
func generatedRules(t *testing.T, bin string) (string, map[string]map[string]any) {
	t.Helper()
	path := harness.Rules(t, bin, ruleSettings)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Groups []struct {
			Rules []map[string]any `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &file); err != nil {
		t.Fatal(err)
	}
	alerts := map[string]map[string]any{}
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			if name, ok := r["alert"].(string); ok {
				alerts[name] = r
			}
		}
	}
	return path, alerts
}

type promAlert struct {
	Labels map[string]string `json:"labels"`
	State  string            `json:"state"`
}

func TestEndToEnd(t *testing.T) {
	began := time.Now()
	bin := harness.BuildPgcapacity(t)
	url := pgtest.NewDatabase(t, &cluster)
	seed(t, url)
	rules, generated := generatedRules(t, bin)

	hook := newWebhook(t)
	am := startAlertmanager(t, hook.url)
	exporter := harness.FreeAddr(t)
	serve := harness.Start(t, "pgcapacity", append(ruleSettings,
		"PGCAPACITY_DATABASE_URL="+url,
		"PGCAPACITY_LISTEN_ADDRESS="+exporter,
		"PGCAPACITY_STATS_INTERVAL=1s",
		"PGCAPACITY_SIZES_INTERVAL=2s",
		"PGCAPACITY_PROBE_INTERVAL=1s",
		"PGCAPACITY_ADMINOPS_INTERVAL=2s",
	), bin, "serve")
	harness.WaitHTTP(t, "http://"+exporter+"/readyz", serve)
	prom := harness.StartPrometheus(t, exporter, am, rules)
	t.Logf("setup took %v", time.Since(began).Round(time.Millisecond))

	got := hook.waitFor(t, 90*time.Second, "PartitionSkewHigh", "AdminopsAdminsWithoutMFA")
	t.Logf("alerts reached the webhook %v after the start", time.Since(began).Round(time.Millisecond))

	expect := []struct {
		alertname, receiver string
		labels              map[string]string
		description         string
	}{
		{"PartitionSkewHigh", "release-planning",
			map[string]string{"severity": "info", "category": "capacity-planning", "job": "pgcapacity", "instance": exporter, "schema": "public", "table": "session"},
			"The largest partition of public.session on " + exporter + " has held more than 4x the median partition's live rows for the whole of the last 20s; now "},
		{"AdminopsAdminsWithoutMFA", "security-operations",
			map[string]string{"severity": "warning", "category": "admin-ops", "job": "pgcapacity", "instance": exporter, "check": "admins_without_mfa"},
			"1 active administrators and owners on " + exporter + " have had no MFA for 1s."},
	}
	for _, e := range expect {
		i := slices.IndexFunc(got, func(n notification) bool { return n.Labels["alertname"] == e.alertname })
		n := got[i]
		if n.Receiver != e.receiver || n.Path != e.receiver {
			t.Errorf("%s reached receiver %q (webhook path %q), want %s", e.alertname, n.Receiver, n.Path, e.receiver)
		}
		for k, v := range e.labels {
			if n.Labels[k] != v {
				t.Errorf("%s: label %s=%q, want %q (labels %s)", e.alertname, k, n.Labels[k], v, fmtLabels(n.Labels))
			}
		}
		rule := generated[e.alertname]
		annotations, _ := rule["annotations"].(map[string]any)
		if n.Annotations["summary"] != annotations["summary"] {
			t.Errorf("%s: summary %q, want %q", e.alertname, n.Annotations["summary"], annotations["summary"])
		}
		if !strings.HasPrefix(n.Annotations["description"], e.description) {
			t.Errorf("%s: description %q, want it to begin %q", e.alertname, n.Annotations["description"], e.description)
		}
		if want := runbook + strings.ToLower(e.alertname); n.Annotations["runbook_url"] != want {
			t.Errorf("%s: runbook_url %q, want %q", e.alertname, n.Annotations["runbook_url"], want)
		}
	}

	// Nothing else reached any receiver, and no other alert is pending or
	// firing in Prometheus: the healthy tables and checks raise nothing.
	for _, n := range hook.notifications() {
		if name := n.Labels["alertname"]; name != "PartitionSkewHigh" && name != "AdminopsAdminsWithoutMFA" || n.Labels["table"] != "" && n.Labels["table"] != "session" {
			t.Errorf("unexpected notification to %s: %s", n.Receiver, fmtLabels(n.Labels))
		}
	}
	var alerts struct {
		Data struct {
			Alerts []promAlert `json:"alerts"`
		} `json:"data"`
	}
	harness.GetJSON(t, prom+"/api/v1/alerts", &alerts)
	for _, a := range alerts.Data.Alerts {
		if name := a.Labels["alertname"]; name != "PartitionSkewHigh" && name != "AdminopsAdminsWithoutMFA" || a.Labels["table"] != "" && a.Labels["table"] != "session" {
			t.Errorf("Prometheus has an unexpected %s alert: %s", a.State, fmtLabels(a.Labels))
		}
	}
	// The healthy tables were judged, not missing: their skew condition
	// has been recorded as 0 for the whole window.
	var query struct {
		Data struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  []any             `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	harness.GetJSON(t, prom+`/api/v1/query?query=max_over_time(schema_table:pgcapacity_planning_skew:holds[20s])`, &query)
	judged := map[string]string{}
	for _, r := range query.Data.Result {
		judged[r.Metric["table"]] = r.Value[1].(string)
	}
	for table, want := range map[string]string{"session": "1", "tenant_membership": "0", "tenant_subject_identifier": "0"} {
		if judged[table] != want {
			t.Errorf("skew condition of %s over the window: %q, want %s (all: %v)", table, judged[table], want, judged)
		}
	}
	t.Logf("end to end took %v", time.Since(began).Round(time.Millisecond))
}

// Alertmanager with the shipped configuration routes each severity and
// category to its receiver, and holds back an instance's alerts while its
// exporter is down, and only that instance's.
func TestAlertmanagerRoutesAndInhibits(t *testing.T) {
	hook := newWebhook(t)
	am := startAlertmanager(t, hook.url)
	alert := func(name, severity, category, instance string, extra ...string) map[string]string {
		l := map[string]string{"alertname": name, "severity": severity, "category": category, "job": "pgcapacity", "instance": instance}
		for i := 0; i+1 < len(extra); i += 2 {
			l[extra[i]] = extra[i+1]
		}
		return l
	}
	postAlerts(t, am,
		alert("PgcapacityExporterDown", "warning", "exporter", "db1:9842"),
		alert("PartitionSkewHigh", "info", "capacity-planning", "db1:9842", "schema", "public", "table", "session"),
		alert("PartitionSkewHigh", "info", "capacity-planning", "db2:9842", "schema", "public", "table", "session"),
		alert("TransactionIDWraparoundApproaching", "critical", "autovacuum", "db2:9842", "schema", "public", "table", "referral"),
		alert("AdminopsAdminsWithoutMFA", "warning", "admin-ops", "db2:9842", "check", "admins_without_mfa"),
		alert("MigrationOldTableRetained", "info", "migration", "db2:9842", "id", "m1"),
	)
	hook.waitFor(t, 30*time.Second, "PgcapacityExporterDown", "PartitionSkewHigh", "TransactionIDWraparoundApproaching", "AdminopsAdminsWithoutMFA", "MigrationOldTableRetained")

	// The inhibited alert is known to Alertmanager and marked as such.
	var state []struct {
		Labels map[string]string `json:"labels"`
		Status struct {
			State       string   `json:"state"`
			InhibitedBy []string `json:"inhibitedBy"`
		} `json:"status"`
	}
	harness.GetJSON(t, am+"/api/v2/alerts", &state)
	inhibited := 0
	for _, a := range state {
		isTarget := a.Labels["alertname"] == "PartitionSkewHigh" && a.Labels["instance"] == "db1:9842"
		if isTarget != (len(a.Status.InhibitedBy) > 0) {
			t.Errorf("%s: state %s, inhibited by %v", fmtLabels(a.Labels), a.Status.State, a.Status.InhibitedBy)
		}
		if isTarget {
			inhibited++
		}
	}
	if inhibited != 1 {
		t.Errorf("Alertmanager lists %d inhibited skew alerts of db1, want 1", inhibited)
	}
	time.Sleep(2 * time.Second) // a group cycle more: the inhibited one must stay unsent
	want := map[string]string{
		"PgcapacityExporterDown/db1:9842":             "ticket",
		"PartitionSkewHigh/db2:9842":                  "release-planning",
		"TransactionIDWraparoundApproaching/db2:9842": "oncall-pager",
		"AdminopsAdminsWithoutMFA/db2:9842":           "security-operations",
		"MigrationOldTableRetained/db2:9842":          "release-planning",
	}
	for _, n := range hook.notifications() {
		key := n.Labels["alertname"] + "/" + n.Labels["instance"]
		receiver, ok := want[key]
		if !ok {
			t.Errorf("%s reached %s: it should have been inhibited or never sent", key, n.Receiver)
			continue
		}
		if n.Receiver != receiver || n.Path != receiver {
			t.Errorf("%s reached %s (webhook path %s), want %s", key, n.Receiver, n.Path, receiver)
		}
	}
}
