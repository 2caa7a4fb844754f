package collector

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

const namespace = "pgcapacity"

var (
	tableLabels     = []string{"schema", "table"}
	partitionLabels = []string{"schema", "table", "partition"}
)

func newDesc(name, help string, labels []string) *prometheus.Desc {
	return prometheus.NewDesc(namespace+"_"+name, help, labels, nil)
}

// Descriptors are immutable; one set serves every collector instance.
var (
	descSharedBuffers = newDesc("shared_buffers_bytes", "The server's shared_buffers in bytes.", nil)
	descFreezeMaxAge  = newDesc("autovacuum_freeze_max_age", "The server's autovacuum_freeze_max_age.", nil)
	descInRecovery    = newDesc("in_recovery", "1 on a standby (pg_is_in_recovery()): live rows come from reltuples, vacuum and analyze lag are not published.", nil)
	// The role as a label, so dashboards can select primaries or standbys
	// with a label matcher (a Grafana variable) rather than a comparison.
	descServerRole      = newDesc("server_role_info", "The server's role, primary or standby (pg_is_in_recovery()); value 1.", []string{"role"})
	descTableInfo       = newDesc("table_info", "A watched partitioned table; value 1.", []string{"schema", "table", "strategy", "partition_key", "hot"})
	descTablePartitions = newDesc("table_partitions", "Leaf partitions of the table.", tableLabels)
	descTableLiveRows   = newDesc("table_live_rows", "Live rows of the table, all partitions.", tableLabels)
	descLiveAvg         = newDesc("table_partition_live_rows_avg", "Average live rows per partition.", tableLabels)
	descLiveMedian      = newDesc("table_partition_live_rows_median", "Median live rows per partition.", tableLabels)
	descLiveMax         = newDesc("table_partition_live_rows_max", "Live rows of the largest partition.", tableLabels)
	descSkew            = newDesc("table_partition_skew_ratio", "Live rows of the largest partition over the median; absent when the median is 0.", tableLabels)
	descTableVacuumLag  = newDesc("table_vacuum_lag_seconds", "Worst partition's time with dead rows above its own autovacuum trigger and no vacuum.", tableLabels)
	descTableAnalyzeLag = newDesc("table_analyze_lag_seconds", "Worst partition's time with modified rows above its own autoanalyze trigger and no analyze.", tableLabels)
	descTableXIDAge     = newDesc("table_xid_age_max", "Oldest relfrozenxid age among the table's partitions (and their TOAST tables).", tableLabels)

	descPartLive            = newDesc("partition_live_rows", "Live rows of the partition (pg_stat_user_tables.n_live_tup; reltuples on a standby).", partitionLabels)
	descPartDead            = newDesc("partition_dead_rows", "Dead rows of the partition (pg_stat_user_tables.n_dead_tup).", partitionLabels)
	descPartThreshold       = newDesc("partition_autovacuum_threshold_rows", "Dead rows that trigger autovacuum of this partition: threshold + scale_factor × reltuples, reloptions respected.", partitionLabels)
	descPartLastVacuum      = newDesc("partition_last_vacuum_timestamp_seconds", "Last vacuum or autovacuum of the partition; 0 when never.", partitionLabels)
	descPartLastAnalyze     = newDesc("partition_last_analyze_timestamp_seconds", "Last analyze or autoanalyze of the partition; 0 when never.", partitionLabels)
	descPartVacuumLag       = newDesc("partition_vacuum_lag_seconds", "Time the partition's dead rows have stood above its autovacuum trigger without a vacuum; 0 below it.", partitionLabels)
	descPartAnalyzeLag      = newDesc("partition_analyze_lag_seconds", "Time the partition's modified rows have stood above its autoanalyze trigger without an analyze; 0 below it.", partitionLabels)
	descPartXIDAge          = newDesc("partition_xid_age", "Age of the partition's relfrozenxid (or its TOAST table's, whichever is older).", partitionLabels)
	descPartVacuumTime      = newDesc("partition_vacuum_seconds_total", "Time spent in manual VACUUM of the partition (PostgreSQL 18+ total_vacuum_time); absent before 18.", partitionLabels)
	descPartAutovacuumTime  = newDesc("partition_autovacuum_seconds_total", "Time spent in autovacuum of the partition (PostgreSQL 18+ total_autovacuum_time); absent before 18.", partitionLabels)
	descTableVacuumTime     = newDesc("table_vacuum_seconds_total", "Time spent in manual VACUUM of the table's partitions (PostgreSQL 18+); absent before 18.", tableLabels)
	descTableAutovacuumTime = newDesc("table_autovacuum_seconds_total", "Time spent in autovacuum of the table's partitions (PostgreSQL 18+); absent before 18.", tableLabels)
	descParentAnalyzeAge    = newDesc("table_parent_analyze_age_seconds", "Time since the partitioned parent itself was last analyzed (autovacuum never analyzes it); absent when never analyzed or not reported.", tableLabels)
	descTableLastAnalyze    = newDesc("table_partition_last_analyze_timestamp_seconds", "Newest analyze or autoanalyze among the table's partitions; 0 when none was ever analyzed. Parent statistics older than it are stale.", tableLabels)
	descParentMissing       = newDesc("table_parent_statistics_missing", "1 when the partitioned parent has no statistics of its own: run ANALYZE (ANALYZE ONLY on PostgreSQL 18+) on it.", tableLabels)
	descPartAutovacuumOff   = newDesc("partition_autovacuum_disabled", "1 when autovacuum_enabled=false is set on the partition.", partitionLabels)
)

// Collect implements Collector.
func (s *Stats) Collect(ctx context.Context, db *pgxpool.Pool) ([]prometheus.Metric, error) {
	srv, tables, mine, err := s.sample(ctx, db)
	if err != nil {
		return nil, err
	}
	out := metricList(s.metrics(srv, tables))
	ownedMetrics(&out, descMigrationTableRows, mine, func(t Table) float64 { return Aggregate(t.Partitions).Total })
	return out, nil
}

func (s *Stats) metrics(srv Server, tables []Table) []prometheus.Metric {
	var out metricList
	out.add(descSharedBuffers, srv.SharedBuffersBytes)
	out.add(descFreezeMaxAge, srv.FreezeMaxAge)
	out.add(descInRecovery, boolFloat(srv.InRecovery))
	role := "primary"
	if srv.InRecovery {
		role = "standby"
	}
	out.add(descServerRole, 1, role)
	partitions := 0
	for _, t := range tables {
		partitions += len(t.Partitions)
	}
	mode := s.detail.resolve(partitions)
	if s.publishInfo {
		s.detail.infoMetric(&out, mode)
	}
	for _, t := range tables {
		a := Aggregate(t.Partitions)
		out.add(descTableInfo, 1, t.Schema, t.Name, t.Strategy, t.PartitionKey, strconv.FormatBool(t.Hot))
		out.add(descTablePartitions, float64(a.Partitions), t.Schema, t.Name)
		out.add(descTableLiveRows, a.Total, t.Schema, t.Name)
		out.add(descLiveAvg, a.Avg, t.Schema, t.Name)
		out.add(descLiveMedian, a.Median, t.Schema, t.Name)
		out.add(descLiveMax, a.Max, t.Schema, t.Name)
		if a.HasSkew {
			out.add(descSkew, a.Skew, t.Schema, t.Name)
		}
		if !srv.InRecovery {
			out.add(descTableVacuumLag, a.VacuumLag.Seconds(), t.Schema, t.Name)
			out.add(descTableAnalyzeLag, a.AnalyzeLag.Seconds(), t.Schema, t.Name)
		}
		out.add(descTableXIDAge, a.XIDAgeMax, t.Schema, t.Name)
		out.add(descParentMissing, boolFloat(t.ParentStatisticsMissing), t.Schema, t.Name)
		out.add(descTableLastAnalyze, unixSeconds(a.LastAnalyze), t.Schema, t.Name)
		if !t.ParentAnalyzed.IsZero() {
			out.add(descParentAnalyzeAge, max(srv.Now.Sub(t.ParentAnalyzed).Seconds(), 0), t.Schema, t.Name)
		}
		if vacuum, autovacuum, ok := vacuumTime(t.Partitions); ok {
			out.addCounter(descTableVacuumTime, vacuum, t.Schema, t.Name)
			out.addCounter(descTableAutovacuumTime, autovacuum, t.Schema, t.Name)
		}
		shown := shownPartitions(mode, len(t.Partitions), s.detail.TopK, worstStatsSignals(t.Partitions)...)
		pairs := newTableLabelPairs(t.Schema, t.Name)
		for i, p := range t.Partitions {
			if shown != nil && !shown[i] {
				continue
			}
			l := pairs.partition(p.Name)
			out.addShared(descPartLive, p.LiveRows, l)
			out.addShared(descPartDead, p.DeadRows, l)
			out.addShared(descPartThreshold, p.VacuumThreshold, l)
			out.addShared(descPartLastVacuum, unixSeconds(p.LastVacuum), l)
			out.addShared(descPartLastAnalyze, unixSeconds(p.LastAnalyze), l)
			if !srv.InRecovery {
				out.addShared(descPartVacuumLag, p.VacuumLag.Seconds(), l)
				out.addShared(descPartAnalyzeLag, p.AnalyzeLag.Seconds(), l)
			}
			out.addShared(descPartXIDAge, p.XIDAge, l)
			out.addShared(descPartAutovacuumOff, boolFloat(p.AutovacuumOff), l)
			if p.HasVacuumTime {
				v := []string{strings.ToValidUTF8(t.Schema, "\uFFFD"), strings.ToValidUTF8(t.Name, "\uFFFD"), strings.ToValidUTF8(p.Name, "\uFFFD")}
				out.addCounter(descPartVacuumTime, p.VacuumSeconds, v...)
				out.addCounter(descPartAutovacuumTime, p.AutovacuumSeconds, v...)
			}
		}
	}
	return out
}

// worstStatsSignals are the stats by which a partition ranks among its
// table's worst in the top detail mode: live rows, dead rows above the
// autovacuum trigger, vacuum lag and xid age.
func worstStatsSignals(parts []Partition) []signal {
	return []signal{
		func(i int) float64 { return parts[i].LiveRows },
		func(i int) float64 { return parts[i].DeadRows - parts[i].VacuumThreshold },
		func(i int) float64 { return parts[i].VacuumLag.Seconds() },
		func(i int) float64 { return parts[i].XIDAge },
	}
}

// vacuumTime sums the PostgreSQL 18 vacuum time counters of a table.
func vacuumTime(parts []Partition) (vacuum, autovacuum float64, ok bool) {
	for _, p := range parts {
		if p.HasVacuumTime {
			vacuum, autovacuum, ok = vacuum+p.VacuumSeconds, autovacuum+p.AutovacuumSeconds, true
		}
	}
	return vacuum, autovacuum, ok
}

// metricList collects the round's metrics; gauges unless added as counters.
type metricList []prometheus.Metric

func (m *metricList) addCounter(desc *prometheus.Desc, value float64, labels ...string) {
	*m = append(*m, prometheus.MustNewConstMetric(desc, prometheus.CounterValue, value, labels...))
}

func (m *metricList) add(desc *prometheus.Desc, value float64, labels ...string) {
	*m = append(*m, prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, value, labels...))
}

// addShared adds a per-partition gauge whose label pairs are shared with
// the partition's other gauges: built once per partition, not per series,
// which halves a round's CPU at thousands of partitions.
func (m *metricList) addShared(desc *prometheus.Desc, value float64, labels *partitionPairs) {
	*m = append(*m, &sharedLabelGauge{desc: desc, labels: labels, value: value})
}

// tableLabelPairs builds the label pairs of a table's per-partition
// series: the schema and table pairs once for all of its partitions, so a
// partition adds one pair (at 16,384 partitions every pair is 100 bytes of
// a round's memory).
type tableLabelPairs struct {
	partitionName       *string
	schemaPair, tabPair *dto.LabelPair
}

func newTableLabelPairs(schema, table string) tableLabelPairs {
	return tableLabelPairs{partitionName: new("partition"), schemaPair: labelPair("schema", schema), tabPair: labelPair("table", table)}
}

// partition returns the label pairs of one partition's series.
func (t tableLabelPairs) partition(name string) *partitionPairs {
	value := strings.ToValidUTF8(name, "\uFFFD") // label values must be UTF-8
	// Sorted by name, as a metric's label pairs must be.
	return &partitionPairs{[3]*dto.LabelPair{{Name: t.partitionName, Value: &value}, t.schemaPair, t.tabPair}}
}

func labelPair(name, value string) *dto.LabelPair {
	value = strings.ToValidUTF8(value, "\uFFFD")
	return &dto.LabelPair{Name: &name, Value: &value}
}

// partitionPairs are the (partition, schema, table) pairs of a partition's
// series; every per-partition descriptor has these label names.
type partitionPairs struct{ pairs [3]*dto.LabelPair }

// sharedLabelGauge is a constant gauge with prebuilt label pairs.
type sharedLabelGauge struct {
	desc   *prometheus.Desc
	labels *partitionPairs
	value  float64
}

func (g *sharedLabelGauge) Desc() *prometheus.Desc { return g.desc }

func (g *sharedLabelGauge) Write(out *dto.Metric) error {
	out.Label = g.labels.pairs[:]
	out.Gauge = &dto.Gauge{Value: &g.value}
	return nil
}

func unixSeconds(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
