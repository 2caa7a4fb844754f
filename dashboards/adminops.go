package dashboards

import (
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/units"
)

// adminops answers: which admin-operations minimums are broken, for how
// many tenants, and which tenants to call first?
func adminops(_ Options) *dashboard.DashboardBuilder {
	checks := func(metric string) string { return sel(metric, inChecks) }
	// Several pgcapacity replicas may watch the same database (one
	// cluster): take their largest count, then add the clusters up, so
	// "All" clusters is the total.
	perCheck := func(metric string) string {
		return "sum by (check) (max by (cluster, check) (" + checks(metric) + "))"
	}

	b := newDashboard(UIDAdminops, "pgcapacity / Admin operations",
		"The SigID admin-operations minimums: stale invitations (monthly review), administrators not reviewed this quarter, administrators without MFA, tenants with fewer than two administrators. Every finding is work for a tenant administrator or security operations.",
		"now-30d").
		WithVariable(multiVariable("check", "Check", `label_values(`+sel("pgcapacity_adminops_findings")+`, check)`))

	b.WithRow(dashboard.NewRowBuilder("Now").Id(1)).
		WithPanel(newStat(2, "Findings per check",
			"Offending items per check now (invitations, administrators or tenants), added up over the selected clusters. Green only at zero: each check is a minimum, not a budget.",
			units.Short).
			WithTarget(latest("A", perCheck("pgcapacity_adminops_findings"), "{{check}}")).
			Thresholds(redAt(1)).
			TextMode(common.BigValueTextModeValueAndName).
			Span(9).Height(5)).
		WithPanel(newStat(3, "Tenants affected per check",
			"Tenants with at least one finding, per check, added up over the selected clusters.",
			units.Short).
			WithTarget(latest("A", perCheck("pgcapacity_adminops_tenants_affected"), "{{check}}")).
			Thresholds(redAt(1)).
			TextMode(common.BigValueTextModeValueAndName).
			Span(9).Height(5)).
		WithPanel(newStat(4, "Checks running",
			"Whether each check's query succeeded in the last round. A failing check keeps its last good findings, so the numbers beside it may be stale.",
			units.NoUnit).
			WithTarget(latest("A", "min by (check) ("+checks("pgcapacity_adminops_check_success")+")", "{{check}}")).
			Thresholds(greenAt(1)).
			Mappings(successMappings()).
			TextMode(common.BigValueTextModeValueAndName).
			Span(6).Height(5))

	b.WithRow(dashboard.NewRowBuilder("Over time").Id(10)).
		WithPanel(newTimeseries(11, "Findings per check over time",
			"Offending items per check. Steps down follow reviews and clean-ups; a slow climb is a review cadence slipping.",
			units.Short).
			WithTarget(series("A", perCheck("pgcapacity_adminops_findings"), "{{check}}")).
			Span(12).Height(8)).
		WithPanel(newTimeseries(12, "Tenants affected over time",
			"Tenants with at least one finding, per check.",
			units.Short).
			WithTarget(series("A", perCheck("pgcapacity_adminops_tenants_affected"), "{{check}}")).
			Span(12).Height(8))

	b.WithRow(dashboard.NewRowBuilder("Top offending tenants").Id(20)).
		WithPanel(newTable(21, "Top offending tenants",
			"The tenants with the most findings, per check, most first. Only the worst tenants are published (PGCAPACITY_ADMINOPS_TENANT_CAP per check), so this is where to start, not the whole list.",
			units.Short).
			WithTarget(rows("A", "sort_desc(topk by (check) (25, "+checks("pgcapacity_adminops_tenant_findings")+"))")).
			WithTransformation(organize(hiddenColumns,
				map[string]string{"tenant": "Tenant", "check": "Check", "Value": "Findings"},
				[]string{"tenant", "check", "Value"})).
			SortBy([]cogSortBy{common.NewTableSortByFieldStateBuilder().DisplayName("Findings").Desc(true)}).
			Span(18).Height(10)).
		WithPanel(newStat(22, "Tenants left out by the cap",
			"Tenants with findings that are not listed per tenant because of PGCAPACITY_ADMINOPS_TENANT_CAP. Above zero, the table is the worst tenants, not all of them.",
			units.Short).
			WithTarget(latest("A", perCheck("pgcapacity_adminops_tenant_findings_omitted"), "{{check}}")).
			Thresholds(neutral()).
			TextMode(common.BigValueTextModeValueAndName).
			Span(6).Height(10))
	return b
}
