// Package config reads pgcapacity's configuration from PGCAPACITY_*
// environment variables and holds the thresholds of the operating rules,
// the one source that check, the rules generator and migrate all read.
package config

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"path"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kelseyhightower/envconfig"
	"github.com/sigid/pgcapacity/internal/dbpool"
)

// Prefix is the environment variable prefix of every setting.
const Prefix = "PGCAPACITY"

// Thresholds are the operating rules' limits (DESIGN.md). Every one is a
// default, never a constant.
type Thresholds struct {
	LiveRowsPerPartition   float64  `split_words:"true" default:"1000000" desc:"rule 1: average live rows per hash partition above which a table needs more partitions"`
	SkewRatio              float64  `split_words:"true" default:"4" desc:"rule 2: a partition holding more than this multiple of its table's median live rows is skewed"`
	TenantIndexBufferRatio float64  `split_words:"true" default:"1" desc:"rule 3: hot tenant-leading btree indexes above this share of shared_buffers no longer fit"`
	WriteRetentionTarget   Duration `split_words:"true" default:"1h" desc:"rule 4: vacuum lag of a hot partition above this breaks the write retention target"`
	LatencyRegression      float64  `split_words:"true" default:"0.25" desc:"rule 5: p95 of tenant-scoped probes this fraction above the baseline is a regression"`
	PlanningShare          float64  `split_words:"true" default:"0.1" desc:"rule 6: planning time above this share of p95 total latency is measurable"`
	PlanningMin            Duration `split_words:"true" default:"1ms" desc:"rule 6: planning p95 below this never counts as measurable, however large its share (point lookups plan in well under a millisecond)"`
	RuleWindow             Duration `split_words:"true" default:"7d" desc:"how long a planning rule must hold before it fires (a full business week)"`
	XIDAgeCritical         float64  `split_words:"true" default:"1500000000" desc:"transaction-id age of a partition that pages (wraparound at about 2.1 billion)"`
	VacuumLagFor           Duration `split_words:"true" default:"1h" desc:"how long hot-partition vacuum lag must stay above the retention target before the operational alert"`
	ParentAnalyzeMaxAge    Duration `split_words:"true" default:"7d" desc:"parent statistics older than this while the table's partitions have been analyzed since are stale (autovacuum never analyzes a partitioned parent): alert PartitionParentStatisticsStale and check"`
	DecreaseIndexShare     float64  `split_words:"true" default:"0.25" desc:"migrate: a decrease is allowed only while projected per-partition tenant indexes stay under this share of shared_buffers"`

	AdminopsReviewWindow           Duration `split_words:"true" default:"7d" desc:"admin-ops review alerts (stale invitations, unreviewed administrators) fire during the first this-many days (whole days, 1d to 31d) of each review period, UTC"`
	AdminopsInvitationReviewMonths int      `split_words:"true" default:"1" desc:"months between reviews of stale invitations (the ops guide: monthly); a divisor of 12"`
	AdminopsAccessReviewMonths     int      `split_words:"true" default:"3" desc:"months between access reviews of administrators (the ops guide: quarterly); a divisor of 12"`
	AdminopsFindingFor             Duration `split_words:"true" default:"1h" desc:"how long an administrator without MFA or a tenant below two administrators must stand before its alert"`
}

// Config is the whole configuration of one pgcapacity process.
type Config struct {
	DatabaseURL     string     `split_words:"true" desc:"PostgreSQL connection string (URL or key=value); required for serve, check and migrate"`
	ListenAddress   string     `split_words:"true" default:":9842" desc:"address the exporter listens on"`
	WebConfigFile   string     `split_words:"true" desc:"exporter-toolkit web configuration file (TLS, basic auth); empty for plain HTTP"`
	Tables          []string   `desc:"tables to watch, comma-separated, schema.table or table, * and ? globs allowed; empty: every hash-partitioned table"`
	HotTables       []string   `split_words:"true" default:"session,tenant_membership,tenant_subject_identifier,referral*" desc:"tables whose tenant-leading indexes must fit in shared_buffers, globs allowed"`
	TenantColumn    string     `split_words:"true" default:"tenant_id" desc:"the tenant key column, when a table's partition key does not say it"`
	PartitionDetail DetailMode `split_words:"true" default:"auto" desc:"which partitions publish per-partition series: all, top (the PGCAPACITY_PARTITION_TOP_K worst of each table on each signal), none (per-table aggregates only), or auto (all up to 200 watched partitions, top above); true and false of earlier releases mean all and none"`
	PartitionTopK   int        `split_words:"true" default:"5" desc:"partitions per table and signal (live rows, dead rows above the trigger, vacuum lag, xid age, tenant-index bytes) published in the top partition detail mode"`

	// Health endpoints on a plain listener of their own: kubelet and Docker
	// health checks can give neither a password nor a client certificate.
	HealthListenAddress string `split_words:"true" desc:"address of a plain-HTTP listener serving only /healthz and /readyz, outside the web configuration's TLS and basic auth, for kubelet and Docker health checks (the image sets :9843); empty: none, they answer only on PGCAPACITY_LISTEN_ADDRESS"`

	Collectors []string `default:"stats,sizes,migrations,probes,statements,adminops" desc:"collectors serve runs, comma-separated, of stats, sizes, migrations, probes, statements, adminops; leave one out to switch it off (its series are then absent, nothing else changes; check skips probes, statements and adminops when left out)"`

	StatsInterval      Duration `split_words:"true" default:"2m" desc:"how often row counts, dead rows, vacuum and analyze state are sampled (autovacuum looks at a database once every autovacuum_naptime, 1m by default; the alerts on them wait 5m or more)"`
	SizesInterval      Duration `split_words:"true" default:"15m" desc:"how often heap and index sizes are sampled (only partitions whose counters moved are sized again)"`
	ProbeInterval      Duration `split_words:"true" default:"30s" desc:"how often each latency probe runs (120 samples an hour per table)"`
	StatementsInterval Duration `split_words:"true" default:"2m" desc:"how often pg_stat_statements is read (every entry, whatever pgcapacity attributes: about 8 ms at 4,000 entries)"`
	AdminopsInterval   Duration `split_words:"true" default:"10m" desc:"how often the admin-operations checks run"`
	MigrationsInterval Duration `split_words:"true" default:"30s" desc:"how often migration state is read"`
	QueryTimeout       Duration `split_words:"true" default:"10s" desc:"statement timeout of every sampling query"`
	LockTimeout        Duration `split_words:"true" default:"1s" desc:"lock_timeout of the sampling session, so a round never waits behind DDL"`

	ProbesFile               string   `split_words:"true" desc:"YAML file replacing or adding latency probes"`
	ProbeTenantRefresh       Duration `split_words:"true" default:"6h" desc:"how often the probes re-read their sample of tenant ids per partition (from the planner statistics, which change only when a partition is analyzed; a table with no known tenants is retried every minute)"`
	ProbeTenantsPerPartition int      `split_words:"true" default:"8" desc:"most tenant ids per partition the probes pick from (fewer, but one at least, on tables of thousands of partitions)"`

	AdminopsQueriesFile        string   `split_words:"true" desc:"YAML file overriding admin-ops check queries"`
	AdminopsStaleInvitationAge Duration `split_words:"true" default:"30d" desc:"pending invitations older than this are stale"`
	AdminopsReviewInterval     Duration `split_words:"true" default:"90d" desc:"administrators not reviewed within this are unreviewed"`
	AdminopsTenantCap          int      `split_words:"true" default:"100" desc:"most tenants per check published as per-tenant series"`
	AdminopsMinAdmins          int      `split_words:"true" default:"2" desc:"active administrators (owners included) every active tenant needs (check tenants_below_two_admins)"`

	AlertmanagerURL string   `split_words:"true" desc:"Alertmanager base URL for maintenance-window silences (migrate swap); empty: none"`
	RollbackPeriod  Duration `split_words:"true" default:"7d" desc:"how long migrate keeps the old table after a swap"`

	LogLevel  string `split_words:"true" default:"info" desc:"debug, info, warn or error"`
	LogFormat string `split_words:"true" default:"text" desc:"text or json"`

	Thresholds

	RunbookURL              string   `split_words:"true" default:"https://github.com/sigid/pgcapacity/blob/main/docs/runbooks.md" desc:"runbook document the alerts link to; each alert appends #its-name in lower case"`
	RulesJob                string   `split_words:"true" default:"pgcapacity" desc:"the Prometheus job that scrapes pgcapacity, watched by the exporter-down alert"`
	RulesEvaluationInterval Duration `split_words:"true" default:"1m" desc:"evaluation interval of the generated rule groups"`
}

// Error is a configuration problem: the variable and what is wrong with it.
type Error struct {
	Variable string
	Problem  string
}

func (e *Error) Error() string { return e.Variable + ": " + e.Problem }

// secretVariables are never echoed back in an error.
var secretVariables = map[string]bool{Prefix + "_DATABASE_URL": true}

// Load reads the configuration from the environment and validates it.
// Every error is an *Error naming the variable.
func Load() (Config, error) {
	var c Config
	if err := envconfig.Process(Prefix, &c); err != nil {
		var pe *envconfig.ParseError
		if errors.As(err, &pe) {
			return c, describeParseError(pe)
		}
		return c, &Error{Variable: Prefix, Problem: err.Error()}
	}
	return c, c.Validate()
}

func describeParseError(pe *envconfig.ParseError) error {
	variable := pe.KeyName
	value := fmt.Sprintf("%q", pe.Value)
	if secretVariables[variable] {
		value = "the value"
	}
	switch pe.TypeName {
	case "float64":
		return &Error{variable, value + " is not a number"}
	case "int":
		return &Error{variable, value + " is not a whole number"}
	case "bool":
		return &Error{variable, value + " is not a boolean: use true or false"}
	case "Duration", "config.Duration", "DetailMode", "config.DetailMode":
		return &Error{variable, unwrapAll(pe.Err)}
	}
	return &Error{variable, value + ": " + unwrapAll(pe.Err)}
}

func unwrapAll(err error) string {
	for errors.Unwrap(err) != nil {
		err = errors.Unwrap(err)
	}
	return err.Error()
}

// Validate checks ranges and forms that the types alone do not.
func (c Config) Validate() error {
	positive := []struct {
		name  string
		value Duration
	}{
		{"STATS_INTERVAL", c.StatsInterval},
		{"SIZES_INTERVAL", c.SizesInterval},
		{"PROBE_INTERVAL", c.ProbeInterval},
		{"STATEMENTS_INTERVAL", c.StatementsInterval},
		{"ADMINOPS_INTERVAL", c.AdminopsInterval},
		{"MIGRATIONS_INTERVAL", c.MigrationsInterval},
		{"QUERY_TIMEOUT", c.QueryTimeout},
		{"LOCK_TIMEOUT", c.LockTimeout},
		{"RULE_WINDOW", c.RuleWindow},
		{"WRITE_RETENTION_TARGET", c.WriteRetentionTarget},
		{"PARENT_ANALYZE_MAX_AGE", c.ParentAnalyzeMaxAge},
		{"ADMINOPS_STALE_INVITATION_AGE", c.AdminopsStaleInvitationAge},
		{"ADMINOPS_REVIEW_INTERVAL", c.AdminopsReviewInterval},
		{"ADMINOPS_REVIEW_WINDOW", c.AdminopsReviewWindow},
		{"ADMINOPS_FINDING_FOR", c.AdminopsFindingFor},
		{"RULES_EVALUATION_INTERVAL", c.RulesEvaluationInterval},
	}
	for _, p := range positive {
		if p.value <= 0 {
			return &Error{Prefix + "_" + p.name, "must be greater than zero, with a unit such as 15s, 5m or 7d"}
		}
	}
	limits := []struct {
		name  string
		value Duration
		max   time.Duration
	}{
		{"QUERY_TIMEOUT", c.QueryTimeout, dbpool.MaxStatementTimeout},
		{"LOCK_TIMEOUT", c.LockTimeout, dbpool.MaxLockTimeout},
	}
	for _, l := range limits {
		if l.value.D() > l.max {
			return &Error{Prefix + "_" + l.name, fmt.Sprintf("%v is more than PostgreSQL accepts: use at most %v", l.value, l.max.Truncate(time.Second))}
		}
	}
	ratios := []struct {
		name     string
		value    float64
		min, max float64
	}{
		{"LIVE_ROWS_PER_PARTITION", c.LiveRowsPerPartition, 1, 1e15},
		{"SKEW_RATIO", c.SkewRatio, 1, 1e6},
		{"TENANT_INDEX_BUFFER_RATIO", c.TenantIndexBufferRatio, 0.01, 1000},
		{"LATENCY_REGRESSION", c.LatencyRegression, 0.01, 100},
		{"PLANNING_SHARE", c.PlanningShare, 0.001, 1},
		{"XID_AGE_CRITICAL", c.XIDAgeCritical, 1e6, 2.1e9},
		{"DECREASE_INDEX_SHARE", c.DecreaseIndexShare, 0.01, 1},
	}
	for _, r := range ratios {
		if !(r.value >= r.min && r.value <= r.max) { // also rejects NaN
			return &Error{Prefix + "_" + r.name, fmt.Sprintf("%v is out of range: use a value from %v to %v", r.value, r.min, r.max)}
		}
	}
	if c.AdminopsTenantCap < 0 || c.AdminopsTenantCap > 100000 {
		return &Error{Prefix + "_ADMINOPS_TENANT_CAP", fmt.Sprintf("%d is out of range: use 0 to 100000", c.AdminopsTenantCap)}
	}
	if c.PartitionTopK < 1 || c.PartitionTopK > 1000 {
		return &Error{Prefix + "_PARTITION_TOP_K", fmt.Sprintf("%d is out of range: use 1 to 1000", c.PartitionTopK)}
	}
	if c.AdminopsMinAdmins < 1 || c.AdminopsMinAdmins > 1000 {
		return &Error{Prefix + "_ADMINOPS_MIN_ADMINS", fmt.Sprintf("%d is out of range: use 1 to 1000", c.AdminopsMinAdmins)}
	}
	if w := c.AdminopsReviewWindow.D(); w%(24*time.Hour) != 0 || w > 31*24*time.Hour {
		return &Error{Prefix + "_ADMINOPS_REVIEW_WINDOW", fmt.Sprintf("%v is not a whole number of days from 1d to 31d: use a value such as 7d", c.AdminopsReviewWindow)}
	}
	for _, m := range []struct {
		name  string
		value int
	}{{"ADMINOPS_INVITATION_REVIEW_MONTHS", c.AdminopsInvitationReviewMonths}, {"ADMINOPS_ACCESS_REVIEW_MONTHS", c.AdminopsAccessReviewMonths}} {
		if m.value < 1 || m.value > 12 || 12%m.value != 0 {
			return &Error{Prefix + "_" + m.name, fmt.Sprintf("%d does not divide the year: use 1, 2, 3, 4, 6 or 12", m.value)}
		}
	}
	if u, err := url.Parse(c.RunbookURL); err != nil || c.RunbookURL == "" || u.Fragment != "" || strings.Contains(c.RunbookURL, "#") {
		return &Error{Prefix + "_RUNBOOK_URL", fmt.Sprintf("%q is not a URL without a #fragment: give the runbook document, such as https://github.com/sigid/pgcapacity/blob/main/docs/runbooks.md", c.RunbookURL)}
	}
	if strings.TrimSpace(c.RulesJob) == "" {
		return &Error{Prefix + "_RULES_JOB", "is empty: name the Prometheus job that scrapes pgcapacity, such as pgcapacity"}
	}
	if c.ListenAddress == "" {
		return &Error{Prefix + "_LISTEN_ADDRESS", "is empty: give host:port or :port, such as :9842"}
	}
	if c.HealthListenAddress != "" {
		if _, port, err := net.SplitHostPort(c.HealthListenAddress); err != nil || port == "" {
			return &Error{Prefix + "_HEALTH_LISTEN_ADDRESS", fmt.Sprintf("%q is not host:port: give one such as :9843, or leave it empty for none", c.HealthListenAddress)}
		}
		if c.HealthListenAddress == c.ListenAddress {
			return &Error{Prefix + "_HEALTH_LISTEN_ADDRESS", fmt.Sprintf("%q is PGCAPACITY_LISTEN_ADDRESS too: give another port, such as :9843", c.HealthListenAddress)}
		}
	}
	for _, list := range []struct {
		name     string
		patterns []string
	}{{"TABLES", c.Tables}, {"HOT_TABLES", c.HotTables}} {
		for _, p := range list.patterns {
			if err := validPattern(p); err != nil {
				return &Error{Prefix + "_" + list.name, err.Error()}
			}
		}
	}
	if err := validCollectors(c.Collectors); err != nil {
		return &Error{Prefix + "_COLLECTORS", err.Error()}
	}
	if strings.TrimSpace(c.TenantColumn) == "" {
		return &Error{Prefix + "_TENANT_COLUMN", "is empty: name the tenant key column, such as tenant_id"}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return &Error{Prefix + "_LOG_LEVEL", fmt.Sprintf("%q is not a level: use debug, info, warn or error", c.LogLevel)}
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return &Error{Prefix + "_LOG_FORMAT", fmt.Sprintf("%q is not a format: use text or json", c.LogFormat)}
	}
	if c.DatabaseURL != "" {
		if _, err := pgxpool.ParseConfig(c.DatabaseURL); err != nil {
			return &Error{Prefix + "_DATABASE_URL", "cannot be used: " + dbpool.DescribeParseError(err)}
		}
	}
	return nil
}

// RequireDatabase reports a missing connection string.
func (c Config) RequireDatabase() error {
	if c.DatabaseURL == "" {
		return &Error{Prefix + "_DATABASE_URL", "is not set: give a connection string such as postgres://pgcapacity@db:5432/sigid"}
	}
	return nil
}

func validPattern(p string) error {
	p = strings.TrimSpace(p)
	if p == "" {
		return errors.New("has an empty entry: remove the extra comma")
	}
	if strings.Count(p, ".") > 1 {
		return fmt.Errorf("%q has more than one dot: use table or schema.table", p)
	}
	if _, err := path.Match(p, ""); err != nil {
		return fmt.Errorf("%q is not a valid glob: %v", p, err)
	}
	return nil
}

// Pattern matches a schema-qualified table name against a configured
// pattern: "table" matches in any schema, "schema.table" only there.
func Pattern(pattern, schema, table string) bool {
	pattern = strings.TrimSpace(pattern)
	if s, t, ok := strings.Cut(pattern, "."); ok {
		ms, _ := path.Match(s, schema)
		mt, _ := path.Match(t, table)
		return ms && mt
	}
	m, _ := path.Match(pattern, table)
	return m
}

// MatchAny reports whether any pattern matches.
func MatchAny(patterns []string, schema, table string) bool {
	for _, p := range patterns {
		if Pattern(p, schema, table) {
			return true
		}
	}
	return false
}

const usageFormat = `pgcapacity is configured through the environment:

VARIABLE	DEFAULT	MEANING
{{range .}}{{usage_key .}}	{{usage_default .}}	{{usage_description .}}
{{end}}`

// Usage writes every variable with its default and meaning.
func Usage(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 1, 0, 2, ' ', 0)
	var c Config
	if err := envconfig.Usagef(Prefix, &c, tw, usageFormat); err != nil {
		return err
	}
	return tw.Flush()
}

// CollectorNames are the collectors serve can run, in the order it starts them.
func CollectorNames() []string {
	return []string{"stats", "sizes", "migrations", "probes", "statements", "adminops"}
}

// CollectorEnabled tells whether PGCAPACITY_COLLECTORS names the collector.
func (c Config) CollectorEnabled(name string) bool { return slices.Contains(c.Collectors, name) }

func validCollectors(names []string) error {
	if len(names) == 0 {
		return fmt.Errorf("names no collector: give some of %s", strings.Join(CollectorNames(), ","))
	}
	for _, n := range names {
		if !slices.Contains(CollectorNames(), n) {
			return fmt.Errorf("%q is not a collector: use %s", n, strings.Join(CollectorNames(), ", "))
		}
	}
	return nil
}
