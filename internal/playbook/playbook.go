// Package playbook evaluates the partition playbook's rules against one
// sample: which hold right now. The alert rules judge the same conditions
// over a business week; both read their thresholds from config.Thresholds.
package playbook

import (
	"fmt"
	"sort"
	"time"

	"github.com/sigid/pgcapacity/collector"
	"github.com/sigid/pgcapacity/internal/config"
	"github.com/sigid/pgcapacity/internal/units"
)

// Rule names, as the alert rules name them.
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

// Evaluate applies rules 1–4 (the ones a single catalog sample can judge).
// Rules 5 and 6 need latency history; they come from the probes.
func Evaluate(th config.Thresholds, srv collector.Server, tables []collector.Table, sizes []collector.TableSizes) Report {
	r := Report{SampledAt: srv.Now, SharedBuffersBytes: srv.SharedBuffersBytes}
	sizeOf := map[string]collector.TableSizes{}
	for _, s := range sizes {
		sizeOf[s.Schema+"."+s.Name] = s
	}
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
		r.Findings = append(r.Findings, Finding{
			Rule: RuleLiveRows, Schema: t.Schema, Table: t.Name,
			Holds: a.Avg > th.LiveRowsPerPartition, Value: a.Avg, Threshold: th.LiveRowsPerPartition,
			Detail: fmt.Sprintf("average %s live rows per partition (limit %s)", count(a.Avg), count(th.LiveRowsPerPartition)),
		})
		skew := Finding{Rule: RuleSkew, Schema: t.Schema, Table: t.Name, Threshold: th.SkewRatio}
		if a.HasSkew {
			skew.Value, skew.Holds = a.Skew, a.Skew > th.SkewRatio
			skew.Detail = fmt.Sprintf("largest partition holds %.1fx the median (limit %gx)", a.Skew, th.SkewRatio)
		} else {
			skew.Detail = "median partition is empty: no skew ratio"
		}
		r.Findings = append(r.Findings, skew)
		if t.Hot {
			limit := th.WriteRetentionTarget.D()
			r.Findings = append(r.Findings, Finding{
				Rule: RuleVacuumLag, Schema: t.Schema, Table: t.Name,
				Holds: a.VacuumLag > limit, Value: a.VacuumLag.Seconds(), Threshold: limit.Seconds(),
				Detail: fmt.Sprintf("worst partition vacuum lag %s (write retention target %s)", a.VacuumLag.Round(time.Second), th.WriteRetentionTarget),
			})
		}
	}
	if len(sizes) > 0 {
		limit := th.TenantIndexBufferRatio * srv.SharedBuffersBytes
		r.Findings = append(r.Findings, Finding{
			Rule: RuleTenantIndexes, Holds: r.HotTenantIndexBytes > limit, Value: r.HotTenantIndexBytes, Threshold: limit,
			Detail: fmt.Sprintf("hot tenant-leading indexes %s against %s of shared_buffers (%s)", units.Bytes(r.HotTenantIndexBytes), fmt.Sprintf("%g×", th.TenantIndexBufferRatio), units.Bytes(srv.SharedBuffersBytes)),
		})
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
