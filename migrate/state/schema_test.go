package state

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sigid/pgcapacity/internal/throwaway/pgtest"
)

var cluster pgtest.Cluster

func TestMain(m *testing.M) { pgtest.Main(m, &cluster) }

// releaseV1 is the state schema as the releases before the version row
// created it, statement by statement.
func releaseV1(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("testdata/schema-v1.sql")
	if err != nil {
		t.Fatal(err)
	}
	var stmts []string
	for _, s := range strings.Split(string(b), ";\n") {
		var lines []string
		for _, l := range strings.Split(s, "\n") {
			if !strings.HasPrefix(l, "--") {
				lines = append(lines, l)
			}
		}
		if s := strings.TrimSpace(strings.Join(lines, "\n")); s != "" {
			stmts = append(stmts, s)
		}
	}
	return stmts
}

// createReleaseV1 creates today's state schema from the fixture, as a
// release before the version row left it.
func createReleaseV1(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	for _, s := range releaseV1(t) {
		if _, err := pool.Exec(context.Background(), s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func newPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), pgtest.NewDatabase(t, &cluster))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// The upgrades run in order, each one version up, ending at SchemaVersion,
// and version 1 is still exactly what the releases before it ran.
func TestUpgradesAreNumberedAndV1IsTheRelease(t *testing.T) {
	for i, u := range upgrades {
		if u.to != i+1 {
			t.Errorf("upgrade %d leads to version %d, want %d", i, u.to, i+1)
		}
	}
	if last := upgrades[len(upgrades)-1].to; last != SchemaVersion {
		t.Errorf("the last upgrade leads to version %d, SchemaVersion is %d", last, SchemaVersion)
	}
	want := releaseV1(t)
	if len(want) != len(upgrades[0].stmts) {
		t.Fatalf("version 1 has %d statements, the release ran %d", len(upgrades[0].stmts), len(want))
	}
	for i, s := range upgrades[0].stmts {
		if s != want[i] {
			t.Errorf("version 1 statement %d differs from the release's:\n%s\nwant\n%s", i, s, want[i])
		}
	}
}

// stateLayout lists the columns, constraints and indexes of the state
// tables, so that two databases' layouts compare as text.
func stateLayout(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `
		SELECT format('%s.%s %s%s%s default %s', c.relname, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod),
		              CASE WHEN a.attnotnull THEN ' not null' ELSE '' END, CASE WHEN a.attidentity <> '' THEN ' identity ' || a.attidentity::text ELSE '' END,
		              coalesce(pg_catalog.pg_get_expr(d.adbin, d.adrelid), '-'))
		FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
		LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
		WHERE n.nspname = 'pgcapacity' AND c.relkind = 'r'
		UNION ALL
		SELECT format('%s constraint %s %s', c.relname, k.conname, pg_catalog.pg_get_constraintdef(k.oid))
		FROM pg_catalog.pg_constraint k JOIN pg_catalog.pg_class c ON c.oid = k.conrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'pgcapacity'
		UNION ALL
		SELECT pg_catalog.pg_get_indexdef(i.indexrelid)
		FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'pgcapacity'
		ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func versionRow(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	v, _, err := schemaVersion(context.Background(), pool)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// Today's schema, with a migration recorded mid-copy, upgrades to the
// layout a fresh start creates, keeping every row.
func TestUpgradeFromReleaseMatchesFreshSchema(t *testing.T) {
	ctx := context.Background()
	fresh, old := newPool(t), newPool(t)
	if err := Ensure(ctx, fresh); err != nil {
		t.Fatal(err)
	}
	createReleaseV1(t, old)
	if v := versionRow(t, old); v != 1 {
		t.Fatalf("the release's schema reads as version %d, want 1", v)
	}
	// What a release's start records before and during the copy.
	for _, s := range []string{
		`INSERT INTO pgcapacity.migration (schema_name, table_name, original_oid, new_oid, new_name, retained_name, from_partitions, to_partitions, key_columns, phase, reason, requester, approver, estimated_rows, copy_started_at)
		 VALUES ('public', 'session', 16400, 16500, 'n1_session', 'o1_session', 4, 8, '{tenant_id}', 'copying', 'r', 'alice', 'bob', 2000, now())`,
		`INSERT INTO pgcapacity.copy_progress (migration_id, source_oid, source_name, total_blocks, next_block, copied_rows) VALUES (1, 16401, 'session_p0', 10, 4, 200), (1, 16402, 'session_p1', 10, 10, 500)`,
		`INSERT INTO pgcapacity.migration_event (migration_id, event, detail) VALUES (1, 'start', '4 -> 8')`,
	} {
		if _, err := old.Exec(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if err := Upgrade(ctx, old); err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	if v := versionRow(t, old); v != SchemaVersion {
		t.Errorf("after the upgrade: version %d, want %d", v, SchemaVersion)
	}
	a, b := stateLayout(t, fresh), stateLayout(t, old)
	if strings.Join(a, "\n") != strings.Join(b, "\n") {
		t.Errorf("the upgraded layout differs from a fresh one:\nfresh:\n%s\nupgraded:\n%s", strings.Join(a, "\n"), strings.Join(b, "\n"))
	}
	m, err := Load(ctx, old, 1)
	if err != nil {
		t.Fatal(err)
	}
	copied, done, total, err := CopyTotals(ctx, old, 1)
	if err != nil || m.Phase != PhaseCopying || copied != 700 || done != 14 || total != 20 {
		t.Errorf("after the upgrade: phase %s, copied %d, blocks %d/%d (%v); want copying, 700, 14/20", m.Phase, copied, done, total, err)
	}
	// A second run changes nothing.
	if err := Upgrade(ctx, old); err != nil {
		t.Fatal(err)
	}
}

// Upgrade creates nothing where no migration was ever started (bad input
// to resume or swap changes nothing); Ensure creates the current layout.
func TestUpgradeWithoutStateCreatesNothing(t *testing.T) {
	ctx := context.Background()
	pool := newPool(t)
	if err := Upgrade(ctx, pool); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_catalog.pg_namespace WHERE nspname = 'pgcapacity'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("Upgrade without a state: %d pgcapacity schemas (%v), want none", n, err)
	}
	if err := Ensure(ctx, pool); err != nil {
		t.Fatal(err)
	}
	if v := versionRow(t, pool); v != SchemaVersion {
		t.Errorf("fresh state at version %d, want %d", v, SchemaVersion)
	}
}

// A state written by a newer pgcapacity is refused by every entry, naming
// both versions and the fix, and is left as it was.
func TestNewerStateRefused(t *testing.T) {
	ctx := context.Background()
	pool := newPool(t)
	if err := Ensure(ctx, pool); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE pgcapacity.schema_version SET version = $1, release = '9.9.9'`, SchemaVersion+1); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		run  func() error
	}{
		{"Ensure", func() error { return Ensure(ctx, pool) }},
		{"Upgrade", func() error { return Upgrade(ctx, pool) }},
		{"CheckReadable", func() error { return CheckReadable(ctx, pool) }},
	} {
		err := tc.run()
		var newer *NewerError
		if !errors.As(err, &newer) {
			t.Errorf("%s: %v, want a NewerError", tc.name, err)
			continue
		}
		for _, want := range []string{"schema version 3 (written by pgcapacity 9.9.9)", "schema version 2)", "upgrade pgcapacity to 9.9.9 or newer"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: %q lacks %q", tc.name, err, want)
			}
		}
	}
	if v := versionRow(t, pool); v != SchemaVersion+1 {
		t.Errorf("the refused state is at version %d now, want %d", v, SchemaVersion+1)
	}
}

// Processes starting at once on today's schema upgrade it once: the
// others wait for the lock and find it current.
func TestConcurrentUpgrades(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t, &cluster)
	pools := make([]*pgxpool.Pool, 6)
	for i := range pools {
		p, err := pgxpool.New(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		pools[i] = p
	}
	createReleaseV1(t, pools[0])
	var wg sync.WaitGroup
	errs := make([]error, len(pools))
	start := make(chan struct{})
	for i, p := range pools {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if i%2 == 0 {
				errs[i] = Upgrade(ctx, p)
			} else {
				errs[i] = Ensure(ctx, p)
			}
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("process %d: %v", i, err)
		}
	}
	var rows int
	if err := pools[0].QueryRow(ctx, `SELECT count(*) FROM pgcapacity.schema_version WHERE version = $1`, SchemaVersion).Scan(&rows); err != nil || rows != 1 {
		t.Errorf("%d version rows at %d (%v), want 1", rows, SchemaVersion, err)
	}
}
