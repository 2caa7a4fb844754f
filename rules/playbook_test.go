package rules

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sigid/pgcapacity/internal/playbook"
)

// consistencySamples are the instances the consistency test feeds to both
// sides. Between them every rule holds on some table (or instance) and not
// on others, at its threshold exactly among them, and is not judged where
// the sample cannot say (no median, no probe, vacuum or analyze lagging,
// a cold table).
func consistencySamples() map[string]playbook.Sample {
	f := func(v float64) *float64 { return &v }
	probe := func(total, planning, baseline float64) *playbook.ProbeSample {
		return &playbook.ProbeSample{TotalP95: total, PlanningP95: planning, BaselineP95: baseline}
	}
	const gib = 1 << 30
	return map[string]playbook.Sample{
		"db1:9842": {SharedBuffersBytes: gib, HotTenantIndexBytes: 2 * gib, Tables: []playbook.TableSample{
			{Schema: "public", Table: "a", Hot: true, LiveRowsAvg: 2e6, SkewRatio: f(6), VacuumLagSeconds: 7200},
			{Schema: "public", Table: "b", Hot: true, LiveRowsAvg: 5e5, SkewRatio: f(1.5), Probe: probe(0.004, 0.002, 0.002)},
			{Schema: "public", Table: "c", LiveRowsAvg: 1e6, VacuumLagSeconds: 7200, Probe: probe(0.0022, 0.0015, 0.002)},
			{Schema: "public", Table: "d", Hot: true, LiveRowsAvg: 100, SkewRatio: f(4), VacuumLagSeconds: 3600, Probe: probe(0.01, 0.0005, 0.01)},
		}},
		"db2:9842": {SharedBuffersBytes: gib, HotTenantIndexBytes: gib / 2, Tables: []playbook.TableSample{
			{Schema: "public", Table: "e", Hot: true, LiveRowsAvg: 2e6, SkewRatio: f(1.5), AnalyzeLagSeconds: 60, Probe: probe(0.004, 0.0008, 0.002)},
			{Schema: "archive", Table: "a", Hot: true, LiveRowsAvg: 2e6, SkewRatio: f(4.5), VacuumLagSeconds: 1800, Probe: probe(0.003, 0.0009, 0.002)},
		}},
	}
}

// TestPlaybookAgreesWithTheAlerts feeds the same samples to the playbook's
// Go judgement and, as series held for the rule window (the latency
// baseline a window before that), to promtool with the generated rules:
// every rule must fire on exactly the tables and instances the playbook
// says it holds on.
func TestPlaybookAgreesWithTheAlerts(t *testing.T) {
	env := map[string]string{"PGCAPACITY_RULE_WINDOW": "1d", "PGCAPACITY_RULES_EVALUATION_INTERVAL": "15m"}
	th := loadConfig(t, env).Thresholds
	const step = 15 * time.Minute
	window := th.RuleWindow.D()
	// The latency rule needs a baseline window before the window it holds
	// over, and that baseline's own window before: three windows, plus the
	// hour the alert's start check looks back and the hour of p95.
	end := 3*window + 2*time.Hour
	switchAt := end - window - 2*time.Hour // latency moves from the baseline to now
	steps := int(end / step)

	var series []map[string]string
	add := func(name string, values []float64) {
		parts := make([]string, len(values))
		for i, v := range values {
			parts[i] = strconv.FormatFloat(v, 'g', -1, 64)
		}
		series = append(series, map[string]string{"series": name, "values": strings.Join(parts, " ")})
	}
	constant := func(v float64) []float64 {
		out := make([]float64, steps+1)
		for i := range out {
			out[i] = v
		}
		return out
	}
	// histogram adds a probe histogram whose p95 is before until switchAt
	// and after from then on: 60 observations a step, all in a bucket
	// (v-0.95δ, v+0.05δ], whose interpolated p95 is v.
	histogram := func(labels string, before, after float64) {
		bucket := func(v float64) (lo, hi float64) { d := v / 100; return v - 0.95*d, v + 0.05*d }
		bounds := map[float64]bool{}
		for _, v := range []float64{before, after} {
			lo, hi := bucket(v)
			bounds[lo], bounds[hi] = true, true
		}
		les := make([]float64, 0, len(bounds))
		for b := range bounds {
			les = append(les, b)
		}
		sort.Float64s(les)
		for _, le := range append(les, 0) {
			name := fmt.Sprintf(`pgcapacity_probe_duration_seconds_bucket{%s,le="%s"}`, labels, strconv.FormatFloat(le, 'g', -1, 64))
			if le == 0 {
				name = fmt.Sprintf(`pgcapacity_probe_duration_seconds_bucket{%s,le="+Inf"}`, labels)
			}
			values := make([]float64, steps+1)
			for i := 1; i <= steps; i++ {
				v := before
				if time.Duration(i)*step > switchAt {
					v = after
				}
				values[i] = values[i-1]
				if _, hi := bucket(v); le == 0 || hi <= le {
					values[i] += 60
				}
			}
			add(name, values)
		}
	}

	type alert struct{ name, instance, schema, table string }
	want := map[alert]bool{}
	seen := map[string][2]bool{} // by rule: some sample holds, some does not
	judge := func(r playbook.Rule, s playbook.Sample, t playbook.TableSample, a alert) {
		v := r.Judge(th, s, t)
		if v.Holds {
			want[a] = true
		}
		got := seen[r.Name]
		got[boolIndex(v.Holds)] = true
		seen[r.Name] = got
	}
	for instance, s := range consistencySamples() {
		base := fmt.Sprintf(`job="pgcapacity",instance=%q`, instance)
		add("pgcapacity_shared_buffers_bytes{"+base+"}", constant(s.SharedBuffersBytes))
		add("pgcapacity_hot_tenant_index_bytes{"+base+"}", constant(s.HotTenantIndexBytes))
		for _, tb := range s.Tables {
			l := fmt.Sprintf(`%s,schema=%q,table=%q`, base, tb.Schema, tb.Table)
			add(fmt.Sprintf(`pgcapacity_table_info{%s,strategy="hash",partition_key="tenant_id",hot="%t"}`, l, tb.Hot), constant(1))
			add("pgcapacity_table_partition_live_rows_avg{"+l+"}", constant(tb.LiveRowsAvg))
			if tb.SkewRatio != nil {
				add("pgcapacity_table_partition_skew_ratio{"+l+"}", constant(*tb.SkewRatio))
			}
			add("pgcapacity_table_vacuum_lag_seconds{"+l+"}", constant(tb.VacuumLagSeconds))
			add("pgcapacity_table_analyze_lag_seconds{"+l+"}", constant(tb.AnalyzeLagSeconds))
			if p := tb.Probe; p != nil {
				before := p.BaselineP95
				if before == 0 {
					before = p.TotalP95
				}
				histogram(l+`,phase="total"`, before, p.TotalP95)
				histogram(l+`,phase="planning"`, p.PlanningP95, p.PlanningP95)
			}
		}
		for _, r := range playbook.Rules() {
			if r.Scope == playbook.PerInstance {
				judge(r, s, playbook.TableSample{}, alert{r.Name, instance, "", ""})
				continue
			}
			for _, tb := range s.Tables {
				judge(r, s, tb, alert{r.Name, instance, tb.Schema, tb.Table})
			}
		}
	}
	for _, r := range playbook.Rules() {
		if seen[r.Name] != [2]bool{true, true} {
			t.Errorf("%s: the samples need a case where it holds and one where it does not (have %v)", r.Name, seen[r.Name])
		}
	}

	var expSamples []map[string]any
	for a := range want {
		l := fmt.Sprintf(`alertname=%q, instance=%q`, a.name, a.instance)
		if a.table != "" {
			l += fmt.Sprintf(`, schema=%q, table=%q`, a.schema, a.table)
		}
		expSamples = append(expSamples, map[string]any{"labels": "{" + l + "}", "value": 1})
	}
	dir := t.TempDir()
	generated := generate(t, env)
	if err := os.WriteFile(filepath.Join(dir, "rules.yml"), render(t, generated), 0o644); err != nil {
		t.Fatal(err)
	}
	var groups []string
	for _, g := range generated.Groups {
		groups = append(groups, g.Name)
	}
	evalAt := promDuration(end)
	test := map[string]any{
		"rule_files":          []string{"rules.yml"},
		"group_eval_order":    groups,
		"evaluation_interval": promDuration(step),
		"tests": []map[string]any{{
			"interval":     promDuration(step),
			"input_series": series,
			"promql_expr_test": []map[string]any{{
				"expr":        `count by (alertname, instance, schema, table) (ALERTS{alertstate="firing", category="capacity-planning"})`,
				"eval_time":   evalAt,
				"exp_samples": expSamples,
			}},
		}},
	}
	b, err := yaml.Marshal(test)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "consistency.test.yml"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := runTool(t, dir, "promtool", "test", "rules", "consistency.test.yml")
	if err != nil || !strings.Contains(out, "SUCCESS") {
		t.Fatalf("the alerts disagree with the playbook's judgement at %s (want firing: %v): %v\n%s", evalAt, want, err, out)
	}
	if len(want) < len(playbook.Rules()) {
		t.Fatalf("only %d alerts expected: the test proves little", len(want))
	}
}

func boolIndex(b bool) int {
	if b {
		return 1
	}
	return 0
}
