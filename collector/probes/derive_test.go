package probes_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sigid/pgcapacity/collector"
	"github.com/sigid/pgcapacity/collector/probes"
)

// runRounds runs n rounds and fails on any probe error or missing timing.
func runRounds(t *testing.T, c *probes.Collector, ctx context.Context, pool *pgxpool.Pool, n int) []probes.Run {
	t.Helper()
	var all []probes.Run
	for range n {
		runs, err := c.Round(ctx, pool)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range runs {
			if r.Err != nil {
				t.Fatalf("probe %s on %s.%s: %v", r.Probe, r.Schema, r.Table, r.Err)
			}
			if r.Timing.Planning <= 0 || r.Timing.Execution <= 0 {
				t.Fatalf("probe %s: planning %v, execution %v: not split", r.Probe, r.Timing.Planning, r.Timing.Execution)
			}
			for _, rel := range r.Timing.Relations {
				if rel != r.Partition {
					t.Fatalf("probe %s: plan scans %s, but the tenant was sampled from %s: not pruned at planning", r.Probe, rel, r.Partition)
				}
			}
		}
		all = append(all, runs...)
	}
	return all
}

// TestDerivedProbeForEachKeyType: a hot table of a schema nobody here
// designed gets a probe from its own definition, whatever the type of its
// tenant key: equality on the key and on the index's next column.
func TestDerivedProbeForEachKeyType(t *testing.T) {
	tests := []struct {
		keyType string
		value   string // SQL for the tenant key of row g
	}{
		{"uuid", "md5('t' || (g % 40))::uuid"},
		{"bigint", "(g % 40)::bigint * 1000000007"},
		{"integer", "(g % 40) - 20"},
		{"text", "'tenant ''' || (g % 40) || ' é'"},
	}
	for _, tt := range tests {
		t.Run(tt.keyType, func(t *testing.T) {
			ctx, pool := newPool(t)
			ddl := []string{
				"CREATE SCHEMA app",
				fmt.Sprintf(`CREATE TABLE app."Events" (org %s NOT NULL, event_id bigint NOT NULL, body text, PRIMARY KEY (org, event_id)) PARTITION BY HASH (org)`, tt.keyType),
				`CREATE INDEX events_body_idx ON app."Events" (body)`,
			}
			for i := range 4 {
				ddl = append(ddl, fmt.Sprintf(`CREATE TABLE app."Events_%d" PARTITION OF app."Events" FOR VALUES WITH (MODULUS 4, REMAINDER %d)`, i, i))
			}
			ddl = append(ddl, fmt.Sprintf(`INSERT INTO app."Events" SELECT %s, g, 'event ' || g FROM generate_series(1, 2000) g`, tt.value), "ANALYZE app.\"Events\"")
			for _, sql := range ddl {
				if _, err := pool.Exec(ctx, sql); err != nil {
					t.Fatalf("%s: %v", sql, err)
				}
			}
			c, err := probes.New(probes.Options{Derive: true, Selection: collector.Selection{HotTables: []string{"app.Events"}}, Rand: rand.New(rand.NewPCG(3, 4))})
			if err != nil {
				t.Fatal(err)
			}
			res, err := c.Resolve(ctx, pool)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Probes) != 1 || len(res.Unprobed) != 0 {
				t.Fatalf("resolution %+v, want one derived probe", res)
			}
			p := res.Probes[0]
			want := `SELECT *
FROM "app"."Events"
WHERE "org" = $1
  AND "event_id" = (SELECT "event_id" FROM "app"."Events" WHERE "org" = $1 ORDER BY "event_id" LIMIT 1)
LIMIT 10`
			if p.SQL != want || p.Origin != probes.OriginDerived || p.Index != "Events_pkey" || p.TenantKey != "org" || p.TenantKeyType != tt.keyType {
				t.Fatalf("derived probe %+v\nSQL:\n%s\nwant:\n%s", p, p.SQL, want)
			}
			if p.Name != "Events" || p.Partitions != 4 || p.TenantsSampled < 4 {
				t.Errorf("probe %s: %d partitions, %d tenants sampled", p.Name, p.Partitions, p.TenantsSampled)
			}
			runs := runRounds(t, c, ctx, pool, 8)
			reached := map[string]bool{}
			for _, r := range runs {
				reached[r.Partition] = true
				if r.Schema != "app" || r.Table != "Events" {
					t.Fatalf("run on %s.%s", r.Schema, r.Table)
				}
			}
			if len(runs) != 8 || len(reached) != 4 {
				t.Fatalf("%d runs reached partitions %v; want 8 runs over all 4", len(runs), reached)
			}
		})
	}
}

// TestDerivedProbesOnTheReferenceSchema: without a probes file every hot
// table of the reference schema (referral_redemption included) gets a
// probe on its primary key; the example file replaces four of them.
func TestDerivedProbesOnTheReferenceSchema(t *testing.T) {
	ctx, pool := newPool(t)
	loadSigid(t, ctx, pool, map[string]int{"session": 4, "tenant_membership": 4, "tenant_subject_identifier": 4, "referral": 4, "referral_redemption": 2}, 40, 3)
	if _, err := pool.Exec(ctx, `INSERT INTO referral_redemption (tenant_id, referral_id, redeemed_by)
		SELECT tenant_id, referral_id, gen_random_uuid() FROM referral; ANALYZE referral_redemption`); err != nil {
		t.Fatal(err)
	}
	hot := collector.Selection{HotTables: []string{"session", "tenant_membership", "tenant_subject_identifier", "referral*"}}
	derived, err := probes.New(probes.Options{Derive: true, Selection: hot})
	if err != nil {
		t.Fatal(err)
	}
	res, err := derived.Resolve(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range res.Probes {
		got = append(got, p.Name+":"+p.Index)
	}
	want := []string{"referral:referral_pkey", "referral_redemption:referral_redemption_pkey", "session:session_pkey",
		"tenant_membership:tenant_membership_pkey", "tenant_subject_identifier:tenant_subject_identifier_pkey"}
	if !slices.Equal(got, want) {
		t.Fatalf("derived probes %v, want %v", got, want)
	}
	runRounds(t, derived, ctx, pool, 3)

	example, err := probes.New(probes.Options{Probes: sigidProbes(t), Derive: true, Selection: hot})
	if err != nil {
		t.Fatal(err)
	}
	res, err = example.Resolve(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	got = nil
	for _, p := range res.Probes {
		got = append(got, p.Origin+":"+p.Name)
	}
	want = []string{"file:session_by_id", "file:membership_by_user", "file:subject_identifier_lookup", "file:referral_by_code", "derived:referral_redemption"}
	if !slices.Equal(got, want) {
		t.Fatalf("with the example file: %v, want %v", got, want)
	}
	if err := example.Validate(ctx, pool); err != nil {
		t.Fatalf("the example file does not fit the reference schema: %v", err)
	}
	if runs := runRounds(t, example, ctx, pool, 3); len(runs) != 3*len(want) {
		t.Fatalf("%d runs, want %d", len(runs), 3*len(want))
	}
}

// TestHotTablesWithoutADerivedProbe: a hot table that cannot be probed from
// its definition is listed with the reason, and nothing fails.
func TestHotTablesWithoutADerivedProbe(t *testing.T) {
	ctx, pool := newPool(t)
	for _, sql := range []string{
		`CREATE TABLE noindex (tenant_id bigint NOT NULL, x int) PARTITION BY HASH (tenant_id)`,
		`CREATE TABLE noindex_0 PARTITION OF noindex FOR VALUES WITH (MODULUS 1, REMAINDER 0)`,
		`CREATE TABLE partial (tenant_id bigint NOT NULL, x int) PARTITION BY HASH (tenant_id)`,
		`CREATE INDEX ON partial (tenant_id) WHERE x > 0`,
		`CREATE INDEX ON partial (x, tenant_id)`,
		`CREATE TABLE expr (tenant_id text NOT NULL) PARTITION BY HASH (lower(tenant_id))`,
		`CREATE TABLE listed (tenant_id bigint NOT NULL PRIMARY KEY) PARTITION BY LIST (tenant_id)`,
		`CREATE TABLE cold (tenant_id bigint NOT NULL PRIMARY KEY) PARTITION BY HASH (tenant_id)`,
	} {
		if _, err := pool.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	c, err := probes.New(probes.Options{Derive: true, Selection: collector.Selection{
		Tables: []string{"noindex", "partial", "expr", "listed", "cold"}, HotTables: []string{"noindex", "partial", "expr", "listed", "nothing*"}}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Resolve(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Probes) != 0 {
		t.Fatalf("probes %+v, want none", res.Probes)
	}
	reasons := map[string]string{}
	for _, s := range res.Unprobed {
		reasons[s.Table] = s.Reason
	}
	for table, want := range map[string]string{
		"noindex": "no valid, non-partial btree index leads with the tenant key tenant_id",
		"partial": "no valid, non-partial btree index",
		"expr":    "the partition key is an expression",
		"listed":  "list-partitioned",
	} {
		if !strings.Contains(reasons[table], want) {
			t.Errorf("%s: reason %q, want %q", table, reasons[table], want)
		}
	}
	if len(reasons) != 4 {
		t.Errorf("unprobed %v: want the four hot tables only", reasons)
	}
	if runs, err := c.Round(ctx, pool); err != nil || len(runs) != 0 {
		t.Fatalf("round: %v, %v", runs, err)
	}
	unmatched, err := probes.UnmatchedHotTables(ctx, pool, collector.Selection{Tables: []string{"noindex", "listed"}, HotTables: []string{"noindex", "listed", "cold", "nothing*"}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(unmatched, []string{"cold", "nothing*"}) {
		t.Fatalf("unmatched hot patterns %v, want cold (not watched) and nothing*", unmatched)
	}
}

// TestValidateRefusesProbesThatDoNotFit: a probes file naming a table or
// column that does not exist is refused at start, naming the probe.
func TestValidateRefusesProbesThatDoNotFit(t *testing.T) {
	ctx, pool := newPool(t)
	loadSigid(t, ctx, pool, map[string]int{"session": 2, "tenant_membership": 2, "tenant_subject_identifier": 2, "referral": 2, "referral_redemption": 2}, 4, 1)
	if _, err := pool.Exec(ctx, "CREATE TABLE plain (id int)"); err != nil {
		t.Fatal(err)
	}
	hot := collector.Selection{HotTables: []string{"session"}}
	tests := []struct {
		name    string
		probe   probes.Probe
		derive  bool
		disable string
		wantErr string // empty: accepted
	}{
		{"fits", probes.Probe{Name: "ok", Table: "session", SQL: "SELECT user_id FROM session WHERE tenant_id = $1"}, false, "", ""},
		{"missing table", probes.Probe{Name: "gone", Table: "sessions", SQL: "SELECT 1 FROM session WHERE tenant_id = $1"}, false, "",
			`probe "gone": table sessions does not exist`},
		{"missing table in the SQL", probes.Probe{Name: "typo", Table: "session", SQL: "SELECT 1 FROM sesion WHERE tenant_id = $1"}, false, "",
			`probe "typo": the SQL does not fit this database: relation "sesion" does not exist (SQLSTATE 42P01)`},
		{"missing column", probes.Probe{Name: "col", Table: "session", SQL: "SELECT session_idx FROM session WHERE tenant_id = $1"}, false, "",
			`probe "col": the SQL does not fit this database: column "session_idx" does not exist (SQLSTATE 42703)`},
		{"no tenant column", probes.Probe{Name: "plain", Table: "plain", SQL: "SELECT id FROM plain WHERE id = $1"}, false, "",
			`probe "plain": table plain has no tenant column tenant_id`},
		{"disabled derived probe", probes.Probe{}, true, "session", ""},
		{"disabled unknown probe", probes.Probe{}, true, "sessions", `probe "sessions" (line 2): disabled, but no watched hot table has a derived probe of that name`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := probes.Options{Derive: tt.derive, Selection: hot}
			if tt.probe.Name != "" {
				opts.Probes = []probes.Probe{tt.probe}
			}
			if tt.disable != "" {
				set, err := probes.Parse([]byte("probes:\n  - {name: " + tt.disable + ", disabled: true}\n"))
				if err != nil {
					t.Fatal(err)
				}
				opts.Disabled = set.Disabled
			}
			c, err := probes.New(opts)
			if err != nil {
				t.Fatal(err)
			}
			err = c.Validate(ctx, pool)
			var qe *probes.QueryError
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.wantErr == "":
			case !errors.As(err, &qe) || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "\n"):
				t.Fatalf("error %v (a QueryError: %v), want one line containing %q", err, qe != nil, tt.wantErr)
			}
		})
	}
}
