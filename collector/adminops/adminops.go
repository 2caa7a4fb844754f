// Package adminops runs the admin-operations checks of the SigID operations
// guide (stale invitations, unreviewed administrators, administrators
// without MFA, tenants below the two-administrator minimum) and publishes
// their findings as Prometheus metrics.
//
// Each check is one SQL query returning (tenant, findings) rows. Defaults for
// the reference schema are embedded; an operator overrides any check in a
// YAML file. Queries use named parameters (@now, @stale_invitation_age,
// @review_interval, @min_admins), which are always bound, never spliced.
package adminops

import (
	"embed"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// The checks, in report order. Their names are part of the metric contract.
const (
	StaleInvitations      = "stale_invitations"
	UnreviewedAdmins      = "unreviewed_admins"
	AdminsWithoutMFA      = "admins_without_mfa"
	TenantsBelowTwoAdmins = "tenants_below_two_admins"
)

// CheckNames lists every check in report order.
func CheckNames() []string {
	return []string{StaleInvitations, UnreviewedAdmins, AdminsWithoutMFA, TenantsBelowTwoAdmins}
}

// descriptions say what one finding of each check is.
var descriptions = map[string]string{
	StaleInvitations:      "invitations pending longer than the stale invitation age",
	UnreviewedAdmins:      "administrators and owners not access-reviewed within the review interval",
	AdminsWithoutMFA:      "active administrators and owners without MFA",
	TenantsBelowTwoAdmins: "administrators missing from active tenants below the minimum",
}

// Description says what one finding of check counts.
func Description(check string) string { return descriptions[check] }

//go:embed queries/*.sql
var defaultQueries embed.FS

// DefaultQuery is the embedded query of check for the reference SigID schema.
func DefaultQuery(check string) (string, error) {
	if !slices.Contains(CheckNames(), check) {
		return "", fmt.Errorf("unknown check %q: the checks are %s", check, strings.Join(CheckNames(), ", "))
	}
	b, err := defaultQueries.ReadFile("queries/" + check + ".sql")
	if err != nil {
		return "", fmt.Errorf("reading the default query of %s: %w", check, err)
	}
	return string(b), nil
}

// Parameters are the values bound to the named parameters of every query.
// A query uses those it needs.
type Parameters struct {
	Now                time.Time     // @now: the reference time of the round (timestamptz)
	StaleInvitationAge time.Duration // @stale_invitation_age (interval)
	ReviewInterval     time.Duration // @review_interval (interval)
	MinAdmins          int           // @min_admins (integer)
}

// parameterNames are the named parameters a query may use, in documentation order.
var parameterNames = []string{"now", "stale_invitation_age", "review_interval", "min_admins"}

// NamedArgs binds p to a query as written, for tools that run a check's
// query themselves (EXPLAIN in the benchmark).
func (p Parameters) NamedArgs() pgx.NamedArgs { return p.values() }

func (p Parameters) values() map[string]any {
	return map[string]any{
		"now":                  p.Now,
		"stale_invitation_age": interval(p.StaleInvitationAge),
		"review_interval":      interval(p.ReviewInterval),
		"min_admins":           p.MinAdmins,
	}
}

func parameterList() string {
	names := make([]string, len(parameterNames))
	for i, n := range parameterNames {
		names[i] = "@" + n
	}
	return strings.Join(names, ", ")
}
