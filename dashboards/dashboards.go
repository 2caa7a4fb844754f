// Package dashboards builds pgcapacity's Grafana dashboards with the Grafana
// Foundation SDK. The generated JSON is committed under json/ and provisioned
// by deploy/grafana; `pgcapacity dashboards DIR` regenerates it.
package dashboards

//go:generate go run ../cmd/pgcapacity dashboards json

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/grafana/grafana-foundation-sdk/go/dashboard"

	"github.com/sigid/pgcapacity/internal/config"
)

// Stable uids: links between the dashboards and bookmarks depend on them.
const (
	UIDOverview   = "pgcapacity-overview"
	UIDTable      = "pgcapacity-table"
	UIDLatency    = "pgcapacity-latency"
	UIDAdminops   = "pgcapacity-adminops"
	UIDMigrations = "pgcapacity-migrations"
)

// Tag marks every pgcapacity dashboard; the dashboards link to each other by it.
const Tag = "pgcapacity"

// File is one generated dashboard and the file name it is written under.
type File struct {
	Name      string
	Dashboard dashboard.Dashboard
}

// Options are what the dashboards draw from the configuration.
type Options struct {
	// Thresholds are drawn on the panels: the same values the rules use.
	Thresholds config.Thresholds
	// RollbackPeriod is how long migrate keeps an old table after a swap.
	RollbackPeriod config.Duration
	// RunbookURL is the runbook document the alerts link to; each rule's
	// panels link to #<alert name in lower case>, as the alerts do.
	RunbookURL string
	// StatementsInterval is how often the exporter reads
	// pg_stat_statements: its counters step once per interval, so the
	// statement panels rate over a window of several intervals.
	StatementsInterval config.Duration
}

// OptionsFrom takes the dashboard options from a loaded configuration.
func OptionsFrom(cfg config.Config) Options {
	return Options{Thresholds: cfg.Thresholds, RollbackPeriod: cfg.RollbackPeriod, RunbookURL: cfg.RunbookURL, StatementsInterval: cfg.StatementsInterval}
}

// Build builds every dashboard.
func Build(opts Options) ([]File, error) {
	builders := []struct {
		name  string
		build func(Options) *dashboard.DashboardBuilder
	}{
		{"pgcapacity-overview.json", overview},
		{"pgcapacity-table.json", tableDetail},
		{"pgcapacity-latency.json", latency},
		{"pgcapacity-adminops.json", adminops},
		{"pgcapacity-migrations.json", migrations},
	}
	files := make([]File, 0, len(builders))
	for _, b := range builders {
		d, err := b.build(opts).Build()
		if err != nil {
			return nil, fmt.Errorf("building dashboard %s: %w", b.name, err)
		}
		// The SDK places dashboard links in the controls menu; without a
		// placement Grafana shows them in the bar above the panels.
		for i := range d.Links {
			d.Links[i].Placement = nil
		}
		files = append(files, File{Name: b.name, Dashboard: d})
	}
	return files, nil
}

// Marshal renders a dashboard as indented JSON ending in a newline, the
// form that is committed.
func Marshal(d dashboard.Dashboard) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // keep PromQL's <, > and & readable in the files
	if err := enc.Encode(d); err != nil {
		return nil, fmt.Errorf("encoding dashboard %q: %w", deref(d.Title), err)
	}
	return buf.Bytes(), nil
}

// Write writes every file into dir, creating dir when missing. A file is
// replaced whole (written aside, then renamed) so that a Grafana watching
// the directory never reads half a dashboard.
func Write(dir string, files []File) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating dashboards directory: %w", err)
	}
	written := make([]string, 0, len(files))
	for _, f := range files {
		data, err := Marshal(f.Dashboard)
		if err != nil {
			return written, err
		}
		path := filepath.Join(dir, f.Name)
		if err := writeFile(path, data); err != nil {
			return written, err
		}
		written = append(written, path)
	}
	return written, nil
}

func writeFile(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
