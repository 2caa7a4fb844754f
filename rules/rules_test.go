package rules

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/sigid/pgcapacity/internal/config"
)

var update = flag.Bool("update", false, "rewrite the committed generated files from the defaults")

const (
	committedRules = "pgcapacity.rules.yml"
	committedK8s   = "../deploy/kubernetes/prometheusrule.yaml"
	runbookPath    = "../docs/runbooks.md"
)

// loadConfig loads the configuration from exactly env: every other
// PGCAPACITY_* variable of the caller's environment is unset for the test.
func loadConfig(t *testing.T, env map[string]string) config.Config {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, config.Prefix+"_") {
			t.Setenv(k, "") // registers the restore
			os.Unsetenv(k)
		}
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	c, err := config.Load()
	if err != nil {
		t.Fatalf("loading the configuration: %v", err)
	}
	return c
}

func generate(t *testing.T, env map[string]string) File {
	t.Helper()
	f, err := Generate(FromConfig(loadConfig(t, env)))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func render(t *testing.T, f File) []byte {
	t.Helper()
	b, err := f.YAML()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCommittedFilesAreCurrent(t *testing.T) {
	f := generate(t, nil)
	rules := render(t, f)
	k8s, err := f.PrometheusRule("pgcapacity")
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range []struct {
		path string
		want []byte
	}{{committedRules, rules}, {committedK8s, k8s}} {
		if *update {
			if err := os.WriteFile(file.path, file.want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(file.path)
		if err != nil {
			t.Fatalf("reading %s: %v (regenerate: go test ./rules -run TestCommittedFilesAreCurrent -update)", file.path, err)
		}
		if !bytes.Equal(got, file.want) {
			t.Errorf("%s is stale: the generator's output for the default configuration differs; regenerate with go test ./rules -run TestCommittedFilesAreCurrent -update", file.path)
		}
	}
}

// Prometheus' own PromQL parser (the version this module pins) accepts every
// expression and duration of every configuration's output; promtool, in
// TestPromtoolCheckRules, checks the files as a whole.
func TestRulesParseWithPrometheus(t *testing.T) {
	p := parser.NewParser(parser.Options{})
	for _, env := range configurations() {
		f := generate(t, env)
		for _, g := range f.Groups {
			if _, err := model.ParseDuration(g.Interval); err != nil {
				t.Errorf("%v: group %s: interval %q: %v", env, g.Name, g.Interval, err)
			}
			for _, r := range g.Rules {
				if _, err := p.ParseExpr(r.Expr); err != nil {
					t.Errorf("%v: %s%s: %v\n%s", env, r.Alert, r.Record, err, r.Expr)
				}
				if r.For != "" {
					if _, err := model.ParseDuration(r.For); err != nil {
						t.Errorf("%v: %s: for %q: %v", env, r.Alert, r.For, err)
					}
				}
			}
		}
	}
}

// configurations are the non-default settings the generator must handle.
func configurations() []map[string]string {
	return []map[string]string{
		nil,
		{"PGCAPACITY_RULE_WINDOW": "20s", "PGCAPACITY_RULES_EVALUATION_INTERVAL": "1s", "PGCAPACITY_ADMINOPS_FINDING_FOR": "1s", "PGCAPACITY_ADMINOPS_REVIEW_WINDOW": "31d", "PGCAPACITY_ADMINOPS_ACCESS_REVIEW_MONTHS": "1"},
		{"PGCAPACITY_RULE_WINDOW": "5d12h", "PGCAPACITY_LIVE_ROWS_PER_PARTITION": "2500000.5", "PGCAPACITY_PLANNING_SHARE": "0.05", "PGCAPACITY_ADMINOPS_INVITATION_REVIEW_MONTHS": "2"},
		{"PGCAPACITY_RULES_EVALUATION_INTERVAL": "30s", "PGCAPACITY_WRITE_RETENTION_TARGET": "90m", "PGCAPACITY_ROLLBACK_PERIOD": "36h", "PGCAPACITY_RULES_JOB": "sigid-pgcapacity", "PGCAPACITY_RUNBOOK_URL": "https://wiki.example.com/pgcapacity/runbooks"},
	}
}

// The alert contract of DESIGN.md: names, labels and annotations.
func TestAlertContract(t *testing.T) {
	f := generate(t, nil)
	runbook, err := os.ReadFile(runbookPath)
	if err != nil {
		t.Fatal(err)
	}
	anchors := markdownAnchors(string(runbook))
	planning := []string{"PartitionLiveRowsHigh", "PartitionSkewHigh", "TenantIndexesExceedSharedBuffers",
		"PartitionAutovacuumLagHigh", "TenantQueryLatencyRegressed", "PartitionPlanningTimeSignificant"}
	categories := []string{CategoryCapacityPlanning, CategoryAutovacuum, CategoryLatency, CategoryAdminops, CategoryExporter, CategoryMigration}
	camel := regexp.MustCompile(`^[A-Z][A-Za-z]+$`)
	seen := map[string]bool{}
	for _, a := range f.Alerts() {
		if seen[a.Alert] {
			t.Errorf("%s: defined twice", a.Alert)
		}
		seen[a.Alert] = true
		if !camel.MatchString(a.Alert) {
			t.Errorf("%s: not a CamelCase name", a.Alert)
		}
		if sev := a.Labels["severity"]; !slices.Contains([]string{SeverityCritical, SeverityWarning, SeverityInfo}, sev) {
			t.Errorf("%s: severity %q", a.Alert, sev)
		}
		if !slices.Contains(categories, a.Labels["category"]) {
			t.Errorf("%s: category %q", a.Alert, a.Labels["category"])
		}
		if s := a.Annotations["summary"]; s == "" || !strings.HasSuffix(s, ".") || strings.Contains(s, "{{") {
			t.Errorf("%s: summary %q is not a plain sentence ending in a period", a.Alert, s)
		}
		// Health alerts (value 0) name what failed instead of a value.
		d := a.Annotations["description"]
		if !strings.Contains(d, "$labels.instance") || (!strings.Contains(d, "$value") && !strings.HasSuffix(a.Expr, "== 0")) {
			t.Errorf("%s: description %q is not templated with the instance and the value", a.Alert, d)
		}
		anchor := strings.ToLower(a.Alert)
		if want := "https://github.com/sigid/pgcapacity/blob/main/docs/runbooks.md#" + anchor; a.Annotations["runbook_url"] != want {
			t.Errorf("%s: runbook_url %q, want %q", a.Alert, a.Annotations["runbook_url"], want)
		}
		if !anchors[anchor] {
			t.Errorf("%s: docs/runbooks.md has no section #%s", a.Alert, anchor)
		}
	}
	for _, name := range planning {
		a, ok := alertNamed(f, name)
		if !ok {
			t.Errorf("planning alert %s is missing", name)
			continue
		}
		if a.Labels["severity"] != SeverityInfo || a.Labels["category"] != CategoryCapacityPlanning {
			t.Errorf("%s: labels %v, want severity info, category capacity-planning", name, a.Labels)
		}
		// A for clause's progress lives in the evaluator's memory; the
		// business week must come from stored samples.
		if a.For != "" || !strings.Contains(a.Expr, "min_over_time(") || !strings.Contains(a.Expr, "[7d]) == 1") || !strings.Contains(a.Expr, "offset 7d)") {
			t.Errorf("%s: not in the restart-safe business-week form:\n%s", name, a.Expr)
		}
	}
	for _, sev := range []string{SeverityCritical, SeverityWarning, SeverityInfo} {
		if !slices.ContainsFunc(f.Alerts(), func(r Rule) bool { return r.Labels["severity"] == sev }) {
			t.Errorf("no alert of severity %s", sev)
		}
	}
}

func alertNamed(f File, name string) (Rule, bool) {
	for _, a := range f.Alerts() {
		if a.Alert == name {
			return a, true
		}
	}
	return Rule{}, false
}

// markdownAnchors returns the GitHub anchors of the document's headings.
func markdownAnchors(doc string) map[string]bool {
	out := map[string]bool{}
	drop := regexp.MustCompile(`[^a-z0-9 _-]`)
	for _, line := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.ToLower(strings.TrimSpace(strings.TrimLeft(line, "#")))
		out[strings.ReplaceAll(drop.ReplaceAllString(h, ""), " ", "-")] = true
	}
	return out
}

// The dashboards read these recording rules by name.
func TestRecordingRules(t *testing.T) {
	f := generate(t, nil)
	records := f.Records()
	for _, name := range []string{
		"schema_table_phase:pgcapacity_probe_duration_seconds:p50_5m",
		"schema_table_phase:pgcapacity_probe_duration_seconds:p95_5m",
		"schema_table_phase:pgcapacity_probe_duration_seconds:p99_5m",
		"schema_table:pgcapacity_probe_planning_share:p95_5m",
	} {
		if !slices.Contains(records, name) {
			t.Errorf("recording rule %s is missing", name)
		}
	}
	level := regexp.MustCompile(`^[a-z_]+:[a-z0-9_]+:[a-z0-9_]+$`)
	for _, r := range records {
		if !level.MatchString(r) {
			t.Errorf("%s is not named level:metric:operations", r)
		}
	}
	p95, _ := recordNamed(f, RecordProbeP95)
	if want := "histogram_quantile(0.95, sum by (cluster, job, instance, schema, table, phase, le) (rate(pgcapacity_probe_duration_seconds_bucket[5m])))"; p95.Expr != want {
		t.Errorf("%s = %s, want %s", RecordProbeP95, p95.Expr, want)
	}
}

func recordNamed(f File, name string) (Rule, bool) {
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Record == name {
				return r, true
			}
		}
	}
	return Rule{}, false
}

// Every threshold reaches the expressions and the descriptions.
func TestThresholdsFromConfig(t *testing.T) {
	tests := []struct {
		env      map[string]string
		rule     string
		inExpr   []string
		inDesc   string
		interval string // of the rule's group, when it matters
	}{
		{map[string]string{"PGCAPACITY_LIVE_ROWS_PER_PARTITION": "250000"}, RecordLiveRowsHolds, []string{"> bool 250000"}, "", ""},
		{map[string]string{"PGCAPACITY_LIVE_ROWS_PER_PARTITION": "250000"}, "PartitionLiveRowsHigh", nil, "more than 250k live rows", ""},
		{map[string]string{"PGCAPACITY_SKEW_RATIO": "2.5"}, RecordSkewHolds, []string{"> bool 2.5"}, "", ""},
		{map[string]string{"PGCAPACITY_TENANT_INDEX_BUFFER_RATIO": "0.8"}, RecordTenantIndexHolds, []string{"> bool 0.8"}, "", ""},
		{map[string]string{"PGCAPACITY_TENANT_INDEX_BUFFER_RATIO": "0.8"}, "TenantIndexesExceedSharedBuffers", nil, "larger than 80% of shared_buffers", ""},
		{map[string]string{"PGCAPACITY_WRITE_RETENTION_TARGET": "30m"}, RecordVacuumLagHolds, []string{"> bool 1800"}, "", ""},
		{map[string]string{"PGCAPACITY_WRITE_RETENTION_TARGET": "30m", "PGCAPACITY_VACUUM_LAG_FOR": "2h"}, "HotPartitionVacuumLagHigh", []string{"> 1800"}, "target of 30m, for 2h", ""},
		{map[string]string{"PGCAPACITY_LATENCY_REGRESSION": "0.5"}, RecordLatencyHolds, []string{"> bool 1.5"}, "", ""},
		{map[string]string{"PGCAPACITY_PLANNING_SHARE": "0.2"}, RecordPlanningTimeHolds, []string{"> bool 0.2"}, "", ""},
		{map[string]string{"PGCAPACITY_RULE_WINDOW": "14d"}, "PartitionSkewHigh", []string{"[14d]) == 1", "[1h] offset 14d)"}, "the last 14d", "10m"},
		{map[string]string{"PGCAPACITY_RULE_WINDOW": "14d"}, RecordLatencyBaseline, []string{"[14d:2h] offset 14d)"}, "", "10m"},
		{map[string]string{"PGCAPACITY_RULE_WINDOW": "30s", "PGCAPACITY_RULES_EVALUATION_INTERVAL": "1s"}, "PartitionLiveRowsHigh", []string{"[30s]) == 1", "offset 30s)"}, "", "1s"},
		{map[string]string{"PGCAPACITY_XID_AGE_CRITICAL": "1000000000"}, "TransactionIDWraparoundApproaching", []string{"> 1000000000"}, "above 1000000000", ""},
		{map[string]string{"PGCAPACITY_ROLLBACK_PERIOD": "3d"}, "MigrationOldTableRetained", []string{"> 259200"}, "rollback period of 3d", ""},
		{map[string]string{"PGCAPACITY_ADMINOPS_REVIEW_WINDOW": "3d"}, "AdminopsStaleInvitations", []string{"day_of_month() <= 3"}, "first 3 days of every month", ""},
		{map[string]string{"PGCAPACITY_ADMINOPS_ACCESS_REVIEW_MONTHS": "6"}, "AdminopsUnreviewedAdmins", []string{"(month() - 1) % 6 == 0"}, "every 6 months", ""},
		{map[string]string{"PGCAPACITY_ADMINOPS_MIN_ADMINS": "3"}, "AdminopsTenantsBelowTwoAdmins", nil, "minimum of 3", ""},
		{map[string]string{"PGCAPACITY_RULES_JOB": "pgcap-eu"}, "PgcapacityExporterDown", []string{`up{job="pgcap-eu"} == 0`}, "", ""},
		{map[string]string{"PGCAPACITY_RUNBOOK_URL": "https://wiki.example.com/rb"}, "PgcapacityExporterDown", nil, "", ""},
	}
	for _, tc := range tests {
		f := generate(t, tc.env)
		var rule Rule
		var group Group
		for _, g := range f.Groups {
			for _, r := range g.Rules {
				if r.Alert == tc.rule || r.Record == tc.rule {
					rule, group = r, g
				}
			}
		}
		if rule.Expr == "" {
			t.Fatalf("%v: no rule %s", tc.env, tc.rule)
		}
		for _, s := range tc.inExpr {
			if !strings.Contains(rule.Expr, s) {
				t.Errorf("%v: %s does not contain %q:\n%s", tc.env, tc.rule, s, rule.Expr)
			}
		}
		if d := rule.Annotations["description"]; !strings.Contains(d, tc.inDesc) {
			t.Errorf("%v: description of %s does not say %q: %s", tc.env, tc.rule, tc.inDesc, d)
		}
		if tc.interval != "" && group.Interval != tc.interval {
			t.Errorf("%v: group %s evaluates every %s, want %s", tc.env, group.Name, group.Interval, tc.interval)
		}
		if u, ok := tc.env["PGCAPACITY_RUNBOOK_URL"]; ok && rule.Annotations["runbook_url"] != u+"#pgcapacityexporterdown" {
			t.Errorf("runbook_url %q does not use %s", rule.Annotations["runbook_url"], u)
		}
	}
}

func TestOptionsRejected(t *testing.T) {
	good := FromConfig(loadConfig(t, nil))
	tests := []struct {
		name   string
		change func(*Options)
		want   string
	}{
		{"zero interval", func(o *Options) { o.EvaluationInterval = 0 }, "PGCAPACITY_RULES_EVALUATION_INTERVAL"},
		{"window below interval", func(o *Options) { o.Thresholds.RuleWindow = config.Duration(time.Second) }, "PGCAPACITY_RULE_WINDOW"},
		{"partial review days", func(o *Options) { o.Thresholds.AdminopsReviewWindow = config.Duration(36 * time.Hour) }, "PGCAPACITY_ADMINOPS_REVIEW_WINDOW"},
		{"review months", func(o *Options) { o.Thresholds.AdminopsAccessReviewMonths = 5 }, "REVIEW_MONTHS"},
		{"job with a quote", func(o *Options) { o.Job = `pg"capacity` }, "PGCAPACITY_RULES_JOB"},
		{"runbook with fragment", func(o *Options) { o.RunbookURL = "https://x.example/rb.md#top" }, "PGCAPACITY_RUNBOOK_URL"},
		{"no rollback period", func(o *Options) { o.RollbackPeriod = 0 }, "PGCAPACITY_ROLLBACK_PERIOD"},
		{"no admins", func(o *Options) { o.MinAdmins = 0 }, "PGCAPACITY_ADMINOPS_MIN_ADMINS"},
	}
	for _, tc := range tests {
		o := good
		tc.change(&o)
		_, err := Generate(o)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one naming %s", tc.name, err, tc.want)
		}
	}
}

func TestFormat(t *testing.T) {
	durations := map[time.Duration]string{
		7 * 24 * time.Hour: "7d", time.Hour: "1h", 90 * time.Second: "1m30s", 36 * time.Hour: "1d12h",
		1500 * time.Millisecond: "1s500ms", 0: "0s",
	}
	for d, want := range durations {
		if got := promDuration(d); got != want {
			t.Errorf("promDuration(%v) = %q, want %q", d, got, want)
		}
	}
	numbers := map[float64]string{1e6: "1000000", 0.1: "0.1", 1.25: "1.25", 1.5e9: "1500000000", 2500000.5: "2500000.5"}
	for v, want := range numbers {
		if got := num(v); got != want {
			t.Errorf("num(%v) = %q, want %q", v, got, want)
		}
	}
	human := map[float64]string{1e6: "1M", 250000: "250k", 2500000.5: "2.5M", 12: "12"}
	for v, want := range human {
		if got := humanize(v); got != want {
			t.Errorf("humanize(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestPrometheusRuleManifest(t *testing.T) {
	b, err := os.ReadFile(committedK8s)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"apiVersion: monitoring.coreos.com/v1\n", "kind: PrometheusRule\n", "  name: pgcapacity\n", "spec:\n  groups:\n    - name: pgcapacity.probes\n"} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("%s lacks %q", filepath.Base(committedK8s), want)
		}
	}
}
