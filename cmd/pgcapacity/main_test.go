package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sigid/pgcapacity/internal/pgstat"
	"github.com/sigid/pgcapacity/internal/testutil"
	"github.com/sigid/pgcapacity/internal/throwaway/pgtest"
)

var cluster pgtest.Cluster

func TestMain(m *testing.M) { pgtest.Main(m, &cluster) }

// buildBinary builds pgcapacity once per test that needs a real process.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "pgcapacity")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// newDatabase creates a database with one small hash-partitioned table.
func newDatabase(t *testing.T, ddl ...string) string {
	t.Helper()
	ctx := context.Background()
	dbURL := pgtest.NewDatabase(t, &cluster)
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, stmt := range ddl {
		if strings.HasPrefix(stmt, "ANALYZE") {
			if err := pgstat.Flush(ctx, conn); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := conn.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	return dbURL
}

var balancedTable = []string{
	`CREATE TABLE session (tenant_id uuid NOT NULL, id bigint NOT NULL, PRIMARY KEY (tenant_id, id)) PARTITION BY HASH (tenant_id)`,
	`CREATE TABLE session_p0 PARTITION OF session FOR VALUES WITH (MODULUS 2, REMAINDER 0)`,
	`CREATE TABLE session_p1 PARTITION OF session FOR VALUES WITH (MODULUS 2, REMAINDER 1)`,
	`INSERT INTO session SELECT gen_random_uuid(), g FROM generate_series(1, 2000) g`,
	`ANALYZE session`,
}

// withPassword puts a password into a URL; trust authentication ignores it,
// so tests can check it never leaks.
func withPassword(t *testing.T, dbURL, password string) string {
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), password)
	return u.String()
}

func scrape(t *testing.T, addr string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// metricValue finds an unlabelled sample or one with exactly these labels.
func metricValue(body, series string) (string, bool) {
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, series+" ") {
			return strings.TrimPrefix(line, series+" "), true
		}
	}
	return "", false
}

func eventually(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestServeSurvivesDatabaseStopAndRestart(t *testing.T) {
	bin := buildBinary(t)
	const password = "s3cret-Pa55word"
	dbURL := withPassword(t, newDatabase(t, balancedTable...), password)
	addr := testutil.FreeAddress(t)
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(),
		"PGCAPACITY_DATABASE_URL="+dbURL,
		"PGCAPACITY_LISTEN_ADDRESS="+addr,
		"PGCAPACITY_STATS_INTERVAL=1s",
		"PGCAPACITY_SIZES_INTERVAL=1s",
		"PGCAPACITY_QUERY_TIMEOUT=2s",
		"PGCAPACITY_LOG_LEVEL=debug",
	)
	var logs testutil.LockedBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			t.Logf("serve output:\n%s", logs.String())
		}
	})

	eventually(t, "readiness", 30*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	_, body := scrape(t, addr)
	if v, _ := metricValue(body, "pgcapacity_up"); v != "1" {
		t.Fatalf("pgcapacity_up %q with the database up", v)
	}
	if v, _ := metricValue(body, `pgcapacity_table_live_rows{schema="public",table="session"}`); v != "2000" {
		t.Fatalf("live rows %q", v)
	}

	// At most two connections, named pgcapacity.
	conn, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	var sessions int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgcapacity'`).Scan(&sessions); err != nil {
		t.Fatal(err)
	}
	conn.Close(context.Background())
	if sessions < 1 || sessions > 2 {
		t.Errorf("%d pgcapacity sessions, want 1 or 2", sessions)
	}

	if err := cluster.Get(t).StopServer(); err != nil {
		t.Fatal(err)
	}
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			_ = cluster.Get(t).StartServer(context.Background())
		}
	})
	eventually(t, "pgcapacity_up 0 with the database down", 30*time.Second, func() bool {
		status, body := scrape(t, addr)
		up, _ := metricValue(body, "pgcapacity_up")
		stats, _ := metricValue(body, `pgcapacity_collector_success{collector="stats"}`)
		return status == http.StatusOK && up == "0" && stats == "0"
	})
	if err := cluster.Get(t).StartServer(context.Background()); err != nil {
		t.Fatal(err)
	}
	restarted = true
	eventually(t, "pgcapacity_up 1 after the restart", 30*time.Second, func() bool {
		_, body := scrape(t, addr)
		up, _ := metricValue(body, "pgcapacity_up")
		stats, _ := metricValue(body, `pgcapacity_collector_success{collector="stats"}`)
		sizes, _ := metricValue(body, `pgcapacity_collector_success{collector="sizes"}`)
		return up == "1" && stats == "1" && sizes == "1"
	})
	_, body = scrape(t, addr)

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("serve exited with %v after SIGTERM", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop within 15 s of SIGTERM")
	}
	out := logs.String()
	if !strings.Contains(out, "collector round failed") || !strings.Contains(out, "collector recovered") {
		t.Errorf("the outage and the recovery were not logged:\n%s", out)
	}
	if strings.Contains(out, password) || strings.Contains(body, password) {
		t.Error("the connection password appeared in the logs or metrics")
	}
}

func TestConfigurationErrorsExit2NamingTheVariable(t *testing.T) {
	tests := []struct {
		variable, value, want string
	}{
		{"PGCAPACITY_STATS_INTERVAL", "soon", "PGCAPACITY_STATS_INTERVAL"},
		{"PGCAPACITY_SKEW_RATIO", "four", "PGCAPACITY_SKEW_RATIO"},
		{"PGCAPACITY_PARTITION_DETAIL", "maybe", "PGCAPACITY_PARTITION_DETAIL"},
		{"PGCAPACITY_TABLES", "a.b.c", "PGCAPACITY_TABLES"},
		{"PGCAPACITY_LOG_LEVEL", "loud", "PGCAPACITY_LOG_LEVEL"},
		{"PGCAPACITY_DATABASE_URL", "postgres://u:hunter2@[::1", "PGCAPACITY_DATABASE_URL"},
		// Timeouts the server would refuse (issue 14 item 3): every
		// connection would fail, so they stop the process instead.
		{"PGCAPACITY_QUERY_TIMEOUT", "13d", "PGCAPACITY_QUERY_TIMEOUT: 13d is more than PostgreSQL accepts"},
		{"PGCAPACITY_LOCK_TIMEOUT", "30d", "PGCAPACITY_LOCK_TIMEOUT: 30d is more than PostgreSQL accepts"},
	}
	for _, tc := range tests {
		t.Run(tc.variable, func(t *testing.T) {
			t.Setenv(tc.variable, tc.value)
			var stdout, stderr bytes.Buffer
			code := run([]string{"check"}, &stdout, &stderr)
			msg := stderr.String()
			if code != exitError || !strings.Contains(msg, tc.want) || strings.Count(strings.TrimSpace(msg), "\n") != 0 {
				t.Errorf("exit %d, stderr %q", code, msg)
			}
			if strings.Contains(msg, "hunter2") {
				t.Errorf("the password was echoed: %q", msg)
			}
		})
	}
	t.Run("missing database URL", func(t *testing.T) {
		t.Setenv("PGCAPACITY_DATABASE_URL", "")
		var stdout, stderr bytes.Buffer
		if code := run([]string{"serve"}, &stdout, &stderr); code != exitError || !strings.Contains(stderr.String(), "PGCAPACITY_DATABASE_URL: is not set") {
			t.Errorf("exit %d, stderr %q", code, stderr.String())
		}
	})
}

func TestCheckExitCodes(t *testing.T) {
	skewed := append(append([]string{}, balancedTable[:3]...),
		`INSERT INTO session SELECT '11111111-1111-1111-1111-111111111111', g FROM generate_series(1, 5000) g`,
		`INSERT INTO session SELECT gen_random_uuid(), g FROM generate_series(5001, 5400) g`,
		`CREATE TABLE session_p2 (LIKE session_p0)`, // a plain table beside them
		`ANALYZE session`,
	)
	// Four partitions so the median is not the skewed one.
	skewed[0] = strings.Replace(skewed[0], "(tenant_id)", "(tenant_id)", 1)
	skewed[1] = `CREATE TABLE session_p0 PARTITION OF session FOR VALUES WITH (MODULUS 4, REMAINDER 0)`
	skewed[2] = `CREATE TABLE session_p1 PARTITION OF session FOR VALUES WITH (MODULUS 4, REMAINDER 1)`
	skewed = append(skewed[:3], append([]string{
		`CREATE TABLE session_p3 PARTITION OF session FOR VALUES WITH (MODULUS 4, REMAINDER 2)`,
		`CREATE TABLE session_p4 PARTITION OF session FOR VALUES WITH (MODULUS 4, REMAINDER 3)`,
	}, skewed[3:]...)...)

	partitionsOnly := append(append([]string{}, balancedTable[:4]...), `ANALYZE session_p0`, `ANALYZE session_p1`)
	// A parent's analyze time is in pg_stat_user_tables from 14 on; before,
	// only its missing statistics can be judged.
	staleParent := "parent statistics of public.session: STALE: analyzed"
	if cluster.Get(t).Major() < 14 {
		staleParent = "parent statistics of public.session: analyzed, age not reported by this server"
	}
	tests := []struct {
		name     string
		dbURL    func() string
		args     []string
		env      map[string]string
		wantCode int
		want     string
	}{
		{"balanced table: no rule holds", func() string { return newDatabase(t, balancedTable...) }, nil, nil, exitOK, "No rule holds now."},
		{"skewed table: the skew rule holds", func() string { return newDatabase(t, skewed...) }, nil, nil, exitFinding, "HOLDS  PartitionSkewHigh"},
		{"json", func() string { return newDatabase(t, skewed...) }, []string{"--json"}, nil, exitFinding, `"rule": "PartitionSkewHigh"`},
		{"parent never analyzed, partitions neither", func() string { return newDatabase(t, balancedTable[:3]...) }, nil, nil, exitOK, "parent statistics of public.session: missing, no partition analyzed yet"},
		{"parent never analyzed, partitions analyzed: stale", func() string { return newDatabase(t, partitionsOnly...) }, nil, nil, exitOK, "parent statistics of public.session: STALE: missing while its partitions have been analyzed"},
		{"parent analyzed", func() string { return newDatabase(t, skewed...) }, nil, nil, exitFinding, "parent statistics of public.session: analyzed"},
		// ANALYZE of a parent before 18 analyzes its partitions after it.
		{"parent older than PGCAPACITY_PARENT_ANALYZE_MAX_AGE: stale", func() string { return newDatabase(t, skewed...) }, nil,
			map[string]string{"PGCAPACITY_PARENT_ANALYZE_MAX_AGE": "1ms"}, exitFinding, staleParent},
		{"unreachable database", func() string { return "postgres://nobody@127.0.0.1:1/none?connect_timeout=2" }, nil, nil, exitError, "is the server up"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("PGCAPACITY_DATABASE_URL", tc.dbURL())
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var stdout, stderr bytes.Buffer
			code := run(append([]string{"check"}, tc.args...), &stdout, &stderr)
			if code != tc.wantCode || !strings.Contains(stdout.String()+stderr.String(), tc.want) {
				t.Errorf("exit %d (want %d)\nstdout:\n%s\nstderr:\n%s", code, tc.wantCode, stdout.String(), stderr.String())
			}
		})
	}
}

func TestHelpListsEveryVariable(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"help"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"serve", "check", "demo", "PGCAPACITY_DATABASE_URL", "PGCAPACITY_SKEW_RATIO", "PGCAPACITY_PARTITION_DETAIL", ":9842"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

func TestBadFlagIsReportedOnce(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"check", "--bogus"}, &stdout, &stderr); code != exitError {
		t.Errorf("exit %d", code)
	}
	if n := strings.Count(stderr.String(), "flag provided but not defined"); n != 1 {
		t.Errorf("the bad flag was reported %d times:\n%s", n, stderr.String())
	}
	stderr.Reset()
	if code := run([]string{"check", "-h"}, &stdout, &stderr); code != exitOK || !strings.Contains(stderr.String(), "-json") {
		t.Errorf("-h: exit %d, %s", code, stderr.String())
	}
}

// TestVersionAndHelpRunWithAnyEnvironment: only the commands that need the
// configuration load it, so a malformed variable cannot break these.
func TestVersionAndHelpRunWithAnyEnvironment(t *testing.T) {
	t.Setenv("PGCAPACITY_STATS_INTERVAL", "soon")
	t.Setenv("PGCAPACITY_LOG_LEVEL", "loud")
	for _, args := range [][]string{{"version"}, {"help"}, {"--help"}, {}} {
		t.Run(strings.Join(append([]string{"pgcapacity"}, args...), " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(args, &stdout, &stderr); code != exitOK || stderr.Len() != 0 || stdout.Len() == 0 {
				t.Errorf("exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
			}
		})
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"check"}, &stdout, &stderr); code != exitError || !strings.Contains(stderr.String(), "PGCAPACITY_STATS_INTERVAL") {
		t.Errorf("check with the malformed variable: exit %d, stderr %q", code, stderr.String())
	}
}

// TestEveryCommandsFlagErrorExits2Once: a parse error is told by its type,
// so every command's flag set reports it once and exits 2.
func TestEveryCommandsFlagErrorExits2Once(t *testing.T) {
	t.Setenv("PGCAPACITY_DATABASE_URL", "postgres://127.0.0.1:1/none")
	for _, args := range [][]string{{"serve", "--bogus"}, {"check", "--json=maybe"}, {"demo", "--scale"}, {"rules", "--bogus"}, {"dashboards", "--bogus"}, {"migrate", "plan", "--bogus"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(args, &stdout, &stderr)
			if code != exitError || strings.Contains(stderr.String(), "pgcapacity "+args[0]+":") || !strings.Contains(strings.ToLower(stderr.String()), "usage") {
				t.Errorf("exit %d, stderr %q", code, stderr.String())
			}
		})
	}
}

func TestParseFlagsTypesItsErrors(t *testing.T) {
	cases := []struct {
		args      []string
		wantUsage bool
		wantHelp  bool
	}{
		{[]string{"--n=3"}, false, false},
		{[]string{"--n=three"}, true, false},
		{[]string{"--nope"}, true, false},
		{[]string{"--n"}, true, false},
		{[]string{"-h"}, false, true},
	}
	for _, tc := range cases {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		fs.Int("n", 0, "")
		err := parseFlags(fs, tc.args)
		var u *usageError
		if errors.As(err, &u) != tc.wantUsage || errors.Is(err, flag.ErrHelp) != tc.wantHelp {
			t.Errorf("%v: got %v", tc.args, err)
		}
	}
}
