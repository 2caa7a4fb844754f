package rules

import (
	"fmt"
	"strconv"
)

// Ruler limits of Grafana Mimir's defaults (ruler.max-rules-per-rule-group
// and ruler.max-rule-groups-per-tenant), which the mimir output keeps to.
const (
	MimirMaxRulesPerGroup = 20
	MimirMaxGroups        = 70
)

// Formats are the outputs of `pgcapacity rules --format`.
var Formats = []string{"prometheus", "kubernetes", "thanos", "mimir"}

// Render renders f for format; name is the PrometheusRule's metadata.name
// (kubernetes) or the rule namespace (mimir).
func (f File) Render(format, name string) ([]byte, error) {
	switch format {
	case "prometheus":
		return f.YAML()
	case "kubernetes":
		return f.PrometheusRule(name)
	case "thanos":
		return f.Thanos()
	case "mimir":
		return f.Mimir(name)
	}
	return nil, fmt.Errorf("--format %q is not a format: use prometheus, kubernetes, thanos or mimir", format)
}

// ThanosGroup is a Thanos Ruler group: a Prometheus group plus its
// partial_response_strategy.
type ThanosGroup struct {
	Group `yaml:",inline"`
	// PartialResponseStrategy is abort: an alert must not resolve because a
	// store answered only in part.
	PartialResponseStrategy string `yaml:"partial_response_strategy"`
}

// Thanos renders f as a Thanos Ruler rule file.
func (f File) Thanos() ([]byte, error) {
	out := struct {
		Groups []ThanosGroup `yaml:"groups"`
	}{}
	for _, g := range f.Groups {
		out.Groups = append(out.Groups, ThanosGroup{Group: g, PartialResponseStrategy: "abort"})
	}
	return marshal(out)
}

// MimirFile is the mimirtool rule file: one namespace and its groups.
type MimirFile struct {
	Namespace string  `yaml:"namespace"`
	Groups    []Group `yaml:"groups"`
}

// Mimir renders f as a mimirtool rule file in namespace: groups of more
// than MimirMaxRulesPerGroup rules are split in file order (a recording
// rule read by a later part is then one evaluation older, as in separate
// Prometheus groups), and more than MimirMaxGroups groups is an error.
func (f File) Mimir(namespace string) ([]byte, error) {
	out := MimirFile{Namespace: namespace, Groups: splitGroups(f.Groups, MimirMaxRulesPerGroup)}
	if len(out.Groups) >= MimirMaxGroups {
		return nil, fmt.Errorf("rules: %d rule groups, Mimir's default tenant limit is %d", len(out.Groups), MimirMaxGroups)
	}
	return marshal(out)
}

// splitGroups cuts every group into parts of at most limit rules; the
// first part keeps the name, later parts append .2, .3 and so on.
func splitGroups(groups []Group, limit int) []Group {
	var out []Group
	for _, g := range groups {
		for part, start := 1, 0; start < len(g.Rules) || part == 1; part, start = part+1, start+limit {
			p := g
			if part > 1 {
				p.Name = g.Name + "." + strconv.Itoa(part)
			}
			p.Rules = g.Rules[start:min(start+limit, len(g.Rules))]
			out = append(out, p)
		}
	}
	return out
}
