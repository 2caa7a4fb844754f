package adminops

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sigid/pgcapacity/internal/config"
)

// Name is the collector's name in pgcapacity_collector_* series.
const Name = "adminops"

var (
	findingsDesc = prometheus.NewDesc("pgcapacity_adminops_findings",
		"Offending items an admin-operations check found, all tenants (exact).", []string{"check"}, nil)
	tenantsAffectedDesc = prometheus.NewDesc("pgcapacity_adminops_tenants_affected",
		"Tenants with at least one finding of an admin-operations check (exact).", []string{"check"}, nil)
	tenantFindingsDesc = prometheus.NewDesc("pgcapacity_adminops_tenant_findings",
		"Findings of one tenant, only for the worst tenants of each check (PGCAPACITY_ADMINOPS_TENANT_CAP).", []string{"check", "tenant"}, nil)
	tenantFindingsOmittedDesc = prometheus.NewDesc("pgcapacity_adminops_tenant_findings_omitted",
		"Tenants with findings left out of pgcapacity_adminops_tenant_findings by the per-check cap.", []string{"check"}, nil)
	checkSuccessDesc = prometheus.NewDesc("pgcapacity_adminops_check_success",
		"1 when the admin-operations check ran in the last round, 0 when it failed.", []string{"check"}, nil)
	checkDurationDesc = prometheus.NewDesc("pgcapacity_adminops_check_duration_seconds",
		"How long the admin-operations check took in the last round.", []string{"check"}, nil)
	checkLastSuccessDesc = prometheus.NewDesc("pgcapacity_adminops_check_last_success_timestamp_seconds",
		"When the admin-operations check last succeeded; absent before the first success.", []string{"check"}, nil)
	checkApplicableDesc = prometheus.NewDesc("pgcapacity_adminops_check_applicable",
		"1 when the database has what the admin-operations check reads, 0 when it does not (not a failure: configure PGCAPACITY_ADMINOPS_QUERIES_FILE).", []string{"check"}, nil)
	checkInfoDesc = prometheus.NewDesc("pgcapacity_adminops_check_info",
		"Which query each admin-operations check runs: default, override or disabled (value 1).", []string{"check", "query"}, nil)
)

// Collector runs the admin-operations checks on their own interval. It
// implements collector.Collector.
type Collector struct {
	checks   []Check
	opts     Options
	interval time.Duration
	logger   *slog.Logger

	mu            sync.Mutex
	lastGood      map[string]CheckResult // per check, its latest successful result
	notApplicable map[string]string      // per check, what this database lacks (from Validate)
}

// New loads the checks (defaults, then PGCAPACITY_ADMINOPS_QUERIES_FILE) and
// the options from cfg. A bad file is refused here; Validate checks the
// queries against the database.
func New(cfg config.Config, logger *slog.Logger) (*Collector, error) {
	checks, err := LoadChecks(cfg.AdminopsQueriesFile)
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Collector{
		checks:   checks,
		logger:   logger,
		lastGood: map[string]CheckResult{},
		interval: cfg.AdminopsInterval.D(),
		opts: Options{
			StaleInvitationAge: cfg.AdminopsStaleInvitationAge.D(),
			ReviewInterval:     cfg.AdminopsReviewInterval.D(),
			MinAdmins:          cfg.AdminopsMinAdmins,
			TenantCap:          cfg.AdminopsTenantCap,
			QueryTimeout:       cfg.QueryTimeout.D(),
			LockTimeout:        cfg.LockTimeout.D(),
		},
	}, nil
}

// Name implements collector.Collector.
func (c *Collector) Name() string { return Name }

// Interval implements collector.Collector.
func (c *Collector) Interval() time.Duration { return c.interval }

// Checks returns the loaded checks in report order.
func (c *Collector) Checks() []Check { return append([]Check(nil), c.checks...) }

// SetClock makes rounds use now as their reference time (tests pin it).
func (c *Collector) SetClock(now func() time.Time) { c.opts.Now = now }

// Validate prepares every query on a pooled connection and checks its
// parameters and result columns. Call it at start: it returns the problems
// of the operator's override queries (each a *QueryError, joined), and a
// caller refuses to run on them. A default query that does not fit this
// database (a schema other than the reference one) is logged, not
// returned: its check reports the failure every round until it is
// overridden or disabled. Any other error means the database could not
// be asked; the rounds report that too.
func (c *Collector) Validate(ctx context.Context, pool *pgxpool.Pool) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("connecting to validate the admin-ops queries: %w", err)
	}
	defer conn.Release()
	err = Validate(ctx, conn.Conn(), c.checks)
	if err == nil {
		return nil
	}
	var qe *QueryError
	if !errors.As(err, &qe) {
		return err
	}
	var refused []error
	var missing []string
	for _, e := range unjoin(err) {
		if errors.As(e, &qe) && qe.Source == SourceDefault {
			if reason := missingObject(qe); reason != "" {
				c.markNotApplicable(qe.Check, reason)
				missing = append(missing, qe.Check+": "+reason)
				continue
			}
			c.logger.Warn("admin-ops default query does not fit this database", "check", qe.Check, "err", e)
			continue
		}
		refused = append(refused, e)
	}
	if len(missing) > 0 {
		c.logger.Warn("admin-ops checks not applicable: this database lacks what their default queries read; override or disable them in PGCAPACITY_ADMINOPS_QUERIES_FILE, or leave adminops out of PGCAPACITY_COLLECTORS",
			"missing", strings.Join(missing, "; "))
	}
	return errors.Join(refused...)
}

// unjoin lists the errors errors.Join combined.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// missingObject is what a default query found absent (an undefined table,
// column or schema), or "" when it failed for another reason.
func missingObject(qe *QueryError) string {
	var pe *pgconn.PgError
	if !errors.As(qe.Err, &pe) {
		return ""
	}
	switch pe.Code {
	case "42P01", "42703", "3F000", "42883": // undefined table, column, schema, function
		return pe.Message
	}
	return ""
}

func (c *Collector) markNotApplicable(check, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.notApplicable == nil {
		c.notApplicable = map[string]string{}
	}
	c.notApplicable[check] = reason
}

// Run runs one round and returns the typed result (for `check`); checks
// Validate found not applicable are skipped.
func (c *Collector) Run(ctx context.Context, pool *pgxpool.Pool) (Result, error) {
	c.mu.Lock()
	checks := append([]Check(nil), c.checks...)
	for i := range checks {
		checks[i].NotApplicable = c.notApplicable[checks[i].Name]
	}
	c.mu.Unlock()
	return Run(ctx, pool, checks, c.opts)
}

// Collect implements collector.Collector. A failed check reports
// pgcapacity_adminops_check_success 0 and keeps publishing its last good
// findings for a few intervals, so its alerts do not flap; the others are
// fresh. Only when every check fails is the round an error (the sampler
// then keeps the previous round).
func (c *Collector) Collect(ctx context.Context, pool *pgxpool.Pool) ([]prometheus.Metric, error) {
	res, err := c.Run(ctx, pool)
	if err == nil {
		c.remember(res)
		return Metrics(res), nil
	}
	ran, failed := 0, 0
	for i, cr := range res.Checks {
		if cr.Disabled || cr.NotApplicable != "" {
			continue
		}
		ran++
		if cr.Error == "" {
			continue
		}
		failed++
		c.logger.Warn("admin-ops check failed", "check", cr.Check, "err", cr.Error)
		res.Checks[i] = c.carry(cr, res.Time)
	}
	if failed == ran {
		return nil, err
	}
	c.remember(res)
	return Metrics(res), nil
}

// remember keeps each successful check's result.
func (c *Collector) remember(res Result) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cr := range res.Checks {
		if !cr.Disabled && cr.Error == "" {
			c.lastGood[cr.Check] = cr
		}
	}
}

// carry fills a failed check's findings from its last good round while that
// is younger than three intervals plus the timeout, as the sampler does.
func (c *Collector) carry(failed CheckResult, now time.Time) CheckResult {
	c.mu.Lock()
	defer c.mu.Unlock()
	good, ok := c.lastGood[failed.Check]
	if !ok || now.Sub(good.LastSuccess) > 3*c.interval+c.opts.QueryTimeout {
		failed.LastSuccess = good.LastSuccess
		return failed
	}
	good.Error, good.Duration, good.DurationSeconds, good.Carried = failed.Error, failed.Duration, failed.DurationSeconds, true
	return good
}

// Metrics turns a round's result into metrics.
func Metrics(res Result) []prometheus.Metric {
	var ms []prometheus.Metric
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ms = append(ms, prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...))
	}
	for _, cr := range res.Checks {
		query := "default"
		switch {
		case cr.Disabled:
			query = "disabled"
		case cr.Source != SourceDefault:
			query = "override"
		}
		gauge(checkInfoDesc, 1, cr.Check, query)
		if cr.Disabled {
			continue
		}
		if cr.NotApplicable != "" {
			gauge(checkApplicableDesc, 0, cr.Check)
			continue
		}
		gauge(checkApplicableDesc, 1, cr.Check)
		gauge(checkDurationDesc, cr.Duration.Seconds(), cr.Check)
		if !cr.LastSuccess.IsZero() {
			gauge(checkLastSuccessDesc, float64(cr.LastSuccess.UnixNano())/1e9, cr.Check)
		}
		if cr.Error != "" {
			gauge(checkSuccessDesc, 0, cr.Check)
			if !cr.Carried {
				continue
			}
		} else {
			gauge(checkSuccessDesc, 1, cr.Check)
		}
		gauge(findingsDesc, float64(cr.Findings), cr.Check)
		gauge(tenantsAffectedDesc, float64(cr.TenantsAffected), cr.Check)
		gauge(tenantFindingsOmittedDesc, float64(cr.Omitted), cr.Check)
		for _, t := range cr.Tenants {
			gauge(tenantFindingsDesc, float64(t.Findings), cr.Check, t.Tenant)
		}
	}
	return ms
}
