package lint

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// RateInterval is Grafana's range variable for counters.
const RateInterval = "$__rate_interval"

// rateIntervalStandIn replaces $__rate_interval before parsing: a range no
// dashboard writes by hand, so a parsed range equal to it was the variable.
const (
	rateIntervalStandIn = "31337ms"
	rateIntervalRange   = 31337 * time.Millisecond
)

// Parse parses a panel query after putting a stand-in for the Grafana
// range variable. Other Grafana variables sit inside label values, where
// PromQL takes them as text; one anywhere else fails to parse.
func Parse(expr string) (parser.Expr, error) {
	if strings.Contains(expr, rateIntervalStandIn) {
		return nil, fmt.Errorf("the range %s is reserved for the $__rate_interval stand-in: use another", rateIntervalStandIn)
	}
	p := parser.NewParser(parser.Options{})
	e, err := p.ParseExpr(strings.ReplaceAll(expr, RateInterval, rateIntervalStandIn))
	if err != nil {
		return nil, fmt.Errorf("parsing PromQL %q: %w", expr, err)
	}
	return e, nil
}

// Metrics lists the metric names an expression selects, sorted, once each.
func Metrics(e parser.Expr) []string {
	seen := map[string]bool{}
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			if name := metricName(vs); name != "" {
				seen[name] = true
			}
		}
		return nil
	})
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func metricName(vs *parser.VectorSelector) string {
	if vs.Name != "" {
		return vs.Name
	}
	for _, m := range vs.LabelMatchers {
		if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
			return m.Value
		}
	}
	return ""
}

// labelValues matches Grafana's label_values(selector, label).
var labelValues = regexp.MustCompile(`^\s*label_values\((.+),\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$`)

// ParseVariableQuery parses a query variable's label_values(selector,
// label) and returns the selector.
func ParseVariableQuery(q string) (*parser.VectorSelector, string, error) {
	m := labelValues.FindStringSubmatch(q)
	if m == nil {
		return nil, "", fmt.Errorf("variable query %q is not label_values(selector, label)", q)
	}
	e, err := Parse(m[1])
	if err != nil {
		return nil, "", err
	}
	vs, ok := e.(*parser.VectorSelector)
	if !ok {
		return nil, "", fmt.Errorf("variable query %q: %q is not a series selector", q, m[1])
	}
	return vs, m[2], nil
}

// counterFunctions are where counters, and $__rate_interval, belong.
func counterFunction(name string) bool {
	return name == "rate" || name == "irate" || name == "increase"
}

// gaugeRangeFunction names the range functions allowed over gauges, with
// a fixed range: deriv draws the slope of a gauge that only grows while a
// migration copies (rows copied), which rate would misread as a counter.
// present_over_time tells which targets published a series lately.
func gaugeRangeFunction(name string) bool {
	return name == "deriv" || name == "present_over_time"
}

// counterName reports series that only make sense as a rate: counters and
// the parts of classic histograms and summaries.
func counterName(name string) bool {
	for _, suffix := range []string{"_total", "_bucket", "_count", "_sum"} {
		if strings.HasSuffix(name, suffix) {
			return true
		}
	}
	return false
}

// exprProblems checks one parsed panel query: every selector narrowed by
// the required variables, ranges only where they belong, counters never raw.
func exprProblems(e parser.Expr, required []string) []string {
	var out []string
	parser.Inspect(e, func(n parser.Node, path []parser.Node) error {
		switch n := n.(type) {
		case *parser.VectorSelector:
			name := metricName(n)
			for _, v := range required {
				if !hasVariableMatcher(n.LabelMatchers, v, true) {
					out = append(out, fmt.Sprintf("target-selector: %s lacks %s=~\"$%s\"", n, v, v))
				}
			}
			if n.OriginalOffset == rateIntervalRange {
				out = append(out, fmt.Sprintf("target-rate-interval: %s uses $__rate_interval as an offset", n))
			}
			if counterName(name) && !insideCounterFunction(path) {
				out = append(out, fmt.Sprintf("target-counter: %s is a counter: graph it through rate, irate or increase, never raw", name))
			}
		case *parser.MatrixSelector:
			fn := parentCall(path)
			switch {
			case fn == "increase" && n.Range != rateIntervalRange:
				// A count over a stated fixed window: what counters that
				// step once per collector interval need (pg_stat_statements).
			case fn != "" && counterFunction(fn):
				if n.Range != rateIntervalRange {
					out = append(out, fmt.Sprintf("target-rate-interval: %s(%s) must use [$__rate_interval]", fn, n.VectorSelector))
				}
			case fn != "" && gaugeRangeFunction(fn):
				if n.Range == rateIntervalRange {
					out = append(out, fmt.Sprintf("target-rate-interval: $__rate_interval belongs inside rate, irate or increase, not %s", fn))
				}
			default:
				out = append(out, fmt.Sprintf("target-rate-interval: range selector %s outside rate, irate or increase", n))
			}
		case *parser.SubqueryExpr:
			out = append(out, fmt.Sprintf("target-rate-interval: subquery %s: use a recording rule", n))
		}
		return nil
	})
	return out
}

// parentCall is the function directly applied to the node at the end of
// path ("" when none).
func parentCall(path []parser.Node) string {
	if len(path) == 0 {
		return ""
	}
	if c, ok := path[len(path)-1].(*parser.Call); ok {
		return c.Func.Name
	}
	return ""
}

// insideCounterFunction: a vector selector directly in a range selector
// directly in rate, irate or increase.
func insideCounterFunction(path []parser.Node) bool {
	if len(path) < 2 {
		return false
	}
	if _, ok := path[len(path)-1].(*parser.MatrixSelector); !ok {
		return false
	}
	return counterFunction(parentCall(path[:len(path)-1]))
}

// hasVariableMatcher reports a matcher label=~"$label" (or, unless
// regexOnly, label="$label" too).
func hasVariableMatcher(ms []*labels.Matcher, label string, regexOnly bool) bool {
	for _, m := range ms {
		if m.Name != label || m.Value != "$"+label {
			continue
		}
		if m.Type == labels.MatchRegexp || (!regexOnly && m.Type == labels.MatchEqual) {
			return true
		}
	}
	return false
}

// JoinLabels is the sorted label set an expression's result carries when
// its outermost operation (past parentheses, sort functions and
// arithmetic with a number) is an aggregation by labels; ok is false
// otherwise.
func JoinLabels(e parser.Expr) ([]string, bool) {
	for {
		switch n := e.(type) {
		case *parser.ParenExpr:
			e = n.Expr
		case *parser.Call:
			if (n.Func.Name != "sort_desc" && n.Func.Name != "sort") || len(n.Args) != 1 {
				return nil, false
			}
			e = n.Args[0]
		case *parser.BinaryExpr:
			switch {
			case n.RHS.Type() == parser.ValueTypeScalar:
				e = n.LHS
			case n.LHS.Type() == parser.ValueTypeScalar:
				e = n.RHS
			default:
				return nil, false
			}
		case *parser.AggregateExpr:
			if n.Without || len(n.Grouping) == 0 {
				return nil, false
			}
			by := slices.Clone(n.Grouping)
			slices.Sort(by)
			return by, true
		default:
			return nil, false
		}
	}
}
