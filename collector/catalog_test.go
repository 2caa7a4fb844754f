package collector_test

import (
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/sigid/pgcapacity/collector"
	"github.com/sigid/pgcapacity/internal/dbpool"
	"github.com/sigid/pgcapacity/internal/pgstat"
	"github.com/sigid/pgcapacity/internal/throwaway/pgtest"
)

// One stats collector keeps the partition tree and each leaf's catalog row
// between rounds; whatever DDL or VACUUM ran before a round, that round must
// read what a fresh collector (nothing cached) reads.
func TestCachedCatalogSeesChangesAtTheNextRound(t *testing.T) {
	ddl := []string{`CREATE TABLE t (tenant_id uuid NOT NULL, id bigint NOT NULL, note text, PRIMARY KEY (tenant_id, id)) PARTITION BY HASH (tenant_id)`}
	for i := 0; i < 4; i++ {
		ddl = append(ddl, fmt.Sprintf(`CREATE TABLE t_p%d PARTITION OF t FOR VALUES WITH (MODULUS 8, REMAINDER %d)`, i, i))
	}
	f := newFixture(t, ddl...)
	sel := collector.Selection{TenantColumn: "tenant_id"}
	cached := collector.NewStats(sel, time.Minute, true)
	steps := []struct {
		name string
		sql  []string
		want []string // partitions of public.t after the step
	}{
		{"first round", nil, []string{"t_p0", "t_p1", "t_p2", "t_p3"}},
		{"unchanged", nil, []string{"t_p0", "t_p1", "t_p2", "t_p3"}},
		{"partition created", []string{`CREATE TABLE t_p4 PARTITION OF t FOR VALUES WITH (MODULUS 8, REMAINDER 4)`},
			[]string{"t_p0", "t_p1", "t_p2", "t_p3", "t_p4"}},
		{"partition detached", []string{`ALTER TABLE t DETACH PARTITION t_p1`}, []string{"t_p0", "t_p2", "t_p3", "t_p4"}},
		{"partition attached", []string{`ALTER TABLE t ATTACH PARTITION t_p1 FOR VALUES WITH (MODULUS 8, REMAINDER 1)`},
			[]string{"t_p0", "t_p1", "t_p2", "t_p3", "t_p4"}},
		{"partition dropped", []string{`DROP TABLE t_p4`}, []string{"t_p0", "t_p1", "t_p2", "t_p3"}},
		{"sub-partitioned partition", []string{
			`CREATE TABLE t_p5 PARTITION OF t FOR VALUES WITH (MODULUS 8, REMAINDER 5) PARTITION BY HASH (id)`,
			`CREATE TABLE t_p5_a PARTITION OF t_p5 FOR VALUES WITH (MODULUS 2, REMAINDER 0)`,
			`CREATE TABLE t_p5_b PARTITION OF t_p5 FOR VALUES WITH (MODULUS 2, REMAINDER 1)`,
		}, []string{"t_p0", "t_p1", "t_p2", "t_p3", "t_p5_a", "t_p5_b"}},
		{"rows and ANALYZE", []string{
			`CREATE TABLE t_p4 PARTITION OF t FOR VALUES WITH (MODULUS 8, REMAINDER 4)`,
			`CREATE TABLE t_p6 PARTITION OF t FOR VALUES WITH (MODULUS 8, REMAINDER 6)`,
			`CREATE TABLE t_p7 PARTITION OF t FOR VALUES WITH (MODULUS 8, REMAINDER 7)`,
			`INSERT INTO t SELECT gen_random_uuid(), g FROM generate_series(1, 2000) g`, `ANALYZE t`,
		}, []string{"t_p0", "t_p1", "t_p2", "t_p3", "t_p4", "t_p5_a", "t_p5_b", "t_p6", "t_p7"}},
		{"VACUUM after deletes", []string{`DELETE FROM t WHERE id % 2 = 0`, `VACUUM t_p0`},
			[]string{"t_p0", "t_p1", "t_p2", "t_p3", "t_p4", "t_p5_a", "t_p5_b", "t_p6", "t_p7"}},
		{"partition renamed", []string{`ALTER TABLE t_p2 RENAME TO t_two`},
			[]string{"t_p0", "t_p1", "t_p3", "t_p4", "t_p5_a", "t_p5_b", "t_p6", "t_p7", "t_two"}},
		{"reloptions", []string{`ALTER TABLE t_p0 SET (autovacuum_vacuum_threshold = 7, autovacuum_vacuum_scale_factor = 0)`},
			[]string{"t_p0", "t_p1", "t_p3", "t_p4", "t_p5_a", "t_p5_b", "t_p6", "t_p7", "t_two"}},
		{"partition moved to another schema", []string{`CREATE SCHEMA other`, `ALTER TABLE t_p3 SET SCHEMA other`},
			[]string{"t_p0", "t_p1", "other.t_p3", "t_p4", "t_p5_a", "t_p5_b", "t_p6", "t_p7", "t_two"}},
		{"another table", hashTable("u", 2), []string{"t_p0", "t_p1", "other.t_p3", "t_p4", "t_p5_a", "t_p5_b", "t_p6", "t_p7", "t_two"}},
		{"table dropped", []string{`DROP TABLE u`}, []string{"t_p0", "t_p1", "other.t_p3", "t_p4", "t_p5_a", "t_p5_b", "t_p6", "t_p7", "t_two"}},
	}
	for _, step := range steps {
		for _, sql := range step.sql {
			f.exec(sql)
		}
		// DDL reaches pg_class's own counters when the session reports
		// its statistics (within a second, at most one round late in
		// serve); flushed here so the round right after must see it.
		if err := pgstat.Flush(f.ctx, f.admin); err != nil {
			t.Fatal(err)
		}
		_, got, err := cached.Sample(f.ctx, f.pool)
		if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		_, fresh, err := collector.NewStats(sel, time.Minute, true).Sample(f.ctx, f.pool)
		if err != nil {
			t.Fatalf("%s: fresh collector: %v", step.name, err)
		}
		if names := tableNames(got); !slices.Equal(names, tableNames(fresh)) {
			t.Fatalf("%s: tables %v, a fresh collector reads %v", step.name, names, tableNames(fresh))
		}
		if names := partitionNames(byName(got)["public.t"]); !slices.Equal(names, step.want) {
			t.Fatalf("%s: partitions %v, want %v", step.name, names, step.want)
		}
		for ti := range got {
			if len(got[ti].Partitions) != len(fresh[ti].Partitions) {
				t.Fatalf("%s: %s has %d partitions, a fresh collector reads %d", step.name, got[ti].Name, len(got[ti].Partitions), len(fresh[ti].Partitions))
			}
			for pi, p := range got[ti].Partitions {
				q := fresh[ti].Partitions[pi]
				if p.OID != q.OID || p.Name != q.Name || p.Reltuples != q.Reltuples || p.VacuumThreshold != q.VacuumThreshold ||
					p.AnalyzeThreshold != q.AnalyzeThreshold || p.LiveRows != q.LiveRows || p.DeadRows != q.DeadRows ||
					!p.LastVacuum.Equal(q.LastVacuum) || math.Abs(p.XIDAge-q.XIDAge) > 5 {
					t.Errorf("%s: cached round read %+v, a fresh collector %+v", step.name, p, q)
				}
			}
		}
	}
	threshold := partitionByName(byName(mustSample(t, f, cached))["public.t"], "t_p0").VacuumThreshold
	if threshold != 7 {
		t.Errorf("t_p0's vacuum threshold %v after its reloptions, want 7", threshold)
	}
}

func mustSample(t *testing.T, f *fixture, s *collector.Stats) []collector.Table {
	t.Helper()
	_, tables, err := s.Sample(f.ctx, f.pool)
	if err != nil {
		t.Fatal(err)
	}
	return tables
}

func tableNames(tables []collector.Table) []string {
	var names []string
	for _, t := range tables {
		names = append(names, t.Schema+"."+t.Name)
	}
	return names
}

func partitionNames(t collector.Table) []string {
	var names []string
	for _, p := range t.Partitions {
		names = append(names, p.Name)
	}
	return names
}

func partitionByName(t collector.Table, name string) collector.Partition {
	for _, p := range t.Partitions {
		if p.Name == name {
			return p
		}
	}
	return collector.Partition{}
}

// One sizes collector sizes again only the partitions whose files may have
// changed; after any write, DDL or rewrite, its round must read what a
// fresh collector (sizing everything) reads.
func TestSizesOfChangedPartitionsOnly(t *testing.T) {
	f := newFixture(t, hashTable("s", 4)...)
	sel := collector.Selection{TenantColumn: "tenant_id"}
	kept := collector.NewSizes(sel, time.Minute, true)
	steps := []struct {
		name string
		sql  []string
	}{
		{"first round", nil},
		{"unchanged", nil},
		{"rows inserted", []string{`INSERT INTO s SELECT gen_random_uuid(), g, repeat('x', 3000) FROM generate_series(1, 3000) g`}},
		{"rows updated", []string{`UPDATE s SET note = repeat('y', 5000) WHERE id % 3 = 0`}},
		{"index created", []string{`CREATE INDEX ON s (tenant_id, note)`}},
		{"partition truncated", []string{`TRUNCATE s_p1`}},
		{"VACUUM FULL", []string{`DELETE FROM s WHERE id % 2 = 0`, `VACUUM FULL s_p2`}},
		{"REINDEX", []string{`REINDEX TABLE s_p3`}},
		{"partition created", []string{`DROP TABLE s_p0`, `CREATE TABLE s_p0 PARTITION OF s FOR VALUES WITH (MODULUS 4, REMAINDER 0)`}},
		{"unchanged again", nil},
	}
	for _, step := range steps {
		for _, sql := range step.sql {
			f.exec(sql)
		}
		if err := pgstat.Flush(f.ctx, f.admin); err != nil {
			t.Fatal(err)
		}
		got, err := kept.Sample(f.ctx, f.pool)
		if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		fresh, err := collector.NewSizes(sel, time.Minute, true).Sample(f.ctx, f.pool)
		if err != nil {
			t.Fatalf("%s: fresh collector: %v", step.name, err)
		}
		if len(got) != 1 || len(fresh) != 1 || len(got[0].Partitions) != len(fresh[0].Partitions) {
			t.Fatalf("%s: read %+v, a fresh collector %+v", step.name, got, fresh)
		}
		for i, p := range got[0].Partitions {
			if q := fresh[0].Partitions[i]; p != q {
				t.Errorf("%s: kept sizes %+v, a fresh collector %+v", step.name, p, q)
			}
		}
	}
}

// A standby replays the primary's writes without moving its own counters:
// its stats and sizes rounds read what a fresh collector reads there.
func TestCachedCatalogOnAStandby(t *testing.T) {
	f := newFixture(t, hashTable("r", 4)...)
	standby := pgtest.NewStandby(t, &cluster)
	cfg, err := dbpool.Config(standby.URL(t, f.url), dbpool.Options{StatementTimeout: 10 * time.Second, LockTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.NewWithConfig(f.ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	sel := collector.Selection{TenantColumn: "tenant_id"}
	stats, sizes := collector.NewStats(sel, time.Minute, true), collector.NewSizes(sel, time.Minute, true)
	for round, sql := range []string{"", `INSERT INTO r SELECT gen_random_uuid(), g, repeat('x', 2000) FROM generate_series(1, 2000) g`, `VACUUM ANALYZE r`} {
		if sql != "" {
			f.exec(sql)
		}
		standby.CatchUp(t)
		_, got, err := stats.Sample(f.ctx, pool)
		if err != nil {
			t.Fatal(err)
		}
		_, fresh, err := collector.NewStats(sel, time.Minute, true).Sample(f.ctx, pool)
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range got[0].Partitions {
			if q := fresh[0].Partitions[i]; p.Reltuples != q.Reltuples || p.LiveRows != q.LiveRows || p.Name != q.Name {
				t.Errorf("round %d on the standby: stats %+v, a fresh collector %+v", round, p, q)
			}
		}
		gotSizes, err := sizes.Sample(f.ctx, pool)
		if err != nil {
			t.Fatal(err)
		}
		freshSizes, err := collector.NewSizes(sel, time.Minute, true).Sample(f.ctx, pool)
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range gotSizes[0].Partitions {
			if q := freshSizes[0].Partitions[i]; p != q {
				t.Errorf("round %d on the standby: sizes %+v, a fresh collector %+v", round, p, q)
			}
		}
	}
}
