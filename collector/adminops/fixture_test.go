package adminops_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sigid/pgcapacity/collector/adminops"
	"github.com/sigid/pgcapacity/internal/config"
	"github.com/sigid/pgcapacity/internal/dbpool"
	"github.com/sigid/pgcapacity/internal/sigid"
	"github.com/sigid/pgcapacity/internal/throwaway/pgtest"
)

var cluster pgtest.Cluster

func TestMain(m *testing.M) { pgtest.Main(m, &cluster) }

// now is the pinned reference time of every round in these tests.
var now = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

const day = 24 * time.Hour

// ago is a time before now; days are calendar days in UTC.
func ago(d time.Duration) time.Time { return now.Add(-d) }

// env is a fresh database with the reference schema, a writable admin
// connection for fixtures and the sampling pool serve would use.
type env struct {
	t     *testing.T
	ctx   context.Context
	admin *pgx.Conn
	pool  *pgxpool.Pool
}

func newEnv(t *testing.T, withSchema bool) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	url := pgtest.NewDatabase(t, &cluster)
	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close(context.Background()) })
	if withSchema {
		if err := sigid.Apply(ctx, admin, sigid.SchemaOptions{Partitions: map[string]int{"tenant_membership": 4}}); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := dbpool.Config(url, dbpool.Options{StatementTimeout: 10 * time.Second, LockTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return &env{t: t, ctx: ctx, admin: admin, pool: pool}
}

func (e *env) exec(sql string, args ...any) {
	e.t.Helper()
	if _, err := e.admin.Exec(e.ctx, sql, args...); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
}

// id derives a stable uuid from a fixture name, so tests speak in names.
func id(name string) string {
	h := sha256.Sum256([]byte(name))
	h[6] = h[6]&0x0f | 0x40
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

type tenant struct{ name, status string }

type member struct {
	tenant, user, role, status string
	mfa                        bool
	granted                    time.Time
}

type invitation struct {
	tenant, status string
	invited        time.Time
}

type review struct {
	tenant, user string
	reviewed     time.Time
}

type data struct {
	tenants     []tenant
	members     []member
	invitations []invitation
	reviews     []review
}

// load inserts d with bound parameters, then analyzes.
func (e *env) load(d data) {
	e.t.Helper()
	for _, t := range d.tenants {
		var deleted any
		if t.status == "deleted" {
			deleted = ago(10 * day)
		}
		e.exec("INSERT INTO tenant (tenant_id, name, status, created_at, deleted_at) VALUES ($1, $2, $3, $4, $5)",
			id(t.name), t.name, t.status, ago(1000*day), deleted)
	}
	for _, m := range d.members {
		e.exec(`INSERT INTO tenant_membership (tenant_id, user_id, role, status, mfa_enabled, role_granted_at, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $6)`, id(m.tenant), id(m.user), m.role, m.status, m.mfa, m.granted)
	}
	for i, inv := range d.invitations {
		e.exec(`INSERT INTO invitation (invitation_id, tenant_id, email, status, invited_at) VALUES ($1, $2, $3, $4, $5)`,
			id(fmt.Sprint("invitation", i)), id(inv.tenant), fmt.Sprintf("invitee%d@example.net", i), inv.status, inv.invited)
	}
	for _, r := range d.reviews {
		e.exec(`INSERT INTO access_review (tenant_id, user_id, reviewed_at, reviewer_user_id, outcome) VALUES ($1, $2, $3, $4, 'approved')`,
			id(r.tenant), id(r.user), r.reviewed, id("reviewer"))
	}
	e.exec("ANALYZE")
}

// testConfig is the configuration's defaults with the given overrides file.
func testConfig(t *testing.T, queriesFile string) config.Config {
	t.Helper()
	t.Setenv("PGCAPACITY_ADMINOPS_QUERIES_FILE", queriesFile)
	cfg, err := config.Load()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// newCollector builds a collector from the defaults, clock pinned to now.
func newCollector(t *testing.T, queriesFile string, tenantCap int) *adminops.Collector {
	t.Helper()
	cfg := testConfig(t, queriesFile)
	cfg.AdminopsTenantCap = tenantCap
	c, err := adminops.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.SetClock(func() time.Time { return now })
	return c
}

// writeFile writes content to a file in a fresh temporary directory.
func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "adminops.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// byTenant maps a check's per-tenant findings by tenant name (as in d),
// so failures read in the fixture's words.
func byTenant(cr adminops.CheckResult, d data) map[string]int64 {
	names := map[string]string{}
	for _, t := range d.tenants {
		names[id(t.name)] = t.name
	}
	m := map[string]int64{}
	for _, t := range cr.Tenants {
		name, ok := names[t.Tenant]
		if !ok {
			name = "unknown tenant " + t.Tenant
		}
		m[name] = t.Findings
	}
	return m
}

func checkResult(t *testing.T, res adminops.Result, check string) adminops.CheckResult {
	t.Helper()
	for _, cr := range res.Checks {
		if cr.Check == check {
			return cr
		}
	}
	t.Fatalf("no result for check %s in %+v", check, res)
	return adminops.CheckResult{}
}
