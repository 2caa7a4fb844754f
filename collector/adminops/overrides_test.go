package adminops_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"maps"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sigid/pgcapacity/collector/adminops"
	"github.com/sigid/pgcapacity/internal/config"
)

func TestOverrideReplacesOneCheck(t *testing.T) {
	e := newEnv(t, true)
	e.load(crafted)
	// The operator keeps MFA state elsewhere: a table keyed by a numeric
	// tenant reference, so the query returns an integer tenant and a
	// numeric sum; both are accepted.
	e.exec("CREATE TABLE ops_admins (tenant_ref bigint, login text, mfa boolean)")
	e.exec("INSERT INTO ops_admins VALUES (7, 'x', false), (7, 'y', false), (7, 'z', true), (9, 'w', false), (11, 'v', true)")
	path := writeFile(t, `# MFA lives in ops_admins here.
checks:
  admins_without_mfa:
    query: |
      SELECT tenant_ref AS tenant, sum(CASE WHEN mfa THEN 0 ELSE 1 END::bigint) AS findings
      FROM ops_admins
      GROUP BY tenant_ref
`)
	c := newCollector(t, path, 100)
	for _, chk := range c.Checks() {
		wantSource := adminops.SourceDefault
		if chk.Name == adminops.AdminsWithoutMFA {
			wantSource = path
		}
		if chk.Source != wantSource || chk.Disabled {
			t.Errorf("check %s: source %q disabled %v, want source %q", chk.Name, chk.Source, chk.Disabled, wantSource)
		}
	}
	if err := c.Validate(e.ctx, e.pool); err != nil {
		t.Fatal(err)
	}
	res, err := c.Run(e.ctx, e.pool)
	if err != nil {
		t.Fatal(err)
	}
	mfa := checkResult(t, res, adminops.AdminsWithoutMFA)
	if got, want := tenantMap(mfa), map[string]int64{"7": 2, "9": 1}; !maps.Equal(got, want) {
		t.Errorf("overridden check: per tenant %v, want %v", got, want)
	}
	if mfa.Findings != 3 || mfa.TenantsAffected != 2 || mfa.Source != path {
		t.Errorf("overridden check: findings %d tenants %d source %q; want 3, 2, %q", mfa.Findings, mfa.TenantsAffected, mfa.Source, path)
	}
	// The other three still run their defaults.
	for _, check := range []string{adminops.StaleInvitations, adminops.UnreviewedAdmins, adminops.TenantsBelowTwoAdmins} {
		if got := byTenant(checkResult(t, res, check), crafted); !maps.Equal(got, craftedWant[check]) {
			t.Errorf("%s: per tenant %v, want the default's %v", check, got, craftedWant[check])
		}
	}
}

func TestOverrideDisablesACheckAndBindsParameters(t *testing.T) {
	e := newEnv(t, true)
	e.load(crafted)
	// A uuid tenant without a cast, and the named parameters in a comment
	// and a string literal, which are not parameters.
	path := writeFile(t, `checks:
  stale_invitations:
    disabled: true
  unreviewed_admins:
    query: |
      -- like the default, but ignoring role grants: @not_a_parameter
      SELECT m.tenant_id AS tenant, count(*) AS findings
      FROM tenant_membership m
      WHERE m.role IN ('owner', 'admin') AND m.role <> '@member' AND m.status = 'active'
        AND NOT EXISTS (SELECT FROM access_review r WHERE r.tenant_id = m.tenant_id AND r.user_id = m.user_id
                        AND r.reviewed_at >= @now::timestamptz - @review_interval::interval)
      GROUP BY m.tenant_id
`)
	c := newCollector(t, path, 100)
	if err := c.Validate(e.ctx, e.pool); err != nil {
		t.Fatal(err)
	}
	res, err := c.Run(e.ctx, e.pool)
	if err != nil {
		t.Fatal(err)
	}
	stale := checkResult(t, res, adminops.StaleInvitations)
	if !stale.Disabled || stale.Findings != 0 || len(stale.Tenants) != 0 {
		t.Errorf("disabled check: %+v, want disabled with no findings", stale)
	}
	// Every active owner or admin without a review in 90 days, grants ignored.
	// (delta's administrator was reviewed a day ago.)
	want := map[string]int64{"alpha": 4, "bravo": 1, "echo": 2, "foxtrot": 1, "golf": 2}
	if got := byTenant(checkResult(t, res, adminops.UnreviewedAdmins), crafted); !maps.Equal(got, want) {
		t.Errorf("unreviewed_admins override: per tenant %v, want %v", got, want)
	}
}

func tenantMap(cr adminops.CheckResult) map[string]int64 {
	m := map[string]int64{}
	for _, t := range cr.Tenants {
		m[t.Tenant] = t.Findings
	}
	return m
}

// Files refused before any database is involved: each message names the
// check (or the file) and says what to do.
func TestOverrideFileRefusedAtLoad(t *testing.T) {
	cases := []struct {
		name    string
		content string
		want    []string
	}{
		{"unknown check", "checks:\n  stale_invitation:\n    query: SELECT 1\n",
			[]string{"admin-ops check stale_invitation (", `is not a check: use one of stale_invitations, unreviewed_admins, admins_without_mfa, tenants_below_two_admins`}},
		{"misspelt key", "checks:\n  stale_invitations:\n    qurey: SELECT 1\n",
			[]string{"field qurey not found", "the form is", "checks:"}},
		{"no query", "checks:\n  unreviewed_admins: {}\n",
			[]string{"admin-ops check unreviewed_admins (", "has no query", "disabled: true"}},
		{"query and disabled", "checks:\n  unreviewed_admins:\n    disabled: true\n    query: SELECT 1\n",
			[]string{"admin-ops check unreviewed_admins (", "has both a query and disabled: true"}},
		{"unknown parameter", "checks:\n  stale_invitations:\n    query: SELECT tenant_id::text AS tenant, count(*) AS findings FROM invitation WHERE invited_at < @now - @stale_age GROUP BY 1\n",
			[]string{"admin-ops check stale_invitations (", "uses the parameter @stale_age, which pgcapacity does not bind", "@now, @stale_invitation_age, @review_interval, @min_admins"}},
		{"delete", "checks:\n  stale_invitations:\n    query: DELETE FROM invitation RETURNING tenant_id AS tenant, 1 AS findings\n",
			[]string{"admin-ops check stale_invitations (", `is not a SELECT (it starts with "DELETE")`, "may only read"}},
		{"delete in a CTE", "checks:\n  admins_without_mfa:\n    query: |\n      WITH gone AS (DELETE FROM tenant_membership RETURNING tenant_id)\n      SELECT tenant_id::text AS tenant, count(*) AS findings FROM gone GROUP BY 1\n",
			[]string{"admin-ops check admins_without_mfa (", "contains a DELETE", "may only read"}},
		{"two statements", "checks:\n  admins_without_mfa:\n    query: SELECT 'x' AS tenant, 1 AS findings; DROP TABLE tenant_membership\n",
			[]string{"admin-ops check admins_without_mfa (", "more than one statement"}},
		{"not YAML", "checks: [\n", []string{"admin-ops queries file", "the form is"}},
		{"a list", "- stale_invitations\n", []string{"admin-ops queries file", "cannot unmarshal"}},
		{"empty", "", []string{"overrides no check", "the form is"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, tc.content)
			_, err := adminops.LoadChecks(path)
			if err == nil {
				t.Fatal("the file was accepted")
			}
			for _, w := range append(tc.want, path) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "nope.yaml")
		_, err := adminops.LoadChecks(path)
		if err == nil || !strings.Contains(err.Error(), "PGCAPACITY_ADMINOPS_QUERIES_FILE") || !strings.Contains(err.Error(), path) {
			t.Errorf("error %v, want one naming the variable and the path", err)
		}
	})
}

// Files refused when their queries are prepared against the database.
func TestOverrideFileRefusedByValidate(t *testing.T) {
	e := newEnv(t, true)
	cases := []struct {
		name  string
		check string
		query string
		want  []string
	}{
		{"broken SQL", adminops.StaleInvitations,
			"SELECT tenant_id::text AS tenant, count(*) AS findings\nFORM invitation\nGROUP BY 1",
			[]string{`does not prepare: syntax error at or near "FORM" (line 2: "FORM invitation")`}},
		{"missing table", adminops.UnreviewedAdmins,
			"SELECT tenant_id::text AS tenant, count(*) AS findings\nFROM admins\nGROUP BY 1",
			[]string{`does not prepare: relation "admins" does not exist (line 2: "FROM admins")`}},
		{"wrong column names", adminops.AdminsWithoutMFA,
			"SELECT tenant_id::text, count(*) FROM tenant_membership GROUP BY 1",
			[]string{"returns the columns (tenant_id, count): it must return exactly (tenant, findings)"}},
		{"three columns", adminops.AdminsWithoutMFA,
			"SELECT tenant_id::text AS tenant, count(*) AS findings, max(user_id::text) AS who FROM tenant_membership GROUP BY 1",
			[]string{"returns the columns (tenant, findings, who)"}},
		{"text findings", adminops.TenantsBelowTwoAdmins,
			"SELECT tenant_id::text AS tenant, 'many' AS findings FROM tenant",
			[]string{"its findings column has type oid 25: return a whole number"}},
		{"timestamp tenant", adminops.TenantsBelowTwoAdmins,
			"SELECT created_at AS tenant, 1 AS findings FROM tenant",
			[]string{"its tenant column has type oid 1184: cast it to text"}},
		{"positional parameter", adminops.StaleInvitations,
			"SELECT tenant_id::text AS tenant, count(*) AS findings FROM invitation WHERE invited_at < $1 GROUP BY 1",
			[]string{"uses positional parameters ($1 ...): use the named parameters @now"}},
		{"parameter of the wrong type", adminops.AdminsWithoutMFA,
			"SELECT tenant_id::text AS tenant, count(*) AS findings FROM tenant_membership WHERE mfa_enabled = @review_interval GROUP BY 1",
			[]string{"uses @review_interval where PostgreSQL expects type oid 16: cast it, as in @review_interval::interval"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			content := "checks:\n  " + tc.check + ":\n    query: |\n      " + strings.ReplaceAll(tc.query, "\n", "\n      ") + "\n"
			path := writeFile(t, content)
			checks, err := adminops.LoadChecks(path)
			if err != nil {
				t.Fatalf("refused at load, before validation: %v", err)
			}
			err = validate(e.ctx, e.pool, checks)
			if err == nil {
				t.Fatal("the query was accepted")
			}
			prefix := "admin-ops check " + tc.check + " (" + path + "): "
			if !strings.HasPrefix(err.Error(), prefix) {
				t.Errorf("error %q does not start with %q", err, prefix)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// On a database without the reference schema the default queries fail with
// the fix; serve's start-up check logs them instead of refusing to start,
// while a bad override file is refused, every bad check named at once.
func TestValidateOnAnotherSchema(t *testing.T) {
	e := newEnv(t, false)
	e.exec("CREATE TABLE ops_admins (tenant_ref bigint, mfa boolean)")
	checks, err := adminops.LoadChecks("")
	if err != nil {
		t.Fatal(err)
	}
	err = validate(e.ctx, e.pool, checks)
	if err == nil {
		t.Fatal("the default queries validated without their tables")
	}
	for _, w := range []string{
		`admin-ops check stale_invitations (the default query): does not prepare: relation "invitation" does not exist`,
		`admin-ops check unreviewed_admins (the default query): does not prepare: relation "tenant_membership" does not exist`,
		`admin-ops check admins_without_mfa (the default query): does not prepare: relation "tenant_membership" does not exist`,
		`admin-ops check tenants_below_two_admins (the default query): does not prepare: relation "tenant" does not exist`,
		"override or disable this check in PGCAPACITY_ADMINOPS_QUERIES_FILE",
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}

	var logs bytes.Buffer
	cfg := testConfig(t, "")
	c, err := adminops.New(cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(e.ctx, e.pool); err != nil {
		t.Errorf("start-up validation refused the defaults: %v", err)
	}
	// Missing tables make the checks not applicable: one warning naming
	// what is missing, and rounds that succeed without running them.
	if n := strings.Count(logs.String(), "level=WARN"); n != 1 || !strings.Contains(logs.String(), `relation \"tenant\" does not exist`) || !strings.Contains(logs.String(), "PGCAPACITY_ADMINOPS_QUERIES_FILE") {
		t.Errorf("%d warnings logged, want 1 naming what is missing and the file:\n%s", n, logs.String())
	}
	if _, err := c.Collect(e.ctx, e.pool); err != nil {
		t.Errorf("a round with every check not applicable failed: %v", err)
	}
	res, err := c.Run(e.ctx, e.pool)
	if err != nil {
		t.Fatal(err)
	}
	var report strings.Builder
	if err := adminops.WriteReport(&report, res, 3); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(report.String(), "not applicable: relation"); n != 4 {
		t.Errorf("report says not applicable %d times, want 4:\n%s", n, report.String())
	}

	path := writeFile(t, `checks:
  admins_without_mfa:
    query: SELECT tenant_ref AS tenant, count(*) AS findings FROM ops_admins WHERE NOT mfa GROUP BY 1
  stale_invitations:
    query: SELECT tenant_ref AS tenant, count(*) AS n FROM ops_admins GROUP BY 1
  unreviewed_admins:
    query: SELECT tenant_ref AS tenant, count(*) AS findings FROM ops_admin GROUP BY 1
  tenants_below_two_admins:
    disabled: true
`)
	c, err = adminops.New(testConfig(t, path), nil)
	if err != nil {
		t.Fatal(err)
	}
	err = c.Validate(e.ctx, e.pool)
	var qe *adminops.QueryError
	if !errors.As(err, &qe) {
		t.Fatalf("error %v, want *QueryError", err)
	}
	for _, w := range []string{
		"admin-ops check stale_invitations (" + path + "): returns the columns (tenant, n)",
		"admin-ops check unreviewed_admins (" + path + `): does not prepare: relation "ops_admin" does not exist`,
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}
	if strings.Contains(err.Error(), "admins_without_mfa") || strings.Contains(err.Error(), "tenants_below_two_admins") {
		t.Errorf("error %q names a good or disabled check", err)
	}
}

func validate(ctx context.Context, pool *pgxpool.Pool, checks []adminops.Check) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	return adminops.Validate(ctx, conn.Conn(), checks)
}

// A check runs read-only even on a pool that would allow writes.
func TestChecksRunReadOnly(t *testing.T) {
	e := newEnv(t, true)
	e.load(crafted)
	// A SELECT that writes through a function passes the load-time check;
	// the READ ONLY transaction of the round still stops it.
	e.exec(`CREATE FUNCTION purge_memberships() RETURNS SETOF uuid LANGUAGE sql AS
		'DELETE FROM tenant_membership RETURNING tenant_id'`)
	path := writeFile(t, `checks:
  admins_without_mfa:
    query: |
      SELECT g::text AS tenant, count(*) AS findings FROM purge_memberships() AS g GROUP BY 1
`)
	c := newCollector(t, path, 100)
	pool := plainPool(t, e)
	if err := c.Validate(e.ctx, pool); err != nil {
		t.Fatal(err) // preparing does not execute
	}
	res, err := c.Run(e.ctx, pool)
	if err == nil || !strings.Contains(err.Error(), "admin-ops check admins_without_mfa") || !strings.Contains(err.Error(), "in a read-only transaction") {
		t.Fatalf("error %v, want the check refused by the read-only transaction", err)
	}
	if got := res.Failed(); len(got) != 1 || got[0] != adminops.AdminsWithoutMFA {
		t.Errorf("failed checks %v, want only admins_without_mfa", got)
	}
	var n int
	if err := e.admin.QueryRow(e.ctx, "SELECT count(*) FROM tenant_membership").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != len(crafted.members) {
		t.Errorf("%d memberships left, want all %d", n, len(crafted.members))
	}
	// The other checks' results are intact.
	if got := byTenant(checkResult(t, res, adminops.TenantsBelowTwoAdmins), crafted); !maps.Equal(got, craftedWant[adminops.TenantsBelowTwoAdmins]) {
		t.Errorf("tenants_below_two_admins beside the failed check: %v", got)
	}
}

// plainPool connects without the sampling session's read-only and timeout
// settings, to show the checks set their own.
func plainPool(t *testing.T, e *env) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(e.ctx, e.admin.Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func TestChecksHaveTimeouts(t *testing.T) {
	e := newEnv(t, true)
	e.load(crafted)
	path := writeFile(t, `checks:
  admins_without_mfa:
    query: SELECT 'slow'::text AS tenant, 1::bigint AS findings FROM pg_sleep(5)
`)
	cfg := testConfig(t, path)
	cfg.QueryTimeout = config.Duration(300 * time.Millisecond)
	cfg.LockTimeout = config.Duration(200 * time.Millisecond)
	c, err := adminops.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.SetClock(func() time.Time { return now })
	pool := plainPool(t, e)

	// A slow query hits the statement timeout.
	res, err := c.Run(e.ctx, pool)
	if err == nil || !strings.Contains(err.Error(), "canceling statement due to statement timeout") {
		t.Fatalf("error %v, want the statement timeout", err)
	}
	if d := checkResult(t, res, adminops.AdminsWithoutMFA).Duration; d >= 5*time.Second {
		t.Errorf("the slow check took %v: the timeout did not end it", d)
	}

	// A check never waits long behind DDL: lock_timeout ends it.
	tx, err := e.admin.Begin(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck
	if _, err := tx.Exec(e.ctx, "LOCK TABLE invitation IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	res, err = c.Run(e.ctx, pool)
	stale := checkResult(t, res, adminops.StaleInvitations)
	if !strings.Contains(stale.Error, "canceling statement due to lock timeout") {
		t.Errorf("stale_invitations behind an exclusive lock: error %q, want the lock timeout (run error %v)", stale.Error, err)
	}
	if got := byTenant(checkResult(t, res, adminops.TenantsBelowTwoAdmins), crafted); !maps.Equal(got, craftedWant[adminops.TenantsBelowTwoAdmins]) {
		t.Errorf("tenants_below_two_admins beside the locked table: %v", got)
	}
}

// The example file shipped beside the package loads, validates and runs.
func TestExampleQueriesFile(t *testing.T) {
	e := newEnv(t, true)
	e.load(crafted)
	e.exec("CREATE TABLE user_mfa (user_id uuid PRIMARY KEY, enrolled_at timestamptz NOT NULL)")
	for _, user := range []string{"a1", "a2", "a4", "a6", "a3"} {
		e.exec("INSERT INTO user_mfa VALUES ($1, $2)", id(user), ago(day))
	}
	path, err := filepath.Abs("example-queries.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c := newCollector(t, path, 100)
	if err := c.Validate(e.ctx, e.pool); err != nil {
		t.Fatal(err)
	}
	res, err := c.Run(e.ctx, e.pool)
	if err != nil {
		t.Fatal(err)
	}
	if !checkResult(t, res, adminops.StaleInvitations).Disabled {
		t.Error("stale_invitations is not disabled")
	}
	// a5 in alpha, b1, e1, e2, f1, g1, g2 have no enrolment row.
	want := map[string]int64{"alpha": 1, "bravo": 1, "echo": 2, "foxtrot": 1, "golf": 2}
	if got := byTenant(checkResult(t, res, adminops.AdminsWithoutMFA), crafted); !maps.Equal(got, want) {
		t.Errorf("admins_without_mfa from the example: %v, want %v", got, want)
	}
}
