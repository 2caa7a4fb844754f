package adminops_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sigid/pgcapacity/collector"
	"github.com/sigid/pgcapacity/collector/adminops"
)

var _ collector.Collector = (*adminops.Collector)(nil)

// round is one Collect's metrics as a prometheus.Collector for testutil.
type round []prometheus.Metric

func (round) Describe(chan<- *prometheus.Desc) {}

func (r round) Collect(ch chan<- prometheus.Metric) {
	for _, m := range r {
		ch <- m
	}
}

// The metrics the alert rules and dashboards read, without durations.
var contractMetrics = []string{
	"pgcapacity_adminops_findings",
	"pgcapacity_adminops_tenants_affected",
	"pgcapacity_adminops_tenant_findings",
	"pgcapacity_adminops_tenant_findings_omitted",
	"pgcapacity_adminops_check_success",
	"pgcapacity_adminops_check_info",
	"pgcapacity_adminops_check_last_success_timestamp_seconds",
}

func TestCollectPublishesTheContractMetrics(t *testing.T) {
	e := newEnv(t, true)
	e.load(crafted)
	c := newCollector(t, "", 2)
	if c.Name() != "adminops" || c.Interval() != 10*time.Minute {
		t.Errorf("name %q interval %v, want adminops every 10m (the default)", c.Name(), c.Interval())
	}
	ms, err := c.Collect(e.ctx, e.pool)
	if err != nil {
		t.Fatal(err)
	}
	// Worst first, ties by tenant id, two per check; the rest counted.
	worst := func(check string, names ...string) string {
		var b strings.Builder
		for _, n := range names {
			fmt.Fprintf(&b, "pgcapacity_adminops_tenant_findings{check=%q,tenant=%q} %d\n", check, id(n), craftedWant[check][n])
		}
		return b.String()
	}
	first := func(a, b string) (string, string) {
		if id(a) < id(b) {
			return a, b
		}
		return b, a
	}
	staleA, _ := first("echo", "golf")
	unrevA, _ := first("bravo", "echo")
	mfaA, mfaB := first("alpha", "echo")
	belowA, _ := first("bravo", "foxtrot")
	ts := float64(now.Unix())
	want := `
# HELP pgcapacity_adminops_check_info Which query each admin-operations check runs: default, override or disabled (value 1).
# TYPE pgcapacity_adminops_check_info gauge
pgcapacity_adminops_check_info{check="admins_without_mfa",query="default"} 1
pgcapacity_adminops_check_info{check="stale_invitations",query="default"} 1
pgcapacity_adminops_check_info{check="tenants_below_two_admins",query="default"} 1
pgcapacity_adminops_check_info{check="unreviewed_admins",query="default"} 1
# HELP pgcapacity_adminops_check_last_success_timestamp_seconds When the admin-operations check last succeeded; absent before the first success.
# TYPE pgcapacity_adminops_check_last_success_timestamp_seconds gauge
` + fmt.Sprintf(`pgcapacity_adminops_check_last_success_timestamp_seconds{check="admins_without_mfa"} %g
pgcapacity_adminops_check_last_success_timestamp_seconds{check="stale_invitations"} %g
pgcapacity_adminops_check_last_success_timestamp_seconds{check="tenants_below_two_admins"} %g
pgcapacity_adminops_check_last_success_timestamp_seconds{check="unreviewed_admins"} %g
`, ts, ts, ts, ts) + `# HELP pgcapacity_adminops_check_success 1 when the admin-operations check ran in the last round, 0 when it failed.
# TYPE pgcapacity_adminops_check_success gauge
pgcapacity_adminops_check_success{check="admins_without_mfa"} 1
pgcapacity_adminops_check_success{check="stale_invitations"} 1
pgcapacity_adminops_check_success{check="tenants_below_two_admins"} 1
pgcapacity_adminops_check_success{check="unreviewed_admins"} 1
# HELP pgcapacity_adminops_findings Offending items an admin-operations check found, all tenants (exact).
# TYPE pgcapacity_adminops_findings gauge
pgcapacity_adminops_findings{check="admins_without_mfa"} 5
pgcapacity_adminops_findings{check="stale_invitations"} 4
pgcapacity_adminops_findings{check="tenants_below_two_admins"} 4
pgcapacity_adminops_findings{check="unreviewed_admins"} 4
# HELP pgcapacity_adminops_tenant_findings Findings of one tenant, only for the worst tenants of each check (PGCAPACITY_ADMINOPS_TENANT_CAP).
# TYPE pgcapacity_adminops_tenant_findings gauge
` + worst("admins_without_mfa", mfaA, mfaB) +
		worst("stale_invitations", "alpha", staleA) +
		worst("tenants_below_two_admins", "charlie", belowA) +
		worst("unreviewed_admins", "alpha", unrevA) + `# HELP pgcapacity_adminops_tenant_findings_omitted Tenants with findings left out of pgcapacity_adminops_tenant_findings by the per-check cap.
# TYPE pgcapacity_adminops_tenant_findings_omitted gauge
pgcapacity_adminops_tenant_findings_omitted{check="admins_without_mfa"} 1
pgcapacity_adminops_tenant_findings_omitted{check="stale_invitations"} 1
pgcapacity_adminops_tenant_findings_omitted{check="tenants_below_two_admins"} 1
pgcapacity_adminops_tenant_findings_omitted{check="unreviewed_admins"} 1
# HELP pgcapacity_adminops_tenants_affected Tenants with at least one finding of an admin-operations check (exact).
# TYPE pgcapacity_adminops_tenants_affected gauge
pgcapacity_adminops_tenants_affected{check="admins_without_mfa"} 3
pgcapacity_adminops_tenants_affected{check="stale_invitations"} 3
pgcapacity_adminops_tenants_affected{check="tenants_below_two_admins"} 3
pgcapacity_adminops_tenants_affected{check="unreviewed_admins"} 3
`
	if err := testutil.CollectAndCompare(round(ms), strings.NewReader(want), contractMetrics...); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(round(ms), "pgcapacity_adminops_check_duration_seconds"); n != 4 {
		t.Errorf("%d duration series, want 4", n)
	}
}

// One failing check: it reports success 0 and keeps its last good findings
// for three intervals plus the timeout; the others stay fresh; the round is
// not an error. Every check failing is.
func TestCollectWhenChecksFail(t *testing.T) {
	e := newEnv(t, true)
	e.load(crafted)
	clock := now
	c := newCollector(t, "", 100)
	c.SetClock(func() time.Time { return clock })
	if _, err := c.Collect(e.ctx, e.pool); err != nil {
		t.Fatal(err)
	}

	// stale_invitations loses its table; a new tenant without admins
	// appears; ten minutes on, a3 and a6 (exactly 90 days) are unreviewed.
	e.exec("ALTER TABLE invitation RENAME TO invitation_old")
	e.exec("INSERT INTO tenant (tenant_id, name) VALUES ($1, 'india')", id("india"))
	clock = now.Add(10 * time.Minute)
	ms, err := c.Collect(e.ctx, e.pool)
	if err != nil {
		t.Fatalf("one failed check failed the round: %v", err)
	}
	want := fmt.Sprintf(`
# HELP pgcapacity_adminops_check_success 1 when the admin-operations check ran in the last round, 0 when it failed.
# TYPE pgcapacity_adminops_check_success gauge
pgcapacity_adminops_check_success{check="admins_without_mfa"} 1
pgcapacity_adminops_check_success{check="stale_invitations"} 0
pgcapacity_adminops_check_success{check="tenants_below_two_admins"} 1
pgcapacity_adminops_check_success{check="unreviewed_admins"} 1
# HELP pgcapacity_adminops_check_last_success_timestamp_seconds When the admin-operations check last succeeded; absent before the first success.
# TYPE pgcapacity_adminops_check_last_success_timestamp_seconds gauge
pgcapacity_adminops_check_last_success_timestamp_seconds{check="admins_without_mfa"} %[2]g
pgcapacity_adminops_check_last_success_timestamp_seconds{check="stale_invitations"} %[1]g
pgcapacity_adminops_check_last_success_timestamp_seconds{check="tenants_below_two_admins"} %[2]g
pgcapacity_adminops_check_last_success_timestamp_seconds{check="unreviewed_admins"} %[2]g
# HELP pgcapacity_adminops_findings Offending items an admin-operations check found, all tenants (exact).
# TYPE pgcapacity_adminops_findings gauge
pgcapacity_adminops_findings{check="admins_without_mfa"} 5
pgcapacity_adminops_findings{check="stale_invitations"} 4
pgcapacity_adminops_findings{check="tenants_below_two_admins"} 6
pgcapacity_adminops_findings{check="unreviewed_admins"} 6
`, float64(now.Unix()), float64(clock.Unix()))
	metrics := []string{"pgcapacity_adminops_check_success", "pgcapacity_adminops_check_last_success_timestamp_seconds", "pgcapacity_adminops_findings"}
	if err := testutil.CollectAndCompare(round(ms), strings.NewReader(want), metrics...); err != nil {
		t.Error(err)
	}

	// Past three intervals plus the timeout, the stale findings go.
	clock = now.Add(3*10*time.Minute + 10*time.Second + time.Second)
	ms, err = c.Collect(e.ctx, e.pool)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"pgcapacity_adminops_findings", "pgcapacity_adminops_tenant_findings_omitted", "pgcapacity_adminops_tenants_affected"} {
		if n := testutil.CollectAndCount(round(ms), name); n != 3 {
			t.Errorf("%s: %d series, want 3 (stale_invitations' findings expired)", name, n)
		}
	}

	// Every check failing is the round's error, with no metrics.
	for _, table := range []string{"tenant_membership", "tenant"} {
		e.exec("ALTER TABLE " + table + " RENAME TO " + table + "_old")
	}
	ms, err = c.Collect(e.ctx, e.pool)
	if err == nil || len(ms) != 0 {
		t.Fatalf("every check failing: %d metrics, error %v; want no metrics and an error", len(ms), err)
	}
	for _, check := range adminops.CheckNames() {
		if !strings.Contains(err.Error(), "admin-ops check "+check) {
			t.Errorf("error %q does not name %s", err, check)
		}
	}
}
