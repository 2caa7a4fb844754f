package probes_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sigid/pgcapacity/collector"
	"github.com/sigid/pgcapacity/collector/probes"
	"github.com/sigid/pgcapacity/internal/config"
	"github.com/sigid/pgcapacity/migrate"
)

// TestNoDerivedProbeForMigrateTables: migrate's shadow (n<id>_) and
// retained (o<id>_) tables, recognised from its records, get no derived
// probe and match no hot-table pattern, through start, swap and rollback,
// even when every table is hot; the live table keeps its probe, and a table
// merely named like migrate's (n7_ev) is probed as any other.
func TestNoDerivedProbeForMigrateTables(t *testing.T) {
	ctx, pool := newPool(t)
	for _, name := range []string{"ev", "n7_ev"} {
		ddl := []string{fmt.Sprintf(`CREATE TABLE %s (tenant_id uuid NOT NULL, id bigint NOT NULL, PRIMARY KEY (tenant_id, id)) PARTITION BY HASH (tenant_id)`, name)}
		for i := range 2 {
			ddl = append(ddl, fmt.Sprintf(`CREATE TABLE %s_p%d PARTITION OF %[1]s FOR VALUES WITH (MODULUS 2, REMAINDER %[2]d)`, name, i))
		}
		ddl = append(ddl, fmt.Sprintf(`INSERT INTO %s SELECT gen_random_uuid(), g FROM generate_series(1, 200) g`, name))
		for _, sql := range ddl {
			if _, err := pool.Exec(ctx, sql); err != nil {
				t.Fatalf("%s: %v", sql, err)
			}
		}
	}
	mpool, err := migrate.NewPool(ctx, pool.Config().ConnString(), 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mpool.Close)
	m := migrate.New(mpool, nil)
	copts := migrate.CopyOptions{BatchSize: 100}
	swap := migrate.SwapOptions{NowReason: "test", BatchSize: 100}
	var id int64

	sel := collector.Selection{HotTables: []string{"*"}}
	steps := []struct {
		name  string
		run   func() error
		owned string // the migration table that exists now, not probed
	}{
		{name: "started", run: func() error {
			var err error
			id, err = m.Start(ctx, migrate.StartRequest{
				PlanRequest: migrate.PlanRequest{Schema: "public", Table: "ev", Partitions: 4, Thresholds: config.Thresholds{WriteRetentionTarget: config.Duration(time.Hour)}},
				Reason:      "test", Requester: "alice", Approver: "bob", Copy: copts,
			})
			return err
		}, owned: "n1_ev"},
		{name: "swapped", run: func() error {
			if _, err := m.Validate(ctx, id, copts); err != nil {
				return err
			}
			_, err := m.Swap(ctx, id, swap)
			return err
		}, owned: "o1_ev"},
		{name: "rolled back", run: func() error { _, err := m.Rollback(ctx, id, swap); return err }, owned: "n1_ev"},
	}
	for _, st := range steps {
		err := st.run()
		if cluster.Get(t).Major() < 14 {
			// migrate needs 14: before it no shadow or retained table can exist.
			if err == nil || !strings.Contains(err.Error(), "PostgreSQL 14 or newer") {
				t.Fatalf("PostgreSQL %d: want start refused (needs 14), got %v", cluster.Get(t).Major(), err)
			}
			return
		}
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		var exists bool
		if err := pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, st.owned).Scan(&exists); err != nil || !exists {
			t.Fatalf("%s: %s does not exist (%v): the step did not leave the table the test is about", st.name, st.owned, err)
		}
		c, err := probes.New(probes.Options{Derive: true, Selection: sel})
		if err != nil {
			t.Fatal(err)
		}
		res, err := c.Resolve(ctx, pool)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		var probed []string
		for _, p := range res.Probes {
			probed = append(probed, p.Table)
		}
		slices.Sort(probed)
		if !slices.Equal(probed, []string{"ev", "n7_ev"}) {
			t.Errorf("%s: derived probes on %v, want ev and n7_ev only (not %s)", st.name, probed, st.owned)
		}
		for _, s := range res.Unprobed {
			t.Errorf("%s: %s.%s listed as an unprobed hot table: %s", st.name, s.Schema, s.Table, s.Reason)
		}
		unmatched, err := probes.UnmatchedHotTables(ctx, pool, collector.Selection{HotTables: []string{"ev", st.owned}})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(unmatched, []string{st.owned}) {
			t.Errorf("%s: unmatched hot patterns %v, want [%s]: migrate's table is not a watched table", st.name, unmatched, st.owned)
		}
	}
}
