package adminops_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/sigid/pgcapacity/collector/adminops"
)

func TestWriteReport(t *testing.T) {
	res := adminops.Result{
		Time:               now,
		StaleInvitationAge: 30 * day,
		ReviewInterval:     90 * day,
		MinAdmins:          2,
		TenantCap:          100,
		Checks: []adminops.CheckResult{
			{Check: adminops.StaleInvitations, Source: "/etc/pgcapacity/adminops.yaml", Disabled: true, Tenants: []adminops.TenantFindings{}},
			{Check: adminops.UnreviewedAdmins, Source: adminops.SourceDefault, Findings: 9, TenantsAffected: 4,
				Tenants: []adminops.TenantFindings{{"t-1", 4}, {"t-22", 3}, {"t-3", 1}, {"t-4", 1}}},
			{Check: adminops.AdminsWithoutMFA, Source: "/etc/pgcapacity/adminops.yaml", Findings: 3, TenantsAffected: 3, Omitted: 1,
				Tenants: []adminops.TenantFindings{{"t-5", 1}, {"t-6", 1}}},
			{Check: adminops.TenantsBelowTwoAdmins, Source: adminops.SourceDefault, Error: "admin-ops check tenants_below_two_admins (the default query): failed: canceling statement due to statement timeout"},
		},
	}
	var b strings.Builder
	if err := adminops.WriteReport(&b, res, 2); err != nil {
		t.Fatal(err)
	}
	want := `Admin operations (2026-06-01 12:00:00 UTC)
  CHECK                     FINDINGS  TENANTS  WHAT
  stale_invitations         -         -        disabled in /etc/pgcapacity/adminops.yaml
  unreviewed_admins         9         4        administrators and owners not access-reviewed within 90d
  admins_without_mfa        3         3        active administrators and owners without MFA (query from /etc/pgcapacity/adminops.yaml)
  tenants_below_two_admins  FAILED    -        admin-ops check tenants_below_two_admins (the default query): failed: canceling statement due to statement timeout
  unreviewed_admins, worst tenants:
    t-1   4
    t-22  3
    ... and 2 more tenants
  admins_without_mfa, worst tenants:
    t-5  1
    t-6  1
    ... and 1 more tenant
`
	if got := b.String(); got != want {
		t.Errorf("report:\n%s\nwant:\n%s", got, want)
	}
}

// The report and the JSON of a real round agree with the crafted data.
func TestReportOfARealRound(t *testing.T) {
	e := newEnv(t, true)
	e.load(crafted)
	res, err := newCollector(t, "", 100).Run(e.ctx, e.pool)
	if err != nil {
		t.Fatal(err)
	}
	if !res.HasFindings() || len(res.Failed()) != 0 {
		t.Errorf("HasFindings %v, Failed %v; want findings and no failures", res.HasFindings(), res.Failed())
	}
	var b strings.Builder
	if err := adminops.WriteReport(&b, res, 10); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"  stale_invitations         4         3        invitations pending longer than 30d\n",
		"  tenants_below_two_admins  4         3        administrators missing from active tenants with fewer than 2\n",
		"    " + id("charlie") + "  2\n",
	} {
		if !strings.Contains(b.String(), line) {
			t.Errorf("report lacks %q:\n%s", line, b.String())
		}
	}
	raw, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Time                      time.Time `json:"time"`
		StaleInvitationAgeSeconds float64   `json:"stale_invitation_age_seconds"`
		Checks                    []struct {
			Check           string `json:"check"`
			Findings        int64  `json:"findings"`
			TenantsAffected int64  `json:"tenants_affected"`
			Tenants         []struct {
				Tenant   string `json:"tenant"`
				Findings int64  `json:"findings"`
			} `json:"tenants"`
		} `json:"checks"`
	}
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if !back.Time.Equal(now) || back.StaleInvitationAgeSeconds != (30*day).Seconds() || len(back.Checks) != 4 ||
		back.Checks[3].Check != adminops.TenantsBelowTwoAdmins || back.Checks[3].Findings != 4 ||
		back.Checks[3].Tenants[0].Tenant != id("charlie") || back.Checks[3].Tenants[0].Findings != 2 {
		t.Errorf("JSON does not carry the round: %s", raw)
	}
}
