package adminops_test

import (
	"maps"
	"testing"
	"time"

	"github.com/sigid/pgcapacity/collector/adminops"
	"github.com/sigid/pgcapacity/internal/config"
)

// crafted is the boundary-case data set; each row's comment says which
// check it feeds. The defaults apply: stale after 30 days, review every
// 90 days, two administrators.
var crafted = data{
	tenants: []tenant{
		{"alpha", "active"},
		{"bravo", "active"},   // one admin and one suspended admin
		{"charlie", "active"}, // no administrators at all
		{"delta", "deleted"},  // never counts
		{"echo", "suspended"}, // counts, except for the two-admin minimum
		{"foxtrot", "active"}, // one owner and one removed admin
		{"golf", "active"},    // owner and admin: enough
		{"hotel", "suspended"},
	},
	members: []member{
		{"alpha", "a1", "owner", "active", true, ago(200 * day)},   // reviewed 10 days ago
		{"alpha", "a2", "admin", "active", true, ago(200 * day)},   // last review 91 days ago: unreviewed
		{"alpha", "a3", "admin", "active", false, ago(90 * day)},   // admin exactly 90 days, never reviewed: not yet; no MFA
		{"alpha", "a4", "admin", "active", true, ago(91 * day)},    // admin 91 days, never reviewed: unreviewed
		{"alpha", "a5", "owner", "active", false, ago(10 * day)},   // reviewed before the grant, granted 10 days ago: not yet; no MFA
		{"alpha", "a6", "admin", "active", true, ago(200 * day)},   // reviewed exactly 90 days ago: not yet
		{"alpha", "a7", "member", "active", false, ago(400 * day)}, // a member: never an admin finding
		{"alpha", "a8", "admin", "suspended", false, ago(400 * day)},
		{"alpha", "a9", "owner", "removed", false, ago(400 * day)},
		{"bravo", "b1", "admin", "active", false, ago(200 * day)}, // reviewed only in charlie: unreviewed here; no MFA
		{"bravo", "b2", "admin", "suspended", false, ago(200 * day)},
		{"bravo", "b3", "member", "active", true, ago(200 * day)},
		{"charlie", "c1", "member", "active", true, ago(200 * day)},
		{"delta", "d1", "admin", "active", false, ago(400 * day)},
		{"echo", "e1", "owner", "active", false, ago(400 * day)}, // unreviewed, no MFA
		{"echo", "e2", "admin", "active", false, ago(5 * day)},   // no MFA
		{"foxtrot", "f1", "owner", "active", true, ago(10 * day)},
		{"foxtrot", "f2", "admin", "removed", false, ago(400 * day)},
		{"golf", "g1", "owner", "active", true, ago(5 * day)},
		{"golf", "g2", "admin", "active", true, ago(5 * day)},
	},
	invitations: []invitation{
		{"alpha", "pending", ago(30 * day)},                 // exactly 30 days: not stale yet
		{"alpha", "pending", ago(30*day + time.Second)},     // a second longer: stale
		{"alpha", "pending", ago(45 * day)},                 // stale
		{"alpha", "pending", ago(1 * day)},                  // fresh
		{"alpha", "accepted", ago(60 * day)},                // answered
		{"alpha", "revoked", ago(60 * day)},                 // answered
		{"alpha", "expired", ago(60 * day)},                 // answered
		{"delta", "pending", ago(60 * day)},                 // deleted tenant
		{"echo", "pending", ago(60 * day)},                  // suspended tenant: stale
		{"golf", "pending", ago(31 * day)},                  // stale
		{"golf", "pending", ago(30*day - time.Millisecond)}, // a millisecond short: not stale
	},
	reviews: []review{
		{"alpha", "a1", ago(10 * day)},
		{"alpha", "a2", ago(91 * day)},
		{"alpha", "a2", ago(300 * day)},
		{"alpha", "a5", ago(100 * day)},
		{"alpha", "a6", ago(90 * day)},
		{"charlie", "b1", ago(1 * day)},
		{"delta", "d1", ago(1 * day)},
	},
}

// craftedWant are the exact findings per tenant of every check on crafted.
var craftedWant = map[string]map[string]int64{
	adminops.StaleInvitations:      {"alpha": 2, "echo": 1, "golf": 1},
	adminops.UnreviewedAdmins:      {"alpha": 2, "bravo": 1, "echo": 1},
	adminops.AdminsWithoutMFA:      {"alpha": 2, "bravo": 1, "echo": 2},
	adminops.TenantsBelowTwoAdmins: {"bravo": 1, "charlie": 2, "foxtrot": 1},
}

func TestDefaultChecksOnCraftedData(t *testing.T) {
	e := newEnv(t, true)
	e.load(crafted)
	c := newCollector(t, "", 100)
	if err := c.Validate(e.ctx, e.pool); err != nil {
		t.Fatalf("the default queries do not validate against the reference schema: %v", err)
	}
	res, err := c.Run(e.ctx, e.pool)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Time.Equal(now) {
		t.Errorf("result time %v, want the pinned clock %v", res.Time, now)
	}
	if got := len(res.Checks); got != 4 {
		t.Fatalf("%d check results, want 4", got)
	}
	for i, check := range adminops.CheckNames() {
		t.Run(check, func(t *testing.T) {
			cr := res.Checks[i]
			if cr.Check != check {
				t.Fatalf("result %d is %s, want %s (report order)", i, cr.Check, check)
			}
			want := craftedWant[check]
			if got := byTenant(cr, crafted); !maps.Equal(got, want) {
				t.Errorf("per tenant %v, want %v", got, want)
			}
			var total int64
			for _, n := range want {
				total += n
			}
			if cr.Findings != total || cr.TenantsAffected != int64(len(want)) || cr.Omitted != 0 {
				t.Errorf("findings %d, tenants %d, omitted %d; want %d, %d, 0", cr.Findings, cr.TenantsAffected, cr.Omitted, total, len(want))
			}
			if cr.Source != adminops.SourceDefault || cr.Error != "" {
				t.Errorf("source %q error %q, want the default query without error", cr.Source, cr.Error)
			}
		})
	}
}

// The thresholds come from the configuration: moving them moves the findings.
func TestThresholdsAreParameters(t *testing.T) {
	e := newEnv(t, true)
	e.load(crafted)
	cfg := testConfig(t, "")
	cfg.AdminopsStaleInvitationAge = config.Duration(40 * day)
	cfg.AdminopsReviewInterval = config.Duration(95 * day)
	cfg.AdminopsMinAdmins = 3
	c, err := adminops.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.SetClock(func() time.Time { return now })
	res, err := c.Run(e.ctx, e.pool)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]int64{
		adminops.StaleInvitations: {"alpha": 1, "echo": 1},
		// a2 (last review 91 days ago) and a4 (admin for 91 days) are within 95 days now.
		adminops.UnreviewedAdmins:      {"bravo": 1, "echo": 1},
		adminops.AdminsWithoutMFA:      {"alpha": 2, "bravo": 1, "echo": 2},
		adminops.TenantsBelowTwoAdmins: {"bravo": 2, "charlie": 3, "foxtrot": 2, "golf": 1},
	}
	for check, w := range want {
		if got := byTenant(checkResult(t, res, check), crafted); !maps.Equal(got, w) {
			t.Errorf("%s: per tenant %v, want %v", check, got, w)
		}
	}
}

func TestTenantCapKeepsTheWorstAndCountsTheRest(t *testing.T) {
	e := newEnv(t, true)
	// Tenant k has k administrators without MFA; two tenants tie at 5.
	sizes := map[string]int{"t1": 1, "t2": 2, "t3": 3, "t5a": 5, "t5b": 5, "t6": 6, "t7": 7}
	var d data
	for name, k := range sizes {
		d.tenants = append(d.tenants, tenant{name, "active"})
		for i := range k {
			d.members = append(d.members, member{name, name + "-" + string(rune('a'+i)), "admin", "active", false, ago(day)})
		}
	}
	e.load(d)
	tie := []string{id("t5a"), id("t5b")}
	if tie[0] > tie[1] {
		tie[0], tie[1] = tie[1], tie[0]
	}
	cases := []struct {
		cap         int
		wantTenants []adminops.TenantFindings
		wantOmitted int64
	}{
		{4, []adminops.TenantFindings{{id("t7"), 7}, {id("t6"), 6}, {tie[0], 5}, {tie[1], 5}}, 3},
		{3, []adminops.TenantFindings{{id("t7"), 7}, {id("t6"), 6}, {tie[0], 5}}, 4},
		{0, []adminops.TenantFindings{}, 7},
		{100, []adminops.TenantFindings{{id("t7"), 7}, {id("t6"), 6}, {tie[0], 5}, {tie[1], 5}, {id("t3"), 3}, {id("t2"), 2}, {id("t1"), 1}}, 0},
	}
	for _, tc := range cases {
		c := newCollector(t, "", tc.cap)
		res, err := c.Run(e.ctx, e.pool)
		if err != nil {
			t.Fatal(err)
		}
		cr := checkResult(t, res, adminops.AdminsWithoutMFA)
		if !equalTenants(cr.Tenants, tc.wantTenants) {
			t.Errorf("cap %d: tenants %v, want %v", tc.cap, cr.Tenants, tc.wantTenants)
		}
		// Totals stay exact whatever the cap.
		if cr.Findings != 29 || cr.TenantsAffected != 7 || cr.Omitted != tc.wantOmitted {
			t.Errorf("cap %d: findings %d, tenants %d, omitted %d; want 29, 7, %d", tc.cap, cr.Findings, cr.TenantsAffected, cr.Omitted, tc.wantOmitted)
		}
	}
}

func equalTenants(a, b []adminops.TenantFindings) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
