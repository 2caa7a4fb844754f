package dashboards

import (
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/units"
)

// theTable selects the detail dashboard's one table.
const theTable = `table="$table"`

// tableDetail answers: where inside one table is the problem — which
// partitions are large, dirty, behind on vacuum or old?
func tableDetail(opts Options) *dashboard.DashboardBuilder {
	t := opts.Thresholds
	retention := t.WriteRetentionTarget.D().Seconds()
	tbl := []string{inSchemas, theTable}
	part := func(metric string) string { return selRole(metric, tbl...) }
	// Joins of a partition's series with its table's.
	const byTable = "on (" + byTarget + ", schema, table)"
	// A merged table joins its queries' rows on equal labels: each query
	// keeps exactly a partition's (no __name__, nothing else).
	perPartition := func(metric string) string {
		return "max by (" + byTarget + ", schema, table, partition) (" + part(metric) + ")"
	}

	b := newDashboard(UIDTable, "pgcapacity / Table detail",
		"One hash-partitioned table partition by partition: which partitions hold the rows, which carry dead rows past their autovacuum trigger, how large they are and how old their oldest transaction ids are.",
		"now-24h").
		WithVariable(roleVariable()).
		WithVariable(schemaVariable()).
		WithVariable(singleVariable("table", "Table", `label_values(`+sel("pgcapacity_table_info", inSchemas)+`, table)`))

	b.WithRow(dashboard.NewRowBuilder("$table now").Id(1)).
		WithPanel(newStat(2, "Partitions", "Hash partitions of the table.", units.Short).
			WithTarget(latest("A", part("pgcapacity_table_partitions"), "{{schema}}.{{table}}")).
			Thresholds(neutral()).Span(3).Height(4)).
		WithPanel(newStat(3, "Live rows", "Live rows of all partitions together (pg_stat reltuples estimate).", units.Short).
			WithTarget(latest("A", part("pgcapacity_table_live_rows"), "{{schema}}.{{table}}")).
			Thresholds(neutral()).Span(3).Height(4)).
		WithPanel(newStat(4, "Avg rows / partition",
			fmt.Sprintf("Rule 1: average live rows per partition; red above %s.", count(t.LiveRowsPerPartition)), units.Short).
			WithTarget(latest("A", part("pgcapacity_table_partition_live_rows_avg"), "{{schema}}.{{table}}")).
			Thresholds(redAt(t.LiveRowsPerPartition)).Span(3).Height(4)).
		WithPanel(newStat(5, "Median partition", "Live rows of the median partition: what a typical partition holds.", units.Short).
			WithTarget(latest("A", part("pgcapacity_table_partition_live_rows_median"), "{{schema}}.{{table}}")).
			Thresholds(neutral()).Span(3).Height(4)).
		WithPanel(newStat(6, "Largest partition", "Live rows of the largest partition.", units.Short).
			WithTarget(latest("A", part("pgcapacity_table_partition_live_rows_max"), "{{schema}}.{{table}}")).
			Thresholds(neutral()).Span(3).Height(4)).
		WithPanel(newStat(7, "Skew (max / median)",
			fmt.Sprintf("Rule 2: largest partition / median partition; red above %g×.", t.SkewRatio), unitTimes).
			WithTarget(latest("A", part("pgcapacity_table_partition_skew_ratio"), "{{schema}}.{{table}}")).
			Thresholds(redAt(t.SkewRatio)).Span(3).Height(4)).
		WithPanel(newStat(8, "Worst vacuum lag",
			fmt.Sprintf("Rule 4: how long the worst partition's dead rows have stood above its autovacuum trigger; red above the write retention target (%s).", t.WriteRetentionTarget), units.Seconds).
			WithTarget(latest("A", part("pgcapacity_table_vacuum_lag_seconds"), "{{schema}}.{{table}}")).
			Thresholds(redAt(retention)).Span(3).Height(4)).
		WithPanel(newStat(9, "Oldest xid age",
			fmt.Sprintf("Transaction-id age of the oldest partition. Red from %s, where the xid-age alert pages; wraparound is at about 2.1 billion.", count(t.XIDAgeCritical)), units.Short).
			WithTarget(latest("A", part("pgcapacity_table_xid_age_max"), "{{schema}}.{{table}}")).
			Thresholds(redAt(t.XIDAgeCritical)).Span(3).Height(4))

	b.WithRow(dashboard.NewRowBuilder("Rows per partition").Id(10)).
		WithPanel(newStat(13, "Partitions shown",
			"Which partitions the per-partition panels below show (PGCAPACITY_PARTITION_DETAIL): all of them, only the top_k worst of each table on each signal (the table-wide panels above still count every partition), or none (the per-partition panels stay empty).",
			units.NoUnit).
			WithTarget(latest("A", selRole("pgcapacity_partition_detail_info"), "{{mode}} (top_k {{top_k}})")).
			Thresholds(neutral()).
			TextMode(common.BigValueTextModeName).
			Span(24).Height(3)).
		WithPanel(newBarGauge(11, "Live rows per partition, largest first",
			"Every partition's live rows, sorted. Even hashing gives bars of about the same length; a few long bars at the top are skew, usually a few very large tenants sharing a partition.",
			units.Short).
			WithTarget(latest("A", "sort_desc("+part("pgcapacity_partition_live_rows")+")", "{{partition}}")).
			Thresholds(neutral()).
			Span(12).Height(14)).
		WithPanel(newBarGauge(12, "Partition rows / median partition",
			fmt.Sprintf("Each partition's live rows as a multiple of the table's median partition. Red from %g×: rule 2's skew limit.", t.SkewRatio),
			unitTimes).
			WithTarget(latest("A", "sort_desc("+onRole(sel("pgcapacity_partition_live_rows", tbl...)+" / "+byTable+" group_left "+sel("pgcapacity_table_partition_live_rows_median", tbl...))+")", "{{partition}}")).
			Thresholds(redAt(t.SkewRatio)).
			Span(12).Height(14))

	b.WithRow(dashboard.NewRowBuilder("Dead rows and vacuum").Id(20)).
		WithPanel(newTimeseries(21, "Dead rows, 10 worst partitions",
			"Dead rows of the ten partitions with the most. Each should fall back after an autovacuum; a line that only climbs is a partition autovacuum is not reaching.",
			units.Short).
			WithTarget(series("A", "topk(10, "+part("pgcapacity_partition_dead_rows")+")", "{{partition}}")).
			Span(8).Height(8)).
		WithPanel(newTimeseries(22, "Dead rows / autovacuum trigger, 10 worst partitions",
			"Dead rows as a multiple of the partition's own autovacuum trigger (threshold + scale factor × reltuples). Above 1 (red dashed line) a vacuum is due; staying above it is vacuum lag.",
			unitTimes).
			WithTarget(series("A", "topk(10, "+part("pgcapacity_partition_dead_rows")+" / "+part("pgcapacity_partition_autovacuum_threshold_rows")+")", "{{partition}}")).
			Thresholds(redAt(1)).
			ThresholdsStyle(dashedLine()).
			Span(8).Height(8)).
		WithPanel(newTimeseries(23, "Vacuum lag, 10 worst partitions",
			fmt.Sprintf("How long each partition's dead rows have stood above its autovacuum trigger without a vacuum. The red dashed line is the write retention target (%s), rule 4's limit.", t.WriteRetentionTarget),
			units.Seconds).
			WithTarget(series("A", "topk(10, "+part("pgcapacity_partition_vacuum_lag_seconds")+")", "{{partition}}")).
			Thresholds(redAt(retention)).
			ThresholdsStyle(dashedLine()).
			Span(8).Height(8)).
		WithPanel(newTable(24, "Partitions: dead rows against the autovacuum trigger",
			"One row per partition, worst vacuum lag first: live and dead rows, the autovacuum trigger in rows, vacuum lag, the last vacuum and analyze, and the oldest transaction-id age.",
			units.Short).
			WithTarget(rows("A", perPartition("pgcapacity_partition_live_rows"))).
			WithTarget(rows("B", perPartition("pgcapacity_partition_dead_rows"))).
			WithTarget(rows("C", perPartition("pgcapacity_partition_autovacuum_threshold_rows"))).
			WithTarget(rows("D", perPartition("pgcapacity_partition_vacuum_lag_seconds"))).
			// Grafana's date units take milliseconds; 0 (never) is left out and shows empty.
			WithTarget(rows("E", "("+perPartition("pgcapacity_partition_last_vacuum_timestamp_seconds")+" > 0) * 1000")).
			WithTarget(rows("F", "("+perPartition("pgcapacity_partition_last_analyze_timestamp_seconds")+" > 0) * 1000")).
			WithTarget(rows("G", perPartition("pgcapacity_partition_xid_age"))).
			WithTransformation(merge()).
			WithTransformation(organize(append(hiddenColumns, "schema", "table"),
				map[string]string{
					"partition": "Partition",
					"Value #A":  "Live rows",
					"Value #B":  "Dead rows",
					"Value #C":  "Autovacuum trigger (rows)",
					"Value #D":  "Vacuum lag",
					"Value #E":  "Last vacuum",
					"Value #F":  "Last analyze",
					"Value #G":  "xid age",
				},
				[]string{"partition", "Value #A", "Value #B", "Value #C", "Value #D", "Value #E", "Value #F", "Value #G"})).
			OverrideByName("Vacuum lag", unitOf(units.Seconds)).
			OverrideByName("Last vacuum", unitOf(units.DateTimeFromNow)).
			OverrideByName("Last analyze", unitOf(units.DateTimeFromNow)).
			SortBy([]cogSortBy{common.NewTableSortByFieldStateBuilder().DisplayName("Vacuum lag").Desc(true)}).
			Span(24).Height(10))

	b.WithRow(dashboard.NewRowBuilder("Sizes and freezing").Id(30)).
		WithPanel(newTimeseries(31, "Heap and index bytes",
			"All partitions' heap and indexes; the tenant-leading btree indexes are the ones rule 3 needs in shared_buffers, and the largest partition's share is what one partition's lookups need cached.",
			units.BytesIEC).
			WithTarget(series("A", part("pgcapacity_table_heap_bytes"), "heap")).
			WithTarget(series("B", part("pgcapacity_table_index_bytes"), "all indexes")).
			WithTarget(series("C", part("pgcapacity_table_tenant_index_bytes"), "tenant-leading btree indexes")).
			WithTarget(series("D", part("pgcapacity_table_tenant_index_partition_max_bytes"), "tenant indexes, largest partition")).
			Span(8).Height(8)).
		WithPanel(newBarGauge(32, "Largest partitions (heap + indexes)",
			"The twenty largest partitions on disk, heap and indexes together.",
			units.BytesIEC).
			WithTarget(latest("A", "sort_desc(topk(20, "+part("pgcapacity_partition_heap_bytes")+" + "+part("pgcapacity_partition_index_bytes")+"))", "{{partition}}")).
			Thresholds(neutral()).
			Span(8).Height(8)).
		WithPanel(newTimeseries(33, "Oldest transaction-id age",
			fmt.Sprintf("xid age of the table's oldest partition against autovacuum_freeze_max_age (grey dashed line: where anti-wraparound vacuums start) and the paging limit (red dashed line, %s).", count(t.XIDAgeCritical)),
			units.Short).
			WithTarget(series("A", part("pgcapacity_table_xid_age_max"), "oldest partition")).
			WithTarget(series("B", selRole("pgcapacity_autovacuum_freeze_max_age"), "autovacuum_freeze_max_age")).
			OverrideByQuery("B", greyLine()).
			Thresholds(redAt(t.XIDAgeCritical)).
			ThresholdsStyle(dashedLine()).
			Span(8).Height(8))
	return b
}
