package adminops

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sigid/pgcapacity/internal/dbpool"
)

// Result is one round of every check, the typed form `check` reports.
type Result struct {
	Time               time.Time     `json:"time"`
	StaleInvitationAge time.Duration `json:"-"`
	ReviewInterval     time.Duration `json:"-"`
	MinAdmins          int           `json:"min_admins"`
	TenantCap          int           `json:"tenant_cap"`
	Checks             []CheckResult `json:"checks"`

	// The durations again, in seconds, for --json readers.
	StaleInvitationAgeSeconds float64 `json:"stale_invitation_age_seconds"`
	ReviewIntervalSeconds     float64 `json:"review_interval_seconds"`
}

// CheckResult is one check's outcome. Totals are exact; Tenants holds the
// worst TenantCap tenants and Omitted counts the rest.
type CheckResult struct {
	Check           string           `json:"check"`
	Description     string           `json:"description"`
	Source          string           `json:"source"`
	Disabled        bool             `json:"disabled,omitempty"`
	NotApplicable   string           `json:"not_applicable,omitempty"` // why the database has nothing for this check; not a failure
	Findings        int64            `json:"findings"`
	TenantsAffected int64            `json:"tenants_affected"`
	Tenants         []TenantFindings `json:"tenants"`
	Omitted         int64            `json:"tenants_omitted"`
	Duration        time.Duration    `json:"-"`
	DurationSeconds float64          `json:"duration_seconds"`
	LastSuccess     time.Time        `json:"-"`
	Carried         bool             `json:"-"` // failed: the findings are the last good round's
	Error           string           `json:"error,omitempty"`
}

// TenantFindings is one tenant's count of findings.
type TenantFindings struct {
	Tenant   string `json:"tenant"`
	Findings int64  `json:"findings"`
}

// HasFindings reports whether any enabled check found something.
func (r Result) HasFindings() bool {
	for _, c := range r.Checks {
		if c.Findings > 0 {
			return true
		}
	}
	return false
}

// Failed lists the checks that could not run.
func (r Result) Failed() []string {
	var failed []string
	for _, c := range r.Checks {
		if c.Error != "" {
			failed = append(failed, c.Check)
		}
	}
	return failed
}

// Options are what a round needs beyond the queries.
type Options struct {
	StaleInvitationAge time.Duration
	ReviewInterval     time.Duration
	MinAdmins          int
	TenantCap          int              // most tenants per check kept in CheckResult.Tenants
	QueryTimeout       time.Duration    // statement_timeout of each check
	LockTimeout        time.Duration    // lock_timeout of each check
	Now                func() time.Time // the round's reference time; nil: time.Now
}

// Run runs every enabled check, each in its own READ ONLY transaction with
// a statement timeout, so one failing check leaves the others' results.
// The error joins the failed checks' errors; the Result holds all.
func Run(ctx context.Context, pool *pgxpool.Pool, checks []Check, opts Options) (Result, error) {
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	params := Parameters{
		Now:                now(),
		StaleInvitationAge: opts.StaleInvitationAge,
		ReviewInterval:     opts.ReviewInterval,
		MinAdmins:          opts.MinAdmins,
	}
	res := Result{
		Time:               params.Now,
		StaleInvitationAge: opts.StaleInvitationAge,
		ReviewInterval:     opts.ReviewInterval,
		MinAdmins:          opts.MinAdmins,
		TenantCap:          opts.TenantCap,

		StaleInvitationAgeSeconds: opts.StaleInvitationAge.Seconds(),
		ReviewIntervalSeconds:     opts.ReviewInterval.Seconds(),
	}
	if opts.QueryTimeout <= 0 {
		opts.QueryTimeout = defaultQueryTimeout
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = defaultLockTimeout
	}
	var errs []error
	for i := range checks {
		c := &checks[i]
		cr := CheckResult{Check: c.Name, Description: Description(c.Name), Source: c.Source, Disabled: c.Disabled, NotApplicable: c.NotApplicable, Tenants: []TenantFindings{}}
		if !c.Disabled && c.NotApplicable == "" {
			start := time.Now()
			counts, err := runCheck(ctx, pool, c, params, opts)
			cr.Duration = time.Since(start)
			cr.DurationSeconds = cr.Duration.Seconds()
			if err != nil {
				cr.Error = err.Error()
				errs = append(errs, err)
			} else {
				summarise(&cr, counts, opts.TenantCap)
				cr.LastSuccess = params.Now
			}
		}
		res.Checks = append(res.Checks, cr)
	}
	return res, errors.Join(errs...)
}

// runCheck returns findings per tenant, duplicates merged, zero rows dropped.
func runCheck(ctx context.Context, pool *pgxpool.Pool, c *Check, params Parameters, opts Options) (map[string]int64, error) {
	// The server's statement_timeout ends the query; the context is a backstop
	// for a server that does not answer.
	ctx, cancel := context.WithTimeout(ctx, opts.QueryTimeout+5*time.Second)
	defer cancel()
	tx, err := pool.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("admin-ops check %s: starting a read-only transaction: %w", c.Name, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // read-only: nothing to keep
	if err := dbpool.SetLocalTimeouts(ctx, tx, opts.QueryTimeout, opts.LockTimeout); err != nil {
		return nil, fmt.Errorf("admin-ops check %s: setting timeouts: %w", c.Name, err)
	}
	// An unnamed statement each round: planned with this round's values
	// (never a generic plan), and safe when the schema changes between rounds.
	args := append([]any{pgx.QueryExecModeDescribeExec}, c.args(params)...)
	rows, err := tx.Query(ctx, c.sql, args...)
	if err != nil {
		return nil, &QueryError{Check: c.Name, Source: c.Source, Problem: "failed: " + describePgError(err, c.sql), Err: err}
	}
	defer rows.Close()
	// The schema may have changed since start: check the columns every round.
	if err := c.checkColumns(rows.FieldDescriptions()); err != nil {
		// No columns at all: the query failed, and Close brings its error.
		rows.Close()
		if qerr := rows.Err(); qerr != nil {
			return nil, &QueryError{Check: c.Name, Source: c.Source, Problem: "failed: " + describePgError(qerr, c.sql), Err: qerr}
		}
		return nil, err
	}
	counts := make(map[string]int64)
	var tenant pgtype.Text
	var findings pgtype.Int8
	for rows.Next() {
		if err := rows.Scan(&tenant, &findings); err != nil {
			return nil, &QueryError{Check: c.Name, Source: c.Source, Problem: "reading a row: " + err.Error() + ": return a text tenant and a whole-number findings", Err: err}
		}
		if !tenant.Valid {
			return nil, &QueryError{Check: c.Name, Source: c.Source, Problem: "returned a NULL tenant: filter NULL tenants out or coalesce them"}
		}
		if findings.Valid && findings.Int64 > 0 {
			counts[tenant.String] += findings.Int64
		}
	}
	if err := rows.Err(); err != nil {
		return nil, &QueryError{Check: c.Name, Source: c.Source, Problem: "failed: " + describePgError(err, c.sql), Err: err}
	}
	return counts, nil
}

// summarise fills the exact totals and the worst cap tenants, ties by tenant.
func summarise(cr *CheckResult, counts map[string]int64, cap int) {
	all := make([]TenantFindings, 0, len(counts))
	for t, n := range counts {
		all = append(all, TenantFindings{Tenant: t, Findings: n})
		cr.Findings += n
	}
	cr.TenantsAffected = int64(len(all))
	slices.SortFunc(all, func(a, b TenantFindings) int {
		return cmp.Or(cmp.Compare(b.Findings, a.Findings), cmp.Compare(a.Tenant, b.Tenant))
	})
	cap = max(cap, 0)
	if len(all) > cap {
		cr.Omitted = int64(len(all) - cap)
		all = all[:cap]
	}
	cr.Tenants = slices.Clip(all)
}

// The configuration's defaults, for callers that leave Options zero.
const (
	defaultQueryTimeout = 10 * time.Second
	defaultLockTimeout  = time.Second
)
