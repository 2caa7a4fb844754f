// Package probes measures the latency of tenant-scoped queries on the hot
// tables. Each probe is one SELECT with $1 the tenant id; every round runs
// it as EXPLAIN (ANALYZE, FORMAT JSON) in a READ ONLY transaction with a
// statement_timeout, for a tenant sampled round-robin across the table's
// partitions, and records the plan's own planning and execution times and
// the client-observed total in pgcapacity_probe_duration_seconds.
//
// Safety in depth: a probe file with anything but a single SELECT is
// refused when it is loaded (CheckSQL); every probe runs in a READ ONLY
// transaction, so the server refuses writes and row locks whatever the
// text says; and it runs over the extended protocol, which refuses more
// than one statement.
package probes

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/sigid/pgcapacity/internal/sqllex"
)

// Probe is one tenant-scoped query on one table.
type Probe struct {
	// Name identifies the probe in logs and in the probes file.
	Name string
	// Schema of Table; empty: resolved through the search_path.
	Schema string
	// Table is the table the probe measures: the metric's table label and
	// where tenants are sampled from.
	Table string
	// SQL is a single SELECT with $1 the tenant id.
	SQL string
}

// QualifiedName is schema.table as written in the configuration.
func (p Probe) QualifiedName() string {
	if p.Schema == "" {
		return p.Table
	}
	return p.Schema + "." + p.Table
}

// Defaults are the probes for the reference SigID schema: one per hot
// table, the shape of its hot tenant-scoped lookup. The key (session id,
// user id, …) comes from an inner lookup in the same tenant, so each probe
// reads a real row through the same unique index the service uses; the
// inner lookup is a single index descent.
func Defaults() []Probe {
	return []Probe{
		{Name: "session_by_id", Table: "session", SQL: `SELECT s.session_id, s.user_id, s.expires_at, s.revoked_at
FROM session s
WHERE s.tenant_id = $1
  AND s.session_id = (SELECT session_id FROM session WHERE tenant_id = $1
                      ORDER BY session_id LIMIT 1)`},
		{Name: "membership_by_user", Table: "tenant_membership", SQL: `SELECT m.membership_id, m.role, m.status, m.mfa_enabled
FROM tenant_membership m
WHERE m.tenant_id = $1
  AND m.user_id = (SELECT user_id FROM tenant_membership WHERE tenant_id = $1
                   ORDER BY user_id LIMIT 1)`},
		{Name: "subject_identifier_lookup", Table: "tenant_subject_identifier", SQL: `SELECT i.user_id
FROM tenant_subject_identifier i
WHERE i.tenant_id = $1
  AND (i.issuer, i.subject) = (SELECT issuer, subject FROM tenant_subject_identifier
                               WHERE tenant_id = $1 ORDER BY issuer, subject LIMIT 1)`},
		{Name: "referral_by_code", Table: "referral", SQL: `SELECT r.referral_id, r.referrer_user_id, r.expires_at, r.max_redemptions
FROM referral r
WHERE r.tenant_id = $1
  AND r.code = (SELECT code FROM referral WHERE tenant_id = $1
                ORDER BY code LIMIT 1)`},
	}
}

var validName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Validate checks a probe's name, table and SQL.
func (p Probe) Validate() error {
	if !validName.MatchString(p.Name) {
		return fmt.Errorf("name %q: use letters, digits and underscores, starting with a letter", p.Name)
	}
	if strings.TrimSpace(p.Table) == "" {
		return errors.New("table is missing: name the table the probe measures, as table or schema.table")
	}
	if err := CheckSQL(p.SQL); err != nil {
		return fmt.Errorf("sql: %w", err)
	}
	return nil
}

// CheckSQL accepts a single read-only SELECT whose only parameter is $1,
// and explains what is wrong with anything else.
func CheckSQL(sql string) error {
	toks, err := sqllex.ReadOnlySelect(sql)
	if err != nil {
		return fmt.Errorf("%w: a probe may only read; write one SELECT with $1 the tenant id", err)
	}
	hasTenant := false
	for _, t := range toks {
		if t.Kind == sqllex.Param {
			if t.Value != "1" {
				return fmt.Errorf("uses $%s: a probe gets one parameter, $1, the tenant id", t.Value)
			}
			hasTenant = true
		}
	}
	if !hasTenant {
		return errors.New("does not use $1: a probe must filter by the tenant id given as $1")
	}
	return nil
}
