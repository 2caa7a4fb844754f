package probes_test

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sigid/pgcapacity/collector"
	"github.com/sigid/pgcapacity/collector/probes"
	"github.com/sigid/pgcapacity/internal/sigid"
	"github.com/sigid/pgcapacity/internal/testutil"
	"github.com/sigid/pgcapacity/internal/throwaway/pgtest"
)

var cluster pgtest.Cluster

func TestMain(m *testing.M) { pgtest.Main(m, &cluster) }

var _ collector.Collector = (*probes.Collector)(nil)

func newPool(t *testing.T) (context.Context, *pgxpool.Pool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	pool, err := pgxpool.New(ctx, pgtest.NewDatabase(t, &cluster))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return ctx, pool
}

// loadSigid creates the reference schema with the given partition counts
// and rowsPerTenant rows for each of tenants tenants in every hot table,
// then analyzes it.
func loadSigid(t *testing.T, ctx context.Context, pool *pgxpool.Pool, partitions map[string]int, tenants, rowsPerTenant int) {
	t.Helper()
	if err := sigid.Apply(ctx, pool, sigid.SchemaOptions{Partitions: partitions}); err != nil {
		t.Fatal(err)
	}
	// One connection: the temporary tenant list lives in its session.
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	type stmt struct {
		sql  string
		args []any
	}
	var b []stmt
	queue := func(sql string, args ...any) { b = append(b, stmt{sql, args}) }
	queue("CREATE TEMP TABLE tenants AS SELECT gen_random_uuid() AS tenant_id FROM generate_series(1, $1)", tenants)
	queue(`INSERT INTO session (tenant_id, session_id, user_id, expires_at)
	SELECT tenant_id, gen_random_uuid(), gen_random_uuid(), now() + interval '1 day' FROM tenants, generate_series(1, $1)`, rowsPerTenant)
	queue(`INSERT INTO tenant_membership (tenant_id, user_id, role)
	SELECT tenant_id, gen_random_uuid(), 'member' FROM tenants, generate_series(1, $1)`, rowsPerTenant)
	queue(`INSERT INTO tenant_subject_identifier (tenant_id, issuer, subject, user_id)
	SELECT tenant_id, 'https://idp.example', md5(random()::text), gen_random_uuid() FROM tenants, generate_series(1, $1)`, rowsPerTenant)
	queue(`INSERT INTO referral (tenant_id, code, referrer_user_id)
	SELECT tenant_id, md5(random()::text), gen_random_uuid() FROM tenants, generate_series(1, $1)`, rowsPerTenant)
	queue("ANALYZE")
	for _, st := range b {
		if _, err := conn.Exec(ctx, st.sql, st.args...); err != nil {
			t.Fatalf("loading data: %s: %v", st.sql, err)
		}
	}
}

// sigidProbes are the example probes of the reference schema.
func sigidProbes(t testing.TB) []probes.Probe {
	t.Helper()
	set, err := probes.Load(filepath.Join("..", "..", "docs", "examples", "sigid-probes.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return set.Probes
}

// gather runs the metrics through a pedantic registry, as /metrics would.
func gather(t *testing.T, metrics []prometheus.Metric) map[string]*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(fixed(metrics)); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("the collector's metrics do not gather: %v", err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

type fixed []prometheus.Metric

func (f fixed) Describe(ch chan<- *prometheus.Desc) {
	seen := map[string]bool{}
	for _, m := range f {
		if d := m.Desc(); !seen[d.String()] {
			seen[d.String()] = true
			ch <- d
		}
	}
}

func (f fixed) Collect(ch chan<- prometheus.Metric) {
	for _, m := range f {
		ch <- m
	}
}

func labels(m *dto.Metric) map[string]string {
	l := map[string]string{}
	for _, p := range m.GetLabel() {
		l[p.GetName()] = p.GetValue()
	}
	return l
}

func find(mf *dto.MetricFamily, want map[string]string) *dto.Metric {
	if mf == nil {
		return nil
	}
	for _, m := range mf.GetMetric() {
		l := labels(m)
		match := true
		for k, v := range want {
			match = match && l[k] == v
		}
		if match {
			return m
		}
	}
	return nil
}

func TestProbeTimingsLandInTheirHistogramSeries(t *testing.T) {
	ctx, pool := newPool(t)
	loadSigid(t, ctx, pool, map[string]int{"session": 4, "tenant_membership": 4, "tenant_subject_identifier": 4, "referral": 4, "referral_redemption": 2}, 40, 3)
	c, err := probes.New(probes.Options{Probes: sigidProbes(t), Rand: rand.New(rand.NewPCG(1, 2))})
	if err != nil {
		t.Fatal(err)
	}
	const rounds = 3
	type sums struct {
		n                 int
		plan, exec, total float64
	}
	want := map[string]*sums{}
	for range rounds {
		runs, err := c.Round(ctx, pool)
		if err != nil {
			t.Fatal(err)
		}
		if len(runs) != len(sigidProbes(t)) {
			t.Fatalf("%d runs, want one per default probe: %+v", len(runs), runs)
		}
		for _, r := range runs {
			if r.Err != nil {
				t.Fatalf("probe %s: %v", r.Probe, r.Err)
			}
			tm := r.Timing
			if tm.Planning <= 0 || tm.Execution <= 0 {
				t.Fatalf("probe %s: planning %v, execution %v: EXPLAIN ANALYZE times not read", r.Probe, tm.Planning, tm.Execution)
			}
			if tm.Total < tm.Planning+tm.Execution {
				t.Fatalf("probe %s: client-observed total %v is less than planning %v + execution %v", r.Probe, tm.Total, tm.Planning, tm.Execution)
			}
			// The tenant is real and bound at planning: the plan scans
			// only the partition the tenant was sampled from.
			if len(tm.Relations) == 0 {
				t.Fatalf("probe %s: the plan scans no relation", r.Probe)
			}
			for _, rel := range tm.Relations {
				if rel != r.Partition {
					t.Fatalf("probe %s: plan scans %s, but the tenant was sampled from %s", r.Probe, rel, r.Partition)
				}
			}
			if r.Schema != "public" {
				t.Fatalf("probe %s: schema %q, want public (resolved through the search_path)", r.Probe, r.Schema)
			}
			s := want[r.Table]
			if s == nil {
				s = &sums{}
				want[r.Table] = s
			}
			s.n++
			s.plan += tm.Planning.Seconds()
			s.exec += tm.Execution.Seconds()
			s.total += tm.Total.Seconds()
		}
	}

	metrics, err := c.Collect(ctx, pool) // a fourth round, then the state
	if err != nil {
		t.Fatal(err)
	}
	mfs := gather(t, metrics)
	hist := mfs["pgcapacity_probe_duration_seconds"]
	if hist.GetType() != dto.MetricType_HISTOGRAM {
		t.Fatalf("pgcapacity_probe_duration_seconds is %v, want a histogram", hist.GetType())
	}
	for table, s := range want {
		for _, phase := range []struct {
			name string
			sum  float64
		}{{"planning", s.plan}, {"execution", s.exec}, {"total", s.total}} {
			m := find(hist, map[string]string{"schema": "public", "table": table, "phase": phase.name})
			if m == nil {
				t.Fatalf("no series for %s %s", table, phase.name)
			}
			h := m.GetHistogram()
			if got := h.GetSampleCount(); got != uint64(s.n+1) {
				t.Errorf("%s %s: %d observations, want %d", table, phase.name, got, s.n+1)
			}
			// The sum holds the three observed rounds plus the fourth.
			if h.GetSampleSum() < phase.sum || h.GetSampleSum() > phase.sum+1 {
				t.Errorf("%s %s: sum %g, want at least the observed %g", table, phase.name, h.GetSampleSum(), phase.sum)
			}
			var bounds []float64
			for _, b := range h.GetBucket() {
				bounds = append(bounds, b.GetUpperBound())
			}
			if !slices.Equal(bounds, probes.Buckets) || bounds[0] != 50e-6 || bounds[len(bounds)-1] != 5 {
				t.Errorf("%s %s: classic buckets %v, want 50µs..5s %v", table, phase.name, bounds, probes.Buckets)
			}
			if h.Schema == nil || len(h.GetPositiveSpan()) == 0 || h.GetZeroThreshold() == 0 {
				t.Errorf("%s %s: no native histogram buckets (schema %v, spans %v)", table, phase.name, h.Schema, h.GetPositiveSpan())
			}
		}
		if m := find(mfs["pgcapacity_probe_errors_total"], map[string]string{"schema": "public", "table": table}); m == nil || m.GetCounter().GetValue() != 0 {
			t.Errorf("%s: pgcapacity_probe_errors_total = %v, want a 0 series", table, m)
		}
		if m := find(mfs["pgcapacity_probe_tenants_sampled"], map[string]string{"schema": "public", "table": table}); m == nil || m.GetGauge().GetValue() < 4 {
			t.Errorf("%s: pgcapacity_probe_tenants_sampled = %v, want some tenants per partition", table, m)
		}
	}

	// The returned metrics are a snapshot: later rounds do not change them.
	before := find(gather(t, metrics)["pgcapacity_probe_duration_seconds"], map[string]string{"table": "session", "phase": "total"}).GetHistogram().GetSampleCount()
	if _, err := c.Round(ctx, pool); err != nil {
		t.Fatal(err)
	}
	after := find(gather(t, metrics)["pgcapacity_probe_duration_seconds"], map[string]string{"table": "session", "phase": "total"}).GetHistogram().GetSampleCount()
	if before != after {
		t.Fatalf("published metrics changed from %d to %d observations after another round", before, after)
	}

	// Summary: check's view of the same timings.
	sum := c.Summary(time.Hour)
	if len(sum) != len(want) {
		t.Fatalf("summary has %d tables, want %d: %+v", len(sum), len(want), sum)
	}
	for _, tl := range sum {
		if tl.Samples != rounds+2 {
			t.Errorf("%s: summary of %d samples, want %d", tl.Table, tl.Samples, rounds+2)
		}
		if !(tl.Total.P50 > 0 && tl.Total.P50 <= tl.Total.P95 && tl.Total.P95 <= tl.Total.P99) {
			t.Errorf("%s: total quantiles out of order: %+v", tl.Table, tl.Total)
		}
		if !(tl.PlanningShare > 0 && tl.PlanningShare < 1) {
			t.Errorf("%s: planning share %g, want between 0 and 1", tl.Table, tl.PlanningShare)
		}
	}
	if got := c.Summary(0); got[0].Samples != 0 {
		t.Errorf("an empty window still holds %d samples", got[0].Samples)
	}
}

func TestFailingProbesCountErrorsWhileOthersContinue(t *testing.T) {
	ctx, pool := newPool(t)
	loadSigid(t, ctx, pool, map[string]int{"session": 2, "tenant_membership": 2, "tenant_subject_identifier": 2, "referral": 2, "referral_redemption": 2}, 10, 1)
	slow := probes.Probe{Name: "slow_sessions", Table: "tenant_membership",
		SQL: "SELECT 1 FROM tenant_membership WHERE tenant_id = $1 AND pg_sleep(0.5) IS NOT NULL"}
	var logs testutil.LockedBuffer
	c, err := probes.New(probes.Options{
		Probes:       append(sigidProbes(t), slow),
		QueryTimeout: 100 * time.Millisecond,
		Logger:       slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Round(ctx, pool); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, "DROP TABLE referral CASCADE"); err != nil {
		t.Fatal(err)
	}
	const rounds = 3
	for range rounds {
		metrics, err := c.Collect(ctx, pool)
		if err != nil {
			t.Fatalf("a failing probe failed the round: %v", err)
		}
		if len(metrics) == 0 {
			t.Fatal("no metrics")
		}
	}
	runs, err := c.Round(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range runs {
		switch r.Probe {
		case "referral_by_code":
			if r.Err == nil || !strings.Contains(r.Err.Error(), `relation "referral" does not exist`) {
				t.Errorf("probe on the dropped table: err = %v", r.Err)
			}
		case "slow_sessions":
			if r.Err == nil || !strings.Contains(r.Err.Error(), "statement timeout") {
				t.Errorf("slow probe: err = %v, want a statement timeout", r.Err)
			}
		default:
			if r.Err != nil {
				t.Errorf("probe %s failed beside the broken ones: %v", r.Probe, r.Err)
			}
		}
	}
	metrics, err := c.Collect(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	mfs := gather(t, metrics)
	for table, want := range map[string]float64{"referral": rounds + 2, "tenant_membership": rounds + 3, "session": 0, "tenant_subject_identifier": 0} {
		m := find(mfs["pgcapacity_probe_errors_total"], map[string]string{"schema": "public", "table": table})
		if m.GetCounter().GetValue() != want {
			t.Errorf("pgcapacity_probe_errors_total{table=%q} = %v, want %v", table, m.GetCounter().GetValue(), want)
		}
	}
	if m := find(mfs["pgcapacity_probe_duration_seconds"], map[string]string{"table": "session", "phase": "total"}); m.GetHistogram().GetSampleCount() != rounds+3 {
		t.Errorf("session probe ran %d times, want %d", m.GetHistogram().GetSampleCount(), rounds+3)
	}
	out := logs.String()
	for _, probe := range []string{"referral_by_code", "slow_sessions"} {
		if n := strings.Count(out, "probe="+probe); n != 1 {
			t.Errorf("probe %s logged %d times, want once per distinct error:\n%s", probe, n, out)
		}
	}
}

func TestSamplingReachesEveryPartition(t *testing.T) {
	ctx, pool := newPool(t)
	const partitions = 8
	loadSigid(t, ctx, pool, map[string]int{"session": partitions}, 64, 2)
	// One large tenant must not crowd out the others in its partition.
	if _, err := pool.Exec(ctx, `INSERT INTO session (tenant_id, session_id, user_id, expires_at)
		SELECT '00000000-0000-0000-0000-000000000001', gen_random_uuid(), gen_random_uuid(), now() FROM generate_series(1, 5000)`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, "ANALYZE session"); err != nil {
		t.Fatal(err)
	}
	session := sigidProbes(t)[0]
	c, err := probes.New(probes.Options{Probes: []probes.Probe{session}})
	if err != nil {
		t.Fatal(err)
	}
	sampled := map[string]int{}
	scanned := map[string]bool{}
	big := 0
	for range partitions {
		runs, err := c.Round(ctx, pool)
		if err != nil {
			t.Fatal(err)
		}
		r := runs[0]
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		sampled[r.Partition]++
		for _, rel := range r.Timing.Relations {
			scanned[rel] = true
		}
		if r.Tenant == "00000000-0000-0000-0000-000000000001" {
			big++
		}
	}
	if len(sampled) != partitions || len(scanned) != partitions {
		t.Fatalf("after %d rounds the probe sampled %v and scanned %v; want all %d partitions", partitions, sampled, scanned, partitions)
	}
	for p, n := range sampled {
		if n != 1 {
			t.Errorf("partition %s probed %d times in %d rounds", p, n, partitions)
		}
	}
	if big > 1 {
		t.Errorf("the large tenant was probed %d times in %d rounds", big, partitions)
	}
}

// TestTenantSampleIsBounded: a table keeps at most TenantsPerPartition
// tenants per partition and about TenantsPerTable in all, but at least one
// per partition, whether they come from statistics or from sampled rows.
func TestTenantSampleIsBounded(t *testing.T) {
	const partitions = 8
	tests := []struct {
		name       string
		analyzed   bool
		perTable   int
		wantSample int
	}{
		{"statistics, default bound", true, 0, partitions * probes.DefaultTenantsPerPartition},
		{"statistics, table bound", true, 16, 16},
		{"statistics, one per partition at least", true, 4, partitions},
		{"sampled rows, table bound", false, 16, 16},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, pool := newPool(t)
			if err := sigid.Apply(ctx, pool, sigid.SchemaOptions{Partitions: map[string]int{"session": partitions}}); err != nil {
				t.Fatal(err)
			}
			for i := range partitions {
				if _, err := pool.Exec(ctx, fmt.Sprintf("ALTER TABLE %s SET (autovacuum_enabled = off)", pgx.Identifier{fmt.Sprintf("session_p%d", i)}.Sanitize())); err != nil {
					t.Fatal(err)
				}
			}
			// 512 tenants: every partition has far more than 8.
			if _, err := pool.Exec(ctx, `INSERT INTO session (tenant_id, session_id, user_id, expires_at)
				SELECT gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), now() FROM generate_series(1, 512)`); err != nil {
				t.Fatal(err)
			}
			if tt.analyzed {
				if _, err := pool.Exec(ctx, "ANALYZE session"); err != nil {
					t.Fatal(err)
				}
			}
			c, err := probes.New(probes.Options{Probes: sigidProbes(t)[:1], TenantsPerTable: tt.perTable})
			if err != nil {
				t.Fatal(err)
			}
			res, err := c.Resolve(ctx, pool)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Probes) != 1 || res.Probes[0].TenantsSampled != tt.wantSample {
				t.Fatalf("probes = %+v, want %d tenants sampled", res.Probes, tt.wantSample)
			}
		})
	}
}

// TestPlanningTimeGrowsWithPartitions shows that the planning-share signal
// is real: with the tenant known only at execution time (an InitPlan), the
// planner must consider every partition, so planning time grows with the
// partition count; with the tenant bound as a value, pruning happens at
// planning time and the count matters much less.
func TestPlanningTimeGrowsWithPartitions(t *testing.T) {
	ctx, pool := newPool(t)
	counts := []int{8, 1024}
	var ddl strings.Builder
	for _, n := range counts {
		schema := fmt.Sprintf("p%d", n)
		fmt.Fprintf(&ddl, "CREATE SCHEMA %s;\n", pgx.Identifier{schema}.Sanitize())
		fmt.Fprintf(&ddl, "CREATE TABLE %s (tenant_id uuid NOT NULL, session_id uuid NOT NULL, user_id uuid NOT NULL, PRIMARY KEY (tenant_id, session_id)) PARTITION BY HASH (tenant_id);\n",
			pgx.Identifier{schema, "session"}.Sanitize())
		for i := range n {
			fmt.Fprintf(&ddl, "CREATE TABLE %s PARTITION OF %s FOR VALUES WITH (MODULUS %d, REMAINDER %d);\n",
				pgx.Identifier{schema, fmt.Sprintf("session_p%d", i)}.Sanitize(), pgx.Identifier{schema, "session"}.Sanitize(), n, i)
		}
		fmt.Fprintf(&ddl, "INSERT INTO %s SELECT gen_random_uuid(), gen_random_uuid(), gen_random_uuid() FROM generate_series(1, 4096);\n",
			pgx.Identifier{schema, "session"}.Sanitize())
		fmt.Fprintf(&ddl, "ANALYZE %s;\n", pgx.Identifier{schema, "session"}.Sanitize())
	}
	if _, err := pool.Exec(ctx, ddl.String()); err != nil {
		t.Fatal(err)
	}
	shapes := map[string]string{
		"execution-time pruning": "SELECT session_id, user_id FROM %s WHERE tenant_id = (SELECT $1::uuid)",
		"planning-time pruning":  "SELECT session_id, user_id FROM %s WHERE tenant_id = $1",
	}
	var ps []probes.Probe
	for _, n := range counts {
		for shape, sql := range shapes {
			schema := fmt.Sprintf("p%d", n)
			ps = append(ps, probes.Probe{
				Name:   fmt.Sprintf("%s_%s", schema, strings.Split(shape, "-")[0]),
				Schema: schema, Table: "session",
				SQL: fmt.Sprintf(sql, pgx.Identifier{schema, "session"}.Sanitize()),
			})
		}
	}
	c, err := probes.New(probes.Options{Probes: ps})
	if err != nil {
		t.Fatal(err)
	}
	const rounds = 15
	planning := map[string][]float64{}
	for range rounds {
		runs, err := c.Round(ctx, pool)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range runs {
			if r.Err != nil {
				t.Fatalf("%s: %v", r.Probe, r.Err)
			}
			planning[r.Probe] = append(planning[r.Probe], r.Timing.Planning.Seconds()*1000)
		}
	}
	median := func(v []float64) float64 {
		s := slices.Clone(v)
		sort.Float64s(s)
		return s[len(s)/2]
	}
	t.Logf("median planning time of %d probe runs (ms):", rounds)
	t.Logf("  %-24s %10s %10s %8s", "shape", "8 parts", "1024 parts", "ratio")
	ratios := map[string]float64{}
	for _, shape := range []string{"execution-time pruning", "planning-time pruning"} {
		word := strings.Split(shape, "-")[0]
		small, large := median(planning["p8_"+word]), median(planning["p1024_"+word])
		ratios[shape] = large / small
		t.Logf("  %-24s %10.3f %10.3f %7.1fx", shape, small, large, large/small)
	}
	if r := ratios["execution-time pruning"]; !(r > 3) || math.IsInf(r, 0) {
		t.Fatalf("planning time with execution-time pruning grew only %.1fx from 8 to 1024 partitions; want a measurable (>3x) growth", r)
	}
}

func TestTenantsOfTablesWithoutStatistics(t *testing.T) {
	ctx, pool := newPool(t)
	parts := map[string]int{"session": 4, "tenant_membership": 4}
	if err := sigid.Apply(ctx, pool, sigid.SchemaOptions{Partitions: parts}); err != nil {
		t.Fatal(err)
	}
	// No statistics: autovacuum off and no ANALYZE, so the probes find
	// tenants by reading a bounded number of rows.
	for table, n := range parts {
		for i := range n {
			if _, err := pool.Exec(ctx, fmt.Sprintf("ALTER TABLE %s SET (autovacuum_enabled = off)", pgx.Identifier{fmt.Sprintf("%s_p%d", table, i)}.Sanitize())); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := pool.Exec(ctx, `INSERT INTO session (tenant_id, session_id, user_id, expires_at)
		SELECT gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), now() FROM generate_series(1, 200)`); err != nil {
		t.Fatal(err)
	}
	var logs testutil.LockedBuffer
	c, err := probes.New(probes.Options{Probes: sigidProbes(t)[:2], Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	runs, err := c.Round(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	// session has rows but no statistics: probed; tenant_membership is
	// empty: nothing to probe, and no error either.
	if len(runs) != 1 || runs[0].Table != "session" || runs[0].Err != nil {
		t.Fatalf("runs = %+v, want one successful session probe", runs)
	}
	metrics, err := c.Collect(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	mfs := gather(t, metrics)
	for table, want := range map[string]bool{"session": true, "tenant_membership": false} {
		m := find(mfs["pgcapacity_probe_tenants_sampled"], map[string]string{"table": table})
		if got := m.GetGauge().GetValue() > 0; got != want {
			t.Errorf("%s: pgcapacity_probe_tenants_sampled = %v", table, m.GetGauge().GetValue())
		}
		if e := find(mfs["pgcapacity_probe_errors_total"], map[string]string{"table": table}); e.GetCounter().GetValue() != 0 {
			t.Errorf("%s: %v probe errors, want none", table, e.GetCounter().GetValue())
		}
	}
	if !strings.Contains(logs.String(), "table=tenant_membership") {
		t.Errorf("the empty table was not logged:\n%s", logs.String())
	}
}

// TestTenantsWithHiddenStatistics: a least-privilege role granted SELECT on
// the partitioned table only sees no pg_stats rows of its partitions; the
// tenant sample then comes from a TABLESAMPLE that reaches every partition.
func TestTenantsWithHiddenStatistics(t *testing.T) {
	ctx, pool := newPool(t)
	const partitions = 8
	loadSigid(t, ctx, pool, map[string]int{"session": partitions}, 4000, 5) // far more rows than a first-rows read reaches
	for _, sql := range []string{
		"DROP ROLE IF EXISTS probe_monitor", "CREATE ROLE probe_monitor LOGIN", "GRANT pg_monitor TO probe_monitor", "GRANT SELECT ON session TO probe_monitor",
	} {
		if _, err := pool.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		_, _ = pool.Exec(context.Background(), "DROP OWNED BY probe_monitor")
		_, _ = pool.Exec(context.Background(), "DROP ROLE probe_monitor")
	})
	cfg := pool.Config().Copy()
	cfg.ConnConfig.User = "probe_monitor"
	monitor, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer monitor.Close()
	var visible int
	if err := monitor.QueryRow(ctx, "SELECT count(*) FROM pg_stats WHERE tablename LIKE 'session_p%'").Scan(&visible); err != nil {
		t.Fatal(err)
	}
	if visible != 0 {
		t.Fatalf("the role sees %d pg_stats rows of partitions; the test needs them hidden", visible)
	}
	reached := map[string]bool{}
	for refresh := 1; refresh <= 5 && len(reached) < partitions; refresh++ {
		got, err := probes.SampledTenants(ctx, monitor, "public", "session")
		if err != nil {
			t.Fatal(err)
		}
		for p, n := range got {
			if n > probes.DefaultTenantsPerPartition {
				t.Fatalf("%s: %d tenants kept, more than %d", p, n, probes.DefaultTenantsPerPartition)
			}
			reached[p] = true
		}
		t.Logf("refresh %d: tenants in %d partitions, %d reached so far", refresh, len(got), len(reached))
	}
	if len(reached) != partitions {
		t.Fatalf("5 refreshes reached %d of %d partitions: %v", len(reached), partitions, reached)
	}
}
