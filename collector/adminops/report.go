package adminops

import (
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/sigid/pgcapacity/internal/config"
)

// WriteReport writes the admin-ops section of the `check` report: one line
// per check with its exact totals, then each check's worst tenants (at most
// maxTenants of them, the rest counted).
func WriteReport(w io.Writer, res Result, maxTenants int) error {
	ew := &errWriter{w: w}
	ew.printf("Admin operations (%s)\n", res.Time.UTC().Format(time.DateTime+" MST"))
	tw := tabwriter.NewWriter(ew, 1, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  CHECK\tFINDINGS\tTENANTS\tWHAT")
	for _, cr := range res.Checks {
		switch {
		case cr.Disabled:
			fmt.Fprintf(tw, "  %s\t-\t-\tdisabled in %s\n", cr.Check, cr.Source)
		case cr.NotApplicable != "":
			fmt.Fprintf(tw, "  %s\t-\t-\tnot applicable: %s\n", cr.Check, cr.NotApplicable)
		case cr.Error != "":
			fmt.Fprintf(tw, "  %s\tFAILED\t-\t%s\n", cr.Check, cr.Error)
		default:
			what := reportDescription(cr.Check, res)
			if cr.Source != SourceDefault {
				what += " (query from " + cr.Source + ")"
			}
			fmt.Fprintf(tw, "  %s\t%d\t%d\t%s\n", cr.Check, cr.Findings, cr.TenantsAffected, what)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, cr := range res.Checks {
		if cr.Disabled || cr.NotApplicable != "" || cr.Error != "" || cr.TenantsAffected == 0 {
			continue
		}
		shown := cr.Tenants[:min(len(cr.Tenants), max(maxTenants, 0))]
		ew.printf("  %s, worst tenants:\n", cr.Check)
		tw := tabwriter.NewWriter(ew, 1, 0, 2, ' ', 0)
		for _, t := range shown {
			fmt.Fprintf(tw, "    %s\t%d\n", t.Tenant, t.Findings)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if rest := cr.TenantsAffected - int64(len(shown)); rest > 0 {
			ew.printf("    ... and %d more %s\n", rest, plural(rest, "tenant", "tenants"))
		}
	}
	return ew.err
}

// reportDescription says what a check counts with this round's settings.
func reportDescription(check string, res Result) string {
	switch check {
	case StaleInvitations:
		return "invitations pending longer than " + config.Duration(res.StaleInvitationAge).String()
	case UnreviewedAdmins:
		return "administrators and owners not access-reviewed within " + config.Duration(res.ReviewInterval).String()
	case TenantsBelowTwoAdmins:
		return "administrators missing from active tenants with fewer than " + strconv.Itoa(res.MinAdmins)
	}
	return Description(check)
}

func plural(n int64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// errWriter keeps the first write error so the report reads straight.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

func (e *errWriter) printf(format string, args ...any) {
	fmt.Fprintf(e, format, args...)
}
