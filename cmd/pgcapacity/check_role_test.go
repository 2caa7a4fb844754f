package main

import (
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// psqlBinary is the psql beside the test server's initdb, else Debian's.
func psqlBinary(t *testing.T) string {
	t.Helper()
	for _, p := range []string{filepath.Join(cluster.Get(t).BinDir(), "psql"), "/usr/lib/postgresql/15/bin/psql"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("psql"); err == nil {
		return p
	}
	t.Fatal("psql not found beside initdb nor in /usr/lib/postgresql/15/bin: install postgresql-client-15 (or `make deps`)")
	return ""
}

// TestMonitoringRoleForAnyHotTables: deploy/sql/monitoring-role.sql grants
// what the watched hot tables of any schema need when hot_tables names them
// as PGCAPACITY_HOT_TABLES does, so check, run as the role it creates,
// probes them (tenants from pg_stats, which the role sees only on tables it
// may read) and fails nothing; without hot_tables on a database that has
// none of SigID's tables, the script refuses, naming the variable.
func TestMonitoringRoleForAnyHotTables(t *testing.T) {
	const script = "../../deploy/sql/monitoring-role.sql"
	ddl := []string{`CREATE SCHEMA app`,
		`CREATE TABLE app.events (account text NOT NULL, seq bigint NOT NULL, body text, PRIMARY KEY (account, seq)) PARTITION BY HASH (account)`,
		`CREATE TABLE app.orders_eu (account text NOT NULL, id bigint NOT NULL, PRIMARY KEY (account, id)) PARTITION BY HASH (account)`,
		`CREATE TABLE app.orders_eu_p0 PARTITION OF app.orders_eu FOR VALUES WITH (MODULUS 1, REMAINDER 0)`,
		`INSERT INTO app.orders_eu SELECT 'acct-' || (g % 20), g FROM generate_series(1, 200) g`,
	}
	for i := range 4 {
		ddl = append(ddl, `CREATE TABLE app.events_p`+string(rune('0'+i))+` PARTITION OF app.events FOR VALUES WITH (MODULUS 4, REMAINDER `+string(rune('0'+i))+`)`)
	}
	ddl = append(ddl, `INSERT INTO app.events SELECT 'acct-' || (g % 40), g, 'x' FROM generate_series(1, 2000) g`, `ANALYZE app.events`, `ANALYZE app.orders_eu`)

	tests := []struct {
		name      string
		hotTables string // -v hot_tables; "" leaves it unset
		fails     bool
		output    []string
		probed    []string // tables check probes as the role
	}{
		{name: "no hot tables named", fails: true,
			output: []string{"none of the SigID tables", "psql -v hot_tables="}},
		{name: "a table and a glob", hotTables: "app.events, orders_*",
			output: []string{"NOTICE:  admin-ops tables not in search_path", "role pgcapacity: pg_monitor, SELECT on app.events, app.orders_eu"},
			probed: []string{"app.events", "app.orders_eu"}},
		{name: "a pattern matching nothing", hotTables: "app.events,nothing_here",
			output: []string{"WARNING:  hot-table patterns matching no table of database", "nothing_here"},
			probed: []string{"app.events"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dbURL := newDatabase(t, ddl...)
			args := []string{"-v", "ON_ERROR_STOP=1", "--no-psqlrc", "--no-password", "--dbname", dbURL, "-f", script}
			if tt.hotTables != "" {
				args = append([]string{"-v", "hot_tables=" + tt.hotTables}, args...)
			}
			out, err := exec.Command(psqlBinary(t), args...).CombinedOutput()
			if tt.fails != (err != nil) {
				t.Fatalf("psql: %v, want failure %v\n%s", err, tt.fails, out)
			}
			for _, want := range tt.output {
				if !strings.Contains(string(out), want) {
					t.Errorf("psql output lacks %q:\n%s", want, out)
				}
			}
			if tt.fails {
				return
			}
			u, err := url.Parse(dbURL)
			if err != nil {
				t.Fatal(err)
			}
			u.User = url.User("pgcapacity")
			code, stdout, stderr := runCommand(t, map[string]string{"PGCAPACITY_DATABASE_URL": u.String(), "PGCAPACITY_HOT_TABLES": tt.hotTables}, "check")
			if code != exitOK || strings.Contains(stdout, "FAILED") || strings.Contains(stdout+stderr, "permission denied") {
				t.Fatalf("check as pgcapacity: exit %d\n%s%s", code, stdout, stderr)
			}
			for _, table := range tt.probed {
				found := false
				for _, line := range strings.Split(stdout, "\n") {
					if f := strings.Fields(line); len(f) > 1 && f[0] == table && f[1] == "5" {
						found = true
					}
				}
				if !found {
					t.Errorf("check as pgcapacity did not probe %s in every round (tenants from pg_stats):\n%s", table, stdout)
				}
			}
		})
	}
}
