package rules

import (
	"fmt"
	"strings"
	"time"

	"github.com/sigid/pgcapacity/collector/adminops"
	"github.com/sigid/pgcapacity/internal/playbook"
)

// Recording rules other packages (dashboards) rely on. Every series keeps
// job and instance.
const (
	RecordProbeP50             = "schema_table_phase:pgcapacity_probe_duration_seconds:p50_5m"
	RecordProbeP95             = "schema_table_phase:pgcapacity_probe_duration_seconds:p95_5m"
	RecordProbeP99             = "schema_table_phase:pgcapacity_probe_duration_seconds:p99_5m"
	RecordProbeP95Hour         = "schema_table_phase:pgcapacity_probe_duration_seconds:p95_1h"
	RecordPlanningShare        = "schema_table:pgcapacity_probe_planning_share:p95_5m"
	RecordPlanningShareHour    = "schema_table:pgcapacity_probe_planning_share:p95_1h"
	RecordProbeErrorRate       = "schema_table:pgcapacity_probe_errors:rate5m"
	RecordLatencyBaseline      = "schema_table:pgcapacity_probe_duration_seconds:p95_1h_baseline"
	RecordLatencyBaselineRatio = "schema_table:pgcapacity_probe_duration_seconds:p95_1h_baseline_ratio"
	RecordHotIndexShare        = "instance:pgcapacity_hot_tenant_index_bytes:ratio_shared_buffers"

	// The 0/1 conditions of the six planning rules, one sample per
	// evaluation; the alerts look back a rule window over them.
	RecordLiveRowsHolds     = "schema_table:pgcapacity_planning_live_rows:holds"
	RecordSkewHolds         = "schema_table:pgcapacity_planning_skew:holds"
	RecordTenantIndexHolds  = "instance:pgcapacity_planning_tenant_indexes:holds"
	RecordVacuumLagHolds    = "schema_table:pgcapacity_planning_autovacuum_lag:holds"
	RecordLatencyHolds      = "schema_table:pgcapacity_planning_latency_regression:holds"
	RecordPlanningTimeHolds = "schema_table:pgcapacity_planning_planning_time:holds"
)

// Hold times of the operational alerts: long enough to ride out one failed
// sampling round or scrape, short enough to act on.
const (
	exporterDownFor     = 5 * time.Minute
	collectorFailingFor = 15 * time.Minute
	checkFailingFor     = 30 * time.Minute
	wraparoundFor       = 5 * time.Minute
	// A parent stays stale until someone analyzes it; an hour lets the
	// ANALYZE that follows a bulk load or a new table's first rows finish.
	parentStatisticsFor = time.Hour
)

const (
	// cluster leads so the dashboards' cluster variable keeps working on
	// recorded series; a Prometheus that sets no cluster label loses nothing.
	byTable    = "cluster, job, instance, schema, table"
	byInstance = "cluster, job, instance"
	tableName  = "{{ $labels.schema }}.{{ $labels.table }}"
	onInstance = " on {{ $labels.instance }}"
)

// primaryOnly keeps expr's series from primaries: every pod of an HA
// cluster runs a sidecar, and a standby replays the same data, so without
// it each alert fires once per pod. unless (not "and ... == 0") keeps the
// alerts of exporters that publish no pgcapacity_in_recovery.
func primaryOnly(expr string) string {
	return "(\n" + expr + "\n)\nunless on (" + byInstance + ") pgcapacity_in_recovery == 1"
}

func (g generator) probeGroup() Group {
	quantile := func(q, window string) string {
		return fmt.Sprintf("histogram_quantile(%s, sum by (%s, phase, le) (rate(pgcapacity_probe_duration_seconds_bucket[%s])))", q, byTable, window)
	}
	share := func(p95 string) string {
		// A table without probe observations has a NaN p95; "> 0" drops it
		// instead of recording NaN.
		return p95 + `{phase="planning"}` + "\n  / ignoring (phase)\n(" + p95 + `{phase="total"} > 0)`
	}
	return Group{Name: "pgcapacity.probes", Interval: g.interval, Rules: []Rule{
		{Record: RecordProbeP50, Expr: quantile("0.5", "5m")},
		{Record: RecordProbeP95, Expr: quantile("0.95", "5m")},
		{Record: RecordProbeP99, Expr: quantile("0.99", "5m")},
		{Record: RecordProbeP95Hour, Expr: quantile("0.95", "1h")},
		{Record: RecordPlanningShare, Expr: share(RecordProbeP95)},
		{Record: RecordPlanningShareHour, Expr: share(RecordProbeP95Hour)},
		{Record: RecordProbeErrorRate, Expr: fmt.Sprintf("sum by (%s) (rate(pgcapacity_probe_errors_total[5m]))", byTable)},
	}}
}

// planningAlert renders the business-week form every planning alert shares:
// the current value, where the recorded 0/1 condition has been 1 at every
// evaluation of the last window and was already being recorded a window
// ago. It reads only stored samples, so a restart of Prometheus or of a
// Thanos or Mimir ruler neither resets nor loses it.
func (g generator) planningAlert(value, condition, by string, extra ...string) string {
	w := promDuration(g.o.Thresholds.RuleWindow.D())
	start := promDuration(max(time.Hour, 2*g.planningInterval()))
	parts := []string{
		value,
		fmt.Sprintf("and on (%s)\n  min_over_time(%s[%s]) == 1", by, condition, w),
		fmt.Sprintf("and on (%s)\n  last_over_time(%s[%s] offset %s)", by, condition, start, w),
	}
	for _, e := range extra {
		parts = append(parts, fmt.Sprintf("and on (%s)\n  %s", by, e))
	}
	return strings.Join(parts, "\n")
}

// planningInterval evaluates the planning group about 2016 times per rule
// window (every 5m for 7d): fine enough to catch an hour's break, and light
// on Thanos or Mimir rulers, which query the whole window at every evaluation.
func (g generator) planningInterval() time.Duration {
	return max(g.o.EvaluationInterval, (g.o.Thresholds.RuleWindow.D() / 2016).Truncate(time.Second))
}

func (g generator) planningGroup() Group {
	t := g.o.Thresholds
	w := t.RuleWindow.D()
	window := promDuration(w)
	retention := t.WriteRetentionTarget.D().Seconds()
	// Rules 1, 2 and 4 judge hash partition counts: list and range parents
	// (watched when PGCAPACITY_TABLES names them) are left out, as check does.
	hash := fmt.Sprintf(`and on (%s) pgcapacity_table_info{strategy="hash"}`, byTable)
	hotHash := fmt.Sprintf(`and on (%s) pgcapacity_table_info{hot="true",strategy="hash"}`, byTable)
	// The baseline of a table's p95 is the median of its hourly p95 over the
	// window that ended one window ago: when the alert fires, a window after
	// the regression began, that is the window before it began.
	step := promDuration(max(w/168, g.o.EvaluationInterval).Truncate(time.Second))
	baseline := fmt.Sprintf("max without (phase) (\n  quantile_over_time(0.5, (%s{phase=\"total\"} > 0)[%s:%s] offset %s)\n)", RecordProbeP95Hour, window, step, window)
	ratio := fmt.Sprintf("max without (phase) (%s{phase=\"total\"} > 0)\n  /\n%s", RecordProbeP95Hour, RecordLatencyBaseline)
	lagsZero := []string{"pgcapacity_table_vacuum_lag_seconds == 0", "pgcapacity_table_analyze_lag_seconds == 0"}
	regressed := fmt.Sprintf("(%s > bool %s)\nand on (%s) (%s)\nand on (%s) (%s)",
		RecordLatencyBaselineRatio, num(1+t.LatencyRegression), byTable, lagsZero[0], byTable, lagsZero[1])

	// Name, summary and scope come from the playbook's registry; the
	// consistency test (playbook_test.go) proves condition and Go judge agree.
	planning := func(id playbook.ID, value, condition, description string, extra ...string) Rule {
		r := playbook.Get(id)
		by := byTable
		if r.Scope == playbook.PerInstance {
			by = byInstance
		}
		return g.alert(r.Name, g.planningAlert(value, condition, by, extra...), "", SeverityInfo, CategoryCapacityPlanning, r.Summary, description)
	}
	held := "for the whole of the last " + window

	return Group{Name: "pgcapacity.planning", Interval: promDuration(g.planningInterval()), Rules: []Rule{
		{Record: RecordHotIndexShare, Expr: fmt.Sprintf("pgcapacity_hot_tenant_index_bytes\n  / on (%s)\npgcapacity_shared_buffers_bytes", byInstance)},
		{Record: RecordLatencyBaseline, Expr: baseline},
		{Record: RecordLatencyBaselineRatio, Expr: ratio},

		{Record: RecordLiveRowsHolds, Expr: primaryOnly("(pgcapacity_table_partition_live_rows_avg > bool " + num(t.LiveRowsPerPartition) + ")\n" + hash)},
		{Record: RecordSkewHolds, Expr: primaryOnly("(pgcapacity_table_partition_skew_ratio > bool " + num(t.SkewRatio) + ")\n" + hash)},
		{Record: RecordTenantIndexHolds, Expr: primaryOnly(RecordHotIndexShare + " > bool " + num(t.TenantIndexBufferRatio))},
		{Record: RecordVacuumLagHolds, Expr: primaryOnly("(pgcapacity_table_vacuum_lag_seconds > bool " + num(retention) + ")\n" + hotHash)},
		// Absent (not 0) while vacuum or analyze lag: such samples count
		// neither way, so an ordinary autovacuum cycle does not restart the week.
		{Record: RecordLatencyHolds, Expr: primaryOnly(regressed)},
		// Rule 6 needs both a share of p95 and planning long enough to
		// matter: point lookups plan in a tenth of a millisecond, so a share
		// alone holds on every table.
		{Record: RecordPlanningTimeHolds, Expr: primaryOnly(fmt.Sprintf("(%s > bool %s)\n* on (%s)\n(max without (phase) (%s{phase=\"planning\"}) > bool %s)",
			RecordPlanningShareHour, num(t.PlanningShare), byTable, RecordProbeP95Hour, num(t.PlanningMin.D().Seconds())))},

		planning(playbook.LiveRows, "pgcapacity_table_partition_live_rows_avg", RecordLiveRowsHolds,
			fmt.Sprintf("%s%s has averaged more than %s live rows per partition %s; now %s per partition.",
				tableName, onInstance, humanize(t.LiveRowsPerPartition), held, "{{ $value | humanize }}")),
		planning(playbook.Skew, "pgcapacity_table_partition_skew_ratio", RecordSkewHolds,
			fmt.Sprintf("The largest partition of %s%s has held more than %sx the median partition's live rows %s; now %sx.",
				tableName, onInstance, num(t.SkewRatio), held, "{{ $value | humanize }}")),
		planning(playbook.TenantIndexes, RecordHotIndexShare, RecordTenantIndexHolds,
			fmt.Sprintf("The tenant-leading btree indexes of the hot tables on {{ $labels.instance }} have been larger than %s of shared_buffers %s; now %s.",
				percent(t.TenantIndexBufferRatio), held, "{{ $value | humanizePercentage }}")),
		planning(playbook.VacuumLag, "pgcapacity_table_vacuum_lag_seconds", RecordVacuumLagHolds,
			fmt.Sprintf("The worst partition of hot table %s%s has had dead rows above its autovacuum trigger for more than %s without a vacuum, at every sample %s; now %s.",
				tableName, onInstance, promDuration(t.WriteRetentionTarget.D()), held, "{{ $value | humanizeDuration }}"),
		),
		planning(playbook.LatencyRegression, RecordLatencyBaselineRatio, RecordLatencyHolds,
			fmt.Sprintf("The hourly p95 of the tenant-scoped probe of %s%s has been more than %s above its baseline (the median p95 of the %s before) %s, counting only while vacuum and analyze lag were zero; now %s of the baseline.",
				tableName, onInstance, percent(t.LatencyRegression), window, held, "{{ $value | humanizePercentage }}"),
			lagsZero...),
		planning(playbook.PlanningTime, RecordPlanningShareHour, RecordPlanningTimeHolds,
			fmt.Sprintf("Planning time of the tenant-scoped probe of %s%s has been more than %s of its p95 latency %s; now %s.",
				tableName, onInstance, percent(t.PlanningShare), held, "{{ $value | humanizePercentage }}")),
	}}
}

func (g generator) operationalGroup() Group {
	t := g.o.Thresholds
	retention := t.WriteRetentionTarget.D()
	return Group{Name: "pgcapacity.operational", Interval: g.interval, Rules: []Rule{
		g.alert("PgcapacityExporterDown", fmt.Sprintf("up{job=%q} == 0", g.o.Job), promDuration(exporterDownFor),
			SeverityWarning, CategoryExporter,
			"Prometheus cannot scrape pgcapacity; the capacity and admin-ops alerts of this instance are blind.",
			fmt.Sprintf("The %s target {{ $labels.instance }} has failed every scrape for %s.", g.o.Job, promDuration(exporterDownFor))),
		g.alert("PgcapacityDatabaseUnreachable", "pgcapacity_up == 0", promDuration(exporterDownFor),
			SeverityWarning, CategoryExporter,
			"pgcapacity cannot reach its PostgreSQL database.",
			fmt.Sprintf("pgcapacity on {{ $labels.instance }} has reported pgcapacity_up 0 for %s: its last sampling rounds could not connect or authenticate.", promDuration(exporterDownFor))),
		g.alert("PgcapacityCollectorFailing", "pgcapacity_collector_success == 0", promDuration(collectorFailingFor),
			SeverityWarning, CategoryExporter,
			"A pgcapacity collector keeps failing; its metrics are missing or stale.",
			fmt.Sprintf("Collector {{ $labels.collector }} of pgcapacity on {{ $labels.instance }} has failed every round for %s.", promDuration(collectorFailingFor))),
		g.alert("PgcapacityAdminopsCheckFailing", "pgcapacity_adminops_check_success == 0", promDuration(checkFailingFor),
			SeverityWarning, CategoryExporter,
			"An admin-operations check keeps failing; its findings are frozen at the last good round.",
			fmt.Sprintf("Admin-ops check {{ $labels.check }} of pgcapacity on {{ $labels.instance }} has failed every round for %s.", promDuration(checkFailingFor))),
		g.alert("HotPartitionVacuumLagHigh",
			primaryOnly(fmt.Sprintf("pgcapacity_table_vacuum_lag_seconds > %s\nand on (%s) pgcapacity_table_info{hot=\"true\"}", num(retention.Seconds()), byTable)),
			promDuration(t.VacuumLagFor.D()), SeverityWarning, CategoryAutovacuum,
			"Autovacuum of a hot table is behind the write retention target.",
			fmt.Sprintf("The worst partition of hot table %s%s has had dead rows above its autovacuum trigger without a vacuum for {{ $value | humanizeDuration }}, above the write retention target of %s, for %s.",
				tableName, onInstance, promDuration(retention), promDuration(t.VacuumLagFor.D()))),
		g.alert(playbook.AlertParentStatistics, primaryOnly(parentStatisticsStale(t.ParentAnalyzeMaxAge.D())), promDuration(parentStatisticsFor),
			SeverityWarning, CategoryAutovacuum,
			"A hot table's partitioned parent has stale or no statistics of its own; autovacuum never analyzes it, so estimates through the parent are off.",
			fmt.Sprintf("The partitioned parent of hot table %s%s {{ if eq $value -1.0 }}has no statistics of its own{{ else }}was last analyzed {{ $value | humanizeDuration }} ago, more than %s{{ end }}, while its partitions have been analyzed since. Run ANALYZE ONLY on PostgreSQL 18+, ANALYZE before.",
				tableName, onInstance, promDuration(t.ParentAnalyzeMaxAge.D()))),
		g.alert("TransactionIDWraparoundApproaching", primaryOnly("pgcapacity_table_xid_age_max > "+num(t.XIDAgeCritical)), promDuration(wraparoundFor),
			SeverityCritical, CategoryAutovacuum,
			"A table's oldest transaction ID is approaching wraparound; PostgreSQL will stop accepting writes if it is not frozen.",
			fmt.Sprintf("The oldest relfrozenxid among the partitions of %s%s is {{ printf \"%%.0f\" $value }} transactions old, above %s; wraparound stops writes at about 2.1 billion.",
				tableName, onInstance, num(t.XIDAgeCritical))),
		g.alert("MigrationOldTableRetained",
			primaryOnly(fmt.Sprintf("time() - pgcapacity_migration_swapped_timestamp_seconds > %s", num(g.o.RollbackPeriod.Seconds()))), "",
			SeverityInfo, CategoryMigration,
			"A repartition's old table is still kept after its rollback period; drop it to reclaim its space.",
			fmt.Sprintf("Migration {{ $labels.id }}%s swapped {{ $value | humanizeDuration }} ago, longer than the rollback period of %s, and its old table still exists.",
				onInstance, promDuration(g.o.RollbackPeriod))),
	}}
}

func (g generator) adminopsGroup() Group {
	t := g.o.Thresholds
	days := int(t.AdminopsReviewWindow.D() / (24 * time.Hour))
	findings := func(check string) string {
		return primaryOnly(fmt.Sprintf("pgcapacity_adminops_findings{check=%q} > 0", check))
	}
	// Review alerts fire during the first days of each review period (UTC),
	// so a finding turns into one ticket per review instead of a new one
	// every day an invitation turns stale.
	review := func(check string, months int) string {
		expr := findings(check) + fmt.Sprintf("\nand on () (day_of_month() <= %d)", days)
		if months > 1 {
			expr += fmt.Sprintf("\nand on () ((month() - 1) %% %d == 0)", months)
		}
		return expr
	}
	period := func(months int) string {
		switch months {
		case 1:
			return "month"
		case 3:
			return "quarter"
		case 12:
			return "year"
		}
		return fmt.Sprintf("%d months", months)
	}
	detail := func(check string) string {
		return fmt.Sprintf(" The tenants are in pgcapacity_adminops_tenant_findings{check=%q}.", check)
	}
	hold := promDuration(t.AdminopsFindingFor.D())
	return Group{Name: "pgcapacity.adminops", Interval: g.interval, Rules: []Rule{
		g.alert("AdminopsStaleInvitations", review(adminops.StaleInvitations, t.AdminopsInvitationReviewMonths), "",
			SeverityWarning, CategoryAdminops,
			"Invitations have stood pending past the stale age; review them this "+period(t.AdminopsInvitationReviewMonths)+".",
			fmt.Sprintf("{{ $value | humanize }} invitations%s have been pending longer than the stale invitation age. This alert fires during the first %d days of every %s, the review cadence of stale invitations.",
				onInstance, days, period(t.AdminopsInvitationReviewMonths))+detail(adminops.StaleInvitations)),
		g.alert("AdminopsUnreviewedAdmins", review(adminops.UnreviewedAdmins, t.AdminopsAccessReviewMonths), "",
			SeverityWarning, CategoryAdminops,
			"Administrators are due for their access review this "+period(t.AdminopsAccessReviewMonths)+".",
			fmt.Sprintf("{{ $value | humanize }} administrators and owners%s have not been access-reviewed within the review interval. This alert fires during the first %d days of every %s, the access review cadence.",
				onInstance, days, period(t.AdminopsAccessReviewMonths))+detail(adminops.UnreviewedAdmins)),
		g.alert("AdminopsAdminsWithoutMFA", findings(adminops.AdminsWithoutMFA), hold,
			SeverityWarning, CategoryAdminops,
			"Administrators without MFA: MFA is required for every administrator.",
			fmt.Sprintf("{{ $value | humanize }} active administrators and owners%s have had no MFA for %s.", onInstance, hold)+detail(adminops.AdminsWithoutMFA)),
		g.alert("AdminopsTenantsBelowTwoAdmins", findings(adminops.TenantsBelowTwoAdmins), hold,
			SeverityWarning, CategoryAdminops,
			fmt.Sprintf("Tenants have fewer than %d active administrators.", g.o.MinAdmins),
			fmt.Sprintf("Active tenants%s are {{ $value | humanize }} administrators short of the minimum of %d, for %s.", onInstance, g.o.MinAdmins, hold)+detail(adminops.TenantsBelowTwoAdmins)),
	}}
}

// parentStatisticsStale is playbook.ParentStatisticsStale over the exported
// series: a hot table whose partitions have been analyzed since its parent
// was, and whose parent has no statistics (value -1) or older than maxAge
// (value the age). The newest partition analyze is a per-table series, so
// this works whatever PGCAPACITY_PARTITION_DETAIL publishes.
func parentStatisticsStale(maxAge time.Duration) string {
	analyzed := "pgcapacity_table_partition_last_analyze_timestamp_seconds"
	return fmt.Sprintf(`(
  (pgcapacity_table_parent_statistics_missing == 1) * -1
    and on (%[1]s) %[2]s > 0
  or
  pgcapacity_table_parent_analyze_age_seconds > %[3]s
    and on (%[1]s) (%[2]s > on (%[1]s) (time() - pgcapacity_table_parent_analyze_age_seconds))
)
and on (%[1]s) pgcapacity_table_info{hot="true"}`, byTable, analyzed, num(maxAge.Seconds()))
}
