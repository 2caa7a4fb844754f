package playbook

import (
	"time"

	"github.com/sigid/pgcapacity/collector"
)

// AlertParentStatistics is the alert that judges the same condition as
// ParentStatisticsStale over Prometheus' samples.
const AlertParentStatistics = "PartitionParentStatisticsStale"

// ParentStatisticsStale reports whether a partitioned parent's own
// statistics, which autovacuum never gathers, are stale: some partition has
// been analyzed since the parent was, and the parent has none at all or
// older than maxAge. A parent whose partitions were never analyzed (a new,
// empty table) is not stale: there is nothing newer to miss. A parent with
// statistics but no reported analyze time (PostgreSQL 13) is not judged.
func ParentStatisticsStale(t collector.Table, now time.Time, maxAge time.Duration) bool {
	newest := collector.Aggregate(t.Partitions).LastAnalyze
	switch {
	case newest.IsZero():
		return false
	case t.ParentStatisticsMissing:
		return true
	case t.ParentAnalyzed.IsZero():
		return false
	}
	return newest.After(t.ParentAnalyzed) && now.Sub(t.ParentAnalyzed) > maxAge
}
