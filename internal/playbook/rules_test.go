package playbook

import (
	"strings"
	"testing"
	"time"

	"github.com/sigid/pgcapacity/internal/config"
)

func defaults(t *testing.T) config.Thresholds {
	t.Helper()
	return config.Thresholds{LiveRowsPerPartition: 1e6, SkewRatio: 4, TenantIndexBufferRatio: 1, WriteRetentionTarget: config.Duration(time.Hour),
		LatencyRegression: 0.25, PlanningShare: 0.1, PlanningMin: config.Duration(time.Millisecond), RuleWindow: config.Duration(7 * 24 * time.Hour)}
}

func TestRegistry(t *testing.T) {
	rules := Rules()
	if len(rules) != 6 {
		t.Fatalf("%d rules, want the six operating rules", len(rules))
	}
	names := map[string]bool{}
	for i, r := range rules {
		if r.ID != ID(i+1) || Get(r.ID).Name != r.Name || names[r.Name] || r.Summary == "" || r.Operating == "" || r.judge == nil || r.detail == nil {
			t.Errorf("rule %d (%s) is incomplete or out of order", i+1, r.Name)
		}
		names[r.Name] = true
		if len(r.Fields) == 0 {
			t.Errorf("%s: no threshold", r.Name)
		}
		for _, th := range r.Thresholds() {
			if !strings.HasPrefix(th.Variable, "PGCAPACITY_") || th.Default == "" {
				t.Errorf("%s: threshold %+v is not a configuration variable with a default", r.Name, th)
			}
		}
	}
	if th := Get(LiveRows).Thresholds(); th[0].Variable != "PGCAPACITY_LIVE_ROWS_PER_PARTITION" || th[0].Default != "1000000" {
		t.Errorf("rule 1's threshold: %+v", th)
	}
	if th := Get(PlanningTime).Thresholds(); len(th) != 2 || th[1].Variable != "PGCAPACITY_PLANNING_MIN" || th[1].Default != "1ms" {
		t.Errorf("rule 6's thresholds: %+v", th)
	}
}

func ptr(v float64) *float64 { return &v }

// Each rule's judgement at, just above and away from its threshold, and
// what it cannot judge.
func TestJudge(t *testing.T) {
	th := defaults(t)
	probe := func(total, planning, baseline float64) *ProbeSample {
		return &ProbeSample{TotalP95: total, PlanningP95: planning, BaselineP95: baseline}
	}
	tests := []struct {
		name          string
		rule          ID
		s             Sample
		t             TableSample
		judged, holds bool
	}{
		{"live rows at the limit", LiveRows, Sample{}, TableSample{LiveRowsAvg: 1e6}, true, false},
		{"live rows above", LiveRows, Sample{}, TableSample{LiveRowsAvg: 1e6 + 1}, true, true},
		{"skew without a median", Skew, Sample{}, TableSample{}, false, false},
		{"skew at the limit", Skew, Sample{}, TableSample{SkewRatio: ptr(4)}, true, false},
		{"skew above", Skew, Sample{}, TableSample{SkewRatio: ptr(4.5)}, true, true},
		{"indexes fit", TenantIndexes, Sample{SharedBuffersBytes: 1 << 30, HotTenantIndexBytes: 1 << 29}, TableSample{}, true, false},
		{"indexes exceed", TenantIndexes, Sample{SharedBuffersBytes: 1 << 30, HotTenantIndexBytes: 1<<30 + 1}, TableSample{}, true, true},
		{"vacuum lag of a cold table", VacuumLag, Sample{}, TableSample{VacuumLagSeconds: 7200}, false, false},
		{"vacuum lag at the target", VacuumLag, Sample{}, TableSample{Hot: true, VacuumLagSeconds: 3600}, true, false},
		{"vacuum lag above", VacuumLag, Sample{}, TableSample{Hot: true, VacuumLagSeconds: 3601}, true, true},
		{"latency without a probe", LatencyRegression, Sample{}, TableSample{}, false, false},
		{"latency without a baseline", LatencyRegression, Sample{}, TableSample{Probe: probe(0.004, 0, 0)}, false, false},
		{"latency while vacuum lags", LatencyRegression, Sample{}, TableSample{VacuumLagSeconds: 1, Probe: probe(0.004, 0, 0.002)}, false, false},
		{"latency while analyze lags", LatencyRegression, Sample{}, TableSample{AnalyzeLagSeconds: 1, Probe: probe(0.004, 0, 0.002)}, false, false},
		{"latency within 25%", LatencyRegression, Sample{}, TableSample{Probe: probe(0.0024, 0, 0.002)}, true, false},
		{"latency regressed", LatencyRegression, Sample{}, TableSample{Probe: probe(0.004, 0, 0.002)}, true, true},
		{"planning without a probe", PlanningTime, Sample{}, TableSample{}, false, false},
		{"planning share high but fast", PlanningTime, Sample{}, TableSample{Probe: probe(0.0005, 0.0004, 0)}, true, false},
		{"planning slow but a small share", PlanningTime, Sample{}, TableSample{Probe: probe(0.1, 0.005, 0)}, true, false},
		{"planning significant", PlanningTime, Sample{}, TableSample{Probe: probe(0.01, 0.005, 0)}, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Get(tt.rule)
			v := r.Judge(th, tt.s, tt.t)
			if v.Judged != tt.judged || v.Holds != tt.holds {
				t.Errorf("%s: %+v, want judged %v holds %v", r.Name, v, tt.judged, tt.holds)
			}
			if d := r.Detail(th, tt.s, v); d == "" {
				t.Errorf("%s: no detail", r.Name)
			}
		})
	}
}

func TestPlanningShare(t *testing.T) {
	if s, ok := PlanningShare(1, 4); !ok || s != 0.25 {
		t.Errorf("1 of 4: %v %v", s, ok)
	}
	if _, ok := PlanningShare(1, 0); ok {
		t.Error("a share of no time")
	}
}
