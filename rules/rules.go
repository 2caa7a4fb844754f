// Package rules generates pgcapacity's Prometheus recording and alert rules
// from the configured thresholds, so that the rules, `check` and the
// dashboards read one source. The committed rules/pgcapacity.rules.yml and
// deploy/kubernetes/prometheusrule.yaml are Generate(FromConfig(defaults)).
package rules

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/sigid/pgcapacity/internal/config"
)

// Options are everything the rules depend on.
type Options struct {
	// Thresholds of the operating rules; RuleWindow is the business week.
	Thresholds config.Thresholds
	// RollbackPeriod is how long migrate keeps the old table after a swap.
	RollbackPeriod time.Duration
	// MinAdmins is the administrator minimum of tenants_below_two_admins.
	MinAdmins int
	// RunbookURL is the runbook document; each alert appends #<alert in lower case>.
	RunbookURL string
	// Job is the Prometheus job that scrapes pgcapacity.
	Job string
	// EvaluationInterval of every group.
	EvaluationInterval time.Duration
}

// FromConfig takes the options from a loaded configuration.
func FromConfig(c config.Config) Options {
	return Options{
		Thresholds:         c.Thresholds,
		RollbackPeriod:     c.RollbackPeriod.D(),
		MinAdmins:          c.AdminopsMinAdmins,
		RunbookURL:         c.RunbookURL,
		Job:                c.RulesJob,
		EvaluationInterval: c.RulesEvaluationInterval.D(),
	}
}

// Validate reports options that would render broken rules; config.Validate
// catches the same problems earlier with the variable's name.
func (o Options) Validate() error {
	t := o.Thresholds
	switch {
	case o.EvaluationInterval <= 0:
		return errors.New("rules: the evaluation interval must be greater than zero (PGCAPACITY_RULES_EVALUATION_INTERVAL)")
	case t.RuleWindow.D() < o.EvaluationInterval:
		return fmt.Errorf("rules: the rule window %v is shorter than the evaluation interval %v: lengthen PGCAPACITY_RULE_WINDOW", t.RuleWindow, config.Duration(o.EvaluationInterval))
	case t.WriteRetentionTarget <= 0:
		return errors.New("rules: the write retention target must be greater than zero (PGCAPACITY_WRITE_RETENTION_TARGET)")
	case t.ParentAnalyzeMaxAge <= 0:
		return errors.New("rules: the parent statistics age must be greater than zero (PGCAPACITY_PARENT_ANALYZE_MAX_AGE)")
	case t.VacuumLagFor <= 0:
		return errors.New("rules: the vacuum lag hold time must be greater than zero (PGCAPACITY_VACUUM_LAG_FOR)")
	case t.AdminopsFindingFor <= 0:
		return errors.New("rules: the admin-ops finding hold time must be greater than zero (PGCAPACITY_ADMINOPS_FINDING_FOR)")
	case o.RollbackPeriod <= 0:
		return errors.New("rules: the rollback period must be greater than zero (PGCAPACITY_ROLLBACK_PERIOD)")
	case t.AdminopsReviewWindow.D()%(24*time.Hour) != 0 || t.AdminopsReviewWindow.D() < 24*time.Hour || t.AdminopsReviewWindow.D() > 31*24*time.Hour:
		return fmt.Errorf("rules: the admin-ops review window %v must be whole days from 1d to 31d (PGCAPACITY_ADMINOPS_REVIEW_WINDOW)", t.AdminopsReviewWindow)
	case !dividesYear(t.AdminopsInvitationReviewMonths) || !dividesYear(t.AdminopsAccessReviewMonths):
		return errors.New("rules: review periods in months must divide the year: 1, 2, 3, 4, 6 or 12 (PGCAPACITY_ADMINOPS_*_REVIEW_MONTHS)")
	case o.MinAdmins < 1:
		return errors.New("rules: the administrator minimum must be at least 1 (PGCAPACITY_ADMINOPS_MIN_ADMINS)")
	case strings.TrimSpace(o.Job) == "" || strings.ContainsAny(o.Job, "\"\\\n"):
		return fmt.Errorf("rules: job %q must be a plain Prometheus job name (PGCAPACITY_RULES_JOB)", o.Job)
	}
	if u, err := url.Parse(o.RunbookURL); err != nil || o.RunbookURL == "" || strings.Contains(o.RunbookURL, "#") || u.String() == "" {
		return fmt.Errorf("rules: runbook URL %q must be a URL without a #fragment (PGCAPACITY_RUNBOOK_URL)", o.RunbookURL)
	}
	return nil
}

func dividesYear(months int) bool { return months >= 1 && months <= 12 && 12%months == 0 }

// File is a Prometheus rule file.
type File struct {
	Groups []Group `yaml:"groups"`
}

// Group is a rule group evaluated at one interval.
type Group struct {
	Name     string `yaml:"name"`
	Interval string `yaml:"interval,omitempty"`
	Rules    []Rule `yaml:"rules"`
}

// Rule is a recording rule (Record set) or an alert (Alert set).
type Rule struct {
	Record      string            `yaml:"record,omitempty"`
	Alert       string            `yaml:"alert,omitempty"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for,omitempty"`
	Labels      map[string]string `yaml:"labels,omitempty"`
	Annotations map[string]string `yaml:"annotations,omitempty"`
}

// Alerts lists every alert of f in file order.
func (f File) Alerts() []Rule {
	var out []Rule
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				out = append(out, r)
			}
		}
	}
	return out
}

// Records lists every recording rule name of f in file order.
func (f File) Records() []string {
	var out []string
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				out = append(out, r.Record)
			}
		}
	}
	return out
}

// Alert contract labels (DESIGN.md).
const (
	SeverityCritical = "critical"
	SeverityWarning  = "warning"
	SeverityInfo     = "info"

	CategoryCapacityPlanning = "capacity-planning"
	CategoryAutovacuum       = "autovacuum"
	CategoryLatency          = "latency"
	CategoryAdminops         = "admin-ops"
	CategoryExporter         = "exporter"
	CategoryMigration        = "migration"
)

// Generate renders the rules for o.
func Generate(o Options) (File, error) {
	if err := o.Validate(); err != nil {
		return File{}, err
	}
	g := generator{o: o, interval: promDuration(o.EvaluationInterval)}
	return File{Groups: []Group{
		g.probeGroup(),
		g.planningGroup(),
		g.operationalGroup(),
		g.adminopsGroup(),
	}}, nil
}

type generator struct {
	o        Options
	interval string
}

func (g generator) runbook(alert string) string {
	return g.o.RunbookURL + "#" + strings.ToLower(alert)
}

func (g generator) alert(name, expr, forDur, severity, category, summary, description string) Rule {
	r := Rule{
		Alert:  name,
		Expr:   expr,
		For:    forDur,
		Labels: map[string]string{"severity": severity, "category": category},
		Annotations: map[string]string{
			"summary":     summary,
			"description": description,
			"runbook_url": g.runbook(name),
		},
	}
	return r
}
