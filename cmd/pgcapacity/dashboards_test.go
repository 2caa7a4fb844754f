package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestDashboardsCommand runs `pgcapacity dashboards` in-process: what it
// writes, what it prints, and how it refuses bad arguments without
// touching anything.
func TestDashboardsCommand(t *testing.T) {
	wantFiles := []string{
		"pgcapacity-adminops.json", "pgcapacity-latency.json", "pgcapacity-migrations.json",
		"pgcapacity-overview.json", "pgcapacity-table.json",
	}
	aFile := filepath.Join(t.TempDir(), "dashboards.json")
	if err := os.WriteFile(aFile, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name     string
		env      map[string]string
		args     func(dir string) []string
		wantCode int
		wantErr  string // in stderr
	}{
		{name: "into a new directory", args: func(dir string) []string { return []string{filepath.Join(dir, "out")} }, wantCode: exitOK},
		{name: "configured threshold", env: map[string]string{"PGCAPACITY_SKEW_RATIO": "6.5"},
			args: func(dir string) []string { return []string{dir} }, wantCode: exitOK},
		{name: "two directories", args: func(dir string) []string { return []string{dir, dir} },
			wantCode: exitError, wantErr: "takes one directory, got 2 arguments"},
		{name: "a file for the directory", args: func(string) []string { return []string{aFile} },
			wantCode: exitError, wantErr: "is a file, not a directory"},
		{name: "bad threshold", env: map[string]string{"PGCAPACITY_SKEW_RATIO": "four"},
			args: func(dir string) []string { return []string{dir} }, wantCode: exitError, wantErr: "PGCAPACITY_SKEW_RATIO"},
		{name: "unknown flag", args: func(dir string) []string { return []string{"--format=yaml", dir} },
			wantCode: exitError, wantErr: "flag provided but not defined"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			dir := t.TempDir()
			args := tc.args(dir)
			var stdout, stderr bytes.Buffer
			code := run(append([]string{"dashboards"}, args...), &stdout, &stderr)
			if code != tc.wantCode || !strings.Contains(stderr.String(), tc.wantErr) {
				t.Fatalf("exit %d, want %d; stderr %q, want it to contain %q", code, tc.wantCode, stderr.String(), tc.wantErr)
			}
			if data, _ := os.ReadFile(aFile); string(data) != "keep" {
				t.Fatalf("the file in the way was changed: %q", data)
			}
			if code != exitOK {
				if entries, _ := os.ReadDir(dir); len(entries) != 0 {
					t.Fatalf("a refused run wrote %d files", len(entries))
				}
				return
			}
			out := args[len(args)-1]
			var printed []string
			for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
				printed = append(printed, filepath.Base(line))
				if filepath.Dir(line) != out {
					t.Errorf("printed %q, not a path in %s", line, out)
				}
			}
			slices.Sort(printed)
			if !slices.Equal(printed, wantFiles) {
				t.Fatalf("printed %v, want %v", printed, wantFiles)
			}
			data, err := os.ReadFile(filepath.Join(out, "pgcapacity-overview.json"))
			if err != nil {
				t.Fatal(err)
			}
			var d struct {
				UID      string `json:"uid"`
				Editable bool   `json:"editable"`
			}
			if err := json.Unmarshal(data, &d); err != nil || d.UID != "pgcapacity-overview" || d.Editable {
				t.Fatalf("overview: %+v %v", d, err)
			}
			if v, ok := tc.env["PGCAPACITY_SKEW_RATIO"]; ok && !bytes.Contains(data, []byte(`"value": `+v)) {
				t.Fatalf("the configured skew ratio %s is not drawn on the overview", v)
			}
		})
	}
}
