package dashboards

import (
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/common/model"

	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/units"
)

// pg_stat_statements counters per table (the statements collector).
const (
	stmtCalls     = "pgcapacity_statements_calls_total"
	stmtExecTime  = "pgcapacity_statements_exec_seconds_total"
	stmtPlanTime  = "pgcapacity_statements_plan_seconds_total"
	probeErrors   = "pgcapacity_probe_errors_total"
	byTableSeries = "by (" + byTarget + ", schema, table)"
)

// latency answers: are tenant-scoped queries slower than last week, and is
// partition planning part of the cost?
func latency(opts Options) *dashboard.DashboardBuilder {
	t := opts.Thresholds
	tables := []string{inSchemas, inTables}
	phase := func(metric, p string) string { return sel(metric, append(tables, `phase="`+p+`"`)...) }
	// pg_stat_statements counters step once per statements interval, so
	// $__rate_interval (four scrapes) often holds no step and shows gaps:
	// the per-second rate over a fixed window of several collector
	// intervals instead (increase over the window / its seconds).
	window, windowSeconds := statementsWindow(opts.StatementsInterval.D())
	stmt := func(metric string) string {
		return "sum " + byTableSeries + " (increase(" + sel(metric, tables...) + "[" + window + "])) / " + windowSeconds
	}

	b := newDashboard(UIDLatency, "pgcapacity / Tenant query latency",
		"Latency of the tenant-scoped probe queries pgcapacity runs against each hot table (p50, p95, p99 by phase), compared with the same time last week, and pg_stat_statements planning and execution time per table.",
		"now-24h").
		WithVariable(roleVariable()).
		WithVariable(schemaVariable()).
		WithVariable(tableVariable())

	b.WithRow(dashboard.NewRowBuilder("Probe latency against last week").Id(1)).
		WithPanel(newTimeseries(2, "p95 latency against the same time last week",
			"p95 of the whole probe (planning and execution) per table, solid, and the same series one week earlier, grey dashed. A solid line steadily above its dashed twin is a regression.",
			units.Seconds).
			WithTarget(series("A", onRole(phase(recP95, "total")), "{{schema}}.{{table}}")).
			WithTarget(series("B", onRole(phase(recP95, "total")+" offset 1w"), "{{schema}}.{{table}} last week")).
			OverrideByQuery("B", greyLine()).
			Span(12).Height(9)).
		WithPanel(newTimeseries(3, "p95 change against last week",
			fmt.Sprintf("p95 now / p95 a week earlier − 1, per table. Above the red dashed line (+%s) is rule 5's regression; the alert itself measures from a baseline taken before the regression began, once vacuum and analyze have caught up.", percent(t.LatencyRegression)),
			units.PercentUnit).
			WithTarget(series("A", regressionExpr(tables), "{{schema}}.{{table}}")).
			Thresholds(redAt(t.LatencyRegression)).
			ThresholdsStyle(dashedLine()).
			Min(-1).
			Span(12).Height(9))

	b.WithRow(dashboard.NewRowBuilder("Probe latency by phase").Id(10))
	for i, ph := range []struct{ phase, title, what string }{
		{"total", "Total", "planning and execution together"},
		{"execution", "Execution", "execution only"},
		{"planning", "Planning", "planning only: partition pruning happens here"},
	} {
		b.WithPanel(newTimeseries(uint32(11+i), ph.title+" latency: p50, p95, p99",
			fmt.Sprintf("Probe latency per table, %s: p50 is the typical query, p99 the slow tail.", ph.what),
			units.Seconds).
			WithTarget(series("A", onRole(phase(recP50, ph.phase)), "{{schema}}.{{table}} p50")).
			WithTarget(series("B", onRole(phase(recP95, ph.phase)), "{{schema}}.{{table}} p95")).
			WithTarget(series("C", onRole(phase(recP99, ph.phase)), "{{schema}}.{{table}} p99")).
			Span(8).Height(8))
	}
	b.WithPanel(newTimeseries(14, "Planning share of p95",
		fmt.Sprintf("Planning time as a share of p95 probe latency per table. Above the red dashed line (%s) planning is a measurable part of the cost: rule 6, a reason to consider fewer partitions.", percent(t.PlanningShare)),
		units.PercentUnit).
		WithTarget(series("A", onRole(sel(recPlanningShare, tables...)), "{{schema}}.{{table}}")).
		Thresholds(redAt(t.PlanningShare)).
		ThresholdsStyle(dashedLine()).
		Span(12).Height(8)).
		WithPanel(newTimeseries(15, "Probe errors",
			"Failed probe runs per second per table (timeouts, lock waits, missing tables). Latency panels are blind while this is above zero.",
			units.CountsPerSecond).
			WithTarget(series("A", onRole("sum "+byTableSeries+" ("+rateOf(sel(probeErrors, tables...))+")"), "{{schema}}.{{table}}")).
			Span(12).Height(8))

	b.WithRow(dashboard.NewRowBuilder("pg_stat_statements per table").Id(20)).
		WithPanel(newTimeseries(21, "Execution time per call",
			fmt.Sprintf("Mean execution time of the statements touching each table, from pg_stat_statements, over %s: real application traffic, not the probe. 0 while the table has no calls.", window),
			units.Seconds).
			WithTarget(series("A", onRole(perOrZero(stmt(stmtExecTime), stmt(stmtCalls))), "{{schema}}.{{table}}")).
			Span(8).Height(8)).
		WithPanel(newTimeseries(22, "Planning time per call",
			"Mean planning time of the statements touching each table (pg_stat_statements.track_planning must be on). It grows with the number of partitions a plan has to consider.",
			units.Seconds).
			WithTarget(series("A", onRole(perOrZero(stmt(stmtPlanTime), stmt(stmtCalls))), "{{schema}}.{{table}}")).
			Span(8).Height(8)).
		WithPanel(newTimeseries(23, "Planning share of statement time",
			fmt.Sprintf("Planning / (planning + execution) of the statements touching each table. The red dashed line is rule 6's share (%s).", percent(t.PlanningShare)),
			units.PercentUnit).
			WithTarget(series("A", onRole(perOrZero(stmt(stmtPlanTime), "("+stmt(stmtPlanTime)+" + "+stmt(stmtExecTime)+")")), "{{schema}}.{{table}}")).
			Thresholds(redAt(t.PlanningShare)).
			ThresholdsStyle(dashedLine()).
			Span(8).Height(8)).
		WithPanel(newStat(26, "pg_stat_statements",
			"Whether pg_stat_statements is loaded (shared_preload_libraries) and installed in the watched database. Without it the panels of this row stay empty; planning time also needs pg_stat_statements.track_planning = on.",
			units.NoUnit).
			WithTarget(latest("A", onRole(sel("pgcapacity_statements_available")), "{{instance}}")).
			Thresholds(greenAt(1)).
			Mappings(availableMappings()).
			Span(4).Height(8)).
		WithPanel(newTimeseries(24, "Calls per second",
			fmt.Sprintf("Statements per second touching each table, over %s: read latency changes against the load.", window),
			units.OpsPerSecond).
			WithTarget(series("A", onRole(stmt(stmtCalls)), "{{schema}}.{{table}}")).
			Span(10).Height(8)).
		WithPanel(newTimeseries(25, "Time spent per second",
			fmt.Sprintf("Seconds of planning and execution per second of wall time, per table, over %s: how many backends the table's statements keep busy on average (1 = one backend all the time).", window),
			unitSecondsPerSecond).
			WithTarget(series("A", onRole(stmt(stmtExecTime)), "{{schema}}.{{table}} execution")).
			WithTarget(series("B", onRole(stmt(stmtPlanTime)), "{{schema}}.{{table}} planning")).
			Span(10).Height(8))
	return b
}

// unitSecondsPerSecond is time spent per second of wall time: a rate, not
// a duration (Grafana's "s" would print it as one).
const unitSecondsPerSecond = "suffix: s/s"

// statementsWindow is the rate window of the pg_stat_statements panels:
// five statements intervals, so every window holds at least four steps of
// the counters, and at least five minutes.
func statementsWindow(interval time.Duration) (window, seconds string) {
	w := max(5*interval, 5*time.Minute)
	return model.Duration(w).String(), strconv.FormatFloat(w.Seconds(), 'f', -1, 64)
}

// perOrZero is num / den, 0 where den is 0 (an idle table) rather than NaN.
func perOrZero(num, den string) string {
	return "(" + num + " / (" + den + " > 0)) or (" + den + " * 0)"
}

// availableMappings names whether pg_stat_statements can be read.
func availableMappings() []dashboard.ValueMapping {
	return []dashboard.ValueMapping{{ValueMap: &dashboard.ValueMap{
		Type: dashboard.MappingTypeValueToText,
		Options: map[string]dashboard.ValueMappingResult{
			"0": {Text: ptr("not installed"), Color: ptr("red")},
			"1": {Text: ptr("available"), Color: ptr("green")},
		},
	}}}
}
