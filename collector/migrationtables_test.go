package collector_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sigid/pgcapacity/collector"
	"github.com/sigid/pgcapacity/internal/config"
	"github.com/sigid/pgcapacity/migrate"
)

// series is one published sample: its labels and value.
type series struct {
	labels map[string]string
	value  float64
}

// publish runs one round of each collector and returns the series by family.
func publish(t *testing.T, f *fixture, cs ...collector.Collector) map[string][]series {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(collectorFunc(func(ch chan<- prometheus.Metric) {
		for _, c := range cs {
			ms, err := c.Collect(f.ctx, f.pool)
			if err != nil {
				t.Errorf("%s round: %v", c.Name(), err)
			}
			for _, m := range ms {
				ch <- m
			}
		}
	}))
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]series{}
	for _, mf := range families {
		for _, m := range mf.GetMetric() {
			s := series{labels: map[string]string{}}
			for _, l := range m.GetLabel() {
				s.labels[l.GetName()] = l.GetValue()
			}
			switch {
			case m.GetGauge() != nil:
				s.value = m.GetGauge().GetValue()
			case m.GetCounter() != nil:
				s.value = m.GetCounter().GetValue()
			}
			out[mf.GetName()] = append(out[mf.GetName()], s)
		}
	}
	return out
}

// During a migration's copy and after its swap, rollback, second swap and
// drop-old, migrate's shadow and retained tables are recognised from its
// records and kept apart: every pgcapacity_table_* and
// pgcapacity_partition_* series, and check's sample, carry only the live
// tables (the migrated one under its own name, with its current partition
// count), and the shadow or retained table appears only as
// pgcapacity_migration_table_{rows,bytes}{id,role}. A table merely named
// like migrate's (n7_ev) is an ordinary table.
func TestMigrateTablesKeptApart(t *testing.T) {
	ddl := slices.Concat(hashTable("ev", 4), hashTable("other", 2), hashTable("n7_ev", 2))
	f := newFixture(t, ddl...)
	const rows = 3000
	f.exec(fmt.Sprintf(`INSERT INTO ev SELECT gen_random_uuid(), g, repeat('x', 200) FROM generate_series(1, %d) g`, rows))
	f.exec(`INSERT INTO other SELECT gen_random_uuid(), g, 'x' FROM generate_series(1, 100) g`)
	f.exec(`ANALYZE`)

	sel := collector.Selection{TenantColumn: "tenant_id"}
	stats := collector.NewStats(sel, time.Minute, true)
	sizes := collector.NewSizes(sel, time.Minute, true)

	mpool, err := migrate.NewPool(f.ctx, f.url, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mpool.Close)
	m := migrate.New(mpool, nil)
	copts := migrate.CopyOptions{BatchSize: 100}
	swap := migrate.SwapOptions{NowReason: "test", BatchSize: 100}

	// The copy stops at the first batch boundary: a half-filled shadow table.
	copyCtx, stopCopy := context.WithCancel(f.ctx)
	m.Progress = func(p migrate.Progress) {
		if p.CopiedRows > 0 {
			stopCopy()
		}
	}
	id, err := m.Start(copyCtx, migrate.StartRequest{
		PlanRequest: migrate.PlanRequest{Schema: "public", Table: "ev", Partitions: 8, Thresholds: config.Thresholds{WriteRetentionTarget: config.Duration(time.Hour)}},
		Reason:      "test", Requester: "alice", Approver: "bob", Copy: copts,
	})
	stopCopy()
	m.Progress = nil
	if cluster.Get(t).Major() < 14 {
		// migrate needs 14: before it no shadow or retained table can exist.
		if err == nil || !strings.Contains(err.Error(), "PostgreSQL 14 or newer") {
			t.Fatalf("PostgreSQL %d: want start refused (needs 14), got %v", cluster.Get(t).Major(), err)
		}
		return
	}
	if id == 0 {
		t.Fatalf("start: %v", err)
	}
	if !errors.Is(err, migrate.ErrInterrupted) && !errors.Is(err, context.Canceled) {
		t.Fatalf("start was to be interrupted in the copy, got %v", err)
	}
	var phase string
	if err := f.admin.QueryRow(f.ctx, `SELECT phase FROM pgcapacity.migration WHERE id = $1`, id).Scan(&phase); err != nil || phase != string(migrate.PhaseCopying) {
		t.Fatalf("migration %d is %q (%v), want it copying", id, phase, err)
	}
	ids := fmt.Sprint(id)

	type step struct {
		name  string
		run   func() error
		evLen int    // ev's partitions
		role  string // the migration table's role; "" none
		// rows the migration table holds at least, or 0: (during the
		// copy) some but not all.
		rows float64
	}
	steps := []step{
		{name: "copying", run: func() error { return nil }, evLen: 4, role: "shadow"},
		{name: "swapped", run: func() error {
			if err := m.Resume(f.ctx, id, copts, 0); err != nil {
				return err
			}
			if _, err := m.Validate(f.ctx, id, copts); err != nil {
				return err
			}
			_, err := m.Swap(f.ctx, id, swap)
			return err
		}, evLen: 8, role: "retained", rows: rows},
		{name: "rolled back", run: func() error { _, err := m.Rollback(f.ctx, id, swap); return err }, evLen: 4, role: "shadow", rows: rows},
		{name: "swapped again", run: func() error { _, err := m.Swap(f.ctx, id, swap); return err }, evLen: 8, role: "retained", rows: rows},
		{name: "dropped", run: func() error { return m.DropOld(f.ctx, id, 0, copts) }, evLen: 8},
		// ev is now the table migration 1 created: the original of the next.
		{name: "second migration ready", run: func() error {
			second, err := m.Start(f.ctx, migrate.StartRequest{
				PlanRequest: migrate.PlanRequest{Schema: "public", Table: "ev", Partitions: 16, Thresholds: config.Thresholds{WriteRetentionTarget: config.Duration(time.Hour)}},
				Reason:      "test", Requester: "alice", Approver: "bob", Copy: copts,
			})
			ids = fmt.Sprint(second)
			return err
		}, evLen: 8, role: "shadow", rows: rows},
	}
	liveTables := []string{"ev", "n7_ev", "other"}
	for _, st := range steps {
		if err := st.run(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		// Before 15 an idle backend keeps the statistics of its last
		// writes until its next transaction or its exit: end the migrator's.
		mpool.Reset()
		// The migrator's backends report their writes a moment later, and
		// n_live_tup is an estimate: its vacuum's count plus the inserts
		// reported after it may exceed the rows.
		var got map[string][]series
		waitFor(t, st.name+": the migration table's rows and bytes", func() bool {
			got = publish(t, f, stats, sizes)
			r, b := got["pgcapacity_migration_table_rows"], got["pgcapacity_migration_table_bytes"]
			switch {
			case st.role == "":
				return true
			case len(r) != 1 || len(b) != 1 || r[0].value <= 0:
				return false
			case st.rows == 0 && r[0].value >= rows, st.rows > 0 && r[0].value < st.rows:
				return false
			}
			return b[0].value == f.ownedBytes(ids, st.role)
		})
		for name, ss := range got {
			if !strings.HasPrefix(name, "pgcapacity_table_") && !strings.HasPrefix(name, "pgcapacity_partition_") {
				continue
			}
			tables := map[string]int{}
			for _, s := range ss {
				if table, ok := s.labels["table"]; ok {
					tables[table]++
				}
			}
			for table := range tables {
				if !slices.Contains(liveTables, table) {
					t.Errorf("%s: %s carries table %s, want only the live tables %v", st.name, name, table, liveTables)
				}
			}
			if keys := sortedKeys(tables); name == "pgcapacity_table_info" && !slices.Equal(keys, liveTables) {
				t.Errorf("%s: %s carries tables %v, want the live tables %v", st.name, name, keys, liveTables)
			}
		}
		parts := map[string]float64{}
		for _, s := range got["pgcapacity_table_partitions"] {
			if _, dup := parts[s.labels["table"]]; dup {
				t.Errorf("%s: two pgcapacity_table_partitions series for %s", st.name, s.labels["table"])
			}
			parts[s.labels["table"]] = s.value
		}
		if parts["ev"] != float64(st.evLen) || parts["other"] != 2 || parts["n7_ev"] != 2 {
			t.Errorf("%s: pgcapacity_table_partitions %v, want ev %d, other 2, n7_ev 2", st.name, parts, st.evLen)
		}
		for _, family := range []string{"pgcapacity_migration_table_rows", "pgcapacity_migration_table_bytes"} {
			ss := got[family]
			if st.role == "" {
				if len(ss) != 0 {
					t.Errorf("%s: %s %v, want none", st.name, family, ss)
				}
				continue
			}
			if len(ss) != 1 || ss[0].labels["id"] != ids || ss[0].labels["role"] != st.role {
				t.Errorf("%s: %s %v, want one positive series {id=%s, role=%s}", st.name, family, ss, ids, st.role)
			}
		}
		// check's sample leaves them out as well.
		_, sampled := f.stats(sel)
		if keys := sortedKeys(sampled); !slices.Equal(keys, []string{"public.ev", "public.n7_ev", "public.other"}) {
			t.Errorf("%s: stats sample has %v", st.name, keys)
		}
		sized, err := collector.NewSizes(sel, time.Minute, false).Sample(f.ctx, f.pool)
		if err != nil {
			t.Fatal(err)
		}
		var sizedNames []string
		for _, s := range sized {
			sizedNames = append(sizedNames, s.Name)
		}
		if sort.Strings(sizedNames); !slices.Equal(sizedNames, liveTables) {
			t.Errorf("%s: sizes sample has %v", st.name, sizedNames)
		}
	}
}

// ownedBytes is the heap (main forks, with TOAST's) and index bytes of
// the partitions of migration id's table of role, as pgcapacity sizes them.
func (f *fixture) ownedBytes(id, role string) float64 {
	f.t.Helper()
	var bytes float64
	err := f.admin.QueryRow(f.ctx, `
		WITH RECURSIVE tree AS (
		    SELECT CASE $2 WHEN 'shadow' THEN new_oid ELSE original_oid END AS relid FROM pgcapacity.migration WHERE id = $1::bigint
		  UNION ALL
		    SELECT i.inhrelid FROM tree t JOIN pg_inherits i ON i.inhparent = t.relid)
		SELECT coalesce(sum(pg_relation_size(c.oid) + pg_indexes_size(c.oid)
		           + CASE c.reltoastrelid WHEN 0 THEN 0 ELSE pg_relation_size(c.reltoastrelid) END), 0)::float8
		FROM tree JOIN pg_class c ON c.oid = tree.relid AND c.relkind = 'r'`, id, role).Scan(&bytes)
	if err != nil {
		f.t.Fatal(err)
	}
	return bytes
}

func sortedKeys[V any](m map[string]V) []string {
	k := keys(m)
	sort.Strings(k)
	return k
}

// List and range parents named in PGCAPACITY_TABLES are published like
// hash ones, with their strategy on pgcapacity_table_info (the hash-only
// rules select strategy="hash"); without patterns only hash parents are.
func TestListAndRangeParentsPublishTheirStrategy(t *testing.T) {
	f := newFixture(t, slices.Concat(hashTable("hashed", 2), []string{
		`CREATE TABLE listed (region text NOT NULL, id int) PARTITION BY LIST (region)`,
		`CREATE TABLE listed_eu PARTITION OF listed FOR VALUES IN ('eu')`,
		`CREATE TABLE listed_us PARTITION OF listed FOR VALUES IN ('us')`,
		`CREATE TABLE ranged (at date NOT NULL, id int) PARTITION BY RANGE (at)`,
		`CREATE TABLE ranged_2026 PARTITION OF ranged FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')`,
	})...)
	tests := []struct {
		name   string
		tables []string
		want   map[string]string // table → strategy label
		parts  map[string]float64
	}{
		{"default: hash parents only", nil, map[string]string{"hashed": "hash"}, map[string]float64{"hashed": 2}},
		{"named: every strategy", []string{"hashed", "listed", "public.ranged"},
			map[string]string{"hashed": "hash", "listed": "list", "ranged": "range"},
			map[string]float64{"hashed": 2, "listed": 2, "ranged": 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sel := collector.Selection{Tables: tc.tables, TenantColumn: "tenant_id"}
			got := publish(t, f, collector.NewStats(sel, time.Minute, false), collector.NewSizes(sel, time.Minute, false))
			strategies := map[string]string{}
			for _, s := range got["pgcapacity_table_info"] {
				strategies[s.labels["table"]] = s.labels["strategy"]
			}
			parts := map[string]float64{}
			for _, s := range got["pgcapacity_table_partitions"] {
				parts[s.labels["table"]] = s.value
			}
			heap := map[string]bool{}
			for _, s := range got["pgcapacity_table_heap_bytes"] {
				heap[s.labels["table"]] = true
			}
			if fmt.Sprint(strategies) != fmt.Sprint(tc.want) || fmt.Sprint(parts) != fmt.Sprint(tc.parts) || len(heap) != len(tc.want) {
				t.Errorf("table_info strategies %v, partitions %v, sized %v; want %v, %v", strategies, parts, heap, tc.want, tc.parts)
			}
		})
	}
}
