package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sigid/pgcapacity/collector"
	"github.com/sigid/pgcapacity/internal/config"
	"github.com/sigid/pgcapacity/internal/testutil"
	"github.com/sigid/pgcapacity/internal/throwaway"
)

// serveInProcess runs serve on a loopback listener until the returned
// stop function is called; stop waits for serve to return.
func serveInProcess(t *testing.T, cfg config.Config) (addr string, stop func() error) {
	t.Helper()
	return serveListening(t, cfg, nil, io.Discard)
}

// serveListening is serveInProcess with a health listener (nil for none)
// and the log and output written to logs. stop may be called more than
// once; the test's cleanup calls it too.
func serveListening(t *testing.T, cfg config.Config, health net.Listener, logs io.Writer) (addr string, stop func() error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	env := &environment{cfg: cfg, logger: slog.New(slog.NewTextHandler(logs, nil)), stdout: logs, stderr: logs}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() { done <- serve(ctx, env, ln, health, func(*collector.Sampler) { close(ready) }) }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		kept := ""
		if s, ok := logs.(fmt.Stringer); ok {
			kept = "\n" + s.String()
		}
		t.Fatalf("serve returned early: %v%s", err, kept)
	}
	stopped := false
	stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(20 * time.Second):
			t.Fatal("serve did not return within 20 s of cancellation")
			return nil
		}
	}
	t.Cleanup(func() { _ = stop() })
	return ln.Addr().String(), stop
}

func testConfig(t *testing.T, dbURL string) config.Config {
	t.Helper()
	cfg, err := config.Load()
	if err != nil {
		t.Fatal(err)
	}
	cfg.DatabaseURL = dbURL
	cfg.StatsInterval = config.Duration(time.Second)
	cfg.SizesInterval = config.Duration(time.Second)
	cfg.QueryTimeout = config.Duration(2 * time.Second)
	return cfg
}

func TestServeWithTheDatabaseDownAtStart(t *testing.T) {
	before := runtime.NumGoroutine()
	addr, stop := serveInProcess(t, testConfig(t, "postgres://nobody:pw@127.0.0.1:1/none?connect_timeout=1"))
	eventually(t, "readiness after a failed first round", 30*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	status, body := scrape(t, addr)
	if up, _ := metricValue(body, "pgcapacity_up"); status != http.StatusOK || up != "0" {
		t.Errorf("status %d, pgcapacity_up %q", status, up)
	}
	if v, _ := metricValue(body, `pgcapacity_collector_success{collector="stats"}`); v != "0" {
		t.Errorf("stats collector success %q", v)
	}
	if strings.Contains(body, "pgcapacity_table_info") {
		t.Error("table series without a database")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// Every goroutine serve started has ended (the HTTP client's idle
	// connections aside, closed here).
	http.DefaultClient.CloseIdleConnections()
	eventually(t, "serve's goroutines to end", 10*time.Second, func() bool {
		return runtime.NumGoroutine() <= before+1
	})
}

func TestServeLeavesNoConnectionsBehind(t *testing.T) {
	dbURL := newDatabase(t, balancedTable...)
	addr, stop := serveInProcess(t, testConfig(t, dbURL))
	eventually(t, "a successful round", 30*time.Second, func() bool {
		_, body := scrape(t, addr)
		v, _ := metricValue(body, `pgcapacity_collector_success{collector="sizes"}`)
		return v == "1"
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	eventually(t, "pgcapacity's sessions to end", 10*time.Second, func() bool {
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgcapacity'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 0
	})
}

// An admin-ops queries file with anything but a single SELECT, or a SELECT
// the database refuses, stops serve at start (exit 2, the check named),
// and a writing query never reaches the database: the rows it would
// delete are still there.
func TestServeRefusesAnAdminopsQueryThatDoesNotFit(t *testing.T) {
	tests := []struct {
		name, query, want string
	}{
		{"wrong result columns", "SELECT 1 AS tenant, 2 AS findings, 3 AS extra", "admins_without_mfa"},
		{"a DELETE", "DELETE FROM session RETURNING tenant_id::text AS tenant, 1 AS findings", `is not a SELECT (it starts with "DELETE")`},
		{"a DELETE in a CTE", "WITH gone AS (DELETE FROM session RETURNING tenant_id) SELECT tenant_id::text AS tenant, count(*) AS findings FROM gone GROUP BY 1", "contains a DELETE"},
		{"a second statement", "SELECT 'x' AS tenant, 1 AS findings; DELETE FROM session", "more than one statement"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dbURL := newDatabase(t, balancedTable...)
			file := filepath.Join(t.TempDir(), "adminops.yaml")
			yaml := "checks:\n  admins_without_mfa:\n    query: " + strconv.Quote(tc.query) + "\n"
			if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Setenv("PGCAPACITY_DATABASE_URL", dbURL)
			t.Setenv("PGCAPACITY_ADMINOPS_QUERIES_FILE", file)
			t.Setenv("PGCAPACITY_LISTEN_ADDRESS", testutil.FreeAddress(t))
			var stdout, stderr bytes.Buffer
			code := run([]string{"serve"}, &stdout, &stderr)
			if code != exitError || !strings.Contains(stderr.String(), "admins_without_mfa") || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("exit %d, want %d with a line naming admins_without_mfa and saying %q; stderr:\n%s", code, exitError, tc.want, stderr.String())
			}
			conn, err := pgx.Connect(context.Background(), dbURL)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(context.Background())
			var rows int
			if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM session").Scan(&rows); err != nil || rows != 2000 {
				t.Errorf("session holds %d rows (%v) after serve refused the file, want all 2000", rows, err)
			}
		})
	}
}

// withScramRole creates a login role that must give password over TCP
// (scram-sha-256, ahead of the throwaway cluster's trust lines in
// pg_hba.conf) for the rest of t.
func withScramRole(t *testing.T, role, password string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, cluster.Get(t).ConnString("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(ctx) }) // runs after the cleanups below
	var hbaFile string
	if err := conn.QueryRow(ctx, "SHOW hba_file").Scan(&hbaFile); err != nil {
		t.Fatal(err)
	}
	original, err := os.ReadFile(hbaFile)
	if err != nil {
		t.Fatal(err)
	}
	exec := func(sql string) {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Error(err)
		}
	}
	exec("SET password_encryption = 'scram-sha-256'")
	exec("CREATE ROLE " + pgx.Identifier{role}.Sanitize() + " LOGIN PASSWORD " + quoteLiteral(password))
	// WriteFile keeps the file's owner and mode.
	line := "host all " + role + " 127.0.0.1/32 scram-sha-256\n"
	if err := os.WriteFile(hbaFile, append([]byte(line), original...), 0); err != nil {
		t.Fatal(err)
	}
	exec("SELECT pg_reload_conf()")
	// The role really needs its password now (pg_reload_conf only signals).
	wrong := cluster.Get(t).ConnString("postgres")
	wrong = strings.Replace(wrong, "//"+throwaway.Superuser+"@", "//"+role+":not-"+password+"@", 1)
	var pgErr *pgconn.PgError
	for i := 0; i < 50 && !(errors.As(err, &pgErr) && pgErr.Code == "28P01"); i++ {
		var c *pgx.Conn
		if c, err = pgx.Connect(ctx, wrong); err == nil {
			c.Close(ctx)
			time.Sleep(100 * time.Millisecond)
		}
	}
	if !errors.As(err, &pgErr) || pgErr.Code != "28P01" {
		t.Fatalf("a wrong password for %s: %v, want 28P01", role, err)
	}
	t.Cleanup(func() {
		if err := os.WriteFile(hbaFile, original, 0); err != nil {
			t.Error(err)
		}
		exec("SELECT pg_reload_conf()")
		exec("DROP ROLE " + pgx.Identifier{role}.Sanitize())
	})
}

// quoteLiteral quotes a test's own constant for the one statement that
// cannot take a parameter (CREATE ROLE ... PASSWORD).
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// A server that answers but refuses the session (wrong password, unknown
// role, unknown database) is no usable connection: pgcapacity_up is 0, as
// the alert and the runbook say.
func TestServeUpIsZeroWhenTheSessionIsRefused(t *testing.T) {
	good, err := url.Parse(newDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	withScramRole(t, "pgcapacity_scram", "right-password")
	tests := []struct {
		name   string
		mutate func(u *url.URL)
	}{
		{"wrong password (28P01)", func(u *url.URL) { u.User = url.UserPassword("pgcapacity_scram", "wrong-password") }},
		{"unknown role (28000)", func(u *url.URL) { u.User = url.User("no_such_role") }},
		{"unknown database (3D000)", func(u *url.URL) { u.Path = "/no_such_database" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := *good
			tc.mutate(&u)
			addr, stop := serveInProcess(t, testConfig(t, u.String()))
			defer stop()
			// A round has run once it took time: the gauges start at 0.
			eventually(t, "a first stats round", 30*time.Second, func() bool {
				_, body := scrape(t, addr)
				v, ok := metricValue(body, `pgcapacity_collector_duration_seconds{collector="stats"}`)
				return ok && v != "0"
			})
			_, body := scrape(t, addr)
			if up, _ := metricValue(body, "pgcapacity_up"); up != "0" {
				t.Errorf("pgcapacity_up %q with the session refused, want 0", up)
			}
			if strings.Contains(body, "wrong-password") {
				t.Error("the password is in /metrics")
			}
		})
	}
}

// A database that accepts TCP and never answers must not keep the exporter
// silent: serve answers /healthz 200, /readyz 503 and /metrics with
// pgcapacity_up 0 while its start-up validation waits on that database.
func TestServeAnswersWhileTheDatabaseNeverAnswers(t *testing.T) {
	dbURL, accepted := silentDatabase(t)
	cfg := testConfig(t, dbURL)
	// Far longer than the client below waits: without serving first, the
	// HTTP requests would go unanswered for all of it.
	cfg.QueryTimeout = config.Duration(10 * time.Minute)
	addr, stop := serveInProcess(t, cfg)
	defer stop()
	<-accepted // the exporter is waiting on the silent database now
	client := &http.Client{Timeout: time.Minute}
	for path, want := range map[string]int{"/healthz": http.StatusOK, "/readyz": http.StatusServiceUnavailable, "/metrics": http.StatusOK} {
		resp, err := client.Get("http://" + addr + path)
		if err != nil {
			t.Fatalf("GET %s while the database never answers: %v", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: status %d, want %d", path, resp.StatusCode, want)
		}
		if path == "/metrics" {
			if up, _ := metricValue(string(body), "pgcapacity_up"); up != "0" {
				t.Errorf("pgcapacity_up %q while the database never answers, want 0", up)
			}
		}
	}
}

// silentDatabase is the URL of a server that accepts TCP and never answers,
// for the rest of t; accepted receives each connection made to it.
func silentDatabase(t *testing.T) (dbURL string, accepted <-chan net.Conn) {
	t.Helper()
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns := make(chan net.Conn, 16)
	var held []net.Conn // never read, never answered
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := silent.Accept()
			if err != nil {
				return
			}
			held = append(held, conn)
			select {
			case conns <- conn:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		silent.Close()
		<-done
		for _, c := range held {
			c.Close()
		}
	})
	return "postgres://pgcapacity@" + silent.Addr().String() + "/none?sslmode=disable", conns
}
