package collector_test

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sigid/pgcapacity/collector"
	"github.com/sigid/pgcapacity/internal/dbpool"
	"github.com/sigid/pgcapacity/internal/pgstat"
	"github.com/sigid/pgcapacity/internal/playbook"
	"github.com/sigid/pgcapacity/internal/throwaway/pgtest"
)

var cluster pgtest.Cluster

func TestMain(m *testing.M) { pgtest.Main(m, &cluster) }

// fixture is a fresh database with a sampling pool and an admin connection.
type fixture struct {
	t     *testing.T
	ctx   context.Context
	pool  *pgxpool.Pool
	admin *pgx.Conn
	url   string
}

func newFixture(t *testing.T, ddl ...string) *fixture {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	url := pgtest.NewDatabase(t, &cluster)
	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close(context.Background()) })
	for _, stmt := range ddl {
		if _, err := admin.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	cfg, err := dbpool.Config(url, dbpool.Options{StatementTimeout: 10 * time.Second, LockTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return &fixture{t: t, ctx: ctx, pool: pool, admin: admin, url: url}
}

func (f *fixture) exec(sql string, args ...any) {
	f.t.Helper()
	if strings.HasPrefix(sql, "ANALYZE") || strings.HasPrefix(sql, "VACUUM ANALYZE") {
		if err := pgstat.Flush(f.ctx, f.admin); err != nil {
			f.t.Fatal(err)
		}
	}
	if _, err := f.admin.Exec(f.ctx, sql, args...); err != nil {
		f.t.Fatalf("%s: %v", sql, err)
	}
}

func (f *fixture) stats(sel collector.Selection) (collector.Server, map[string]collector.Table) {
	f.t.Helper()
	if sel.TenantColumn == "" {
		sel.TenantColumn = "tenant_id"
	}
	srv, tables, err := collector.NewStats(sel, time.Minute, true).Sample(f.ctx, f.pool)
	if err != nil {
		f.t.Fatal(err)
	}
	return srv, byName(tables)
}

func byName(tables []collector.Table) map[string]collector.Table {
	m := map[string]collector.Table{}
	for _, t := range tables {
		m[t.Schema+"."+t.Name] = t
	}
	return m
}

func hashTable(name string, partitions int) []string {
	q := pgx.Identifier{name}.Sanitize()
	ddl := []string{fmt.Sprintf(`CREATE TABLE %s (tenant_id uuid NOT NULL, id bigint NOT NULL, note text, PRIMARY KEY (tenant_id, id)) PARTITION BY HASH (tenant_id)`, q)}
	for i := 0; i < partitions; i++ {
		ddl = append(ddl, fmt.Sprintf(`CREATE TABLE %s PARTITION OF %s FOR VALUES WITH (MODULUS %d, REMAINDER %d)`,
			pgx.Identifier{fmt.Sprintf("%s_p%d", name, i)}.Sanitize(), q, partitions, i))
	}
	return ddl
}

func TestDiscoveryReportsPartitionedTablesOfEveryStrategy(t *testing.T) {
	ddl := append(hashTable("hashed", 4),
		`CREATE TABLE plain (id int PRIMARY KEY)`,
		`CREATE TABLE listed (region text NOT NULL, id int) PARTITION BY LIST (region)`,
		`CREATE TABLE listed_eu PARTITION OF listed FOR VALUES IN ('eu')`,
		`CREATE TABLE listed_us PARTITION OF listed FOR VALUES IN ('us')`,
		`CREATE TABLE ranged (at date NOT NULL, id int) PARTITION BY RANGE (at)`,
		`CREATE TABLE ranged_2026 PARTITION OF ranged FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')`,
		// Two levels: hash, then each hash partition split by list.
		`CREATE TABLE multi (tenant_id uuid NOT NULL, kind text NOT NULL, id int) PARTITION BY HASH (tenant_id)`,
		`CREATE TABLE multi_p0 PARTITION OF multi FOR VALUES WITH (MODULUS 2, REMAINDER 0) PARTITION BY LIST (kind)`,
		`CREATE TABLE multi_p0_a PARTITION OF multi_p0 FOR VALUES IN ('a')`,
		`CREATE TABLE multi_p0_b PARTITION OF multi_p0 FOR VALUES IN ('b')`,
		`CREATE TABLE multi_p1 PARTITION OF multi FOR VALUES WITH (MODULUS 2, REMAINDER 1)`,
		`CREATE TABLE empty_parent (tenant_id uuid) PARTITION BY HASH (tenant_id)`,
	)
	f := newFixture(t, ddl...)

	tests := []struct {
		name       string
		sel        collector.Selection
		want       map[string]string // table → strategy
		partitions map[string]int
	}{
		{
			name:       "default watches hash-partitioned tables only",
			want:       map[string]string{"public.hashed": "hash", "public.multi": "hash", "public.empty_parent": "hash"},
			partitions: map[string]int{"public.hashed": 4, "public.multi": 3, "public.empty_parent": 0},
		},
		{
			name:       "patterns select any strategy",
			sel:        collector.Selection{Tables: []string{"listed", "public.ranged", "mul*"}},
			want:       map[string]string{"public.listed": "list", "public.ranged": "range", "public.multi": "hash"},
			partitions: map[string]int{"public.listed": 2, "public.ranged": 1, "public.multi": 3},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, tables := f.stats(tc.sel)
			if len(tables) != len(tc.want) {
				t.Fatalf("watched %v, want %v", keys(tables), tc.want)
			}
			for name, strategy := range tc.want {
				tab, ok := tables[name]
				if !ok {
					t.Fatalf("%s not discovered; got %v", name, keys(tables))
				}
				if tab.Strategy != strategy {
					t.Errorf("%s strategy %s, want %s", name, tab.Strategy, strategy)
				}
				if got := len(tab.Partitions); got != tc.partitions[name] {
					t.Errorf("%s has %d leaf partitions, want %d", name, got, tc.partitions[name])
				}
			}
		})
	}
	_, tables := f.stats(collector.Selection{})
	if _, ok := tables["public.plain"]; ok {
		t.Error("a plain table was reported as partitioned")
	}
	multi := tables["public.multi"]
	if multi.PartitionKey != "tenant_id" {
		t.Errorf("multi partition key %q", multi.PartitionKey)
	}
	var names []string
	for _, p := range multi.Partitions {
		names = append(names, p.Name)
	}
	if got := strings.Join(names, ","); got != "multi_p0_a,multi_p0_b,multi_p1" {
		t.Errorf("multi-level leaves %s", got)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestLiveRowsEqualCountAfterAnalyze(t *testing.T) {
	f := newFixture(t, hashTable("counted", 8)...)
	f.exec(`INSERT INTO counted SELECT ('00000000-0000-0000-0000-' || lpad(to_hex(g % 97), 12, '0'))::uuid, g, 'x' FROM generate_series(1, 5000) g`)
	f.exec(`ANALYZE counted`)
	_, tables := f.stats(collector.Selection{})
	tab := tables["public.counted"]
	if len(tab.Partitions) != 8 {
		t.Fatalf("%d partitions", len(tab.Partitions))
	}
	var total float64
	for _, p := range tab.Partitions {
		var count float64
		if err := f.admin.QueryRow(f.ctx, "SELECT count(*) FROM "+pgx.Identifier{p.Name}.Sanitize()).Scan(&count); err != nil {
			t.Fatal(err)
		}
		if p.LiveRows != count {
			t.Errorf("%s: live rows %v, count(*) %v", p.Name, p.LiveRows, count)
		}
		total += count
	}
	if a := collector.Aggregate(tab.Partitions); a.Total != 5000 || a.Total != total {
		t.Errorf("total %v, want 5000", a.Total)
	}
}

func TestAggregate(t *testing.T) {
	parts := func(rows ...float64) []collector.Partition {
		var out []collector.Partition
		for _, r := range rows {
			out = append(out, collector.Partition{LiveRows: r})
		}
		return out
	}
	tests := []struct {
		name                   string
		rows                   []float64
		avg, median, max, skew float64
		hasSkew                bool
	}{
		{"odd count", []float64{10, 30, 20}, 20, 20, 30, 1.5, true},
		{"even count takes the middle mean", []float64{1, 2, 3, 100}, 26.5, 2.5, 100, 40, true},
		{"one hot partition", []float64{100, 100, 100, 100, 1000}, 280, 100, 1000, 10, true},
		{"median of zero has no skew", []float64{0, 0, 0, 5}, 1.25, 0, 5, 0, false},
		{"all empty", []float64{0, 0}, 0, 0, 0, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := collector.Aggregate(parts(tc.rows...))
			if a.Avg != tc.avg || a.Median != tc.median || a.Max != tc.max || a.HasSkew != tc.hasSkew || math.Abs(a.Skew-tc.skew) > 1e-9 {
				t.Errorf("got avg %v median %v max %v skew %v/%v", a.Avg, a.Median, a.Max, a.Skew, a.HasSkew)
			}
		})
	}
	if a := collector.Aggregate(nil); a.Partitions != 0 || a.HasSkew {
		t.Errorf("empty table: %+v", a)
	}
}

func TestSkewOnCraftedDistribution(t *testing.T) {
	f := newFixture(t, hashTable("skewed", 4)...)
	// Put 1000 rows in one tenant and 10 in each of many others.
	f.exec(`INSERT INTO skewed SELECT '11111111-1111-1111-1111-111111111111', g, '' FROM generate_series(1, 1000) g`)
	f.exec(`INSERT INTO skewed SELECT gen_random_uuid(), g, '' FROM generate_series(1001, 1400) g`)
	f.exec(`ANALYZE skewed`)
	_, tables := f.stats(collector.Selection{})
	a := collector.Aggregate(tables["public.skewed"].Partitions)
	var want struct{ max, median float64 }
	rows, err := f.admin.Query(f.ctx, `SELECT count(*) FROM skewed GROUP BY tableoid ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	counts, err := pgx.CollectRows(rows, pgx.RowTo[float64])
	if err != nil {
		t.Fatal(err)
	}
	if len(counts) != 4 {
		t.Fatalf("rows landed in %d partitions", len(counts))
	}
	want.max, want.median = counts[3], (counts[1]+counts[2])/2
	if a.Max != want.max || a.Median != want.median || !a.HasSkew || math.Abs(a.Skew-want.max/want.median) > 1e-9 {
		t.Errorf("aggregate %+v, want max %v median %v", a, want.max, want.median)
	}
	if a.Skew < 4 {
		t.Errorf("skew %v: one tenant with 1000 of 1400 rows should exceed 4", a.Skew)
	}
}

func TestTenantLeadingIndexDetection(t *testing.T) {
	f := newFixture(t, append(hashTable("indexed", 2),
		`CREATE INDEX indexed_tenant_note ON indexed (tenant_id, note)`,
		`CREATE INDEX indexed_note ON indexed (note)`,
		`CREATE INDEX indexed_note_tenant ON indexed (note, tenant_id)`,
		`CREATE INDEX indexed_hash ON indexed USING hash (tenant_id)`,
	)...)
	f.exec(`INSERT INTO indexed SELECT gen_random_uuid(), g, md5(g::text) FROM generate_series(1, 2000) g`)
	sizes, err := collector.NewSizes(collector.Selection{TenantColumn: "tenant_id"}, time.Minute, true).Sample(f.ctx, f.pool)
	if err != nil {
		t.Fatal(err)
	}
	if len(sizes) != 1 || len(sizes[0].Partitions) != 2 {
		t.Fatalf("sizes %+v", sizes)
	}
	for _, p := range sizes[0].Partitions {
		// Tenant-leading btree: the primary key and indexed_tenant_note.
		var want, all float64
		err := f.admin.QueryRow(f.ctx, `
			SELECT sum(pg_relation_size(i.indexrelid)) FILTER (WHERE c.relname LIKE '%pkey' OR c.relname LIKE '%tenant_id_note%'),
			       sum(pg_relation_size(i.indexrelid))
			FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
			WHERE i.indrelid = $1::regclass`, p.Name).Scan(&want, &all)
		if err != nil {
			t.Fatal(err)
		}
		if p.TenantIndexBytes != want || p.IndexBytes != all || p.TenantIndexBytes == 0 || p.TenantIndexBytes >= p.IndexBytes {
			t.Errorf("%s: tenant index %v (want %v), all %v (want %v)", p.Name, p.TenantIndexBytes, want, p.IndexBytes, all)
		}
		var heap float64
		if err := f.admin.QueryRow(f.ctx, `SELECT pg_relation_size(c.oid) + coalesce(pg_relation_size(nullif(c.reltoastrelid, 0)), 0) FROM pg_class c WHERE c.oid = $1::regclass`, p.Name).Scan(&heap); err != nil {
			t.Fatal(err)
		}
		if p.HeapBytes != heap || p.Estimated {
			t.Errorf("%s: heap %v want %v (estimated %v)", p.Name, p.HeapBytes, heap, p.Estimated)
		}
	}
}

func TestSharedBuffersEqualsShow(t *testing.T) {
	f := newFixture(t)
	srv, _ := f.stats(collector.Selection{})
	var shown string
	if err := f.admin.QueryRow(f.ctx, "SHOW shared_buffers").Scan(&shown); err != nil {
		t.Fatal(err)
	}
	var bytes float64
	if err := f.admin.QueryRow(f.ctx, "SELECT pg_size_bytes($1)", shown).Scan(&bytes); err != nil {
		t.Fatal(err)
	}
	if srv.SharedBuffersBytes != bytes || bytes <= 0 {
		t.Errorf("shared_buffers %v bytes, SHOW says %s = %v", srv.SharedBuffersBytes, shown, bytes)
	}
}

func TestVacuumLagAgainstThePartitionsOwnThreshold(t *testing.T) {
	f := newFixture(t, hashTable("churn", 2)...)
	f.exec(`ALTER TABLE churn_p0 SET (autovacuum_enabled = false, autovacuum_vacuum_threshold = 100, autovacuum_vacuum_scale_factor = 0)`)
	f.exec(`ALTER TABLE churn_p1 SET (autovacuum_enabled = false, autovacuum_vacuum_threshold = 100000, autovacuum_vacuum_scale_factor = 0)`)
	f.exec(`INSERT INTO churn SELECT gen_random_uuid(), g, 'x' FROM generate_series(1, 2000) g`)
	f.exec(`ANALYZE churn`)
	f.exec(`DELETE FROM churn`) // about 1000 dead rows in each partition
	stats := collector.NewStats(collector.Selection{TenantColumn: "tenant_id"}, time.Minute, true)
	var first map[string]collector.Partition
	waitFor(t, "dead rows to reach the statistics", func() bool {
		f.exec("SELECT 1") // ends a transaction, which flushes pending statistics after a second
		_, tables, err := stats.Sample(f.ctx, f.pool)
		if err != nil {
			t.Fatal(err)
		}
		first = partitions(tables[0])
		return first["churn_p0"].DeadRows > 100 && first["churn_p1"].DeadRows > 100
	})
	if p := first["churn_p0"]; p.VacuumThreshold != 100 || !p.AutovacuumOff {
		t.Errorf("churn_p0 threshold %v autovacuum off %v", p.VacuumThreshold, p.AutovacuumOff)
	}
	time.Sleep(1100 * time.Millisecond)
	_, tables, err := stats.Sample(f.ctx, f.pool)
	if err != nil {
		t.Fatal(err)
	}
	second := partitions(tables[0])
	if lag := second["churn_p0"].VacuumLag; lag < time.Second {
		t.Errorf("churn_p0 above its threshold for two rounds 1.1 s apart has lag %v", lag)
	}
	if lag := second["churn_p1"].VacuumLag; lag != 0 {
		t.Errorf("churn_p1 below its own threshold has lag %v", lag)
	}
	if a := collector.Aggregate(tables[0].Partitions); a.VacuumLag != second["churn_p0"].VacuumLag {
		t.Errorf("table lag %v is not the worst partition's", a.VacuumLag)
	}
	f.exec(`VACUUM churn_p0`)
	waitFor(t, "the vacuum to reach the statistics", func() bool {
		f.exec("SELECT 1")
		_, tables, err := stats.Sample(f.ctx, f.pool)
		if err != nil {
			t.Fatal(err)
		}
		return partitions(tables[0])["churn_p0"].VacuumLag == 0
	})
}

func partitions(t collector.Table) map[string]collector.Partition {
	m := map[string]collector.Partition{}
	for _, p := range t.Partitions {
		m[p.Name] = p
	}
	return m
}

// waitFor polls cond; statistics reach the shared stats a moment after a
// transaction ends.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestNamesWithCapitalsSpacesAndQuotes(t *testing.T) {
	name := `Tenant "Session" Log`
	f := newFixture(t, append([]string{`CREATE SCHEMA "Odd Schema"`}, hashTable(name, 3)...)...)
	f.exec(`ALTER TABLE ` + pgx.Identifier{name}.Sanitize() + ` SET SCHEMA "Odd Schema"`)
	f.exec(`INSERT INTO "Odd Schema"."Tenant ""Session"" Log" SELECT gen_random_uuid(), g FROM generate_series(1, 300) g`)
	f.exec(`ANALYZE "Odd Schema"."Tenant ""Session"" Log"`)
	sel := collector.Selection{Tables: []string{`Odd Schema.Tenant "Session" Log`}, HotTables: []string{`Tenant "Session" Log`}, TenantColumn: "tenant_id"}
	_, tables := f.stats(sel)
	tab, ok := tables[`Odd Schema.`+name]
	if !ok || len(tab.Partitions) != 3 || !tab.Hot {
		t.Fatalf("got %+v", tables)
	}
	if a := collector.Aggregate(tab.Partitions); a.Total != 300 {
		t.Errorf("total %v", a.Total)
	}
	// Partitions stayed in public: their labels say so.
	if p := tab.Partitions[0].Name; !strings.HasPrefix(p, "public.") {
		t.Errorf("partition label %q", p)
	}
	sizes, err := collector.NewSizes(sel, time.Minute, true).Sample(f.ctx, f.pool)
	if err != nil || len(sizes) != 1 || len(sizes[0].Partitions) != 3 {
		t.Fatalf("sizes %+v err %v", sizes, err)
	}
}

func TestLockedPartitionDoesNotStallRounds(t *testing.T) {
	f := newFixture(t, hashTable("busy", 4)...)
	f.exec(`INSERT INTO busy SELECT gen_random_uuid(), g FROM generate_series(1, 1000) g`)
	f.exec(`VACUUM ANALYZE busy`)
	locker, err := pgx.Connect(f.ctx, f.url)
	if err != nil {
		t.Fatal(err)
	}
	defer locker.Close(f.ctx)
	tx, err := locker.Begin(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(f.ctx)
	if _, err := tx.Exec(f.ctx, `LOCK TABLE busy_p1 IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	sel := collector.Selection{TenantColumn: "tenant_id"}
	stats := collector.NewStats(sel, time.Minute, true)
	sizes := collector.NewSizes(sel, time.Minute, true)
	for round := 0; round < 3; round++ {
		_, tables, err := stats.Sample(f.ctx, f.pool)
		if err != nil || len(tables) != 1 || len(tables[0].Partitions) != 4 {
			t.Fatalf("stats round %d under lock: %v %+v", round, err, tables)
		}
		st, err := sizes.Sample(f.ctx, f.pool)
		if err != nil {
			t.Fatalf("sizes round %d under lock: %v", round, err)
		}
		for _, p := range st[0].Partitions {
			if (p.Name == "busy_p1") != p.Estimated {
				t.Errorf("round %d: %s estimated=%v", round, p.Name, p.Estimated)
			}
			if p.Name == "busy_p1" && p.HeapBytes <= 0 {
				t.Errorf("locked partition sized %v from the catalog", p.HeapBytes)
			}
		}
	}
}

// A fresh process (an exporter restart, or check) sees a partition already
// above its trigger: the lag starts from the database's bound, not 0.
func TestVacuumLagSurvivesARestart(t *testing.T) {
	f := newFixture(t, hashTable("held", 1)...)
	f.exec(`ALTER TABLE held_p0 SET (autovacuum_enabled = false, autovacuum_vacuum_threshold = 50, autovacuum_vacuum_scale_factor = 0.2)`)
	f.exec(`INSERT INTO held SELECT gen_random_uuid(), g, 'x' FROM generate_series(1, 2000) g`)
	f.exec(`VACUUM ANALYZE held`)
	time.Sleep(2 * time.Second) // last_vacuum stands in the past
	f.exec(`DELETE FROM held`)
	var before collector.Partition
	waitFor(t, "dead rows to reach the statistics", func() bool {
		f.exec("SELECT 1")
		_, tables := f.stats(collector.Selection{})
		before = tables["public.held"].Partitions[0]
		return before.DeadRows > before.VacuumThreshold
	})
	// Restarted exporter: a new collector without the previous crossing.
	srv, tables := f.stats(collector.Selection{})
	p := tables["public.held"].Partitions[0]
	bound := time.Duration(float64(srv.Now.Sub(p.LastVacuum)) * (p.DeadRows - p.VacuumThreshold) / p.DeadRows)
	if p.LastVacuum.IsZero() || p.VacuumLag <= 0 || p.VacuumLag < bound-time.Millisecond {
		t.Fatalf("lag after restart %v, documented bound %v (last vacuum %v, dead %v, trigger %v)",
			p.VacuumLag, bound, p.LastVacuum, p.DeadRows, p.VacuumThreshold)
	}
	if a := collector.Aggregate(tables["public.held"].Partitions); a.VacuumLag != p.VacuumLag {
		t.Errorf("table lag %v, partition lag %v", a.VacuumLag, p.VacuumLag)
	}
}

// PostgreSQL 18 reports cumulative vacuum time; before 18 the series are absent.
func TestVacuumTimeCountersOnlyFrom18(t *testing.T) {
	f := newFixture(t, hashTable("vt", 2)...)
	f.exec(`INSERT INTO vt SELECT gen_random_uuid(), g, 'x' FROM generate_series(1, 500) g`)
	f.exec(`VACUUM vt`)
	f.exec("SELECT 1")
	stats := collector.NewStats(collector.Selection{TenantColumn: "tenant_id"}, time.Minute, true)
	srv, tables, err := stats.Sample(f.ctx, f.pool)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range byName(tables)["public.vt"].Partitions {
		if p.HasVacuumTime != (srv.VersionNum >= 180000) {
			t.Errorf("%s on %d: vacuum time present %v", p.Name, srv.VersionNum, p.HasVacuumTime)
		}
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(collectorFunc(func(ch chan<- prometheus.Metric) {
		ms, err := stats.Collect(f.ctx, f.pool)
		if err != nil {
			t.Error(err)
		}
		for _, m := range ms {
			ch <- m
		}
	}))
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, mf := range families {
		found[mf.GetName()] = true
	}
	for _, name := range []string{"pgcapacity_partition_vacuum_seconds_total", "pgcapacity_partition_autovacuum_seconds_total",
		"pgcapacity_table_vacuum_seconds_total", "pgcapacity_table_autovacuum_seconds_total"} {
		if found[name] != (srv.VersionNum >= 180000) {
			t.Errorf("%s present %v on %d", name, found[name], srv.VersionNum)
		}
	}
}

// collectorFunc is an unchecked prometheus.Collector over a function.
type collectorFunc func(chan<- prometheus.Metric)

func (collectorFunc) Describe(chan<- *prometheus.Desc)      {}
func (c collectorFunc) Collect(ch chan<- prometheus.Metric) { c(ch) }

// Autovacuum never analyzes a partitioned parent: a parent never analyzed
// has no statistics; after ANALYZE (ANALYZE ONLY on 18+) its age is known.
func TestParentStatistics(t *testing.T) {
	f := newFixture(t, hashTable("pstat", 2)...)
	f.exec(`INSERT INTO pstat SELECT gen_random_uuid(), g, 'x' FROM generate_series(1, 500) g`)
	f.exec(`ANALYZE pstat_p0`)
	f.exec(`ANALYZE pstat_p1`)
	srv, tables := f.stats(collector.Selection{})
	if tb := tables["public.pstat"]; !tb.ParentStatisticsMissing || !tb.ParentAnalyzed.IsZero() {
		t.Fatalf("never-analyzed parent: missing %v, analyzed %v", tb.ParentStatisticsMissing, tb.ParentAnalyzed)
	}
	// The newest partition analyze is what makes a parent stale.
	parts := tables["public.pstat"].Partitions
	newest := collector.Aggregate(parts).LastAnalyze
	if newest.IsZero() || newest.Before(parts[0].LastAnalyze) || newest.Before(parts[1].LastAnalyze) {
		t.Errorf("newest partition analyze %v, partitions %v and %v", newest, parts[0].LastAnalyze, parts[1].LastAnalyze)
	}
	if !playbook.ParentStatisticsStale(tables["public.pstat"], srv.Now, 7*24*time.Hour) {
		t.Error("a parent without statistics whose partitions were analyzed is not stale")
	}
	if srv.VersionNum >= 180000 {
		f.exec(`ANALYZE ONLY pstat`)
	} else {
		f.exec(`ANALYZE pstat`)
	}
	var tb collector.Table
	waitFor(t, "the parent's analyze to reach the statistics", func() bool {
		f.exec("SELECT 1")
		_, tables = f.stats(collector.Selection{})
		tb = tables["public.pstat"]
		return !tb.ParentStatisticsMissing && (srv.VersionNum < 140000 || !tb.ParentAnalyzed.IsZero())
	})
	if !tb.ParentAnalyzed.IsZero() && tb.ParentAnalyzed.Before(srv.Now) {
		t.Errorf("parent analyzed at %v, before the ANALYZE issued after %v", tb.ParentAnalyzed, srv.Now)
	}
	// Fresh statistics are not stale; with no age allowed they are exactly
	// when ANALYZE (before 18) analyzed the partitions after the parent.
	// PostgreSQL 13 reports no analyze time for a parent: not judged.
	now := time.Now()
	if playbook.ParentStatisticsStale(tb, now, 7*24*time.Hour) {
		t.Error("a parent analyzed just now is stale")
	}
	want := srv.VersionNum >= 140000 && srv.VersionNum < 180000
	if got := playbook.ParentStatisticsStale(tb, now, 0); got != want {
		t.Errorf("on %d with no age allowed: stale %v, want %v (parent %v, newest partition %v)",
			srv.VersionNum, got, want, tb.ParentAnalyzed, collector.Aggregate(tb.Partitions).LastAnalyze)
	}
}
