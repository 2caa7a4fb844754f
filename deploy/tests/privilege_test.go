package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sigid/pgcapacity/collector/adminops"
	"github.com/sigid/pgcapacity/internal/config"
	"github.com/sigid/pgcapacity/internal/dbpool"
	"github.com/sigid/pgcapacity/internal/playbook"
	"github.com/sigid/pgcapacity/internal/sigid"
	"github.com/sigid/pgcapacity/internal/testutil"
	"github.com/sigid/pgcapacity/internal/throwaway/pgtest"
	"github.com/sigid/pgcapacity/migrate"
)

// Passwords the compose stack's 30-roles.sh sets; quotes and a semicolon
// show they stay values.
const (
	monitoringPassword = `mon'itor; DROP ROLE pgcapacity; --`
	migratePassword    = `mi"grate$$'`
)

// stack is a database initialized like the compose stack's PostgreSQL.
type stack struct {
	name     string // database
	superURL string
	initLog  string // what the init scripts printed
}

// roleURL is the stack's database as role user.
func (s stack) roleURL(t *testing.T, user, password string) string {
	t.Helper()
	u, err := url.Parse(s.superURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(user, password)
	return u.String()
}

func (s stack) monitoringURL(t *testing.T) string {
	return s.roleURL(t, "pgcapacity", monitoringPassword)
}

func psqlBinary(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("psql")
	if err != nil {
		t.Fatal("the deploy tests run deploy/sql and deploy/compose/initdb with psql, as the postgres image does: install it with `apt-get install postgresql-client` (or `make deps`)")
	}
	return p
}

// psqlFile runs a SQL file the way the postgres image's entrypoint does.
func psqlFile(t *testing.T, superURL, file string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(context.Background(), psqlBinary(t), "-v", "ON_ERROR_STOP=1", "--no-psqlrc", "--no-password", "--dbname", superURL, "-f", file)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func dbName(t *testing.T, dbURL string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(u.Path, "/")
}

// composeDatabase creates a database and runs deploy/compose/initdb in it
// as the postgres image's entrypoint does: *.sql through psql, executable
// *.sh with the service's environment, in name order.
func composeDatabase(t *testing.T) stack {
	t.Helper()
	s := stack{superURL: pgtest.NewDatabase(t, &cluster)}
	s.name = dbName(t, s.superURL)
	files, err := filepath.Glob("compose/initdb/*")
	if err != nil || len(files) == 0 {
		t.Fatalf("no init scripts in compose/initdb: %v", err)
	}
	slices.Sort(files)
	sqlDir, err := filepath.Abs("sql")
	if err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	for _, f := range files {
		var out string
		var err error
		switch filepath.Ext(f) {
		case ".sql":
			out, err = psqlFile(t, s.superURL, f)
		case ".sh":
			st, statErr := os.Stat(f)
			if statErr != nil || st.Mode()&0o111 == 0 {
				t.Fatalf("%s is not executable: the postgres image would source it instead of running it (chmod +x)", f)
			}
			cmd := exec.CommandContext(context.Background(), f)
			cmd.Env = append(os.Environ(),
				"PGHOST=127.0.0.1", "PGPORT="+strconv.Itoa(cluster.Get(t).Port()),
				"POSTGRES_USER=postgres", "POSTGRES_DB="+s.name,
				"PGCAPACITY_PASSWORD="+monitoringPassword, "PGCAPACITY_MIGRATE_PASSWORD="+migratePassword,
				"PGCAPACITY_SQL_DIR="+sqlDir)
			var b []byte
			b, err = cmd.CombinedOutput()
			out = string(b)
		default:
			t.Fatalf("%s: the postgres image runs only *.sql, *.sql.gz and *.sh", f)
		}
		log.WriteString(out)
		if err != nil {
			t.Fatalf("%s: %v\n%s", f, err, out)
		}
	}
	s.initLog = log.String()
	return s
}

func connect(t *testing.T, dbURL string) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(ctx) })
	return conn
}

// visibleStatsPartitions counts, per hot table, the leaf partitions whose
// tenant_id statistics the connected role can read in pg_stats (the
// probes sample tenants there).
func visibleStatsPartitions(t *testing.T, conn *pgx.Conn, table string) (visible, leaves int) {
	t.Helper()
	err := conn.QueryRow(context.Background(), `
SELECT count(s.tablename), count(*)
FROM pg_partition_tree($1::regclass) p
JOIN pg_class c ON c.oid = p.relid
LEFT JOIN pg_stats s ON s.schemaname = 'public' AND s.tablename = c.relname AND s.attname = 'tenant_id' AND NOT s.inherited
WHERE p.isleaf`, table).Scan(&visible, &leaves)
	if err != nil {
		t.Fatal(err)
	}
	return visible, leaves
}

func get(addr, path string) (int, string, error) {
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// samples maps each series of a family (labels rendered) to its value.
func samples(fams map[string]*dto.MetricFamily, name string) map[string]float64 {
	out := map[string]float64{}
	f := fams[name]
	if f == nil {
		return out
	}
	for _, m := range f.GetMetric() {
		var labels []string
		for _, l := range m.GetLabel() {
			labels = append(labels, l.GetName()+"="+l.GetValue())
		}
		var v float64
		switch {
		case m.Gauge != nil:
			v = m.GetGauge().GetValue()
		case m.Counter != nil:
			v = m.GetCounter().GetValue()
		case m.Untyped != nil:
			v = m.GetUntyped().GetValue()
		}
		out[strings.Join(labels, ",")] = v
	}
	return out
}

// pgcapacityEnv is the environment of a pgcapacity process: this one's
// without any PGCAPACITY_* setting, plus vars.
func pgcapacityEnv(vars ...string) []string {
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, config.Prefix+"_") {
			env = append(env, e)
		}
	}
	return append(env, vars...)
}

// TestServeAsMonitoringRole: on the compose stack's database, the binary
// the Dockerfile builds runs `check` and `serve` as the monitoring role of
// deploy/sql, and every collector succeeds: statistics, sizes, migrations,
// the latency probes on every partition, pg_stat_statements and the
// admin-ops checks, each finding what the seed data plants.
func TestServeAsMonitoringRole(t *testing.T) {
	st := composeDatabase(t)
	img := imageBinaries(t)
	ctx := context.Background()
	monURL := st.monitoringURL(t)
	super := connect(t, st.superURL)

	// 30-roles.sh set both passwords, quotes and all.
	var withPassword int
	if err := super.QueryRow(ctx, `SELECT count(*) FROM pg_authid WHERE rolname IN ('pgcapacity', 'pgcapacity_migrate') AND rolpassword IS NOT NULL`).Scan(&withPassword); err != nil {
		t.Fatal(err)
	}
	if withPassword != 2 {
		t.Errorf("%d of the 2 roles have a password after 30-roles.sh", withPassword)
	}

	// The probes pick tenants from pg_stats, which shows a partition only to
	// roles that may read it: the role sees every partition's statistics.
	mon := connect(t, monURL)
	for _, table := range sigid.HashTables() {
		if visible, leaves := visibleStatsPartitions(t, mon, table); visible != leaves || leaves != sigid.DefaultPartitions {
			t.Errorf("the monitoring role sees tenant statistics of %d of %s's %d partitions", visible, table, leaves)
		}
	}

	// check: the seed data is skewed enough for the skew rule.
	cmd := exec.CommandContext(ctx, img.pgcapacity, "check", "--json")
	cmd.Env = pgcapacityEnv("PGCAPACITY_DATABASE_URL=" + monURL)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("check as the monitoring role: want exit 1 (a rule holds), got %v\n%s\n%s", err, stderr.String(), out)
	}
	var report struct {
		Capacity playbook.Report `json:"capacity"`
	}
	if err := json.Unmarshal(out, &report); err != nil {
		t.Fatalf("check --json: %v\n%s", err, out)
	}
	if len(report.Capacity.Tables) != len(sigid.HashTables()) {
		t.Errorf("check reports %d tables, want the %d SigID hash-partitioned tables", len(report.Capacity.Tables), len(sigid.HashTables()))
	}
	skewed := false
	for _, f := range report.Capacity.Findings {
		if f.Rule == playbook.RuleSkew && f.Table == "session" && f.Holds {
			skewed = true
		}
	}
	if !skewed {
		t.Errorf("the seed data should make %s hold for session: %+v", playbook.RuleSkew, report.Capacity.Findings)
	}

	// serve: every collector succeeds, round after round.
	addr := testutil.FreeAddress(t)
	serve := exec.CommandContext(ctx, img.pgcapacity, "serve")
	serve.Env = pgcapacityEnv(
		"PGCAPACITY_DATABASE_URL="+monURL,
		"PGCAPACITY_LISTEN_ADDRESS="+addr,
		"PGCAPACITY_STATS_INTERVAL=1s", "PGCAPACITY_SIZES_INTERVAL=1s", "PGCAPACITY_PROBE_INTERVAL=1s",
		"PGCAPACITY_STATEMENTS_INTERVAL=1s", "PGCAPACITY_ADMINOPS_INTERVAL=1s", "PGCAPACITY_MIGRATIONS_INTERVAL=1s",
		"PGCAPACITY_LOG_LEVEL=debug")
	var logs testutil.LockedBuffer // serve writes while the test reads
	serve.Stdout, serve.Stderr = &logs, &logs
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- serve.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			_ = serve.Process.Kill()
			<-exited
		}
	}()
	deadline := time.Now().Add(90 * time.Second)
	for {
		code, _, err := get(addr, "/readyz")
		if err == nil && code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve as the monitoring role was not ready in 90s (last: %d %v)\n%s", code, err, logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(3 * time.Second) // a few more rounds of every 1s collector
	_, body, err := get(addr, "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	if up := samples(fams, "pgcapacity_up")[""]; up != 1 {
		t.Errorf("pgcapacity_up %v as the monitoring role", up)
	}
	success := samples(fams, "pgcapacity_collector_success")
	for _, c := range []string{"stats", "sizes", "migrations", "probes", "statements", "adminops"} {
		if _, ok := success["collector="+c]; !ok {
			t.Errorf("serve runs no %s collector (pgcapacity_collector_success: %v)", c, success)
		}
	}
	for series, v := range success {
		if v != 1 {
			t.Errorf("pgcapacity_collector_success{%s} = %v as the monitoring role", series, v)
		}
	}
	if v := samples(fams, "pgcapacity_statements_available")[""]; v != 1 {
		t.Errorf("pgcapacity_statements_available %v: the role cannot read pg_stat_statements", v)
	}
	sampled := samples(fams, "pgcapacity_probe_tenants_sampled")
	for _, table := range []string{"session", "tenant_membership", "tenant_subject_identifier", "referral"} {
		if n := sampled["schema=public,table="+table]; n < float64(sigid.DefaultPartitions) {
			t.Errorf("the probes sampled %v tenants of %s: want at least one per partition (%d)", n, table, sigid.DefaultPartitions)
		}
	}
	for series, v := range samples(fams, "pgcapacity_probe_errors_total") {
		if v != 0 {
			t.Errorf("pgcapacity_probe_errors_total{%s} = %v", series, v)
		}
	}
	findings := samples(fams, "pgcapacity_adminops_findings")
	for _, check := range adminops.CheckNames() {
		if findings["check="+check] < 1 {
			t.Errorf("admin-ops check %s finds nothing in the seed data (findings %v)", check, findings)
		}
	}
	if strings.Contains(logs.String(), "permission denied") {
		t.Errorf("serve logged a permission error as the monitoring role:\n%s", logs.String())
	}

	// The image's HEALTHCHECK binary against this exporter.
	hc := exec.CommandContext(ctx, img.healthcheck)
	hc.Env = pgcapacityEnv("PGCAPACITY_LISTEN_ADDRESS=" + addr)
	if out, err := hc.CombinedOutput(); err != nil {
		t.Errorf("healthcheck against a running exporter: %v\n%s", err, out)
	}

	_ = serve.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			t.Errorf("serve after SIGTERM: %v\n%s", err, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Error("serve did not stop within 30s of SIGTERM")
	}
}

// sqlstate is the SQLSTATE of err, or "" for none.
func sqlstate(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	if err != nil {
		return "not a PostgreSQL error: " + err.Error()
	}
	return ""
}

const (
	insufficientPrivilege   = "42501"
	readOnlySQLTransaction  = "25006"
	superuserBackendPIDStmt = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'postgres' AND backend_type = 'client backend' LIMIT 1"
)

// TestMonitoringRoleCannotWrite: the monitoring role reads in read-only
// transactions by default, and with that switched off still cannot write
// a row, change a table, take another role's rights or touch the server.
func TestMonitoringRoleCannotWrite(t *testing.T) {
	st := composeDatabase(t)
	ctx := context.Background()
	super := connect(t, st.superURL)
	mon := connect(t, st.monitoringURL(t))

	var attrs string
	if err := super.QueryRow(ctx, `
SELECT format('super=%s createrole=%s createdb=%s replication=%s bypassrls=%s limit=%s member_of=%s',
       rolsuper::text, rolcreaterole::text, rolcreatedb::text, rolreplication::text, rolbypassrls::text, rolconnlimit,
       (SELECT string_agg(b.rolname, ',' ORDER BY b.rolname) FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid WHERE m.member = r.oid))
FROM pg_roles r WHERE rolname = 'pgcapacity'`).Scan(&attrs); err != nil {
		t.Fatal(err)
	}
	if want := "super=false createrole=false createdb=false replication=false bypassrls=false limit=5 member_of=pg_monitor"; attrs != want {
		t.Errorf("role pgcapacity: %s\nwant %s", attrs, want)
	}

	// By default every transaction is read-only.
	_, err := mon.Exec(ctx, `INSERT INTO tenant (tenant_id, name) VALUES (gen_random_uuid(), 'x')`)
	if got := sqlstate(err); got != readOnlySQLTransaction && got != insufficientPrivilege {
		t.Errorf("INSERT in the default read-only transaction: SQLSTATE %q, want %s or %s", got, readOnlySQLTransaction, insufficientPrivilege)
	}
	// A role may switch that off; privileges still stop every write.
	if _, err := mon.Exec(ctx, `SET default_transaction_read_only = off`); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ what, sql string }{
		{"insert a tenant", `INSERT INTO tenant (tenant_id, name) VALUES (gen_random_uuid(), 'x')`},
		{"insert into a partition", `INSERT INTO session_p0 (tenant_id, session_id, user_id, expires_at) VALUES (gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), now())`},
		{"update memberships", `UPDATE tenant_membership SET role = 'owner'`},
		{"delete sessions", `DELETE FROM session`},
		{"delete from a partition", `DELETE FROM session_p3`},
		{"truncate invitations", `TRUNCATE invitation`},
		{"insert an access review", `INSERT INTO access_review (tenant_id, user_id, reviewer_user_id, outcome) SELECT tenant_id, tenant_id, tenant_id, 'approved' FROM tenant LIMIT 1`},
		{"advance a sequence", `SELECT nextval('tenant_membership_membership_id_seq')`},
		{"create a table in the SigID schema", `CREATE TABLE public.pgcapacity_was_here (id int)`},
		{"create a table in the migrate schema", `CREATE TABLE pgcapacity.pgcapacity_was_here (id int)`},
		{"create a schema", `CREATE SCHEMA pgcapacity_was_here`},
		{"create an index", `CREATE INDEX ON tenant (name)`},
		{"alter a table", `ALTER TABLE session ADD COLUMN pgcapacity_was_here int`},
		{"drop a table", `DROP TABLE invitation`},
		{"become the owner", `SET ROLE sigid_owner`},
		{"become the superuser", `SET ROLE postgres`},
		{"create a role", `CREATE ROLE pgcapacity_was_here`},
		{"make itself superuser", `ALTER ROLE pgcapacity SUPERUSER`},
		{"reset pg_stat_statements", `SELECT pg_stat_statements_reset()`},
		{"end another role's session", superuserBackendPIDStmt},
		{"change the server configuration", `ALTER SYSTEM SET work_mem = '1MB'`},
		{"write a server file", `COPY tenant TO '/tmp/pgcapacity_was_here'`},
	}
	for _, tc := range cases {
		t.Run(tc.what, func(t *testing.T) {
			_, err := mon.Exec(ctx, tc.sql)
			if got := sqlstate(err); got != insufficientPrivilege {
				t.Errorf("%s: SQLSTATE %q (%v), want %s insufficient_privilege", tc.sql, got, err, insufficientPrivilege)
			}
		})
	}
	// Nothing changed.
	var sessions, tenants int
	if err := super.QueryRow(ctx, `SELECT (SELECT count(*) FROM session), (SELECT count(*) FROM tenant)`).Scan(&sessions, &tenants); err != nil {
		t.Fatal(err)
	}
	if sessions == 0 || tenants != 400 {
		t.Errorf("after the attempts: %d sessions, %d tenants", sessions, tenants)
	}
}

// TestMigrateRole: the role of deploy/sql/migrate-role.sql carries a whole
// repartition (start, validate, swap, drop-old) without superuser; the
// monitoring role reads its progress; rerunning monitoring-role.sql after
// the swap lets the probes see the new partitions. PostgreSQL 13 is refused
// (block-range copy needs TID range scans, 14+).
func TestMigrateRole(t *testing.T) {
	st := composeDatabase(t)
	ctx := context.Background()
	const table = "tenant_subject_identifier"
	const to = 2 * sigid.DefaultPartitions
	pool, err := migrate.NewPool(ctx, st.roleURL(t, "pgcapacity_migrate", migratePassword), 4)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	cfg, err := config.Load()
	if err != nil {
		t.Fatal(err)
	}
	m := migrate.New(pool, slog.New(slog.NewTextHandler(io.Discard, nil)))
	copts := migrate.CopyOptions{BatchSize: 500}
	id, err := m.Start(ctx, migrate.StartRequest{
		PlanRequest: migrate.PlanRequest{Schema: "public", Table: table, Partitions: to, Thresholds: cfg.Thresholds, TenantColumn: cfg.TenantColumn},
		Reason:      "deploy test: the migrate role", Requester: "alice", Approver: "bob", Copy: copts,
	})
	if cluster.Get(t).Major() < 14 {
		if err == nil || !strings.Contains(err.Error(), "PostgreSQL 14 or newer") {
			t.Fatalf("PostgreSQL %d: want the migration refused (needs 14), got %v", cluster.Get(t).Major(), err)
		}
		return
	}
	if err != nil {
		t.Fatalf("start as pgcapacity_migrate: %v", err)
	}
	if v, err := m.Validate(ctx, id, copts); err != nil || !v.OK {
		t.Fatalf("validate as pgcapacity_migrate: %+v, %v", v, err)
	}
	if _, err := m.Swap(ctx, id, migrate.SwapOptions{NowReason: "deploy test"}); err != nil {
		t.Fatalf("swap as pgcapacity_migrate: %v", err)
	}

	super := connect(t, st.superURL)
	var parts int
	var owner string
	if err := super.QueryRow(ctx, `SELECT (SELECT count(*) FROM pg_inherits WHERE inhparent = c.oid), pg_get_userbyid(c.relowner) FROM pg_class c WHERE c.oid = $1::regclass`, table).Scan(&parts, &owner); err != nil {
		t.Fatal(err)
	}
	if parts != to || owner != "sigid_owner" {
		t.Errorf("after the swap %s has %d partitions owned by %s, want %d owned by sigid_owner", table, parts, owner, to)
	}

	// The monitoring role reads the migration's state (default privileges
	// on the pgcapacity schema) and the new table (grants carried over).
	monPool := monitoringPool(t, st)
	ms, err := migrate.NewCollector(time.Second).Collect(ctx, monPool)
	if err != nil || len(ms) == 0 {
		t.Errorf("the migrations collector as the monitoring role: %d metrics, %v", len(ms), err)
	}
	mon := connect(t, st.monitoringURL(t))
	var rows int
	if err := mon.QueryRow(ctx, fmt.Sprintf(`SELECT count(*) FROM %s`, pgx.Identifier{table}.Sanitize())).Scan(&rows); err != nil || rows == 0 {
		t.Errorf("the monitoring role reads %d rows of the new %s: %v", rows, table, err)
	}
	// The swap carries the partitions' grants: the new partitions'
	// statistics are visible without rerunning monitoring-role.sql, and a
	// rerun changes nothing.
	if _, err := super.Exec(ctx, "ANALYZE "+pgx.Identifier{table}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	if visible, leaves := visibleStatsPartitions(t, mon, table); visible != leaves || leaves != to {
		t.Errorf("after the swap the role sees statistics of %d of %d new partitions (want %d): the swap did not carry the partitions' grants", visible, leaves, to)
	}
	if out, err := psqlFile(t, st.superURL, "sql/monitoring-role.sql"); err != nil {
		t.Fatalf("rerunning monitoring-role.sql: %v\n%s", err, out)
	}
	if visible, leaves := visibleStatsPartitions(t, mon, table); visible != leaves || leaves != to {
		t.Errorf("after rerunning monitoring-role.sql the role sees statistics of %d of %d partitions", visible, leaves)
	}

	// The rollback period over, the migrate role drops the old table.
	if err := m.DropOld(ctx, id, 0, copts); err != nil {
		t.Errorf("drop-old as pgcapacity_migrate: %v", err)
	}
	var left int
	if err := super.QueryRow(ctx, `SELECT count(*) FROM pg_class WHERE relkind = 'p' AND relnamespace = 'public'::regnamespace`).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != len(sigid.HashTables()) {
		t.Errorf("%d partitioned tables after drop-old, want %d", left, len(sigid.HashTables()))
	}
	// Owner rights, nothing beyond them.
	mig := connect(t, st.roleURL(t, "pgcapacity_migrate", migratePassword))
	for _, sql := range []string{`CREATE ROLE pgcapacity_was_here`, `SET ROLE postgres`, `ALTER SYSTEM SET work_mem = '1MB'`} {
		if _, err := mig.Exec(ctx, sql); sqlstate(err) != insufficientPrivilege {
			t.Errorf("pgcapacity_migrate: %s: %v, want insufficient_privilege", sql, err)
		}
	}
}

func monitoringPool(t *testing.T, st stack) *pgxpool.Pool {
	t.Helper()
	cfg, err := dbpool.Config(st.monitoringURL(t), dbpool.Options{StatementTimeout: 10 * time.Second, LockTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// TestRoleScriptsRefuseBadSetups: deploy/sql names the problem and the fix
// instead of granting something wrong.
func TestRoleScriptsRefuseBadSetups(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name   string
		setup  []string // as the superuser, in a fresh database
		file   string
		fails  bool
		output []string
	}{
		{
			name:   "monitoring role without SigID tables",
			file:   "sql/monitoring-role.sql",
			fails:  true,
			output: []string{"none of the SigID tables", "HINT:  connect to the SigID database and SET search_path TO its schema"},
		},
		{
			name:   "migrate role without SigID tables",
			file:   "sql/migrate-role.sql",
			fails:  true,
			output: []string{"none of the SigID tables"},
		},
		{
			name:   "migrate role on tables a superuser owns",
			setup:  []string{"sigid"},
			file:   "sql/migrate-role.sql",
			fails:  true,
			output: []string{"is owned by superuser postgres", "HINT:  give the SigID tables a non-superuser owner"},
		},
		{
			name:   "migrate role when the owner cannot create in the schema",
			setup:  []string{"sigid", "CREATE ROLE sigid_owner_no_create NOLOGIN", `DO $$DECLARE r record; BEGIN FOR r IN SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p') LOOP EXECUTE format('ALTER TABLE %I OWNER TO sigid_owner_no_create', r.relname); END LOOP; END$$`, "REVOKE CREATE ON SCHEMA public FROM PUBLIC"},
			file:   "sql/migrate-role.sql",
			fails:  true,
			output: []string{"cannot create tables in schema public", "HINT:  GRANT CREATE ON SCHEMA public TO sigid_owner_no_create"},
		},
		{
			name:   "monitoring role where anyone may create tables",
			setup:  []string{"sigid", "GRANT CREATE ON SCHEMA public TO PUBLIC"},
			file:   "sql/monitoring-role.sql",
			output: []string{"WARNING:  every role may create tables in schema public, pgcapacity too", "HINT:  REVOKE CREATE ON SCHEMA public FROM PUBLIC"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dbURL := pgtest.NewDatabase(t, &cluster)
			conn := connect(t, dbURL)
			for _, s := range tc.setup {
				if s == "sigid" {
					if err := sigid.Apply(ctx, conn, sigid.SchemaOptions{Partitions: map[string]int{"session": 2, "tenant_membership": 2, "tenant_subject_identifier": 2, "referral": 2, "referral_redemption": 2}}); err != nil {
						t.Fatal(err)
					}
					continue
				}
				if _, err := conn.Exec(ctx, s); err != nil {
					t.Fatalf("%s: %v", s, err)
				}
			}
			out, err := psqlFile(t, dbURL, tc.file)
			if tc.fails != (err != nil) {
				t.Errorf("%s: error %v, want failure %v\n%s", tc.file, err, tc.fails, out)
			}
			for _, want := range tc.output {
				if !strings.Contains(out, want) {
					t.Errorf("%s does not say %q:\n%s", tc.file, want, out)
				}
			}
		})
	}
}
