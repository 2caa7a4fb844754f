package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// onlyEnv leaves exactly env of the PGCAPACITY_* variables for the test.
func onlyEnv(t *testing.T, env map[string]string) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "PGCAPACITY_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
}

func TestRulesCommand(t *testing.T) {
	committed, err := os.ReadFile("../../rules/pgcapacity.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	manifest, err := os.ReadFile("../../deploy/kubernetes/prometheusrule.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "rules.yml")
	tests := []struct {
		name      string
		args      []string
		env       map[string]string
		code      int
		stdout    []byte // exact, when set
		contains  string // in stdout
		stderr    string // in stderr
		writesOut bool
	}{
		{name: "defaults are the committed file", args: []string{"rules"}, stdout: committed},
		{name: "kubernetes manifest", args: []string{"rules", "--format", "kubernetes"}, stdout: manifest},
		{name: "thresholds from the environment", args: []string{"rules"}, env: map[string]string{"PGCAPACITY_RULE_WINDOW": "3d", "PGCAPACITY_SKEW_RATIO": "6"},
			contains: "min_over_time(schema_table:pgcapacity_planning_skew:holds[3d]) == 1"},
		{name: "thanos ruler", args: []string{"rules", "--format", "thanos"}, contains: "    partial_response_strategy: abort\n"},
		{name: "mimir namespace", args: []string{"rules", "--format", "mimir", "--name", "db-eu-1"}, contains: "namespace: db-eu-1\ngroups:\n"},
		{name: "to a file", args: []string{"rules", "-o", out}, writesOut: true},
		{name: "unknown format", args: []string{"rules", "--format", "cortex"}, code: exitError, stderr: `--format "cortex" is not a format: use prometheus, kubernetes, thanos or mimir`},
		{name: "stray argument", args: []string{"rules", "out.yml"}, code: exitError, stderr: `unexpected argument "out.yml"`},
		{name: "bad review window", args: []string{"rules"}, env: map[string]string{"PGCAPACITY_ADMINOPS_REVIEW_WINDOW": "36h"}, code: exitError,
			stderr: "PGCAPACITY_ADMINOPS_REVIEW_WINDOW: 36h0m0s is not a whole number of days"},
		{name: "unwritable file", args: []string{"rules", "-o", filepath.Join(t.TempDir(), "missing", "rules.yml")}, code: exitError, stderr: "writing the rules"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			onlyEnv(t, tc.env)
			var stdout, stderr bytes.Buffer
			if code := run(tc.args, &stdout, &stderr); code != tc.code {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tc.code, stderr.String())
			}
			if tc.stdout != nil && !bytes.Equal(stdout.Bytes(), tc.stdout) {
				t.Errorf("stdout differs from the committed file (regenerate: go test ./rules -run TestCommittedFilesAreCurrent -update)")
			}
			if !strings.Contains(stdout.String(), tc.contains) {
				t.Errorf("stdout lacks %q", tc.contains)
			}
			if !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("stderr %q lacks %q", stderr.String(), tc.stderr)
			}
			if tc.writesOut {
				b, err := os.ReadFile(out)
				if err != nil || !bytes.Equal(b, committed) || stdout.Len() != 0 {
					t.Errorf("-o wrote %d bytes (err %v), stdout %d bytes; want the committed file and nothing on stdout", len(b), err, stdout.Len())
				}
			}
		})
	}
}
