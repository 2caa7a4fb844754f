// Package playbook is the registry of the six operating rules (Rules): each
// rule's name, thresholds, how one sample is judged and the alert it
// becomes. check judges one sample with it (Evaluate), migrate plan's
// decrease decision uses rules 4 and 6, the rules package generates the
// alerts from it and the dashboards name their rule panels by it. The alert
// rules judge the same conditions at every evaluation over a business week.
package playbook

import (
	"fmt"
	"sort"
	"time"

	"github.com/sigid/pgcapacity/collector"
	"github.com/sigid/pgcapacity/internal/config"
)

// Rule names: the alerts' names, which Rules gives the six rules.
const (
	RuleLiveRows      = "PartitionLiveRowsHigh"
	RuleSkew          = "PartitionSkewHigh"
	RuleTenantIndexes = "TenantIndexesExceedSharedBuffers"
	RuleVacuumLag     = "PartitionAutovacuumLagHigh"
	RuleLatency       = "TenantQueryLatencyRegressed"
	RulePlanning      = "PartitionPlanningTimeSignificant"
)

// TableSummary is one watched table's figures.
type TableSummary struct {
	Schema              string   `json:"schema"`
	Table               string   `json:"table"`
	Strategy            string   `json:"strategy"`
	Hot                 bool     `json:"hot"`
	Partitions          int      `json:"partitions"`
	LiveRows            float64  `json:"live_rows"`
	AvgLiveRows         float64  `json:"partition_live_rows_avg"`
	MedianLiveRows      float64  `json:"partition_live_rows_median"`
	MaxLiveRows         float64  `json:"partition_live_rows_max"`
	SkewRatio           *float64 `json:"partition_skew_ratio"` // null when the median is 0
	TenantIndexBytes    float64  `json:"tenant_index_bytes"`
	TenantIndexMaxBytes float64  `json:"tenant_index_partition_max_bytes"`
	VacuumLagSeconds    float64  `json:"vacuum_lag_seconds"`
	AnalyzeLagSeconds   float64  `json:"analyze_lag_seconds"`
	XIDAgeMax           float64  `json:"xid_age_max"`
	// The parent's own statistics (autovacuum never analyzes a parent).
	ParentStatisticsMissing bool     `json:"parent_statistics_missing"`
	ParentAnalyzeAgeSeconds *float64 `json:"parent_analyze_age_seconds"` // null when never analyzed or not reported
	// Stale: partitions analyzed since, and the parent's statistics missing
	// or older than PGCAPACITY_PARENT_ANALYZE_MAX_AGE (ParentStatisticsStale).
	ParentStatisticsStale bool `json:"parent_statistics_stale"`
}

// Finding is one rule's verdict for one table (or the server).
type Finding struct {
	Rule      string  `json:"rule"`
	Schema    string  `json:"schema,omitempty"`
	Table     string  `json:"table,omitempty"`
	Holds     bool    `json:"holds"`
	Value     float64 `json:"value"`
	Threshold float64 `json:"threshold"`
	Detail    string  `json:"detail"`
}

// Report is the capacity part of `check`.
type Report struct {
	SampledAt           time.Time      `json:"sampled_at"`
	SharedBuffersBytes  float64        `json:"shared_buffers_bytes"`
	HotTenantIndexBytes float64        `json:"hot_tenant_index_bytes"`
	Tables              []TableSummary `json:"tables"`
	Findings            []Finding      `json:"findings"`
}

// Holding returns the findings that hold.
func (r Report) Holding() []Finding {
	var out []Finding
	for _, f := range r.Findings {
		if f.Holds {
			out = append(out, f)
		}
	}
	return out
}

// Evaluate judges the rules a single catalog sample can judge (Rule.Catalog:
// 1 to 4) on every watched hash-partitioned table and the server. Rules 5
// and 6 need probe history; check shows rule 6's condition beside the
// probes' latencies.
func Evaluate(th config.Thresholds, srv collector.Server, tables []collector.Table, sizes []collector.TableSizes) Report {
	r := Report{SampledAt: srv.Now, SharedBuffersBytes: srv.SharedBuffersBytes}
	sizeOf := map[string]collector.TableSizes{}
	for _, s := range sizes {
		sizeOf[s.Schema+"."+s.Name] = s
	}
	sample := Sample{SharedBuffersBytes: srv.SharedBuffersBytes}
	for _, t := range tables {
		a := collector.Aggregate(t.Partitions)
		sum := TableSummary{
			Schema: t.Schema, Table: t.Name, Strategy: t.Strategy, Hot: t.Hot, Partitions: a.Partitions,
			LiveRows: a.Total, AvgLiveRows: a.Avg, MedianLiveRows: a.Median, MaxLiveRows: a.Max,
			VacuumLagSeconds: a.VacuumLag.Seconds(), AnalyzeLagSeconds: a.AnalyzeLag.Seconds(), XIDAgeMax: a.XIDAgeMax,
		}
		if a.HasSkew {
			skew := a.Skew
			sum.SkewRatio = &skew
		}
		sum.ParentStatisticsMissing = t.ParentStatisticsMissing
		sum.ParentStatisticsStale = ParentStatisticsStale(t, srv.Now, th.ParentAnalyzeMaxAge.D())
		if !t.ParentAnalyzed.IsZero() {
			age := max(srv.Now.Sub(t.ParentAnalyzed).Seconds(), 0)
			sum.ParentAnalyzeAgeSeconds = &age
		}
		if s, ok := sizeOf[t.Schema+"."+t.Name]; ok {
			sum.TenantIndexBytes, sum.TenantIndexMaxBytes = s.TenantIndexBytes()
			if t.Hot {
				r.HotTenantIndexBytes += sum.TenantIndexBytes
			}
		}
		r.Tables = append(r.Tables, sum)
		if t.Strategy != "hash" {
			continue // the playbook is about hash partition counts
		}
		sample.Tables = append(sample.Tables, TableSample{Schema: t.Schema, Table: t.Name, Hot: t.Hot, LiveRowsAvg: a.Avg,
			SkewRatio: sum.SkewRatio, VacuumLagSeconds: sum.VacuumLagSeconds, AnalyzeLagSeconds: sum.AnalyzeLagSeconds})
	}
	sample.HotTenantIndexBytes = r.HotTenantIndexBytes
	finding := func(rule Rule, t TableSample) Finding {
		v := rule.Judge(th, sample, t)
		return Finding{Rule: rule.Name, Schema: t.Schema, Table: t.Table, Holds: v.Holds, Value: v.Value, Threshold: v.Threshold, Detail: rule.Detail(th, sample, v)}
	}
	for _, t := range sample.Tables {
		for _, rule := range Rules() {
			if rule.Catalog && rule.Scope == PerTable && (t.Hot || !rule.HotOnly) {
				r.Findings = append(r.Findings, finding(rule, t))
			}
		}
	}
	// Without sizes (a failed sizes round) the server rule cannot be judged.
	if len(sizes) > 0 {
		for _, rule := range Rules() {
			if rule.Catalog && rule.Scope == PerInstance {
				r.Findings = append(r.Findings, finding(rule, TableSample{}))
			}
		}
	}
	sort.SliceStable(r.Findings, func(i, j int) bool { return r.Findings[i].Holds && !r.Findings[j].Holds })
	return r
}

func count(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}
