package lint

import (
	"fmt"
	"slices"
	"strings"
)

// DatasourceUID is the templated data source every panel, query and query
// variable must use.
const DatasourceUID = "${datasource}"

// TargetVariables lists the variables every selector must carry; with
// "All" they match `.+`.
func TargetVariables() []string { return []string{"cluster", "job", "instance"} }

// Problem is one broken convention.
type Problem struct {
	Dashboard string
	Where     string // the panel or variable; empty: the dashboard
	Detail    string // starts with the rule's name
}

func (p Problem) String() string {
	if p.Where == "" {
		return p.Dashboard + ": " + p.Detail
	}
	return p.Dashboard + ": " + p.Where + ": " + p.Detail
}

// Check returns every convention d breaks.
func Check(d Dashboard) []Problem {
	var out []Problem
	add := func(where, format string, args ...any) {
		out = append(out, Problem{Dashboard: d.File, Where: where, Detail: fmt.Sprintf(format, args...)})
	}

	if d.UID == "" {
		add("", "uid: set a stable uid: links and bookmarks depend on it")
	}
	if d.Title == "" {
		add("", "title: the dashboard has no title")
	}
	if d.Editable == nil || *d.Editable {
		add("", "read-only: set editable to false: the files are generated, edits in Grafana are lost")
	}

	checkVariables(d, add)

	ids := map[int]string{}
	for _, p := range d.AllPanels() {
		where := fmt.Sprintf("panel %q", p.Title)
		if p.ID == nil {
			add(where, "panel-id: set an explicit id")
		} else if other, dup := ids[*p.ID]; dup {
			add(where, "panel-id: id %d is also panel %q", *p.ID, other)
		} else {
			ids[*p.ID] = p.Title
		}
		if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X < 0 || p.GridPos.X+p.GridPos.W > 24 {
			add(where, "grid: %+v does not fit the 24-column grid", p.GridPos)
		}
		if p.Type == "row" {
			if p.Title == "" {
				add(where, "panel-title: the row has no title")
			}
			continue
		}
		checkPanel(p, where, add)
	}
	return out
}

func checkVariables(d Dashboard, add func(where, format string, args ...any)) {
	ds, ok := d.Variable("datasource")
	switch {
	case !ok:
		add("", `datasource-variable: add a "datasource" variable of type datasource`)
	case ds.Type != "datasource" || ds.Label != "Data source" || ds.QueryString() != "prometheus":
		add("variable datasource", `datasource-variable: want type datasource, label "Data source", query prometheus; got %q, %q, %q`, ds.Type, ds.Label, ds.QueryString())
	}
	for _, name := range TargetVariables() {
		v, ok := d.Variable(name)
		if !ok {
			add("", "target-variables: add the %q variable", name)
			continue
		}
		if v.Type != "query" || !v.Multi || !v.IncludeAll || v.AllValue != ".+" || v.Refresh != 2 {
			add("variable "+name, "target-variables: want a query variable, multi, include all with all value .+, refresh on time range change (2); got type %q multi %v includeAll %v allValue %q refresh %d",
				v.Type, v.Multi, v.IncludeAll, v.AllValue, v.Refresh)
		}
	}

	used := strings.Builder{}
	for _, p := range d.AllPanels() {
		for _, t := range p.Targets {
			used.WriteString(t.Expr)
		}
		used.WriteString(p.Title)
		for _, l := range p.Links {
			used.WriteString(l.URL)
		}
	}
	var earlier []Variable
	for _, v := range d.Templating.List {
		where := "variable " + v.Name
		if v.Type == "query" {
			if v.Datasource == nil || v.Datasource.UID != DatasourceUID {
				add(where, "variable-datasource: read the %s data source", DatasourceUID)
			}
			vs, _, err := ParseVariableQuery(v.QueryString())
			if err != nil {
				add(where, "variable-query: %v", err)
			} else {
				for _, e := range earlier {
					if e.Type == "query" && !hasVariableMatcher(vs.LabelMatchers, e.Name, false) {
						add(where, "variable-query: %s must be narrowed by the earlier variable: add %s=~\"$%s\"", vs, e.Name, e.Name)
					}
				}
			}
		}
		if v.Type != "datasource" && !strings.Contains(used.String(), "$"+v.Name) {
			add(where, "variable-unused: no panel uses $%s", v.Name)
		}
		earlier = append(earlier, v)
	}
}

func checkPanel(p Panel, where string, add func(where, format string, args ...any)) {
	if p.Title == "" {
		add(where, "panel-title: the panel has no title")
	}
	if p.Description == "" {
		add(where, "panel-description: say what the panel answers and how to read it")
	}
	if p.Unit() == "" {
		add(where, "panel-unit: set a unit")
	}
	if p.Datasource == nil || p.Datasource.UID != DatasourceUID {
		add(where, "panel-datasource: read the %s data source", DatasourceUID)
	}
	if len(p.Targets) == 0 {
		add(where, "panel-targets: the panel has no query")
	}
	if p.Merges() {
		checkMergedTargets(p.Targets, where, add)
	}
	refIDs := map[string]bool{}
	for _, t := range p.Targets {
		if t.RefID == "" {
			add(where, "target-refid: set an explicit refId")
		} else if refIDs[t.RefID] {
			add(where, "target-refid: refId %s is used twice", t.RefID)
		}
		refIDs[t.RefID] = true
		if t.Datasource == nil || t.Datasource.UID != DatasourceUID {
			add(where, "target-datasource: query %s must read the %s data source", t.RefID, DatasourceUID)
		}
		e, err := Parse(t.Expr)
		if err != nil {
			add(where, "target-promql: query %s: %v", t.RefID, err)
			continue
		}
		for _, problem := range exprProblems(e, TargetVariables()) {
			add(where, "query %s: %s", t.RefID, problem)
		}
	}
}

// checkMergedTargets holds a merged table's queries to one label set:
// Grafana's merge joins only rows whose labels agree, so a query that
// keeps __name__ or another label set splits each row into sparse ones.
// Each query must be an aggregation by the same labels.
func checkMergedTargets(targets []Target, where string, add func(where, format string, args ...any)) {
	var first []string
	var firstRef string
	for _, t := range targets {
		e, err := Parse(t.Expr)
		if err != nil {
			continue // reported with the query
		}
		by, ok := JoinLabels(e)
		if !ok {
			add(where, "merged-table: query %s must aggregate by the join labels (sum/max by (...)): other labels, __name__ among them, split the merged rows", t.RefID)
			continue
		}
		if first == nil {
			first, firstRef = by, t.RefID
		} else if !slices.Equal(first, by) {
			add(where, "merged-table: query %s aggregates by %v, query %s by %v: merged rows join on the same labels", t.RefID, by, firstRef, first)
		}
	}
}
