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
	Name string `json:"name"`
	// Origin is OriginDerived or OriginFile; empty means OriginFile.
	Origin string `json:"origin"`
	// Schema of Table; empty: resolved through the search_path.
	Schema string `json:"schema"`
	// Table is the table the probe measures: the metric's table label and
	// where tenants are sampled from.
	Table string `json:"table"`
	// TenantKey is the column $1 is compared with, and TenantKeyType its
	// type (derived probes; a file's probe says it in its SQL).
	TenantKey     string `json:"tenant_key,omitempty"`
	TenantKeyType string `json:"tenant_key_type,omitempty"`
	// Index is the tenant-leading btree index a derived probe is built on.
	Index string `json:"index,omitempty"`
	// SQL is a single SELECT with $1 the tenant id.
	SQL string `json:"sql"`

	line int // in the probes file, for messages
}

// QualifiedName is schema.table as written in the configuration.
func (p Probe) QualifiedName() string {
	if p.Schema == "" {
		return p.Table
	}
	return p.Schema + "." + p.Table
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
