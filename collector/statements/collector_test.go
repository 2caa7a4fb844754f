package statements_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sigid/pgcapacity/collector"
	"github.com/sigid/pgcapacity/collector/statements"
	"github.com/sigid/pgcapacity/internal/sigid"
	"github.com/sigid/pgcapacity/internal/throwaway/pgtest"
)

var cluster pgtest.Cluster

func TestMain(m *testing.M) { pgtest.Main(m, &cluster) }

var _ collector.Collector = (*statements.Collector)(nil)

func setup(t *testing.T) (context.Context, string, *pgxpool.Pool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	url := pgtest.NewDatabase(t, &cluster)
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := sigid.Apply(ctx, pool, sigid.SchemaOptions{Partitions: map[string]int{"session": 4, "tenant_membership": 2, "tenant_subject_identifier": 2, "referral": 2, "referral_redemption": 2}}); err != nil {
		t.Fatal(err)
	}
	return ctx, url, pool
}

func exec(t *testing.T, ctx context.Context, pool *pgxpool.Pool, times int, sql string, args ...any) {
	t.Helper()
	for range times {
		if _, err := pool.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
}

func totals(t *testing.T, s statements.Sample) map[string]statements.TableTotals {
	t.Helper()
	if !s.Available {
		t.Fatal("pg_stat_statements reported unavailable")
	}
	out := map[string]statements.TableTotals{}
	for _, tt := range s.Tables {
		if tt.Schema != "public" {
			t.Fatalf("unexpected table %s.%s", tt.Schema, tt.Name)
		}
		out[tt.Name] = tt
	}
	return out
}

func TestCountsPerTable(t *testing.T) {
	ctx, _, pool := setup(t)
	c := statements.New(statements.Options{})
	before, err := c.Sample(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	b := totals(t, before)
	if len(b) != len(sigid.HashTables()) {
		t.Fatalf("watching %v, want the %d hash-partitioned tables", before.Tables, len(sigid.HashTables()))
	}
	const tenant = "00000000-0000-0000-0000-000000000007"
	exec(t, ctx, pool, 7, "SELECT * FROM session WHERE tenant_id = $1", tenant)
	exec(t, ctx, pool, 3, "SELECT * FROM public.referral WHERE tenant_id = $1 AND code = $2", tenant, "abc")
	exec(t, ctx, pool, 2, "SELECT count(*) FROM session s JOIN referral r USING (tenant_id) WHERE s.tenant_id = $1", tenant)
	exec(t, ctx, pool, 4, "SELECT * FROM active_session WHERE tenant_id = $1", tenant) // the view over session
	exec(t, ctx, pool, 5, "SELECT count(*) FROM session_p1")                           // a partition
	exec(t, ctx, pool, 6, "SELECT count(*) FROM tenant WHERE name = 'session'")        // a string is no table

	after, err := c.Sample(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if !after.TrackPlanning {
		t.Fatal("the throwaway cluster runs with track_planning on, the collector read it as off")
	}
	a := totals(t, after)
	for table, want := range map[string]float64{"session": 7 + 2 + 4 + 5, "referral": 3 + 2, "tenant_membership": 0, "tenant_subject_identifier": 0, "referral_redemption": 0} {
		if got := a[table].Calls - b[table].Calls; got != want {
			t.Errorf("%s: %v calls counted, want %v", table, got, want)
		}
	}
	for _, table := range []string{"session", "referral"} {
		if a[table].Exec <= b[table].Exec || a[table].Plan <= b[table].Plan {
			t.Errorf("%s: execution %v → %v, planning %v → %v: want both to grow", table, b[table].Exec, a[table].Exec, b[table].Plan, a[table].Plan)
		}
	}

	// Metrics: the contract's names and labels, plan time with track_planning on.
	metrics, err := c.Collect(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(fixed(metrics))
	for name, want := range map[string]int{
		"pgcapacity_statements_available":           1,
		"pgcapacity_statements_pending_attribution": 1,
		"pgcapacity_statements_calls_total":         5,
		"pgcapacity_statements_exec_seconds_total":  5,
		"pgcapacity_statements_plan_seconds_total":  5,
	} {
		if n, err := testutil.GatherAndCount(reg, name); err != nil || n != want {
			t.Errorf("%s: %d series (%v), want %d", name, n, err, want)
		}
	}
}

func TestCountersNeverGoBack(t *testing.T) {
	ctx, _, pool := setup(t)
	c := statements.New(statements.Options{})
	exec(t, ctx, pool, 5, "SELECT * FROM session WHERE tenant_id = $1", "00000000-0000-0000-0000-000000000001")
	first, err := c.Sample(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	exec(t, ctx, pool, 1, "SELECT pg_stat_statements_reset()")
	reset, err := c.Sample(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if totals(t, reset)["session"].Calls < totals(t, first)["session"].Calls {
		t.Fatalf("session calls went back from %v to %v after pg_stat_statements_reset()", totals(t, first)["session"].Calls, totals(t, reset)["session"].Calls)
	}
	exec(t, ctx, pool, 3, "SELECT * FROM session WHERE tenant_id = $1", "00000000-0000-0000-0000-000000000001")
	later, err := c.Sample(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if got := totals(t, later)["session"].Calls - totals(t, reset)["session"].Calls; got != 3 {
		t.Fatalf("after the reset 3 session calls counted as %v", got)
	}
}

func TestCapOnNewStatementsLosesNothing(t *testing.T) {
	ctx, _, pool := setup(t)
	for i := range 12 {
		// Distinct statements (one queryid each) on session.
		// pg_stat_statements folds constants, so vary the shape instead.
		exec(t, ctx, pool, i+1, "SELECT * FROM session WHERE tenant_id = $1"+strings.Repeat(" AND user_id IS NOT NULL", i), "00000000-0000-0000-0000-000000000001")
	}
	capped := statements.New(statements.Options{MaxNewPerRound: 2})
	first, err := capped.Sample(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if first.Pending < 10 {
		t.Fatalf("with 2 new statements per round, %d entries pending after the first round; want the rest waiting", first.Pending)
	}
	var last statements.Sample
	for round := 0; ; round++ {
		if round > 100 {
			t.Fatal("the capped collector never caught up")
		}
		if last, err = capped.Sample(ctx, pool); err != nil {
			t.Fatal(err)
		}
		if last.Pending == 0 {
			break
		}
	}
	whole, err := statements.New(statements.Options{}).Sample(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	got, want := totals(t, last)["session"].Calls, totals(t, whole)["session"].Calls
	if got != want || want < 78 { // 1+2+…+12 calls, plus the schema's own statements
		t.Fatalf("capped collector counted %v session calls, uncapped %v; want equal and at least 78", got, want)
	}
}

func TestAbsenceIsAMetricNotAnError(t *testing.T) {
	ctx, url, pool := setup(t)
	var logs strings.Builder
	c := statements.New(statements.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	exec(t, ctx, pool, 1, "DROP EXTENSION pg_stat_statements")
	metrics, err := c.Collect(ctx, pool)
	if err != nil {
		t.Fatalf("a missing pg_stat_statements failed the round: %v", err)
	}
	if _, err := c.Collect(ctx, pool); err != nil {
		t.Fatal(err)
	}
	// One warning, naming what to install and how to switch the collector off.
	if n := strings.Count(logs.String(), "level=WARN"); n != 1 || !strings.Contains(logs.String(), "PGCAPACITY_COLLECTORS") || !strings.Contains(logs.String(), "CREATE EXTENSION pg_stat_statements") {
		t.Errorf("%d warnings over two rounds, want one naming the fix:\n%s", n, logs.String())
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(fixed(metrics))
	if n, _ := testutil.GatherAndCount(reg); n != 1 {
		t.Fatalf("%d series without pg_stat_statements, want only pgcapacity_statements_available", n)
	}
	if v := testutil.ToFloat64(fixed(metrics)); v != 0 {
		t.Fatalf("pgcapacity_statements_available = %v, want 0", v)
	}

	exec(t, ctx, pool, 1, "CREATE EXTENSION pg_stat_statements")
	// track_planning off: no planning counter.
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["pg_stat_statements.track_planning"] = "off"
	off, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer off.Close()
	metrics, err = c.Collect(ctx, off)
	if err != nil {
		t.Fatal(err)
	}
	reg = prometheus.NewPedanticRegistry()
	reg.MustRegister(fixed(metrics))
	if n, _ := testutil.GatherAndCount(reg, "pgcapacity_statements_available"); n != 1 {
		t.Fatal("no pgcapacity_statements_available")
	}
	if v := testutil.ToFloat64(fixed(metrics[:1])); v != 1 {
		t.Fatalf("pgcapacity_statements_available = %v after CREATE EXTENSION, want 1", v)
	}
	if n, _ := testutil.GatherAndCount(reg, "pgcapacity_statements_plan_seconds_total"); n != 0 {
		t.Fatalf("%d planning series with track_planning off, want none", n)
	}
	if n, _ := testutil.GatherAndCount(reg, "pgcapacity_statements_calls_total"); n != len(sigid.HashTables()) {
		t.Fatalf("%d calls series, want one per watched table", n)
	}
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

// The collector lists the watched tables, partitions and views again only
// when the catalog changed; whatever DDL ran between two rounds, the names
// it created count from the next round on.
func TestNamesCreatedBetweenRoundsCount(t *testing.T) {
	ctx, _, pool := setup(t)
	c := statements.New(statements.Options{})
	if _, err := c.Sample(ctx, pool); err != nil {
		t.Fatal(err)
	}
	const tenant = "00000000-0000-0000-0000-000000000007"
	tests := []struct {
		name, ddl, query string
		table            string // where the query counts
	}{
		{"view created", "CREATE VIEW fresh_referral AS SELECT * FROM referral", "SELECT * FROM fresh_referral WHERE tenant_id = $1", "referral"},
		{"partition renamed", "ALTER TABLE session_p2 RENAME TO session_two", "SELECT count(*) FROM session_two WHERE tenant_id = $1", "session"},
		{"table partitioned and watched", "CREATE TABLE gadget (tenant_id uuid NOT NULL, id bigint NOT NULL) PARTITION BY HASH (tenant_id); CREATE TABLE gadget_p0 PARTITION OF gadget FOR VALUES WITH (MODULUS 1, REMAINDER 0)",
			"SELECT count(*) FROM gadget_p0 WHERE tenant_id = $1", "gadget"},
	}
	for _, tt := range tests {
		exec(t, ctx, pool, 1, tt.ddl)
		// The DDL's counters reach pg_class's statistics about a second
		// after it commits (PostgreSQL 15+ at once after a forced flush,
		// 13 and 14 through the statistics collector): the rounds after
		// that count the names it created. A few tries bound the wait.
		var calls float64
		for try := 0; try < 10 && calls != 3; try++ {
			time.Sleep(time.Duration(try) * 300 * time.Millisecond)
			mid, err := c.Sample(ctx, pool)
			if err != nil {
				t.Fatal(err)
			}
			exec(t, ctx, pool, 3, tt.query, tenant)
			after, err := c.Sample(ctx, pool)
			if err != nil {
				t.Fatal(err)
			}
			calls = totals(t, after)[tt.table].Calls - totals(t, mid)[tt.table].Calls // the DDL itself names the table too
		}
		if calls != 3 {
			t.Errorf("%s: %s counted %v calls of %q, want 3", tt.name, tt.table, calls, tt.query)
		}
	}
}
