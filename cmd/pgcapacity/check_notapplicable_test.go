package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/sigid/pgcapacity/internal/config"
)

// TestCheckSaysNotApplicable: on a database that has none of the admin-ops
// tables, no pg_stat_statements and none of the default hot tables, check
// says "not applicable: <reason>" for each absent source, fails none of
// them, and exits 0 (no rule holds); --json carries the same reasons.
func TestCheckSaysNotApplicable(t *testing.T) {
	dbURL := newDatabase(t,
		`DROP EXTENSION pg_stat_statements`,
		`CREATE TABLE app_event (tenant_id bigint NOT NULL, id bigint NOT NULL, PRIMARY KEY (tenant_id, id)) PARTITION BY HASH (tenant_id)`,
		`CREATE TABLE app_event_p0 PARTITION OF app_event FOR VALUES WITH (MODULUS 2, REMAINDER 0)`,
		`CREATE TABLE app_event_p1 PARTITION OF app_event FOR VALUES WITH (MODULUS 2, REMAINDER 1)`,
		`INSERT INTO app_event SELECT g % 10, g FROM generate_series(1, 100) g`,
		`ANALYZE app_event`)
	env := map[string]string{"PGCAPACITY_DATABASE_URL": dbURL}
	code, stdout, stderr := runCommand(t, env, "check")
	if code != exitOK {
		t.Fatalf("check: exit %d, want %d\n%s%s", code, exitOK, stdout, stderr)
	}
	// Each absent source has its one line.
	for _, want := range []string{
		"pg_stat_statements: not applicable: the extension is not installed in this database",
		"not applicable: PGCAPACITY_HOT_TABLES patterns matching no watched table: session, tenant_membership, tenant_subject_identifier, referral*",
	} {
		if n := strings.Count(stdout, want); n != 1 {
			t.Errorf("check prints %q %d times, want once:\n%s", want, n, stdout)
		}
	}
	for _, check := range []string{"stale_invitations", "unreviewed_admins", "admins_without_mfa", "tenants_below_two_admins"} {
		found := false
		for _, line := range strings.Split(stdout, "\n") {
			f := strings.Fields(line)
			if len(f) > 0 && f[0] == check {
				found = strings.Contains(line, "not applicable: relation")
			}
		}
		if !found {
			t.Errorf("admin-ops check %s: no \"not applicable: relation …\" line:\n%s", check, stdout)
		}
	}
	if strings.Contains(stdout, "FAILED") {
		t.Errorf("an absent source is reported as FAILED:\n%s", stdout)
	}

	code, stdout, stderr = runCommand(t, env, "check", "--json")
	if code != exitOK {
		t.Fatalf("check --json: exit %d\n%s%s", code, stdout, stderr)
	}
	var r struct {
		Latency struct {
			Unmatched []string `json:"unmatched_hot_tables"`
		} `json:"latency"`
		Statements struct {
			Available     *bool  `json:"available"`
			NotApplicable string `json:"not_applicable"`
		} `json:"statements"`
		AdminOps struct {
			Checks []struct {
				Check         string `json:"check"`
				NotApplicable string `json:"not_applicable"`
				Error         string `json:"error"`
			} `json:"checks"`
		} `json:"adminops"`
	}
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("check --json: %v\n%s", err, stdout)
	}
	if r.Statements.Available == nil || *r.Statements.Available || !strings.Contains(r.Statements.NotApplicable, "not installed") {
		t.Errorf("statements %+v, want available false with the reason", r.Statements)
	}
	if len(r.Latency.Unmatched) != 4 {
		t.Errorf("unmatched hot tables %v, want the four default patterns", r.Latency.Unmatched)
	}
	if len(r.AdminOps.Checks) != 4 {
		t.Errorf("admin-ops checks %+v, want four", r.AdminOps.Checks)
	}
	for _, c := range r.AdminOps.Checks {
		if c.NotApplicable == "" || c.Error != "" {
			t.Errorf("admin-ops check %s: not_applicable %q, error %q; want a reason and no error", c.Check, c.NotApplicable, c.Error)
		}
	}
}

// TestCheckSkipsSwitchedOffCollectors: check runs only the optional
// collectors PGCAPACITY_COLLECTORS names, as serve does; a section left out
// says so in one line (and in --json's switched_off), the others print as
// usual.
func TestCheckSkipsSwitchedOffCollectors(t *testing.T) {
	dbURL := newDatabase(t, balancedTable...)
	// What each optional section prints when it runs.
	section := map[string]string{
		"probes":     "Tenant-scoped probe latency, ",
		"statements": "\npg_stat_statements: available",
		"adminops":   "  CHECK  ",
	}
	for _, off := range checkOptional() {
		t.Run(off, func(t *testing.T) {
			var on []string
			for _, name := range config.CollectorNames() {
				if name != off {
					on = append(on, name)
				}
			}
			env := map[string]string{"PGCAPACITY_DATABASE_URL": dbURL, "PGCAPACITY_COLLECTORS": strings.Join(on, ",")}
			code, stdout, stderr := runCommand(t, env, "check")
			if code != exitOK {
				t.Fatalf("check: exit %d\n%s%s", code, stdout, stderr)
			}
			if want := "switched off (PGCAPACITY_COLLECTORS leaves out " + off + ")"; strings.Count(stdout, want) != 1 {
				t.Errorf("check does not say once %q:\n%s", want, stdout)
			}
			for name, marker := range section {
				if got := strings.Contains(stdout, marker); got != (name != off) {
					t.Errorf("%s off: the %s section printed %v, want %v:\n%s", off, name, got, name != off, stdout)
				}
			}
			code, stdout, stderr = runCommand(t, env, "check", "--json")
			if code != exitOK {
				t.Fatalf("check --json: exit %d\n%s%s", code, stdout, stderr)
			}
			var r struct {
				SwitchedOff []string `json:"switched_off"`
			}
			if err := json.Unmarshal([]byte(stdout), &r); err != nil {
				t.Fatal(err)
			}
			if len(r.SwitchedOff) != 1 || r.SwitchedOff[0] != off {
				t.Errorf("--json switched_off %v, want [%s]", r.SwitchedOff, off)
			}
		})
	}
}
