package dashboards

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sigid/pgcapacity/dashboards/internal/lint"
	"github.com/sigid/pgcapacity/internal/config"
	"github.com/sigid/pgcapacity/migrate"
)

var update = flag.Bool("update", false, "rewrite json/ from the builders (with the default configuration)")

// jsonDir holds the committed dashboards that deploy/grafana provisions.
const jsonDir = "json"

// defaultOptions are the options the committed files are built with: the
// configuration's defaults, whatever PGCAPACITY_* the shell running the
// tests has set.
func defaultOptions(t *testing.T) Options {
	t.Helper()
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, config.Prefix+"_") {
			t.Setenv(name, "") // restores the variable when the test ends
			os.Unsetenv(name)
		}
	}
	cfg, err := config.Load()
	if err != nil {
		t.Fatalf("loading the default configuration: %v", err)
	}
	return OptionsFrom(cfg)
}

// rendered builds every dashboard and decodes its JSON as Grafana reads it.
func rendered(t *testing.T, opts Options) ([]File, []lint.Dashboard) {
	t.Helper()
	files, err := Build(opts)
	if err != nil {
		t.Fatalf("building the dashboards: %v", err)
	}
	boards := make([]lint.Dashboard, 0, len(files))
	for _, f := range files {
		data, err := Marshal(f.Dashboard)
		if err != nil {
			t.Fatal(err)
		}
		d, err := lint.Decode(f.Name, data)
		if err != nil {
			t.Fatal(err)
		}
		boards = append(boards, d)
	}
	return files, boards
}

func TestCommittedJSONIsCurrent(t *testing.T) {
	files, err := Build(defaultOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if _, err := Write(jsonDir, files); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]bool{}
	for _, f := range files {
		want[f.Name] = true
		data, err := Marshal(f.Dashboard)
		if err != nil {
			t.Fatal(err)
		}
		committed, err := os.ReadFile(filepath.Join(jsonDir, f.Name))
		if err != nil {
			t.Errorf("%v: run `go test ./dashboards -run TestCommittedJSONIsCurrent -update` and commit dashboards/json", err)
			continue
		}
		if !bytes.Equal(committed, data) {
			t.Errorf("dashboards/json/%s is stale: run `go test ./dashboards -run TestCommittedJSONIsCurrent -update` (or `PGCAPACITY_* unset; pgcapacity dashboards dashboards/json`) and commit it", f.Name)
		}
	}
	extra, err := filepath.Glob(filepath.Join(jsonDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range extra {
		if !want[filepath.Base(p)] {
			t.Errorf("%s is not built by any builder: Grafana would still load it; delete it", p)
		}
	}
}

func TestDashboardsFollowTheConventions(t *testing.T) {
	_, boards := rendered(t, defaultOptions(t))
	for _, d := range boards {
		for _, p := range lint.Check(d) {
			t.Error(p)
		}
	}
}

func TestDashboardsHaveStableUIDsAndTheTag(t *testing.T) {
	_, boards := rendered(t, defaultOptions(t))
	want := []string{UIDOverview, UIDTable, UIDLatency, UIDAdminops, UIDMigrations}
	var got []string
	for _, d := range boards {
		got = append(got, d.UID)
		if !slices.Contains(d.Tags, Tag) {
			t.Errorf("%s: tag %q missing: the dashboards link to each other through it", d.File, Tag)
		}
		if d.File != d.UID+".json" {
			t.Errorf("%s: name the file after the uid, %s.json", d.File, d.UID)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("uids %v, want %v", got, want)
	}
}

// panelByTitle finds a panel of the dashboard with uid.
func panelByTitle(t *testing.T, boards []lint.Dashboard, uid, title string) lint.Panel {
	t.Helper()
	for _, d := range boards {
		if d.UID != uid {
			continue
		}
		for _, p := range d.AllPanels() {
			if p.Title == title {
				return p
			}
		}
	}
	t.Fatalf("%s has no panel %q", uid, title)
	return lint.Panel{}
}

// redFrom is where a panel's thresholds turn red.
func redFrom(p lint.Panel) (float64, bool) {
	for _, s := range p.Thresholds() {
		if s.Color == "red" && s.Value != nil {
			return *s.Value, true
		}
	}
	return 0, false
}

// TestThresholdsComeFromTheConfiguration builds with non-default thresholds
// and finds each on the panels that draw it.
func TestThresholdsComeFromTheConfiguration(t *testing.T) {
	opts := defaultOptions(t)
	th := &opts.Thresholds
	th.LiveRowsPerPartition = 2_500_000
	th.SkewRatio = 6
	th.TenantIndexBufferRatio = 0.8
	th.WriteRetentionTarget = config.Duration(45 * time.Minute)
	th.LatencyRegression = 0.4
	th.PlanningShare = 0.15
	th.XIDAgeCritical = 1_200_000_000
	opts.RollbackPeriod = config.Duration(72 * time.Hour)
	_, boards := rendered(t, opts)

	for _, tc := range []struct {
		uid, title string
		want       float64
	}{
		{UIDOverview, "Rule 1: avg live rows / partition", 2_500_000},
		{UIDOverview, "Live rows per partition", 2_500_000},
		{UIDOverview, "Rule 2: skew (max / median)", 6},
		{UIDOverview, "Skew ratio", 6},
		{UIDOverview, "Hot tenant indexes / shared_buffers", 0.8},
		{UIDOverview, "Rule 3: tenant indexes / shared_buffers", 0.8},
		{UIDOverview, "Rule 4: worst vacuum lag", 2700},
		{UIDOverview, "Worst vacuum lag against the retention target", 2700},
		{UIDOverview, "Rule 5: p95 against last week", 0.4},
		{UIDOverview, "Rule 6: planning share of p95", 0.15},
		{UIDTable, "Avg rows / partition", 2_500_000},
		{UIDTable, "Skew (max / median)", 6},
		{UIDTable, "Partition rows / median partition", 6},
		{UIDTable, "Worst vacuum lag", 2700},
		{UIDTable, "Vacuum lag, 10 worst partitions", 2700},
		{UIDTable, "Oldest xid age", 1_200_000_000},
		{UIDTable, "Oldest transaction-id age", 1_200_000_000},
		{UIDLatency, "p95 change against last week", 0.4},
		{UIDLatency, "Planning share of p95", 0.15},
		{UIDLatency, "Planning share of statement time", 0.15},
		{UIDMigrations, "Time since swap", 72 * 3600},
	} {
		p := panelByTitle(t, boards, tc.uid, tc.title)
		if got, ok := redFrom(p); !ok || got != tc.want {
			t.Errorf("%s / %q: red from %v (found %v), want %v", tc.uid, tc.title, got, ok, tc.want)
		}
	}
	// The shared_buffers line is drawn at the configured ratio.
	p := panelByTitle(t, boards, UIDOverview, "Hot tenant index bytes against shared_buffers")
	if !strings.Contains(p.Targets[1].Expr, "* 0.8") {
		t.Errorf("shared_buffers line %q is not drawn at the configured ratio 0.8", p.Targets[1].Expr)
	}
}

// TestRulePanelsLinkToDetailAndRunbook: each of the six rule stats opens
// the table detail on its table and the rule's runbook section.
func TestRulePanelsLinkToDetailAndRunbook(t *testing.T) {
	opts := defaultOptions(t)
	opts.RunbookURL = "https://runbooks.example/pgcapacity.md"
	_, boards := rendered(t, opts)
	for title, alert := range map[string]string{
		"Rule 1: avg live rows / partition":       "partitionliverowshigh",
		"Rule 2: skew (max / median)":             "partitionskewhigh",
		"Rule 3: tenant indexes / shared_buffers": "tenantindexesexceedsharedbuffers",
		"Rule 4: worst vacuum lag":                "partitionautovacuumlaghigh",
		"Rule 5: p95 against last week":           "tenantquerylatencyregressed",
		"Rule 6: planning share of p95":           "partitionplanningtimesignificant",
	} {
		p := panelByTitle(t, boards, UIDOverview, title)
		var urls []string
		for _, l := range p.Links {
			urls = append(urls, l.URL)
		}
		if !slices.Contains(urls, opts.RunbookURL+"#"+alert) {
			t.Errorf("%q: links %v lack the runbook section #%s", title, urls, alert)
		}
		if !slices.ContainsFunc(urls, func(u string) bool {
			return strings.HasPrefix(u, "/d/"+UIDTable+"/") && strings.Contains(u, "var-table=${table}")
		}) {
			t.Errorf("%q: links %v lack the table detail of ${table}", title, urls)
		}
	}
}

// TestOverviewRepeatsARowPerTable: the per-table row repeats over $table
// and each of its panels is about $table.
func TestOverviewRepeatsARowPerTable(t *testing.T) {
	_, boards := rendered(t, defaultOptions(t))
	d := boards[0]
	inRow := false
	rules := 0
	for _, p := range d.AllPanels() {
		if p.Type == "row" {
			inRow = p.Repeat == "table"
			continue
		}
		if !inRow {
			continue
		}
		if strings.HasPrefix(p.Title, "Rule ") && p.Type == "stat" {
			rules++
		}
		if !slices.ContainsFunc(p.Targets, func(tg lint.Target) bool { return strings.Contains(tg.Expr, `table=~"$table"`) }) {
			t.Errorf("%q: no query selects the row's table", p.Title)
		}
	}
	if rules != 6 {
		t.Fatalf("the repeated row has %d rule stats, want the six operating rules", rules)
	}
}

func TestWriteReplacesFilesAndRefusesAFileAsDirectory(t *testing.T) {
	files, err := Build(defaultOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "new", "dir")
	written, err := Write(dir, files)
	if err != nil {
		t.Fatal(err)
	}
	if len(written) != len(files) {
		t.Fatalf("wrote %v, want %d files", written, len(files))
	}
	// Rewriting replaces the old content whole and leaves no temporary files.
	if err := os.WriteFile(written[0], []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Write(dir, files); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(written[0])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(data, []byte("{")) {
		t.Fatalf("%s was not replaced: %q", written[0], data)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(files) {
		t.Fatalf("%d entries in %s, want only the %d dashboards", len(entries), dir, len(files))
	}

	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Write(notDir, files); err == nil {
		t.Fatal("writing into a regular file must fail")
	}
	if data, _ := os.ReadFile(notDir); string(data) != "keep me" {
		t.Fatalf("the file in the way was changed: %q", data)
	}
}

// TestMigrationPhasesMatchMigrate: the migrations dashboard filters on
// migrate's phase names.
func TestMigrationPhasesMatchMigrate(t *testing.T) {
	if phaseSwapped != migrate.PhaseSwapped || phaseRolledBack != migrate.PhaseRolledBack {
		t.Fatalf("phases %q, %q; migrate has %q, %q", phaseSwapped, phaseRolledBack, migrate.PhaseSwapped, migrate.PhaseRolledBack)
	}
}
