package lint

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// good is a dashboard that follows every convention; each case below
// breaks one and expects Check to say so.
const good = `{
  "uid": "u", "title": "T", "editable": false,
  "templating": {"list": [
    {"type": "datasource", "name": "datasource", "label": "Data source", "query": "prometheus"},
    {"type": "query", "name": "cluster", "datasource": {"uid": "${datasource}"}, "query": "label_values(up, cluster)", "multi": true, "includeAll": true, "allValue": ".+", "refresh": 2},
    {"type": "query", "name": "job", "datasource": {"uid": "${datasource}"}, "query": "label_values(up{cluster=~\"$cluster\"}, job)", "multi": true, "includeAll": true, "allValue": ".+", "refresh": 2},
    {"type": "query", "name": "instance", "datasource": {"uid": "${datasource}"}, "query": {"query": "label_values(up{cluster=~\"$cluster\", job=~\"$job\"}, instance)"}, "multi": true, "includeAll": true, "allValue": ".+", "refresh": 2}
  ]},
  "panels": [
    {"type": "row", "id": 1, "title": "R", "gridPos": {"x": 0, "y": 0, "w": 24, "h": 1}},
    {"type": "timeseries", "id": 2, "title": "P", "description": "D",
     "datasource": {"uid": "${datasource}"}, "gridPos": {"x": 0, "y": 1, "w": 12, "h": 8},
     "fieldConfig": {"defaults": {"unit": "s"}},
     "targets": [
       {"refId": "A", "datasource": {"uid": "${datasource}"}, "expr": "sum by (job) (rate(x_total{cluster=~\"$cluster\", job=~\"$job\", instance=~\"$instance\"}[$__rate_interval]))"},
       {"refId": "B", "datasource": {"uid": "${datasource}"}, "expr": "g{cluster=~\"$cluster\", job=~\"$job\", instance=~\"$instance\"} offset 1w"}
     ]}
  ]
}`

func decodeGood(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(good), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func vars(m map[string]any) []any   { return m["templating"].(map[string]any)["list"].([]any) }
func panels(m map[string]any) []any { return m["panels"].([]any) }
func panelAt(m map[string]any, i int) map[string]any {
	return panels(m)[i].(map[string]any)
}
func targetAt(m map[string]any, i int) map[string]any {
	return panelAt(m, 1)["targets"].([]any)[i].(map[string]any)
}

func check(t *testing.T, m map[string]any) []string {
	t.Helper()
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	d, err := Decode("test.json", data)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range Check(d) {
		out = append(out, p.String())
	}
	return out
}

func TestCheckAcceptsAMergedTableJoiningOnOneLabelSet(t *testing.T) {
	m := decodeGood(t)
	panelAt(m, 1)["transformations"] = []any{map[string]any{"id": "merge"}}
	targetAt(m, 0)["expr"] = `sort_desc(max by (job, instance) (g{cluster=~"$cluster", job=~"$job", instance=~"$instance"}))`
	targetAt(m, 1)["expr"] = `(max by (instance, job) (g{cluster=~"$cluster", job=~"$job", instance=~"$instance"}) > 0) * 1000`
	if problems := check(t, m); len(problems) > 0 {
		t.Fatalf("problems:\n%s", strings.Join(problems, "\n"))
	}
}

func TestCheckAcceptsIncreaseOverAFixedWindow(t *testing.T) {
	m := decodeGood(t)
	targetAt(m, 0)["expr"] = `increase(x_total{cluster=~"$cluster", job=~"$job", instance=~"$instance"}[5m]) / 300`
	if problems := check(t, m); len(problems) > 0 {
		t.Fatalf("problems:\n%s", strings.Join(problems, "\n"))
	}
}

func TestCheckAcceptsAConformingDashboard(t *testing.T) {
	if problems := check(t, decodeGood(t)); len(problems) > 0 {
		t.Fatalf("the conforming dashboard has problems:\n%s", strings.Join(problems, "\n"))
	}
}

func TestCheckFindsEachBrokenConvention(t *testing.T) {
	for _, tc := range []struct {
		name   string
		breaks func(m map[string]any)
		want   string
	}{
		{"editable", func(m map[string]any) { m["editable"] = true }, "read-only:"},
		{"editable missing", func(m map[string]any) { delete(m, "editable") }, "read-only:"},
		{"no uid", func(m map[string]any) { m["uid"] = "" }, "uid:"},
		{"no datasource variable", func(m map[string]any) {
			m["templating"].(map[string]any)["list"] = vars(m)[1:]
		}, "datasource-variable: add"},
		{"datasource label", func(m map[string]any) { vars(m)[0].(map[string]any)["label"] = "Datasource" }, "datasource-variable: want"},
		{"job not multi", func(m map[string]any) { vars(m)[2].(map[string]any)["multi"] = false }, "variable job: target-variables"},
		{"all value .*", func(m map[string]any) { vars(m)[3].(map[string]any)["allValue"] = ".*" }, "variable instance: target-variables"},
		{"refresh on load", func(m map[string]any) { vars(m)[1].(map[string]any)["refresh"] = 1 }, "variable cluster: target-variables"},
		{"no instance variable", func(m map[string]any) {
			m["templating"].(map[string]any)["list"] = vars(m)[:3]
		}, `target-variables: add the "instance" variable`},
		{"variable on a fixed datasource", func(m map[string]any) {
			vars(m)[2].(map[string]any)["datasource"] = map[string]any{"uid": "prom"}
		}, "variable job: variable-datasource"},
		{"variable query not label_values", func(m map[string]any) { vars(m)[2].(map[string]any)["query"] = "up" }, "variable job: variable-query"},
		{"variable not narrowed by an earlier one", func(m map[string]any) {
			vars(m)[3].(map[string]any)["query"] = `label_values(up{cluster=~"$cluster"}, instance)`
		}, `variable instance: variable-query: up{cluster=~"$cluster"} must be narrowed by the earlier variable: add job`},
		{"unused variable", func(m map[string]any) {
			m["templating"].(map[string]any)["list"] = append(vars(m), map[string]any{
				"type": "query", "name": "table", "datasource": map[string]any{"uid": "${datasource}"},
				"query": `label_values(up{cluster=~"$cluster", job=~"$job", instance=~"$instance"}, table)`,
			})
		}, "variable table: variable-unused"},
		{"no panel id", func(m map[string]any) { delete(panelAt(m, 1), "id") }, "panel-id: set"},
		{"duplicate panel id", func(m map[string]any) { panelAt(m, 1)["id"] = 1 }, "panel-id: id 1"},
		{"row without title", func(m map[string]any) { panelAt(m, 0)["title"] = "" }, "panel-title: the row"},
		{"no description", func(m map[string]any) { delete(panelAt(m, 1), "description") }, "panel-description:"},
		{"no unit", func(m map[string]any) { panelAt(m, 1)["fieldConfig"] = map[string]any{} }, "panel-unit:"},
		{"panel on a fixed datasource", func(m map[string]any) { panelAt(m, 1)["datasource"] = map[string]any{"uid": "prom"} }, "panel-datasource:"},
		{"panel without queries", func(m map[string]any) { panelAt(m, 1)["targets"] = []any{} }, "panel-targets:"},
		{"off the grid", func(m map[string]any) {
			panelAt(m, 1)["gridPos"] = map[string]any{"x": 18, "y": 1, "w": 12, "h": 8}
		}, "grid:"},
		{"no refId", func(m map[string]any) { targetAt(m, 1)["refId"] = "" }, "target-refid: set"},
		{"refId twice", func(m map[string]any) { targetAt(m, 1)["refId"] = "A" }, "target-refid: refId A is used twice"},
		{"query on a fixed datasource", func(m map[string]any) { delete(targetAt(m, 0), "datasource") }, "target-datasource:"},
		{"not PromQL", func(m map[string]any) { targetAt(m, 1)["expr"] = "sum(" }, "target-promql:"},
		{"unknown Grafana variable", func(m map[string]any) {
			targetAt(m, 0)["expr"] = `rate(x_total{cluster=~"$cluster", job=~"$job", instance=~"$instance"}[$__interval])`
		}, "target-promql:"},
		{"selector without job", func(m map[string]any) {
			targetAt(m, 1)["expr"] = `g{cluster=~"$cluster", instance=~"$instance"}`
		}, `target-selector: g{cluster=~"$cluster",instance=~"$instance"} lacks job`},
		{"selector with a fixed instance", func(m map[string]any) {
			targetAt(m, 1)["expr"] = `g{cluster=~"$cluster", job=~"$job", instance="db1:9842"}`
		}, "lacks instance"},
		{"second selector without cluster", func(m map[string]any) {
			targetAt(m, 1)["expr"] = `g{cluster=~"$cluster", job=~"$job", instance=~"$instance"} / on (job) h{job=~"$job", instance=~"$instance"}`
		}, "lacks cluster"},
		{"rate over a fixed range", func(m map[string]any) {
			targetAt(m, 0)["expr"] = `rate(x_total{cluster=~"$cluster", job=~"$job", instance=~"$instance"}[5m])`
		}, "target-rate-interval: rate("},
		{"rate interval outside rate", func(m map[string]any) {
			targetAt(m, 1)["expr"] = `max_over_time(g{cluster=~"$cluster", job=~"$job", instance=~"$instance"}[$__rate_interval])`
		}, "target-rate-interval: range selector"},
		{"rate interval in deriv", func(m map[string]any) {
			targetAt(m, 1)["expr"] = `deriv(g{cluster=~"$cluster", job=~"$job", instance=~"$instance"}[$__rate_interval])`
		}, "target-rate-interval: $__rate_interval belongs"},
		{"rate interval as an offset", func(m map[string]any) {
			targetAt(m, 1)["expr"] = `g{cluster=~"$cluster", job=~"$job", instance=~"$instance"} offset $__rate_interval`
		}, "as an offset"},
		{"subquery", func(m map[string]any) {
			targetAt(m, 1)["expr"] = `max_over_time(g{cluster=~"$cluster", job=~"$job", instance=~"$instance"}[1h:1m])`
		}, "subquery"},
		{"raw counter", func(m map[string]any) {
			targetAt(m, 1)["expr"] = `x_total{cluster=~"$cluster", job=~"$job", instance=~"$instance"}`
		}, "target-counter: x_total"},
		{"raw histogram bucket", func(m map[string]any) {
			targetAt(m, 1)["expr"] = `histogram_quantile(0.9, sum by (le) (d_seconds_bucket{cluster=~"$cluster", job=~"$job", instance=~"$instance"}))`
		}, "target-counter: d_seconds_bucket"},
		{"counter through deriv", func(m map[string]any) {
			targetAt(m, 1)["expr"] = `deriv(x_count{cluster=~"$cluster", job=~"$job", instance=~"$instance"}[10m])`
		}, "target-counter: x_count"},
		{"merged table keeping __name__", func(m map[string]any) {
			panelAt(m, 1)["transformations"] = []any{map[string]any{"id": "merge"}}
		}, "merged-table: query B must aggregate by the join labels"},
		{"merged table joining on different labels", func(m map[string]any) {
			panelAt(m, 1)["transformations"] = []any{map[string]any{"id": "merge"}}
			targetAt(m, 0)["expr"] = `max by (job, instance) (g{cluster=~"$cluster", job=~"$job", instance=~"$instance"})`
			targetAt(m, 1)["expr"] = `max by (job) (g{cluster=~"$cluster", job=~"$job", instance=~"$instance"}) * 1000`
		}, "merged-table: query B aggregates by [job]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := decodeGood(t)
			tc.breaks(m)
			problems := check(t, m)
			if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, tc.want) }) {
				t.Fatalf("want a problem containing %q, got:\n%s", tc.want, strings.Join(problems, "\n"))
			}
		})
	}
}

func TestMetrics(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`a / on (job) group_left b`, []string{"a", "b"}},
		{`sum(rate(c_total[$__rate_interval])) / sum(rate(c_total[$__rate_interval] offset 1w))`, []string{"c_total"}},
		{`{__name__="d", job="x"} + x:y:z`, []string{"d", "x:y:z"}},
		{`vector(0) or time() - e`, []string{"e"}},
	} {
		e, err := Parse(tc.expr)
		if err != nil {
			t.Fatal(err)
		}
		if got := Metrics(e); !slices.Equal(got, tc.want) {
			t.Errorf("Metrics(%s) = %v, want %v", tc.expr, got, tc.want)
		}
	}
}

func TestParseRejectsTheStandIn(t *testing.T) {
	if _, err := Parse("rate(a_total[31337ms])"); err == nil {
		t.Fatal("a hand-written range equal to the $__rate_interval stand-in must be refused, or it would pass for the variable")
	}
}

func TestParseVariableQuery(t *testing.T) {
	vs, label, err := ParseVariableQuery(`label_values(up{job=~"$job"}, instance)`)
	if err != nil || label != "instance" || vs.Name != "up" {
		t.Fatalf("got %v %q %v", vs, label, err)
	}
	for _, bad := range []string{`up`, `label_values(instance)`, `label_values(sum(up), job)`, `query_result(up)`} {
		if _, _, err := ParseVariableQuery(bad); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}
