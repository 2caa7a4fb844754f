package rules

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/sigid/pgcapacity/internal/playbook"
)

const standbyTests = "tests/standby.test.yml"

// standbyGate is how the generated rules keep standbys out (onPrimary).
const standbyGate = "unless on (cluster, job, instance) pgcapacity_in_recovery == 1"

// standby.test.yml covers every planning alert: each fires exactly once,
// for the primary of the primary-and-standby cluster, and never for the
// standbys (promtool fails on an alert it did not expect).
func TestStandbyTestsCoverEveryPlanningAlert(t *testing.T) {
	b, err := os.ReadFile(standbyTests)
	if err != nil {
		t.Fatal(err)
	}
	var pt promtoolTests
	if err := yaml.Unmarshal(b, &pt); err != nil {
		t.Fatal(err)
	}
	once := map[string]bool{}
	for _, group := range pt.Tests {
		for _, c := range group.AlertRuleTest {
			if len(c.ExpAlerts) == 1 && c.ExpAlerts[0].ExpLabels["instance"] == "db1:9842" && c.ExpAlerts[0].ExpLabels["cluster"] == "c1" {
				once[c.Alertname] = true
			}
		}
	}
	for _, rule := range playbook.Rules() {
		if !once[rule.Name] {
			t.Errorf("%s: no case in %s where it fires once, for the primary db1 of cluster c1", rule.Name, standbyTests)
		}
	}
}

// Without the pgcapacity_in_recovery condition the standbys raise the
// planning alerts too, and standby.test.yml fails on each. The vacuum lag
// and latency rules are the exceptions: they read vacuum lag (and the
// latency rule analyze lag), which a standby does not publish, so they stay
// silent there either way.
func TestStandbyTestsFailWithoutTheGate(t *testing.T) {
	rules, err := os.ReadFile(committedRules)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(rules), standbyGate) {
		t.Fatalf("the rules no longer contain %q: update the test", standbyGate)
	}
	dir := t.TempDir()
	mutated := strings.ReplaceAll(string(rules), standbyGate, "")
	if err := os.WriteFile(filepath.Join(dir, committedRules), []byte(mutated), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "tests"), 0o755); err != nil {
		t.Fatal(err)
	}
	test, err := os.ReadFile(standbyTests)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, standbyTests), test, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := runTool(t, dir, "promtool", "test", "rules", standbyTests)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || !strings.Contains(out, "FAILED") {
		t.Fatalf("promtool test rules passed without the standby condition (err %v):\n%s", err, out)
	}
	for _, rule := range playbook.Rules() {
		failed := strings.Contains(out, "alertname: "+rule.Name+",")
		if want := rule.ID != playbook.VacuumLag && rule.ID != playbook.LatencyRegression; failed != want {
			t.Errorf("%s: failed %v without the standby condition, want %v", rule.Name, failed, want)
		}
	}
}
