package dashboards

import (
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/units"

	"github.com/sigid/pgcapacity/internal/playbook"
	"github.com/sigid/pgcapacity/rules"
)

// Recording rules (rules/pgcapacity.rules.yml) the latency panels read.
const (
	recP50           = rules.RecordProbeP50
	recP95           = rules.RecordProbeP95
	recP99           = rules.RecordProbeP99
	recPlanningShare = rules.RecordPlanningShare
)

// overview answers: does any watched table need a different partition
// count, and which rule says so?
func overview(opts Options) *dashboard.DashboardBuilder {
	t := opts.Thresholds
	retention := t.WriteRetentionTarget.D().Seconds()
	table := []string{inSchemas, inTables}

	b := newDashboard(UIDOverview, "pgcapacity / Partition capacity overview",
		"Whether any watched hash-partitioned table needs a different partition count: the six operating rules per table, green or red against their thresholds. A rule must hold for a full business week before its alert fires.",
		"now-7d").
		WithVariable(roleVariable()).
		WithVariable(schemaVariable()).
		WithVariable(tableVariable())

	b.WithRow(dashboard.NewRowBuilder("Server").Id(1)).
		WithPanel(newStat(2, "Exporter up",
			"Up when Prometheus scrapes pgcapacity and pgcapacity reached PostgreSQL in its last sampling round. Down when either fails: every other panel then shows stale or no data.",
			units.NoUnit).
			WithTarget(latest("A", exporterUp(), "{{instance}}")).
			Thresholds(greenAt(1)).
			Mappings(upMappings()).
			Span(3).Height(6)).
		WithPanel(newStat(5, "Collectors",
			"Whether each collector's last sampling round succeeded. A failing collector keeps its last good samples, so its panels go flat rather than empty.",
			units.NoUnit).
			WithTarget(latest("A", sel("pgcapacity_collector_success"), "{{collector}}")).
			Thresholds(greenAt(1)).
			Mappings(successMappings()).
			TextMode(common.BigValueTextModeValueAndName).
			Span(4).Height(6)).
		WithPanel(newStat(3, "Hot tenant indexes / shared_buffers",
			fmt.Sprintf("Rule 3: all tenant-leading btree indexes of hot tables together, as a share of shared_buffers. Red from %s: they no longer fit in memory and tenant lookups start reading from disk.", percent(t.TenantIndexBufferRatio)),
			units.PercentUnit).
			WithTarget(latest("A", onRole(sel("pgcapacity_hot_tenant_index_bytes")+" / on ("+byTarget+") "+sel("pgcapacity_shared_buffers_bytes")), "{{instance}}")).
			Thresholds(redAt(t.TenantIndexBufferRatio)).
			Links([]cog.Builder[dashboard.DashboardLink]{runbook(opts, playbook.RuleTenantIndexes)}).
			Span(4).Height(6)).
		WithPanel(newTimeseries(4, "Hot tenant index bytes against shared_buffers",
			fmt.Sprintf("Rule 3 over time: the hot tables' tenant-leading btree indexes (solid) against shared_buffers × %g (red dashed line). The rule holds while the solid line is above the dashed one.", t.TenantIndexBufferRatio),
			units.BytesIEC).
			WithTarget(series("A", selRole("pgcapacity_hot_tenant_index_bytes"), "hot tenant indexes {{instance}}")).
			WithTarget(series("B", fmt.Sprintf("%s * %g", selRole("pgcapacity_shared_buffers_bytes"), t.TenantIndexBufferRatio), fmt.Sprintf("shared_buffers × %g {{instance}}", t.TenantIndexBufferRatio))).
			OverrideByQuery("B", referenceLine()).
			Span(13).Height(6)).
		WithPanel(newStat(6, "Server role",
			"Primary or standby (pg_is_in_recovery()) of every instance, whatever the Role variable. On a standby live rows come from the replicated reltuples, vacuum and analyze lag are not published, and the rules evaluate on primaries only; the other panels show the roles the Role variable selects (primary by default).",
			units.NoUnit).
			WithTarget(latest("A", sel("pgcapacity_in_recovery"), "{{instance}}")).
			Thresholds(neutral()).
			Mappings(roleMappings()).
			Span(3).Height(6)).
		WithPanel(newBarGauge(7, "Series published per family",
			"How many series each metric family of pgcapacity publishes now: what one exporter costs the Prometheus storing it. Per-partition families shrink with PGCAPACITY_PARTITION_DETAIL=top or none.",
			units.Short).
			WithTarget(latest("A", "sort_desc(sum by (family) ("+sel("pgcapacity_exporter_series")+"))", "{{family}}")).
			Thresholds(neutral()).
			Span(21).Height(6))

	// One row per watched table: Grafana repeats it for every value of $table.
	b.WithRow(dashboard.NewRowBuilder("Table $table").Id(10).Repeat("table")).
		WithPanel(ruleStat(opts, 11, playbook.LiveRows, "avg live rows / partition",
			fmt.Sprintf("Average live rows per hash partition. Red above %s: the table needs more partitions.", count(t.LiveRowsPerPartition)),
			units.Short, selRole("pgcapacity_table_partition_live_rows_avg", table...), t.LiveRowsPerPartition)).
		WithPanel(ruleStat(opts, 12, playbook.Skew, "skew (max / median)",
			fmt.Sprintf("Live rows of the largest partition divided by the median partition's. Red above %g×: one partition carries far more than its share, usually a few very large tenants.", t.SkewRatio),
			unitTimes, selRole("pgcapacity_table_partition_skew_ratio", table...), t.SkewRatio)).
		WithPanel(ruleStat(opts, 13, playbook.TenantIndexes, "tenant indexes / shared_buffers",
			fmt.Sprintf("This table's tenant-leading btree indexes as a share of shared_buffers. Red at %s: this table alone no longer fits; the rule itself adds up every hot table (Server row).", percent(t.TenantIndexBufferRatio)),
			units.PercentUnit, onRole(sel("pgcapacity_table_tenant_index_bytes", table...)+" / on ("+byTarget+") group_left "+sel("pgcapacity_shared_buffers_bytes")), t.TenantIndexBufferRatio)).
		WithPanel(ruleStat(opts, 14, playbook.VacuumLag, "worst vacuum lag",
			fmt.Sprintf("How long the worst partition's dead rows have stood above its autovacuum trigger without a vacuum. Red above the write retention target (%s).", t.WriteRetentionTarget),
			units.Seconds, selRole("pgcapacity_table_vacuum_lag_seconds", table...), retention)).
		WithPanel(ruleStat(opts, 15, playbook.LatencyRegression, "p95 against last week",
			fmt.Sprintf("p95 of the tenant-scoped probe (all phases) against the same time last week. Red above +%s. The alert compares against a baseline from before the regression began; this is the quick look. n/a: the table has no probe, or no probe data from a week ago.", percent(t.LatencyRegression)),
			units.PercentUnit, regressionExpr(table), t.LatencyRegression).
			NoValue("n/a")).
		WithPanel(ruleStat(opts, 16, playbook.PlanningTime, "planning share of p95",
			fmt.Sprintf("Planning time as a share of p95 probe latency. Red above %s: partition pruning at plan time is a measurable cost, a reason to merge partitions.", percent(t.PlanningShare)),
			units.PercentUnit, selRole(recPlanningShare, table...), t.PlanningShare).
			NoValue("no probe")).
		WithPanel(newStat(17, "Partitions",
			"Hash partitions of the table now.",
			units.Short).
			WithTarget(latest("A", selRole("pgcapacity_table_partitions", table...), "{{schema}}.{{table}}")).
			Thresholds(neutral()).
			ColorMode(common.BigValueColorModeValue).
			GraphMode(common.BigValueGraphModeArea).
			Links(tableLinks()).
			Span(4).Height(8)).
		WithPanel(newTimeseries(18, "Live rows per partition",
			fmt.Sprintf("Average, median and largest partition's live rows. The red dashed line is rule 1's limit for the average (%s); max far above median is skew.", count(t.LiveRowsPerPartition)),
			units.Short).
			WithTarget(series("A", selRole("pgcapacity_table_partition_live_rows_avg", table...), "avg")).
			WithTarget(series("B", selRole("pgcapacity_table_partition_live_rows_median", table...), "median")).
			WithTarget(series("C", selRole("pgcapacity_table_partition_live_rows_max", table...), "max")).
			Thresholds(redAt(t.LiveRowsPerPartition)).
			ThresholdsStyle(dashedLine()).
			Span(5).Height(8)).
		WithPanel(newTimeseries(19, "Skew ratio",
			fmt.Sprintf("Largest partition / median partition over time; rule 2's limit (%g×) is the red dashed line.", t.SkewRatio),
			unitTimes).
			WithTarget(series("A", selRole("pgcapacity_table_partition_skew_ratio", table...), "{{schema}}.{{table}}")).
			Thresholds(redAt(t.SkewRatio)).
			ThresholdsStyle(dashedLine()).
			Span(5).Height(8)).
		WithPanel(newTimeseries(20, "Worst vacuum lag against the retention target",
			fmt.Sprintf("Vacuum lag of the worst partition; rule 4's write retention target (%s) is the red dashed line. A saw-tooth under the line is autovacuum keeping up.", t.WriteRetentionTarget),
			units.Seconds).
			WithTarget(series("A", selRole("pgcapacity_table_vacuum_lag_seconds", table...), "{{schema}}.{{table}}")).
			Thresholds(redAt(retention)).
			ThresholdsStyle(dashedLine()).
			Span(5).Height(8)).
		WithPanel(newTimeseries(21, "Tenant indexes against shared_buffers",
			fmt.Sprintf("This table's tenant-leading btree indexes (all partitions, and the largest partition's) against shared_buffers × %g (red dashed line). Rule 3 adds up every hot table: see the Server row.", t.TenantIndexBufferRatio),
			units.BytesIEC).
			WithTarget(series("A", selRole("pgcapacity_table_tenant_index_bytes", table...), "all partitions")).
			WithTarget(series("B", selRole("pgcapacity_table_tenant_index_partition_max_bytes", table...), "largest partition")).
			WithTarget(series("C", fmt.Sprintf("%s * %g", selRole("pgcapacity_shared_buffers_bytes"), t.TenantIndexBufferRatio), fmt.Sprintf("shared_buffers × %g", t.TenantIndexBufferRatio))).
			OverrideByQuery("C", referenceLine()).
			Span(5).Height(8))
	return b
}

// unitTimes renders ratios such as the skew as "4.2×".
const unitTimes = "suffix:×"

// ruleStat is one operating rule of the playbook now: green below its
// threshold, red at and above, linked to the table detail and the rule's
// runbook section.
func ruleStat(opts Options, id uint32, rule playbook.ID, title, description, unit, expr string, threshold float64) *statBuilder {
	alert := playbook.Get(rule).Name
	return newStat(id, fmt.Sprintf("Rule %d: %s", rule, title), description, unit).
		WithTarget(latest("A", expr, "{{schema}}.{{table}}")).
		Thresholds(redAt(threshold)).
		Links(append(tableLinks(), runbook(opts, alert))).
		Span(4).Height(4)
}

// regressionExpr is p95 of the whole probe against the same time a week
// earlier, minus one: +0.25 is 25 percent slower.
func regressionExpr(table []string) string {
	p95 := sel(recP95, append(table, `phase="total"`)...)
	return onRole(p95 + " / " + p95 + " offset 1w - 1")
}

func tableLinks() []cog.Builder[dashboard.DashboardLink] {
	return []cog.Builder[dashboard.DashboardLink]{link("Table detail: $table", detailURL)}
}

// exporterUp is pgcapacity_up, or Prometheus' own up (0) where the
// scrape fails and pgcapacity_up is gone: an exporter that cannot be
// scraped is down, not "No data". up is kept to the targets that published
// pgcapacity_up in the last day, since "All" jobs also match other exporters.
func exporterUp() string {
	on := "on (" + byTarget + ")"
	return "min by (" + byTarget + ") (" + sel("pgcapacity_up") + ") or " + on +
		" (min by (" + byTarget + ") (" + sel("up") + ") and " + on +
		" group by (" + byTarget + ") (present_over_time(" + sel("pgcapacity_up") + "[1d])))"
}

// roleMappings names pgcapacity_in_recovery.
func roleMappings() []dashboard.ValueMapping {
	return []dashboard.ValueMapping{{ValueMap: &dashboard.ValueMap{
		Type: dashboard.MappingTypeValueToText,
		Options: map[string]dashboard.ValueMappingResult{
			"0": {Text: ptr("primary"), Color: ptr("blue")},
			"1": {Text: ptr("standby"), Color: ptr("purple")},
		},
	}}}
}

// upMappings names the exporter's two states.
func upMappings() []dashboard.ValueMapping {
	return []dashboard.ValueMapping{{ValueMap: &dashboard.ValueMap{
		Type: dashboard.MappingTypeValueToText,
		Options: map[string]dashboard.ValueMappingResult{
			"0": {Text: ptr("down"), Color: ptr("red")},
			"1": {Text: ptr("up"), Color: ptr("green")},
		},
	}}}
}

// successMappings names a collector's or check's two states.
func successMappings() []dashboard.ValueMapping {
	return []dashboard.ValueMapping{{ValueMap: &dashboard.ValueMap{
		Type: dashboard.MappingTypeValueToText,
		Options: map[string]dashboard.ValueMappingResult{
			"0": {Text: ptr("failing"), Color: ptr("red")},
			"1": {Text: ptr("ok"), Color: ptr("green")},
		},
	}}}
}

// percent renders a share (0.25) for a description ("25%").
func percent(share float64) string {
	return fmt.Sprintf("%g%%", share*100)
}

// count renders a row count for a description (1000000 as "1,000,000").
func count(n float64) string {
	s := fmt.Sprintf("%.0f", n)
	out := make([]byte, 0, len(s)+len(s)/3)
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}
