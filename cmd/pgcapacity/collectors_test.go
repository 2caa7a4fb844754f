package main

import (
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sigid/pgcapacity/internal/config"
)

// TestCollectorNamesAreTheBuiltOnes: PGCAPACITY_COLLECTORS lists exactly the
// collectors serve builds, under the names they publish.
func TestCollectorNamesAreTheBuiltOnes(t *testing.T) {
	cfg := testConfig(t, "postgres://127.0.0.1:1/none")
	cs, err := buildCollectors(&environment{cfg: cfg, logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range cs {
		names = append(names, c.Name())
	}
	if !slices.Equal(names, config.CollectorNames()) {
		t.Fatalf("serve builds %v, PGCAPACITY_COLLECTORS knows %v", names, config.CollectorNames())
	}
}

// TestCollectorSwitchedOff: a collector left out of PGCAPACITY_COLLECTORS
// publishes nothing, and the others still run and succeed.
func TestCollectorSwitchedOff(t *testing.T) {
	dbURL := newDatabase(t, balancedTable...)
	// A series only each collector publishes.
	own := map[string]string{
		"stats":      "pgcapacity_table_live_rows{",
		"sizes":      "pgcapacity_partition_heap_bytes{",
		"migrations": "pgcapacity_migration_",
		"probes":     "pgcapacity_probe_",
		"statements": "pgcapacity_statements_",
		"adminops":   "pgcapacity_adminops_",
	}
	for _, off := range config.CollectorNames() {
		t.Run(off, func(t *testing.T) {
			cfg := testConfig(t, dbURL)
			cfg.Collectors = slices.DeleteFunc(config.CollectorNames(), func(n string) bool { return n == off })
			addr, stop := serveInProcess(t, cfg)
			defer stop()
			var body string
			eventually(t, "every enabled collector has run", 60*time.Second, func() bool {
				_, body = scrape(t, addr)
				for _, on := range cfg.Collectors {
					if v, ok := metricValue(body, `pgcapacity_collector_duration_seconds{collector="`+on+`"}`); !ok || v == "0" {
						return false
					}
				}
				return true
			})
			if strings.Contains(body, `collector="`+off+`"`) {
				t.Errorf("%s is switched off but has collector series", off)
			}
			for _, line := range strings.Split(body, "\n") {
				if strings.HasPrefix(line, own[off]) {
					t.Errorf("%s is switched off but publishes %s", off, line)
				}
			}
			if off != "stats" && !strings.Contains(body, own["stats"]) {
				t.Errorf("stats is on but publishes no %s", own["stats"])
			}
		})
	}
}

// TestAdminopsNotApplicable: on a database without the admin-ops tables the
// checks are not applicable, which is not failing: the collector succeeds
// and each check reports pgcapacity_adminops_check_applicable 0.
func TestAdminopsNotApplicable(t *testing.T) {
	cfg := testConfig(t, newDatabase(t, balancedTable...))
	cfg.Collectors = []string{"adminops"}
	addr, stop := serveInProcess(t, cfg)
	defer stop()
	var body string
	eventually(t, "the admin-ops collector has run", 60*time.Second, func() bool {
		_, body = scrape(t, addr)
		v, ok := metricValue(body, `pgcapacity_collector_duration_seconds{collector="adminops"}`)
		return ok && v != "0"
	})
	if v, _ := metricValue(body, `pgcapacity_collector_success{collector="adminops"}`); v != "1" {
		t.Errorf("pgcapacity_collector_success{collector=\"adminops\"} = %q, want 1", v)
	}
	for _, check := range []string{"stale_invitations", "unreviewed_admins", "admins_without_mfa", "tenants_below_two_admins"} {
		if v, _ := metricValue(body, `pgcapacity_adminops_check_applicable{check="`+check+`"}`); v != "0" {
			t.Errorf("pgcapacity_adminops_check_applicable{check=%q} = %q, want 0", check, v)
		}
	}
}

// TestProbesNotApplicable: the default hot-table patterns name the
// reference schema's tables; on a database without them no table is hot,
// so nothing is probed, which is not failing: the probes collector succeeds
// and counts no errors.
func TestProbesNotApplicable(t *testing.T) {
	cfg := testConfig(t, newDatabase(t, `CREATE TABLE app_event (tenant_id bigint NOT NULL, id bigint NOT NULL) PARTITION BY HASH (tenant_id)`,
		`CREATE TABLE app_event_p0 PARTITION OF app_event FOR VALUES WITH (MODULUS 1, REMAINDER 0)`))
	cfg.Collectors = []string{"probes"}
	cfg.ProbeInterval = config.Duration(200 * time.Millisecond)
	addr, stop := serveInProcess(t, cfg)
	defer stop()
	var body string
	eventually(t, "the probes collector has run", 60*time.Second, func() bool {
		_, body = scrape(t, addr)
		v, ok := metricValue(body, `pgcapacity_collector_duration_seconds{collector="probes"}`)
		return ok && v != "0"
	})
	if v, _ := metricValue(body, `pgcapacity_collector_success{collector="probes"}`); v != "1" {
		t.Errorf("pgcapacity_collector_success{collector=\"probes\"} = %q, want 1", v)
	}
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "pgcapacity_probe_errors_total{") && !strings.HasSuffix(line, " 0") {
			t.Errorf("a not-applicable probe counted errors: %s", line)
		}
	}
}
