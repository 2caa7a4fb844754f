package rules

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
)

// rulerGroups turns one format's output into a Prometheus rule file by the
// documented schema of its ruler: the Thanos Ruler's groups carry
// partial_response_strategy (warn or abort), mimirtool's file a namespace,
// prometheus-operator's manifest the groups under spec. What remains must
// pass Prometheus' own loader (promtool check rules), which refuses any
// field it does not know.
func rulerGroups(t *testing.T, format string, text []byte) []byte {
	t.Helper()
	var doc map[string]any
	if err := yaml.Unmarshal(text, &doc); err != nil {
		t.Fatalf("%s: %v", format, err)
	}
	switch format {
	case "kubernetes":
		spec, ok := doc["spec"].(map[string]any)
		if !ok || doc["kind"] != "PrometheusRule" {
			t.Fatalf("kubernetes: no PrometheusRule spec in\n%s", text)
		}
		doc = spec
	case "thanos":
		for _, g := range doc["groups"].([]any) {
			group := g.(map[string]any)
			if s := group["partial_response_strategy"]; s != "abort" && s != "warn" {
				t.Errorf("thanos: group %v: partial_response_strategy %v, want abort or warn", group["name"], s)
			}
			delete(group, "partial_response_strategy")
		}
	case "mimir":
		if ns, _ := doc["namespace"].(string); ns == "" {
			t.Errorf("mimir: no namespace")
		}
		delete(doc, "namespace")
		groups := doc["groups"].([]any)
		if len(groups) >= MimirMaxGroups {
			t.Errorf("mimir: %d groups, the default limit is under %d", len(groups), MimirMaxGroups)
		}
		for _, g := range groups {
			group := g.(map[string]any)
			if n := len(group["rules"].([]any)); n > MimirMaxRulesPerGroup {
				t.Errorf("mimir: group %v has %d rules, the default limit is %d", group["name"], n, MimirMaxRulesPerGroup)
			}
		}
	}
	out, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestEveryRulerFormatParses(t *testing.T) {
	for i, env := range configurations() {
		f := generate(t, env)
		want := len(f.Alerts()) + len(f.Records())
		for _, format := range Formats {
			t.Run(fmt.Sprintf("%s/configuration %d", format, i), func(t *testing.T) {
				text, err := f.Render(format, "pgcapacity")
				if err != nil {
					t.Fatal(err)
				}
				plain := rulerGroups(t, format, text)
				dir := t.TempDir()
				path := filepath.Join(dir, "rules.yml")
				if err := os.WriteFile(path, plain, 0o644); err != nil {
					t.Fatal(err)
				}
				if out, err := runTool(t, dir, "promtool", "check", "rules", path); err != nil {
					t.Fatalf("promtool check rules: %v\n%s", err, out)
				}
				var parsed File
				dec := yaml.NewDecoder(bytes.NewReader(plain))
				dec.KnownFields(true)
				if err := dec.Decode(&parsed); err != nil {
					t.Fatal(err)
				}
				got := 0
				for _, g := range parsed.Groups {
					got += len(g.Rules)
					for _, r := range g.Rules {
						assertClusterKept(t, r.Alert+r.Record, r.Expr)
					}
				}
				if got != want {
					t.Errorf("%d rules, want %d", got, want)
				}
			})
		}
	}
}

// assertClusterKept fails when an aggregation or a vector match drops the
// cluster label: every by (...) and one-to-one on (...) must list it, and
// no without (...) or ignoring (...) may.
func assertClusterKept(t *testing.T, rule, expr string) {
	t.Helper()
	node, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		t.Fatalf("%s: %v", rule, err)
	}
	parser.Inspect(node, func(n parser.Node, _ []parser.Node) error {
		switch e := n.(type) {
		case *parser.AggregateExpr:
			if e.Op == parser.TOPK || e.Op == parser.BOTTOMK || e.Op == parser.LIMITK || e.Op == parser.LIMIT_RATIO {
				return nil // these keep every label of the series they pick
			}
			if e.Without == slices.Contains(e.Grouping, "cluster") {
				t.Errorf("%s: %s drops the cluster label: %s", rule, e.Op, parser.Tree(e))
			}
		case *parser.BinaryExpr:
			// and/or/unless keep the left side's labels, group_left/right the
			// many side's; a one-to-one match keeps only on (...)'s labels.
			m := e.VectorMatching
			if m == nil || e.Op.IsSetOperator() || m.Card != parser.CardOneToOne {
				return nil
			}
			if (len(m.MatchingLabels) > 0 || m.On) && m.On != slices.Contains(m.MatchingLabels, "cluster") {
				t.Errorf("%s: a vector match drops the cluster label: %s", rule, e)
			}
		}
		return nil
	})
}

func TestSplitGroups(t *testing.T) {
	rules := func(n int) []Rule { return make([]Rule, n) }
	tests := []struct {
		rules     int
		wantNames []string
		wantSizes []int
	}{
		{0, []string{"g"}, []int{0}},
		{20, []string{"g"}, []int{20}},
		{21, []string{"g", "g.2"}, []int{20, 1}},
		{45, []string{"g", "g.2", "g.3"}, []int{20, 20, 5}},
	}
	for _, tc := range tests {
		got := splitGroups([]Group{{Name: "g", Interval: "1m", Rules: rules(tc.rules)}}, MimirMaxRulesPerGroup)
		var names []string
		var sizes []int
		for _, g := range got {
			names, sizes = append(names, g.Name), append(sizes, len(g.Rules))
			if g.Interval != "1m" {
				t.Errorf("%d rules: part %s lost the interval", tc.rules, g.Name)
			}
		}
		if !slices.Equal(names, tc.wantNames) || !slices.Equal(sizes, tc.wantSizes) {
			t.Errorf("%d rules split into %v %v, want %v %v", tc.rules, names, sizes, tc.wantNames, tc.wantSizes)
		}
	}
}
