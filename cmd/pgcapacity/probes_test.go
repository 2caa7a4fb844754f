package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/sigid/pgcapacity/internal/config"
	"github.com/sigid/pgcapacity/internal/testutil"
)

// serveLogged runs serve in process like serveInProcess, keeping its log.
func serveLogged(t *testing.T, cfg config.Config) (addr string, logs *testutil.LockedBuffer, stop func() error) {
	t.Helper()
	logs = &testutil.LockedBuffer{}
	addr, stop = serveListening(t, cfg, nil, logs)
	return addr, logs, stop
}

// runCommand runs pgcapacity in process with only these PGCAPACITY_ settings.
func runCommand(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	onlyEnv(t, env)
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// pgbenchBinary is the pgbench beside the test server's initdb, else
// Debian's PostgreSQL 15 one (pgbench 15 drives servers 13 and later).
func pgbenchBinary(t *testing.T) string {
	t.Helper()
	for _, p := range []string{filepath.Join(cluster.Get(t).BinDir(), "pgbench"), "/usr/lib/postgresql/15/bin/pgbench"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("pgbench"); err == nil {
		return p
	}
	t.Fatal("pgbench not found beside initdb nor in /usr/lib/postgresql/15/bin: install postgresql-15 (or `make deps`)")
	return ""
}

// TestPgbenchSchema: on the schema the real `pgbench -i --partitions`
// makes, with pgbench running, serve probes pgbench_accounts from its own
// definition with no probe error, every collector succeeds, admin-ops is
// not applicable, and no shipped alert would fire on what it serves.
func TestPgbenchSchema(t *testing.T) {
	pgbench := pgbenchBinary(t)
	dbURL := newDatabase(t)
	const partitions = 8
	if out, err := exec.Command(pgbench, "-i", "-q", "-s", "2", "--partitions", strconv.Itoa(partitions), "--partition-method=hash", dbURL).CombinedOutput(); err != nil {
		t.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	// A light steady load (50 transactions a second) for the whole test.
	load := exec.Command(pgbench, "-n", "-c", "2", "-j", "1", "-R", "50", "-T", "300", dbURL)
	var loadOut bytes.Buffer
	load.Stdout, load.Stderr = &loadOut, &loadOut
	if err := load.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = load.Process.Kill(); _ = load.Wait() })

	cfg := testConfig(t, dbURL)
	cfg.HotTables = []string{"pgbench_accounts"}
	cfg.ProbeInterval = config.Duration(100 * time.Millisecond)
	cfg.AdminopsInterval = config.Duration(time.Second)
	cfg.StatementsInterval = config.Duration(time.Second)
	cfg.MigrationsInterval = config.Duration(time.Second)
	addr, logs, stop := serveLogged(t, cfg)
	const total = `pgcapacity_probe_duration_seconds_count{phase="total",schema="public",table="pgbench_accounts"}`
	var first string
	var firstAt time.Time
	eventually(t, "probe timings of pgbench_accounts and a round of every collector", 90*time.Second, func() bool {
		_, body := scrape(t, addr)
		n, _ := metricValue(body, total)
		if v, err := strconv.Atoi(n); err != nil || v < 20 {
			return false
		}
		for _, c := range config.CollectorNames() {
			if v, ok := metricValue(body, `pgcapacity_collector_duration_seconds{collector="`+c+`"}`); !ok || v == "0" {
				return false
			}
		}
		first, firstAt = body, time.Now()
		return true
	})
	time.Sleep(5 * time.Second) // a second scrape, for the counters' rates
	_, body := scrape(t, addr)
	elapsed := time.Since(firstAt)
	if err := load.Process.Signal(os.Interrupt); err == nil {
		_ = load.Wait()
	}
	var transactions int
	if err := pgxConnQueryInt(dbURL, "SELECT count(*) FROM pgbench_history", &transactions); err != nil || transactions == 0 {
		t.Fatalf("pgbench ran %d transactions (%v) while serve probed:\n%s", transactions, err, lastLines(loadOut.String(), 10))
	}
	t.Logf("pgbench ran %d transactions while serve probed", transactions)
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	for _, phase := range []string{"planning", "execution", "total"} {
		n, _ := metricValue(body, `pgcapacity_probe_duration_seconds_count{phase="`+phase+`",schema="public",table="pgbench_accounts"}`)
		if v, _ := strconv.Atoi(n); v < 20 {
			t.Errorf("%s phase of pgbench_accounts: %q observations", phase, n)
		}
	}
	if v, _ := metricValue(body, `pgcapacity_probe_errors_total{schema="public",table="pgbench_accounts"}`); v != "0" {
		t.Errorf("pgcapacity_probe_errors_total of pgbench_accounts = %q, want 0", v)
	}
	if v, _ := metricValue(body, `pgcapacity_probe_tenants_sampled{schema="public",table="pgbench_accounts"}`); v == "" || v == "0" {
		t.Errorf("pgcapacity_probe_tenants_sampled of pgbench_accounts = %q", v)
	}
	for _, c := range config.CollectorNames() {
		if v, _ := metricValue(body, `pgcapacity_collector_success{collector="`+c+`"}`); v != "1" {
			t.Errorf("pgcapacity_collector_success{collector=%q} = %q, want 1", c, v)
		}
	}
	for _, check := range []string{"stale_invitations", "unreviewed_admins", "admins_without_mfa", "tenants_below_two_admins"} {
		if v, _ := metricValue(body, `pgcapacity_adminops_check_applicable{check="`+check+`"}`); v != "0" {
			t.Errorf("pgcapacity_adminops_check_applicable{check=%q} = %q, want 0 (not applicable)", check, v)
		}
	}
	if out := logs.String(); strings.Contains(out, "probe failed") || strings.Contains(out, "level=ERROR") {
		t.Errorf("serve logged probe failures or errors:\n%s", out)
	}
	noShippedAlertFires(t, first, body, elapsed)
}

// noShippedAlertFires replays two scrapes, taken elapsed apart, as 3 hours
// of series (gauges as the second scrape says, counters growing at the rate
// between the two) and has promtool evaluate the shipped rules on them:
// longer than every `for`, so no alert fires; and every planning rule's
// condition (its `:holds` recording) is false, so none would fire after a
// business week either. (Seven days of replay cost promtool minutes.)
func noShippedAlertFires(t *testing.T, first, second string, elapsed time.Duration) {
	t.Helper()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool is not on PATH: install it with apt-get install prometheus (or `make deps`)")
	}
	parse := func(body string) map[string]float64 {
		p := expfmt.NewTextParser(model.UTF8Validation)
		mfs, err := p.TextToMetricFamilies(strings.NewReader(body))
		if err != nil {
			t.Fatalf("parsing a scrape: %v", err)
		}
		out := map[string]float64{}
		for _, s := range flatten(t, mfs) {
			out[s.series] = s.value
			if s.counter {
				out["counter:"+s.series] = 1
			}
		}
		return out
	}
	a, b := parse(first), parse(second)
	const step = time.Minute
	const steps = 3 * 60
	var series []map[string]string
	keys := make([]string, 0, len(b))
	for k := range b {
		if !strings.HasPrefix(k, "counter:") {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	num := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	for _, k := range keys {
		v := b[k]
		delta := 0.0
		if b["counter:"+k] == 1 {
			if va, ok := a[k]; ok && v >= va {
				delta = (v - va) / elapsed.Seconds() * step.Seconds()
			}
		}
		series = append(series, map[string]string{"series": k, "values": fmt.Sprintf("%s+%sx%d", num(v), num(delta), steps)})
	}
	series = append(series, map[string]string{"series": `up{cluster="pgbench",instance="pgcapacity:9842",job="pgcapacity"}`, "values": fmt.Sprintf("1+0x%d", steps)})

	rulesFile, err := filepath.Abs(filepath.Join("..", "..", "rules", "pgcapacity.rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert  string `yaml:"alert"`
				Record string `yaml:"record"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(raw, &rules); err != nil {
		t.Fatal(err)
	}
	var alertTests, holdTests []map[string]any
	at := fmt.Sprintf("%dm", steps)
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				alertTests = append(alertTests, map[string]any{"eval_time": at, "alertname": r.Alert, "exp_alerts": []any{}})
			}
			if strings.HasSuffix(r.Record, ":holds") {
				holdTests = append(holdTests, map[string]any{"eval_time": at, "expr": r.Record + " == 1", "exp_samples": []any{}})
			}
		}
	}
	if len(alertTests) < 15 || len(holdTests) != 6 {
		t.Fatalf("%d alerts and %d planning conditions in %s", len(alertTests), len(holdTests), rulesFile)
	}
	promtoolTest := func(series []map[string]string) (string, error) {
		test := map[string]any{
			"rule_files":          []string{rulesFile},
			"evaluation_interval": "1m",
			"tests":               []any{map[string]any{"interval": "1m", "input_series": series, "alert_rule_test": alertTests, "promql_expr_test": holdTests}},
		}
		data, err := yaml.Marshal(test)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "scrape_test.yml")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(promtool, "test", "rules", path).CombinedOutput()
		return string(out), err
	}
	start := time.Now()
	if out, err := promtoolTest(series); err != nil {
		t.Fatalf("a shipped alert fires on pgbench's schema (%d series, %d alerts):\n%s", len(series), len(alertTests), out)
	}
	t.Logf("promtool: none of %d shipped alerts fires and no planning condition holds over %d series and 3h (%v)", len(alertTests), len(series), time.Since(start).Round(time.Millisecond))
	// The replay can fail: the same series with the database unreachable.
	down := slices.Clone(series)
	for i, s := range down {
		if strings.HasPrefix(s["series"], "pgcapacity_up{") {
			down[i] = map[string]string{"series": s["series"], "values": fmt.Sprintf("0+0x%d", steps)}
		}
	}
	if out, err := promtoolTest(down); err == nil || !strings.Contains(out, "PgcapacityDatabaseUnreachable") {
		t.Fatalf("the replay with pgcapacity_up 0 does not fire PgcapacityDatabaseUnreachable: %v\n%s", err, out)
	}
}

func pgxConnQueryInt(dbURL, sql string, v *int) error {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	return conn.QueryRow(ctx, sql).Scan(v)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

type flatSample struct {
	series  string
	value   float64
	counter bool
}

// flatten turns metric families into series as Prometheus stores them,
// with the labels the shipped scrape configuration adds.
func flatten(t *testing.T, mfs map[string]*dto.MetricFamily) []flatSample {
	t.Helper()
	var out []flatSample
	for name, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{"job": "pgcapacity", "instance": "pgcapacity:9842", "cluster": "pgbench"}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			add := func(suffix string, v float64, counter bool, extra ...string) {
				ls := map[string]string{}
				for k, v := range labels {
					ls[k] = v
				}
				for i := 0; i+1 < len(extra); i += 2 {
					ls[extra[i]] = extra[i+1]
				}
				out = append(out, flatSample{series: seriesName(name+suffix, ls), value: v, counter: counter})
			}
			switch {
			case m.GetCounter() != nil:
				add("", m.GetCounter().GetValue(), true)
			case m.GetGauge() != nil:
				add("", m.GetGauge().GetValue(), false)
			case m.GetUntyped() != nil:
				add("", m.GetUntyped().GetValue(), false)
			case m.GetHistogram() != nil:
				h := m.GetHistogram()
				for _, bk := range h.GetBucket() {
					add("_bucket", float64(bk.GetCumulativeCount()), true, "le", strconv.FormatFloat(bk.GetUpperBound(), 'f', -1, 64))
				}
				add("_bucket", float64(h.GetSampleCount()), true, "le", "+Inf")
				add("_sum", h.GetSampleSum(), true)
				add("_count", float64(h.GetSampleCount()), true)
			case m.GetSummary() != nil:
				sm := m.GetSummary()
				for _, q := range sm.GetQuantile() {
					add("", q.GetValue(), false, "quantile", strconv.FormatFloat(q.GetQuantile(), 'f', -1, 64))
				}
				add("_sum", sm.GetSampleSum(), true)
				add("_count", float64(sm.GetSampleCount()), true)
			default:
				t.Fatalf("%s: a metric type the replay does not know", name)
			}
		}
	}
	return out
}

func seriesName(name string, labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%q", k, labels[k]))
	}
	return name + "{" + strings.Join(parts, ",") + "}"
}

// TestDerivedProbeOnASchemaOfOurOwn: other schema, table and column names
// and a text tenant key: serve derives the probe and splits its planning
// and execution; `pgcapacity probes` and `check` show its SQL.
func TestDerivedProbeOnASchemaOfOurOwn(t *testing.T) {
	ddl := []string{
		`CREATE SCHEMA shop`,
		`CREATE TABLE shop.orders (shop_code text NOT NULL, order_no bigint NOT NULL, placed_at timestamptz NOT NULL DEFAULT now(), total numeric,
			PRIMARY KEY (shop_code, order_no)) PARTITION BY HASH (shop_code)`,
	}
	for i := range 4 {
		ddl = append(ddl, fmt.Sprintf(`CREATE TABLE shop.orders_%d PARTITION OF shop.orders FOR VALUES WITH (MODULUS 4, REMAINDER %d)`, i, i))
	}
	ddl = append(ddl, `INSERT INTO shop.orders (shop_code, order_no, total) SELECT 'shop-' || (g % 50), g, g / 7.0 FROM generate_series(1, 3000) g`,
		`ANALYZE shop.orders`)
	dbURL := newDatabase(t, ddl...)
	env := map[string]string{"PGCAPACITY_DATABASE_URL": dbURL, "PGCAPACITY_HOT_TABLES": "shop.orders,nothing_like_this"}

	wantSQL := `SELECT *
FROM "shop"."orders"
WHERE "shop_code" = $1
  AND "order_no" = (SELECT "order_no" FROM "shop"."orders" WHERE "shop_code" = $1 ORDER BY "order_no" LIMIT 1)
LIMIT 10`
	code, stdout, stderr := runCommand(t, env, "probes", "--json")
	if code != exitOK {
		t.Fatalf("probes --json: exit %d\n%s", code, stderr)
	}
	var listing struct {
		Probes []struct {
			Name, Origin, Schema, Table, SQL string
			TenantKey                        string `json:"tenant_key"`
			TenantKeyType                    string `json:"tenant_key_type"`
			Index                            string `json:"index"`
			Partitions                       int    `json:"partitions"`
			TenantsSampled                   int    `json:"tenants_sampled"`
		} `json:"probes"`
		NotProbed []any    `json:"not_probed"`
		Unmatched []string `json:"unmatched_hot_tables"`
	}
	if err := json.Unmarshal([]byte(stdout), &listing); err != nil {
		t.Fatalf("probes --json is not JSON: %v\n%s", err, stdout)
	}
	if len(listing.Probes) != 1 || listing.NotProbed == nil || !slices.Equal(listing.Unmatched, []string{"nothing_like_this"}) {
		t.Fatalf("listing %+v", listing)
	}
	p := listing.Probes[0]
	if p.Name != "orders" || p.Origin != "derived" || p.Schema != "shop" || p.Table != "orders" || p.SQL != wantSQL ||
		p.TenantKey != "shop_code" || p.TenantKeyType != "text" || p.Index != "orders_pkey" || p.Partitions != 4 || p.TenantsSampled < 4 {
		t.Fatalf("derived probe %+v\n%s", p, p.SQL)
	}
	code, stdout, stderr = runCommand(t, env, "probes")
	if code != exitOK || !strings.Contains(stdout, "orders (derived) on shop.orders: tenant key shop_code (text), index orders_pkey, 4 partitions") ||
		!strings.Contains(stdout, `    WHERE "shop_code" = $1`) || !strings.Contains(stdout, "not applicable: PGCAPACITY_HOT_TABLES patterns matching no watched table: nothing_like_this") {
		t.Fatalf("probes: exit %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, stderr = runCommand(t, env, "check")
	if code != exitOK || !strings.Contains(stdout, "shop.orders  5") || !strings.Contains(stdout, `    AND "order_no" = (SELECT`) {
		t.Fatalf("check: exit %d\n%s%s", code, stdout, stderr)
	}

	cfg := testConfig(t, dbURL)
	cfg.HotTables = []string{"shop.orders", "nothing_like_this"}
	cfg.Collectors = []string{"probes"}
	cfg.ProbeInterval = config.Duration(50 * time.Millisecond)
	addr, logs, _ := serveLogged(t, cfg)
	var body string
	eventually(t, "20 probe runs on shop.orders", 60*time.Second, func() bool {
		_, body = scrape(t, addr)
		n, _ := metricValue(body, `pgcapacity_probe_duration_seconds_count{phase="total",schema="shop",table="orders"}`)
		v, _ := strconv.Atoi(n)
		return v >= 20
	})
	sum := func(phase string) float64 {
		s, _ := metricValue(body, `pgcapacity_probe_duration_seconds_sum{phase="`+phase+`",schema="shop",table="orders"}`)
		v, _ := strconv.ParseFloat(s, 64)
		return v
	}
	plan, execution, total := sum("planning"), sum("execution"), sum("total")
	if !(plan > 0 && execution > 0 && total >= plan+execution) {
		t.Errorf("planning %g s, execution %g s, total %g s: want both phases measured and within the total", plan, execution, total)
	}
	if v, _ := metricValue(body, `pgcapacity_probe_errors_total{schema="shop",table="orders"}`); v != "0" {
		t.Errorf("probe errors %q", v)
	}
	// The unmatched hot-table pattern: one WARN naming it and the variable.
	out := logs.String()
	if n := strings.Count(out, "hot-table patterns match no watched partitioned table"); n != 1 ||
		!strings.Contains(out, "patterns=nothing_like_this variable=PGCAPACITY_HOT_TABLES") {
		t.Errorf("want one WARN naming the pattern and PGCAPACITY_HOT_TABLES, got %d:\n%s", n, out)
	}
}

// TestServeRefusesAProbeThatDoesNotFit: a probes file naming a column or
// table that does not exist stops serve at start with exit 2 and one line
// naming the probe; `pgcapacity probes` refuses it the same way.
func TestServeRefusesAProbeThatDoesNotFit(t *testing.T) {
	dbURL := newDatabase(t, balancedTable...)
	tests := []struct {
		name, file, want string
	}{
		{"missing column", "probes:\n  - name: by_code\n    table: session\n    sql: SELECT id FROM session WHERE tenant_id = $1 AND code = 'x'\n",
			`probe "by_code" (line 2): the SQL does not fit this database: column "code" does not exist (SQLSTATE 42703)`},
		{"missing table", "probes:\n  - name: sessions\n    table: sessions\n    sql: SELECT 1 FROM session WHERE tenant_id = $1\n",
			`probe "sessions" (line 2): table sessions does not exist`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "probes.yaml")
			if err := os.WriteFile(file, []byte(tt.file), 0o644); err != nil {
				t.Fatal(err)
			}
			env := map[string]string{"PGCAPACITY_DATABASE_URL": dbURL, "PGCAPACITY_PROBES_FILE": file, "PGCAPACITY_LISTEN_ADDRESS": testutil.FreeAddress(t)}
			for _, cmd := range []string{"serve", "probes"} {
				code, _, stderr := runCommand(t, env, cmd)
				// serve logs its start before validating (it answers
				// /healthz meanwhile); the refusal is the last line.
				lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
				want := "pgcapacity " + cmd + ": probes file " + file + ": " + tt.want
				if code != exitError || !strings.HasPrefix(lines[len(lines)-1], want) || strings.Count(stderr, tt.want) != 1 {
					t.Errorf("%s: exit %d, stderr:\n%s\nwant a last line starting %q", cmd, code, stderr, want)
				}
			}
		})
	}
}
