package playbook

import (
	"fmt"
	"time"

	"github.com/sigid/pgcapacity/internal/config"
	"github.com/sigid/pgcapacity/internal/units"
)

// ID numbers the six operating rules as DESIGN.md and the runbooks do.
type ID int

// The six operating rules.
const (
	LiveRows ID = iota + 1
	Skew
	TenantIndexes
	VacuumLag
	LatencyRegression
	PlanningTime
)

// Scope is what one verdict of a rule is about.
type Scope int

const (
	// PerTable rules give one verdict per watched hash-partitioned table.
	PerTable Scope = iota
	// PerInstance rules give one verdict per database server.
	PerInstance
)

// Rule is one operating rule: the one definition that check, migrate
// plan, the alert generator (rules) and the dashboards read.
type Rule struct {
	ID ID
	// Name is the alert's name, the runbook's anchor and check's rule name.
	Name string
	// Operating is the rule as the operations guide states it.
	Operating string
	// Fields are its config.Thresholds fields, the main one first; their
	// variables and defaults come from config.ThresholdVariable.
	Fields []string
	Scope  Scope
	// HotOnly rules judge hot tables only (PGCAPACITY_HOT_TABLES).
	HotOnly bool
	// Summary is the alert's summary annotation.
	Summary string
	// Catalog rules are judged from one catalog sample, so check reports
	// them as findings; the others need probe history (check shows rule 6's
	// condition beside the probe latencies, unjudged).
	Catalog bool

	judge  func(th config.Thresholds, s Sample, t TableSample) Verdict
	detail func(th config.Thresholds, s Sample, v Verdict) string
}

// Threshold is a threshold variable of a rule with its default.
type Threshold struct{ Field, Variable, Default string }

// Thresholds lists the rule's threshold variables with their defaults.
func (r Rule) Thresholds() []Threshold {
	out := make([]Threshold, 0, len(r.Fields))
	for _, f := range r.Fields {
		v, d, _ := config.ThresholdVariable(f)
		out = append(out, Threshold{Field: f, Variable: v, Default: d})
	}
	return out
}

// Judge evaluates the rule on one sample: for a PerTable rule on table t
// of s, for a PerInstance rule on s (t is ignored). The alert fires when
// the same verdict has held at every evaluation of the rule window.
func (r Rule) Judge(th config.Thresholds, s Sample, t TableSample) Verdict {
	if r.HotOnly && !t.Hot {
		return Verdict{Note: "not a hot table"}
	}
	return r.judge(th, s, t)
}

// Detail says a verdict in a line for check.
func (r Rule) Detail(th config.Thresholds, s Sample, v Verdict) string {
	if !v.Judged && v.Note != "" {
		return v.Note
	}
	return r.detail(th, s, v)
}

// Sample is what the rules read of one database server at one time: the
// aggregates serve publishes (and check computes) plus the probes' hourly
// quantiles.
type Sample struct {
	SharedBuffersBytes  float64
	HotTenantIndexBytes float64
	Tables              []TableSample // the watched hash-partitioned tables
}

// TableSample is one table's part of a Sample.
type TableSample struct {
	Schema, Table     string
	Hot               bool
	LiveRowsAvg       float64
	SkewRatio         *float64 // nil when the median partition is empty
	VacuumLagSeconds  float64
	AnalyzeLagSeconds float64
	Probe             *ProbeSample // nil: no probe observations
}

// ProbeSample is a table's tenant-scoped probe over the last hour, in
// seconds.
type ProbeSample struct {
	TotalP95    float64
	PlanningP95 float64
	// BaselineP95 is the median hourly p95 of the rule window before the
	// last one; 0 when unknown (check has no history).
	BaselineP95 float64
}

// Verdict is a rule's judgement of one sample.
type Verdict struct {
	// Judged is false when the sample cannot say: an empty median, no
	// probe, no baseline, or lagging vacuum for the latency rule. Such a
	// sample counts neither way, and the alert's condition is absent.
	Judged    bool
	Holds     bool
	Value     float64
	Threshold float64
	Note      string // why not judged
}

// Rules returns the six operating rules in order.
func Rules() []Rule {
	return []Rule{
		{
			ID: LiveRows, Name: RuleLiveRows,
			Operating: "average live rows exceed 1 million per hash partition",
			Fields:    []string{"LiveRowsPerPartition"}, Scope: PerTable,
			Summary: "A table's partitions have held too many live rows on average for a full business week; plan more hash partitions.",
			Catalog: true,
			judge: func(th config.Thresholds, _ Sample, t TableSample) Verdict {
				return above(t.LiveRowsAvg, th.LiveRowsPerPartition)
			},
			detail: func(_ config.Thresholds, _ Sample, v Verdict) string {
				return fmt.Sprintf("average %s live rows per partition (limit %s)", count(v.Value), count(v.Threshold))
			},
		},
		{
			ID: Skew, Name: RuleSkew,
			Operating: "any partition holds more than 4x the median live-row count of its table",
			Fields:    []string{"SkewRatio"}, Scope: PerTable,
			Summary: "One partition of a table has held far more rows than the median partition for a full business week.",
			Catalog: true,
			judge: func(th config.Thresholds, _ Sample, t TableSample) Verdict {
				if t.SkewRatio == nil {
					return Verdict{Threshold: th.SkewRatio, Note: "median partition is empty: no skew ratio"}
				}
				return above(*t.SkewRatio, th.SkewRatio)
			},
			detail: func(_ config.Thresholds, _ Sample, v Verdict) string {
				return fmt.Sprintf("largest partition holds %.1fx the median (limit %gx)", v.Value, v.Threshold)
			},
		},
		{
			ID: TenantIndexes, Name: RuleTenantIndexes,
			Operating: "the btree indexes that serve hot tenant-scoped lookups no longer fit in shared_buffers",
			Fields:    []string{"TenantIndexBufferRatio"}, Scope: PerInstance,
			Summary: "The tenant-leading indexes of the hot tables have not fit in shared_buffers for a full business week.",
			Catalog: true,
			// In bytes, as check reports it; the alert's value is the ratio.
			// Both hold when the indexes exceed the ratio of shared_buffers.
			judge: func(th config.Thresholds, s Sample, _ TableSample) Verdict {
				return above(s.HotTenantIndexBytes, th.TenantIndexBufferRatio*s.SharedBuffersBytes)
			},
			detail: func(th config.Thresholds, s Sample, v Verdict) string {
				return fmt.Sprintf("hot tenant-leading indexes %s against %g× of shared_buffers (%s)", units.Bytes(v.Value), th.TenantIndexBufferRatio, units.Bytes(s.SharedBuffersBytes))
			},
		},
		{
			ID: VacuumLag, Name: RuleVacuumLag,
			Operating: "autovacuum lag of hot partitions exceeds the write retention target",
			Fields:    []string{"WriteRetentionTarget"}, Scope: PerTable, HotOnly: true,
			Summary: "Autovacuum of a hot table's partitions has lagged behind the write retention target for a full business week.",
			Catalog: true,
			judge: func(th config.Thresholds, _ Sample, t TableSample) Verdict {
				lag := time.Duration(t.VacuumLagSeconds * float64(time.Second))
				return Verdict{Judged: true, Holds: VacuumLagHolds(th, lag), Value: t.VacuumLagSeconds, Threshold: th.WriteRetentionTarget.D().Seconds()}
			},
			detail: func(th config.Thresholds, _ Sample, v Verdict) string {
				lag := time.Duration(v.Value * float64(time.Second))
				return fmt.Sprintf("worst partition vacuum lag %s (write retention target %s)", lag.Round(time.Second), th.WriteRetentionTarget)
			},
		},
		{
			ID: LatencyRegression, Name: RuleLatency,
			Operating: "p95 latency of tenant-scoped session, membership or referral queries regresses by 25 percent after normal vacuum/analyze has caught up",
			Fields:    []string{"LatencyRegression"}, Scope: PerTable,
			Summary: "Tenant-scoped query latency has stayed regressed against its earlier baseline for a full business week with vacuum and analyze caught up.",
			judge: func(th config.Thresholds, _ Sample, t TableSample) Verdict {
				limit := 1 + th.LatencyRegression
				switch {
				case t.Probe == nil || t.Probe.TotalP95 <= 0:
					return Verdict{Threshold: limit, Note: "no probe observations"}
				case t.Probe.BaselineP95 <= 0:
					return Verdict{Threshold: limit, Note: "no baseline: the rule needs a rule window of probe history"}
				case t.VacuumLagSeconds != 0 || t.AnalyzeLagSeconds != 0:
					return Verdict{Threshold: limit, Note: "vacuum or analyze has not caught up: the sample counts neither way"}
				}
				return above(t.Probe.TotalP95/t.Probe.BaselineP95, limit)
			},
			detail: func(_ config.Thresholds, _ Sample, v Verdict) string {
				return fmt.Sprintf("hourly p95 at %.0f%% of its baseline (limit %.0f%%)", 100*v.Value, 100*v.Threshold)
			},
		},
		{
			ID: PlanningTime, Name: RulePlanning,
			Operating: "partition planning time is a measurable part of p95 query latency on tenant-scoped hot paths",
			Fields:    []string{"PlanningShare", "PlanningMin"}, Scope: PerTable,
			Summary: "Partition planning has been a measurable part of a table's p95 query latency for a full business week.",
			judge: func(th config.Thresholds, _ Sample, t TableSample) Verdict {
				if t.Probe == nil {
					return Verdict{Threshold: th.PlanningShare, Note: "no probe observations"}
				}
				share, ok := PlanningShare(t.Probe.PlanningP95, t.Probe.TotalP95)
				if !ok {
					return Verdict{Threshold: th.PlanningShare, Note: "no probe observations"}
				}
				planning := time.Duration(t.Probe.PlanningP95 * float64(time.Second))
				return Verdict{Judged: true, Holds: PlanningTimeHolds(th, share, planning), Value: share, Threshold: th.PlanningShare}
			},
			detail: func(th config.Thresholds, _ Sample, v Verdict) string {
				return fmt.Sprintf("planning %.0f%% of p95 (limit %.0f%% and above %s)", 100*v.Value, 100*v.Threshold, th.PlanningMin)
			},
		},
	}
}

// Get returns rule id of Rules.
func Get(id ID) Rule {
	for _, r := range Rules() {
		if r.ID == id {
			return r
		}
	}
	panic(fmt.Sprintf("playbook: no rule %d", id))
}

func above(v, limit float64) Verdict {
	return Verdict{Judged: true, Holds: v > limit, Value: v, Threshold: limit}
}

// PlanningShare is planning time as a share of total (planning plus
// execution) time: the one computation behind rule 6, for the probes'
// p95 (check, the recording rules) and pg_stat_statements' sums (migrate
// plan). ok is false when there is no time to share.
func PlanningShare(planning, total float64) (share float64, ok bool) {
	if total <= 0 {
		return 0, false
	}
	return planning / total, true
}

// PlanningTimeHolds is rule 6's condition: planning takes more than
// PGCAPACITY_PLANNING_SHARE of the time and is longer than
// PGCAPACITY_PLANNING_MIN, since point lookups plan in a tenth of a
// millisecond and a share alone holds on every table.
func PlanningTimeHolds(th config.Thresholds, share float64, planning time.Duration) bool {
	return share > th.PlanningShare && planning > th.PlanningMin.D()
}

// VacuumLagHolds is rule 4's condition on a hot table's worst partition.
func VacuumLagHolds(th config.Thresholds, lag time.Duration) bool {
	return lag > th.WriteRetentionTarget.D()
}
