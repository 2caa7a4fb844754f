package rules

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

const installHint = "install with apt-get install prometheus prometheus-alertmanager"

// tool finds a Prometheus or Alertmanager binary; missing is a failure,
// never a skip.
func tool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not on PATH: %s", name, installHint)
	}
	return path
}

func runTool(t *testing.T, dir, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(tool(t, name), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// promtool check rules with every lint, fatal, on the committed file and on
// the output for other configurations.
func TestPromtoolCheckRules(t *testing.T) {
	if out, err := runTool(t, ".", "promtool", "check", "rules", "--lint=all", "--lint-fatal", committedRules); err != nil {
		t.Fatalf("promtool check rules %s: %v\n%s", committedRules, err, out)
	}
	dir := t.TempDir()
	for i, env := range configurations() {
		path := filepath.Join(dir, "rules"+string(rune('a'+i))+".yml")
		if err := os.WriteFile(path, render(t, generate(t, env)), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := runTool(t, dir, "promtool", "check", "rules", "--lint=all", "--lint-fatal", path); err != nil {
			t.Errorf("%v: promtool check rules: %v\n%s", env, err, out)
		}
	}
}

func testFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("tests/*.test.yml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no promtool test files in rules/tests: %v", err)
	}
	return files
}

// The promtool unit tests in rules/tests, one subtest per file, against the
// committed rule file.
func TestPromtoolUnitTests(t *testing.T) {
	for _, file := range testFiles(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			t.Parallel()
			out, err := runTool(t, ".", "promtool", "test", "rules", file)
			if err != nil || !strings.Contains(out, "SUCCESS") {
				t.Fatalf("promtool test rules %s: %v\n%s", file, err, out)
			}
		})
	}
}

// promtoolTests is the part of a promtool test file this test reads.
type promtoolTests struct {
	GroupEvalOrder []string `yaml:"group_eval_order"`
	Tests          []struct {
		AlertRuleTest []struct {
			EvalTime  string `yaml:"eval_time"`
			Alertname string `yaml:"alertname"`
			ExpAlerts []struct {
				ExpLabels      map[string]string `yaml:"exp_labels"`
				ExpAnnotations map[string]string `yaml:"exp_annotations"`
			} `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

// Every alert has a promtool case where it fires with its labels and all
// three annotations asserted, and one where it stays silent.
func TestEveryAlertHasUnitTests(t *testing.T) {
	fires, silent := map[string]bool{}, map[string]bool{}
	generated := generate(t, nil)
	var groups []string
	for _, g := range generated.Groups {
		groups = append(groups, g.Name)
	}
	for _, file := range testFiles(t) {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var pt promtoolTests
		if err := yaml.Unmarshal(b, &pt); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		// Without a fixed order promtool evaluates the groups at random,
		// and the planning group may read the probes group's last step.
		if !slices.Equal(pt.GroupEvalOrder, groups) {
			t.Errorf("%s: group_eval_order %v, want the file's order %v", file, pt.GroupEvalOrder, groups)
		}
		for _, group := range pt.Tests {
			for _, c := range group.AlertRuleTest {
				if len(c.ExpAlerts) == 0 {
					silent[c.Alertname] = true
				}
				for _, a := range c.ExpAlerts {
					if a.ExpLabels["severity"] != "" && a.ExpLabels["category"] != "" &&
						a.ExpAnnotations["summary"] != "" && a.ExpAnnotations["description"] != "" && a.ExpAnnotations["runbook_url"] != "" {
						fires[c.Alertname] = true
					}
				}
			}
		}
	}
	for _, a := range generated.Alerts() {
		if !fires[a.Alert] {
			t.Errorf("%s: no promtool case where it fires with severity, category, summary, description and runbook_url asserted", a.Alert)
		}
		if !silent[a.Alert] {
			t.Errorf("%s: no promtool case where it stays silent", a.Alert)
		}
	}
}

// The unit tests catch the mistakes the business-week form exists to
// prevent: each mutation of the rules must fail them.
func TestPromtoolTestsCatchBrokenRules(t *testing.T) {
	rules, err := os.ReadFile(committedRules)
	if err != nil {
		t.Fatal(err)
	}
	mutations := []struct {
		name, file, from, to, fails string
	}{
		{"no start check: a table first seen six days ago fires", "planning.test.yml",
			"last_over_time(schema_table:pgcapacity_planning_live_rows:holds[1h] offset 7d)", "schema_table:pgcapacity_planning_live_rows:holds",
			"alertname: PartitionLiveRowsHigh"},
		{"max instead of min: an hour's break is ignored", "planning.test.yml",
			"min_over_time(schema_table:pgcapacity_planning_skew:holds[7d])", "max_over_time(schema_table:pgcapacity_planning_skew:holds[7d])",
			"alertname: PartitionSkewHigh"},
		{"baseline one week earlier: never holds a week", "latency.test.yml",
			"[7d:1h] offset 7d)", "[1h:1h] offset 7d)",
			"alertname: TenantQueryLatencyRegressed"},
		{"latency counted while vacuum lags", "latency.test.yml",
			"and on (cluster, job, instance, schema, table) (pgcapacity_table_vacuum_lag_seconds == 0)\n", "",
			"alertname: TenantQueryLatencyRegressed"},
		{"parent age alone: a parent older than its partitions' statistics fires", "parentstats.test.yml",
			"and on (cluster, job, instance, schema, table) (pgcapacity_table_partition_last_analyze_timestamp_seconds > on (cluster, job, instance, schema, table) (time() - pgcapacity_table_parent_analyze_age_seconds))", "",
			"alertname: PartitionParentStatisticsStale"},
		{"a new empty table's parent fires", "parentstats.test.yml",
			"pgcapacity_table_partition_last_analyze_timestamp_seconds > 0", "pgcapacity_table_partition_last_analyze_timestamp_seconds >= 0",
			"alertname: PartitionParentStatisticsStale"},
	}
	for _, m := range mutations {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			if !strings.Contains(string(rules), m.from) {
				t.Fatalf("the rules no longer contain %q: update the mutation", m.from)
			}
			dir := t.TempDir()
			mutated := strings.Replace(string(rules), m.from, m.to, 1)
			if err := os.WriteFile(filepath.Join(dir, committedRules), []byte(mutated), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(filepath.Join(dir, "tests"), 0o755); err != nil {
				t.Fatal(err)
			}
			test, err := os.ReadFile(filepath.Join("tests", m.file))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "tests", m.file), test, 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := runTool(t, dir, "promtool", "test", "rules", filepath.Join("tests", m.file))
			var exit *exec.ExitError
			if !errors.As(err, &exit) || !strings.Contains(out, "FAILED") || !strings.Contains(out, m.fails) {
				t.Fatalf("promtool test rules did not fail on %s with the mutation (err %v):\n%s", m.fails, err, out)
			}
		})
	}
}

// The suite is pinned to Debian bookworm's packages: promtool's unit-test
// semantics (range boundaries, group order) and Alertmanager's accepted
// configuration change between releases.
func TestPinnedToolVersions(t *testing.T) {
	for _, tc := range []struct{ tool, want string }{
		{"promtool", "version 2.42."},
		{"prometheus", "version 2.42."},
		{"amtool", "version 0.25."},
		{"prometheus-alertmanager", "version 0.25."},
	} {
		out, err := runTool(t, ".", tc.tool, "--version")
		if err != nil || !strings.Contains(out, tc.want) {
			t.Errorf("%s --version: %v\n%s\nthe rules are tested with Debian bookworm's prometheus 2.42 and prometheus-alertmanager 0.25: %s", tc.tool, err, out, installHint)
		}
	}
}
