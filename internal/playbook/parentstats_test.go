package playbook

import (
	"testing"
	"time"

	"github.com/sigid/pgcapacity/collector"
)

func TestParentStatisticsStale(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	table := func(missing bool, parent time.Time, partitions ...time.Time) collector.Table {
		tb := collector.Table{ParentStatisticsMissing: missing, ParentAnalyzed: parent}
		for _, a := range partitions {
			tb.Partitions = append(tb.Partitions, collector.Partition{LastAnalyze: a})
		}
		return tb
	}
	never := time.Time{}
	tests := []struct {
		name  string
		table collector.Table
		want  bool
	}{
		{"missing, partitions analyzed", table(true, never, now.Add(-day), never), true},
		{"missing, partitions never analyzed (a new table)", table(true, never, never, never), false},
		{"missing, no partitions", table(true, never), false},
		{"older than the limit, a partition analyzed since", table(false, now.Add(-8*day), now.Add(-9*day), now.Add(-day)), true},
		{"older than the limit, partitions analyzed before it", table(false, now.Add(-8*day), now.Add(-9*day), never), false},
		{"within the limit, partitions analyzed since", table(false, now.Add(-6*day), now.Add(-day)), false},
		{"statistics without an analyze time (PostgreSQL 13)", table(false, never, now.Add(-day)), false},
	}
	for _, tc := range tests {
		if got := ParentStatisticsStale(tc.table, now, 7*day); got != tc.want {
			t.Errorf("%s: stale %v, want %v", tc.name, got, tc.want)
		}
	}
}
