package dashboards

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"

	"github.com/sigid/pgcapacity/dashboards/internal/lint"
)

// The files the dashboards depend on, relative to this package.
const (
	datasourceFile = "../deploy/grafana/provisioning/datasources/prometheus.yml"
	providerFile   = "../deploy/grafana/provisioning/dashboards/pgcapacity.yml"
	prometheusFile = "../deploy/prometheus/prometheus.yml"
	rulesFile      = "../rules/pgcapacity.rules.yml"
)

func readYAML(t *testing.T, path string, into any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

type prometheusConfig struct {
	Global struct {
		ScrapeInterval string `yaml:"scrape_interval"`
	} `yaml:"global"`
	ScrapeConfigs []struct {
		JobName        string `yaml:"job_name"`
		ScrapeInterval string `yaml:"scrape_interval"`
		StaticConfigs  []struct {
			Targets []string          `yaml:"targets"`
			Labels  map[string]string `yaml:"labels"`
		} `yaml:"static_configs"`
		RelabelConfigs []struct {
			TargetLabel string `yaml:"target_label"`
		} `yaml:"relabel_configs"`
	} `yaml:"scrape_configs"`
}

// TestGrafanaProvisioning: the compose stack's Grafana reads Prometheus as
// its default data source, with the scrape interval that $__rate_interval
// is derived from, and loads the dashboards read-only.
func TestGrafanaProvisioning(t *testing.T) {
	var ds struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			Name, UID, Type, Access, URL string
			IsDefault                    bool `yaml:"isDefault"`
			JSONData                     struct {
				TimeInterval string `yaml:"timeInterval"`
			} `yaml:"jsonData"`
		} `yaml:"datasources"`
	}
	readYAML(t, datasourceFile, &ds)
	if ds.APIVersion != 1 || len(ds.Datasources) != 1 {
		t.Fatalf("%s: want apiVersion 1 and one data source, got %d and %d", datasourceFile, ds.APIVersion, len(ds.Datasources))
	}
	d := ds.Datasources[0]
	// The datasource variable (query "prometheus") lists it and starts on
	// the default data source.
	if d.Type != "prometheus" || !d.IsDefault || d.Access != "proxy" || d.URL != "http://prometheus:9090" {
		t.Errorf("%s: want the default, proxied prometheus at http://prometheus:9090, got %+v", datasourceFile, d)
	}
	var prom prometheusConfig
	readYAML(t, prometheusFile, &prom)
	scrape := prom.Global.ScrapeInterval
	for _, sc := range prom.ScrapeConfigs {
		if sc.JobName == "pgcapacity" && sc.ScrapeInterval != "" {
			scrape = sc.ScrapeInterval
		}
	}
	if d.JSONData.TimeInterval != scrape {
		t.Errorf("%s: timeInterval %q, but %s scrapes pgcapacity every %q: $__rate_interval would cover the wrong number of scrapes",
			datasourceFile, d.JSONData.TimeInterval, prometheusFile, scrape)
	}

	var prov struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Name, Type      string
			AllowUIUpdates  bool `yaml:"allowUiUpdates"`
			DisableDeletion bool `yaml:"disableDeletion"`
			Options         struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, providerFile, &prov)
	if prov.APIVersion != 1 || len(prov.Providers) != 1 {
		t.Fatalf("%s: want apiVersion 1 and one provider", providerFile)
	}
	p := prov.Providers[0]
	if p.Type != "file" || p.AllowUIUpdates || !p.DisableDeletion || !filepath.IsAbs(p.Options.Path) {
		t.Errorf("%s: want a read-only file provider with an absolute path, got %+v", providerFile, p)
	}
}

// TestScrapeConfigLabelsTheCluster: every selector carries
// cluster=~"$cluster", whose "All" is `.+`, so a series without a cluster
// label shows on no panel.
func TestScrapeConfigLabelsTheCluster(t *testing.T) {
	var prom prometheusConfig
	readYAML(t, prometheusFile, &prom)
	found := false
	for _, sc := range prom.ScrapeConfigs {
		if sc.JobName != "pgcapacity" {
			continue
		}
		found = true
		relabelled := slices.ContainsFunc(sc.RelabelConfigs, func(r struct {
			TargetLabel string `yaml:"target_label"`
		}) bool {
			return r.TargetLabel == "cluster"
		})
		for i, st := range sc.StaticConfigs {
			if st.Labels["cluster"] == "" && !relabelled {
				t.Errorf("%s: static_configs[%d] of job pgcapacity gives no cluster label, so every dashboard panel is empty: add `labels: {cluster: <name>}` (the dashboards select cluster=~\"$cluster\", all = .+)", prometheusFile, i)
			}
		}
	}
	if !found {
		t.Fatalf("%s: no scrape config with job_name pgcapacity", prometheusFile)
	}
}

// TestRecordingRulesKeepTheDashboardLabels: the recording rules the
// dashboards read must keep cluster, job and instance, or the variables
// that narrow every selector find nothing.
func TestRecordingRulesKeepTheDashboardLabels(t *testing.T) {
	var file struct {
		Groups []struct {
			Rules []struct {
				Record string `yaml:"record"`
				Expr   string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	readYAML(t, rulesFile, &file)
	records := map[string]string{}
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				records[r.Record] = r.Expr
			}
		}
	}

	// The rules the dashboards read, and the rules those are built from.
	_, boards := rendered(t, defaultOptions(t))
	var todo []string
	for _, d := range boards {
		for _, p := range d.AllPanels() {
			for _, tg := range p.Targets {
				e, err := lint.Parse(tg.Expr)
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range lint.Metrics(e) {
					if strings.Contains(m, ":") {
						todo = append(todo, m)
					}
				}
			}
		}
	}
	if len(todo) == 0 {
		t.Fatal("no dashboard reads a recording rule: the latency panels should")
	}
	checked := map[string]bool{}
	for len(todo) > 0 {
		name := todo[0]
		todo = todo[1:]
		if checked[name] {
			continue
		}
		checked[name] = true
		expr, ok := records[name]
		if !ok {
			t.Errorf("%s has no recording rule %s, which the dashboards read", rulesFile, name)
			continue
		}
		e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
		if err != nil {
			t.Fatalf("%s: %s: %v", rulesFile, name, err)
		}
		for _, m := range lint.Metrics(e) {
			if strings.Contains(m, ":") {
				todo = append(todo, m)
			}
		}
		parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
			agg, ok := n.(*parser.AggregateExpr)
			if !ok {
				return nil
			}
			for _, l := range lint.TargetVariables() {
				if kept := slices.Contains(agg.Grouping, l) != agg.Without; !kept {
					t.Errorf("%s: recording rule %s drops the %s label in %s: keep it (by (%s, ...)), the dashboards select %s=~\"$%s\"",
						rulesFile, name, l, agg, strings.Join(lint.TargetVariables(), ", "), l, l)
				}
			}
			return nil
		})
	}
}
