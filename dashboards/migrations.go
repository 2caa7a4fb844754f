package dashboards

import (
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/units"
)

// Phases of migrate (migrate.PhaseSwapped, migrate.PhaseRolledBack) in
// which a migration keeps a second copy of its table.
const (
	phaseSwapped    = "swapped"
	phaseRolledBack = "rolled_back"
)

// copyRateWindow smooths the copy rate enough for a steady ETA. The rate
// is the slope of a gauge (deriv), not of a counter, so it takes a fixed
// window rather than $__rate_interval.
const copyRateWindow = "10m"

// migrations answers: where is each repartition, when will the copy end,
// and which old tables are still kept for rollback?
func migrations(opts Options) *dashboard.DashboardBuilder {
	copied := sel("pgcapacity_migration_copied_rows")
	estimated := sel("pgcapacity_migration_estimated_rows")
	byID := "on (" + byTarget + ", id)"
	copyRate := "deriv(" + copied + "[" + copyRateWindow + "])"
	// What an operator must see before a swap: a failing step and the
	// captured changes still waiting for the replay.
	failing := sel("pgcapacity_migration_failing")
	backlog := sel("pgcapacity_migration_backlog_rows")
	rollback := opts.RollbackPeriod.D().Seconds()

	b := newDashboard(UIDMigrations, "pgcapacity / Migrations",
		"Online repartitions run by `pgcapacity migrate`: the phase of each, rows copied against the estimate, copy rate and time to completion, and the old tables kept for rollback after the swap.",
		"now-24h")

	b.WithRow(dashboard.NewRowBuilder("Migrations").Id(1)).
		WithPanel(newTable(2, "Migrations and their phase",
			"Every migration pgcapacity knows of: the table, the partition count it changes from and to, and the phase it is in now.",
			units.NoUnit).
			WithTarget(rows("A", sel("pgcapacity_migration_info"))).
			WithTransformation(organize(append(hiddenColumns, "Value"),
				map[string]string{"id": "Migration", "schema": "Schema", "table": "Table", "from_partitions": "From", "to_partitions": "To", "phase": "Phase"},
				[]string{"id", "schema", "table", "from_partitions", "to_partitions", "phase"})).
			Span(10).Height(8)).
		WithPanel(newBarGauge(3, "Copy progress",
			"Share of the original table's blocks copied, 0 to 100 %; 100 % once the copy is done.",
			units.PercentUnit).
			WithTarget(latest("A", sel("pgcapacity_migration_copy_progress_ratio"), "{{id}}")).
			Thresholds(neutral()).
			Max(1).
			Span(6).Height(8)).
		WithPanel(newStat(4, "Failing",
			"Whether the last step of each migration failed (`pgcapacity migrate status` shows the error). Do not swap a failing migration.",
			units.NoUnit).
			WithTarget(latest("A", failing, "{{id}}")).
			Thresholds(redAt(1)).
			Mappings(failingMappings()).
			TextMode(common.BigValueTextModeValueAndName).
			Span(4).Height(8)).
		WithPanel(newStat(5, "Replay backlog",
			"Captured changes not yet replayed into the new table (a statistics estimate). The swap replays what is left under its exclusive lock and waits while more than --max-final-replay are waiting.",
			units.Short).
			WithTarget(latest("A", backlog, "{{id}}")).
			Thresholds(neutral()).
			TextMode(common.BigValueTextModeValueAndName).
			Span(4).Height(8))

	b.WithRow(dashboard.NewRowBuilder("Copy").Id(10)).
		WithPanel(newTimeseries(11, "Rows copied against the estimate",
			"Rows copied so far (solid) and the row estimate (red dashed). Flat solid line before the estimate: the copy is paused or stuck.",
			units.Short).
			WithTarget(series("A", copied, "{{id}} copied")).
			WithTarget(series("B", estimated, "{{id}} estimate")).
			OverrideByQuery("B", referenceLine()).
			Span(6).Height(8)).
		WithPanel(newTimeseries(14, "Replay backlog over time",
			"Captured changes waiting for the replay. It should fall while the replay follows and stay low before a swap; a backlog that only grows is writes outpacing the replay.",
			units.Short).
			WithTarget(series("A", backlog, "{{id}}")).
			Span(6).Height(8)).
		WithPanel(newTimeseries(12, "Copy rate",
			fmt.Sprintf("Rows copied per second, averaged over %s.", copyRateWindow),
			units.RowsPerSecond).
			WithTarget(series("A", copyRate, "{{id}}")).
			Span(6).Height(8)).
		WithPanel(newStat(13, "Time to completion",
			fmt.Sprintf("Rows still to copy / the copy rate of the last %s. Empty while nothing is copying.", copyRateWindow),
			units.DurationSeconds).
			WithTarget(latest("A", "("+estimated+" - "+byID+" "+copied+") / "+byID+" ("+copyRate+" > 0) > 0", "{{id}}")).
			Thresholds(neutral()).
			TextMode(common.BigValueTextModeValueAndName).
			NoValue("not copying").
			Span(6).Height(8))

	b.WithRow(dashboard.NewRowBuilder("Old tables kept for rollback").Id(20)).
		WithPanel(newStat(21, "Old tables retained",
			"Migrations holding a second full copy of their table: swapped (the old table kept for rollback until `pgcapacity migrate drop-old`) or rolled back (the new table kept until the migration is aborted).",
			units.Short).
			WithTarget(latest("A", "count("+sel("pgcapacity_migration_info", `phase=~"`+phaseSwapped+"|"+phaseRolledBack+`"`)+") or vector(0)", "old tables")).
			Thresholds(neutral()).
			Span(6).Height(8)).
		WithPanel(newBarGauge(23, "Migration tables on disk",
			"Heap and indexes of the tables migrate owns, per migration and role: shadow (the new table being filled) and retained (the old table kept for rollback). They are left out of the table dashboards; this is the disk they hold until the migration is finished or dropped.",
			units.BytesIEC).
			WithTarget(latest("A", "sort_desc("+sel("pgcapacity_migration_table_bytes")+")", "{{id}} {{role}}")).
			Thresholds(neutral()).
			Span(6).Height(8)).
		WithPanel(newTimeseries(22, "Time since swap",
			fmt.Sprintf("How long each swapped migration has kept its old table. Past the rollback period (%s, red dashed line) the old table may be dropped: rollback is no longer promised.", opts.RollbackPeriod),
			units.DurationSeconds).
			WithTarget(series("A", "(time() - "+sel("pgcapacity_migration_swapped_timestamp_seconds")+") and "+byID+" "+sel("pgcapacity_migration_info", `phase="`+phaseSwapped+`"`), "{{id}}")).
			Thresholds(redAt(rollback)).
			ThresholdsStyle(dashedLine()).
			Span(12).Height(8))
	return b
}

// failingMappings names whether a migration's last step failed.
func failingMappings() []dashboard.ValueMapping {
	return []dashboard.ValueMapping{{ValueMap: &dashboard.ValueMap{
		Type: dashboard.MappingTypeValueToText,
		Options: map[string]dashboard.ValueMappingResult{
			"0": {Text: ptr("ok"), Color: ptr("green")},
			"1": {Text: ptr("failing"), Color: ptr("red")},
		},
	}}}
}
