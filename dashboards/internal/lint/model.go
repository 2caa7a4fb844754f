// Package lint checks generated Grafana dashboards against the conventions
// the Grafana dashboard linter enforces (which cannot be built here), and
// parses their PromQL with Prometheus's own parser. Only tests import it, so
// the pgcapacity binary does not carry the parser.
package lint

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

// The model is the dashboard JSON as Grafana reads it, reduced to the
// fields the conventions speak about.

// DatasourceRef points a panel, query or variable at a data source.
type DatasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// Target is one query of a panel.
type Target struct {
	RefID      string         `json:"refId"`
	Expr       string         `json:"expr"`
	Instant    bool           `json:"instant"` // else a range query
	Datasource *DatasourceRef `json:"datasource"`
}

// Threshold is one step of a panel's thresholds; Value nil is the base.
type Threshold struct {
	Value *float64 `json:"value"`
	Color string   `json:"color"`
}

// Link is a panel link.
type Link struct {
	Title string `json:"title"`
	URL   string `json:"url"`
}

// GridPos is a panel's place on the 24-column grid.
type GridPos struct {
	X int `json:"x"`
	Y int `json:"y"`
	W int `json:"w"`
	H int `json:"h"`
}

// Panel is a panel or a row.
type Panel struct {
	ID          *int           `json:"id"`
	Type        string         `json:"type"`
	Title       string         `json:"title"`
	Description string         `json:"description"`
	Datasource  *DatasourceRef `json:"datasource"`
	Targets     []Target       `json:"targets"`
	Repeat      string         `json:"repeat"`
	GridPos     GridPos        `json:"gridPos"`
	Links       []Link         `json:"links"`
	FieldConfig struct {
		Defaults struct {
			Unit       string `json:"unit"`
			Thresholds struct {
				Steps []Threshold `json:"steps"`
			} `json:"thresholds"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
	Panels          []Panel          `json:"panels"` // a collapsed row's panels
	Transformations []Transformation `json:"transformations"`
}

// Transformation is one step of a panel's data transformations.
type Transformation struct {
	ID string `json:"id"`
}

// Merges reports whether the panel joins its queries into one table.
func (p Panel) Merges() bool {
	for _, t := range p.Transformations {
		if t.ID == "merge" {
			return true
		}
	}
	return false
}

// Unit is the panel's default unit.
func (p Panel) Unit() string { return p.FieldConfig.Defaults.Unit }

// Thresholds are the panel's default threshold steps.
func (p Panel) Thresholds() []Threshold { return p.FieldConfig.Defaults.Thresholds.Steps }

// Variable is a template variable.
type Variable struct {
	Type       string         `json:"type"`
	Name       string         `json:"name"`
	Label      string         `json:"label"`
	Query      any            `json:"query"`
	Datasource *DatasourceRef `json:"datasource"`
	Multi      bool           `json:"multi"`
	IncludeAll bool           `json:"includeAll"`
	AllValue   string         `json:"allValue"`
	Refresh    int            `json:"refresh"`
}

// QueryString is a query variable's query, stored either as a string or
// as {"query": "..."}.
func (v Variable) QueryString() string {
	switch q := v.Query.(type) {
	case string:
		return q
	case map[string]any:
		s, _ := q["query"].(string)
		return s
	}
	return ""
}

// Dashboard is one dashboard file.
type Dashboard struct {
	File       string   `json:"-"`
	UID        string   `json:"uid"`
	Title      string   `json:"title"`
	Editable   *bool    `json:"editable"`
	Tags       []string `json:"tags"`
	Panels     []Panel  `json:"panels"`
	Templating struct {
		List []Variable `json:"list"`
	} `json:"templating"`
}

// AllPanels lists the top-level panels and rows and the panels inside
// collapsed rows.
func (d Dashboard) AllPanels() []Panel {
	var out []Panel
	var walk func([]Panel)
	walk = func(ps []Panel) {
		for _, p := range ps {
			out = append(out, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// Variable finds a template variable by name.
func (d Dashboard) Variable(name string) (Variable, bool) {
	for _, v := range d.Templating.List {
		if v.Name == name {
			return v, true
		}
	}
	return Variable{}, false
}

// Decode reads a dashboard's JSON.
func Decode(file string, data []byte) (Dashboard, error) {
	d := Dashboard{File: file}
	if err := json.Unmarshal(data, &d); err != nil {
		return d, fmt.Errorf("decoding dashboard %s: %w", file, err)
	}
	return d, nil
}

// LoadDir reads every *.json dashboard of dir, in file name order.
func LoadDir(dir string) ([]Dashboard, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, fmt.Errorf("listing dashboards in %s: %w", dir, err)
	}
	sort.Strings(paths)
	out := make([]Dashboard, 0, len(paths))
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("reading dashboard: %w", err)
		}
		d, err := Decode(filepath.Base(p), data)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}
