package probes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/sigid/pgcapacity/collector"
	"github.com/sigid/pgcapacity/internal/config"
	"github.com/sigid/pgcapacity/internal/playbook"
)

// Name is the collector's name.
const Name = "probes"

// Buckets are the classic buckets of pgcapacity_probe_duration_seconds,
// from 50 µs to 5 s.
var Buckets = []float64{50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1, 2.5, 5}

// Phases of pgcapacity_probe_duration_seconds.
const (
	PhasePlanning  = "planning"
	PhaseExecution = "execution"
	PhaseTotal     = "total"
)

// Defaults of Options.
const (
	DefaultTenantRefresh       = 6 * time.Hour
	DefaultTenantsPerPartition = 8
	// DefaultTenantsPerTable: a probe visits one partition a round, so at
	// 4,096 partitions 8 tenants each would be 32,768 ids held for visits a
	// refresh never reaches (about 2 MiB a table of uuid text).
	DefaultTenantsPerTable = 4096
	DefaultRetention       = time.Hour
	// maxSamples bounds the raw timings kept per table for Summary.
	maxSamples = 10000
	// maxLoggedErrors bounds the distinct errors remembered per probe.
	maxLoggedErrors = 64
	// retryRefresh is how soon tenants are sampled again while some probe
	// table is missing or has no known tenants.
	retryRefresh = time.Minute
)

// Options configure a Collector.
type Options struct {
	// Probes are the configured probes (the probes file's).
	Probes []Probe
	// Derive gives every hot table that Selection watches, and that has no
	// probe in Probes, a probe derived from its definition.
	Derive    bool
	Selection collector.Selection
	// Disabled are derived probes not to run, by name.
	Disabled []Disabled
	// File is the probes file Probes come from, for messages.
	File         string
	Interval     time.Duration // between rounds; each probe runs once a round
	QueryTimeout time.Duration // statement_timeout of each probe
	LockTimeout  time.Duration
	// TenantRefresh is how often the tenant sample is read again.
	TenantRefresh time.Duration
	// TenantsPerPartition is the most tenant ids kept per partition.
	TenantsPerPartition int
	// TenantsPerTable bounds the tenant ids kept per table, but not below
	// one per partition.
	TenantsPerTable int
	// TenantColumn is the tenant key of a table whose partition key does not name it.
	TenantColumn string
	// Retention is how long raw timings are kept for Summary.
	Retention time.Duration
	Logger    *slog.Logger
	// Rand picks partitions' starting points and tenants; nil: randomly seeded.
	Rand *rand.Rand
}

// Collector runs the probes, one round per Collect, and keeps their
// histograms across rounds.
type Collector struct {
	opts   Options
	logger *slog.Logger
	rand   *rand.Rand

	durations *prometheus.HistogramVec
	errors    *prometheus.CounterVec
	tenantsG  *prometheus.GaugeVec

	mu        sync.Mutex // one round at a time; guards everything below
	active    []Probe    // the probes a round runs: configured, then derived
	skipped   []Skipped  // watched hot tables without a derived probe
	targets   map[tableName]*target
	refreshed time.Time
	cursor    map[string]int             // probe → next partition index
	logged    map[string]map[string]bool // probe → errors already logged
	samples   map[tableName][]sample     // resolved schema and table → recent timings
}

type tableName struct{ schema, table string }

type sample struct {
	at time.Time
	t  Timing
}

// Run is the outcome of one probe in one round.
type Run struct {
	Probe     string
	Schema    string
	Table     string
	Partition string // the partition the tenant was sampled from
	Tenant    string
	Timing    Timing
	Err       error // nil when timed
}

// New builds a collector; Options zero values take the defaults.
func New(opts Options) (*Collector, error) {
	for _, p := range opts.Probes {
		if err := p.Validate(); err != nil {
			return nil, fmt.Errorf("probe %q: %w", p.Name, err)
		}
	}
	if opts.Interval <= 0 {
		opts.Interval = 15 * time.Second
	}
	if opts.QueryTimeout <= 0 {
		opts.QueryTimeout = 10 * time.Second
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = time.Second
	}
	if opts.TenantRefresh <= 0 {
		opts.TenantRefresh = DefaultTenantRefresh
	}
	if opts.TenantsPerPartition <= 0 {
		opts.TenantsPerPartition = DefaultTenantsPerPartition
	}
	if opts.TenantsPerTable <= 0 {
		opts.TenantsPerTable = DefaultTenantsPerTable
	}
	if opts.TenantColumn == "" {
		opts.TenantColumn = "tenant_id"
	}
	if opts.Retention <= 0 {
		opts.Retention = DefaultRetention
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r := opts.Rand
	if r == nil {
		r = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	return &Collector{
		opts:   opts,
		logger: logger.With("collector", Name),
		rand:   r,
		durations: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "pgcapacity",
			Name:      "probe_duration_seconds",
			Help:      "Latency of tenant-scoped probe queries: planning and execution from EXPLAIN ANALYZE, total as seen by the client.",
			Buckets:   Buckets,
			// Native buckets at most 10% wide, reset hourly when they grow past 160.
			NativeHistogramBucketFactor:     1.1,
			NativeHistogramMaxBucketNumber:  160,
			NativeHistogramMinResetDuration: time.Hour,
		}, []string{"schema", "table", "phase"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "pgcapacity",
			Name:      "probe_errors_total",
			Help:      "Probe runs that failed (timeout, missing table, SQL error).",
		}, []string{"schema", "table"}),
		tenantsG: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "pgcapacity",
			Name:      "probe_tenants_sampled",
			Help:      "Tenant ids cached for probing the table; 0: its probes cannot run (the table is empty or not yet analyzed).",
		}, []string{"schema", "table"}),
		cursor:  map[string]int{},
		logged:  map[string]map[string]bool{},
		samples: map[tableName][]sample{},
	}, nil
}

// NewFromConfig builds the collector from the configuration: derived
// probes for the hot tables, changed by PGCAPACITY_PROBES_FILE, when set.
func NewFromConfig(cfg config.Config, logger *slog.Logger) (*Collector, error) {
	set, err := Load(cfg.ProbesFile)
	if err != nil {
		return nil, &config.Error{Variable: config.Prefix + "_PROBES_FILE", Problem: err.Error()}
	}
	if cfg.ProbeTenantsPerPartition < 1 || cfg.ProbeTenantsPerPartition > 1000 {
		return nil, &config.Error{Variable: config.Prefix + "_PROBE_TENANTS_PER_PARTITION",
			Problem: fmt.Sprintf("%d is out of range: use 1 to 1000", cfg.ProbeTenantsPerPartition)}
	}
	if cfg.ProbeTenantRefresh <= 0 {
		return nil, &config.Error{Variable: config.Prefix + "_PROBE_TENANT_REFRESH",
			Problem: "must be greater than zero, with a unit such as 10m"}
	}
	return New(Options{
		Probes:              set.Probes,
		Derive:              set.Derive,
		Disabled:            set.Disabled,
		File:                set.File,
		Selection:           collector.Selection{Tables: cfg.Tables, HotTables: cfg.HotTables, TenantColumn: cfg.TenantColumn},
		Interval:            cfg.ProbeInterval.D(),
		QueryTimeout:        cfg.QueryTimeout.D(),
		LockTimeout:         cfg.LockTimeout.D(),
		TenantRefresh:       cfg.ProbeTenantRefresh.D(),
		TenantsPerPartition: cfg.ProbeTenantsPerPartition,
		TenantColumn:        cfg.TenantColumn,
		Logger:              logger,
	})
}

// Name implements collector.Collector.
func (c *Collector) Name() string { return Name }

// Interval implements collector.Collector.
func (c *Collector) Interval() time.Duration { return c.opts.Interval }

// Collect runs one round and returns the histograms' state after it.
// It fails only when the database cannot be reached; a failing probe
// counts in pgcapacity_probe_errors_total and the others go on.
func (c *Collector) Collect(ctx context.Context, pool *pgxpool.Pool) ([]prometheus.Metric, error) {
	if _, err := c.Round(ctx, pool); err != nil {
		return nil, err
	}
	return c.metrics()
}

// Round runs every probe once and reports each outcome.
func (c *Collector) Round(ctx context.Context, pool *pgxpool.Pool) ([]Run, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.refresh(ctx, pool); err != nil {
		return nil, err
	}
	runs := make([]Run, 0, len(c.active))
	for _, p := range c.active {
		t := c.targets[tableName{p.Schema, p.Table}]
		if t == nil { // every probe table has a target after a refresh
			return runs, fmt.Errorf("probe %s: its table was not resolved", p.Name)
		}
		r := Run{Probe: p.Name, Schema: t.schema, Table: t.table}
		if t.missing {
			r.Err = fmt.Errorf("table %s does not exist", p.QualifiedName())
			c.failed(p, r)
			runs = append(runs, r)
			continue
		}
		part, tenant, ok := c.pick(p.Name, t)
		if !ok {
			continue // nothing to probe yet: probe_tenants_sampled says so
		}
		r.Partition, r.Tenant = part, tenant
		r.Timing, r.Err = run(ctx, pool, p.SQL, tenant, c.opts.QueryTimeout, c.opts.LockTimeout)
		if errors.Is(r.Err, errUnreachable) || ctx.Err() != nil {
			return runs, fmt.Errorf("probe %s: %w", p.Name, errors.Join(r.Err, ctx.Err()))
		}
		if r.Err != nil {
			c.failed(p, r)
		} else {
			c.observe(p, r)
		}
		runs = append(runs, r)
	}
	return runs, nil
}

// refresh samples tenants when the sample is old (or incomplete). A failed
// refresh keeps the previous sample; only a first one fails the round.
func (c *Collector) refresh(ctx context.Context, pool *pgxpool.Pool) error {
	if c.targets != nil {
		every := c.opts.TenantRefresh
		for _, t := range c.targets {
			if t.missing || len(t.partitions) == 0 {
				every = min(every, retryRefresh)
			}
		}
		if time.Since(c.refreshed) < every {
			return nil
		}
	}
	active, skipped, targets, err := c.resolve(ctx, pool)
	if err != nil {
		if c.targets == nil {
			return err
		}
		c.logger.Warn("refreshing the probes' tables and tenant sample failed; probing the previous sample", "err", err)
		c.refreshed = time.Now()
		return nil
	}
	c.active, c.skipped, c.targets, c.refreshed = active, skipped, targets, time.Now()
	for _, s := range skipped {
		if key := "skipped: " + s.Schema + "." + s.Table + ": " + s.Reason; !c.logged[""][key] {
			if c.logged[""] == nil {
				c.logged[""] = map[string]bool{}
			}
			c.logged[""][key] = true
			c.logger.Warn("hot table has no derived latency probe; give it one in PGCAPACITY_PROBES_FILE", "schema", s.Schema, "table", s.Table, "reason", s.Reason)
		}
	}
	for _, t := range targets {
		// Error series exist from the start, so rate() sees the first error.
		c.errors.WithLabelValues(t.schema, t.table)
		c.tenantsG.WithLabelValues(t.schema, t.table).Set(float64(t.tenantCount()))
		if key := "no tenants: " + t.schema + "." + t.table; !t.missing && len(t.partitions) == 0 && !c.logged[""][key] {
			if c.logged[""] == nil {
				c.logged[""] = map[string]bool{}
			}
			c.logged[""][key] = true
			c.logger.Info("no tenant ids known for a probe table yet: it is empty or has no statistics (run ANALYZE)", "schema", t.schema, "table", t.table)
		}
	}
	return nil
}

// pick walks a probe's partitions round-robin from a random start, so every
// partition is probed once in as many rounds as it has partitions, and
// picks one of that partition's sampled tenants at random.
func (c *Collector) pick(probe string, t *target) (partitionName, tenant string, ok bool) {
	if len(t.partitions) == 0 {
		return "", "", false
	}
	i, seen := c.cursor[probe]
	if !seen {
		i = c.rand.IntN(len(t.partitions))
	}
	i %= len(t.partitions)
	c.cursor[probe] = i + 1
	p := t.partitions[i]
	return p.name, p.tenants[c.rand.IntN(len(p.tenants))], true
}

func (c *Collector) observe(p Probe, r Run) {
	c.durations.WithLabelValues(r.Schema, r.Table, PhasePlanning).Observe(r.Timing.Planning.Seconds())
	c.durations.WithLabelValues(r.Schema, r.Table, PhaseExecution).Observe(r.Timing.Execution.Seconds())
	c.durations.WithLabelValues(r.Schema, r.Table, PhaseTotal).Observe(r.Timing.Total.Seconds())
	key := tableName{r.Schema, r.Table}
	now := time.Now()
	s := append(c.samples[key], sample{at: now, t: r.Timing})
	cut := 0
	for cut < len(s) && (now.Sub(s[cut].at) > c.opts.Retention || len(s)-cut > maxSamples) {
		cut++
	}
	c.samples[key] = s[cut:]
	if len(c.logged[p.Name]) > 0 {
		c.logger.Info("probe recovered", "probe", p.Name, "schema", r.Schema, "table", r.Table)
		delete(c.logged, p.Name)
	}
}

// failed counts the error and logs it the first time this probe has it.
func (c *Collector) failed(p Probe, r Run) {
	c.errors.WithLabelValues(r.Schema, r.Table).Inc()
	msg := r.Err.Error()
	seen := c.logged[p.Name]
	if seen == nil {
		seen = map[string]bool{}
		c.logged[p.Name] = seen
	}
	if seen[msg] || len(seen) >= maxLoggedErrors {
		return
	}
	seen[msg] = true
	c.logger.Warn("probe failed", "probe", p.Name, "schema", r.Schema, "table", r.Table, "err", r.Err)
}

// metrics freezes the current state of the collector's series: the
// sampler publishes them as an immutable snapshot while later rounds go on
// observing.
func (c *Collector) metrics() ([]prometheus.Metric, error) {
	var out []prometheus.Metric
	for _, vec := range []prometheus.Collector{c.durations, c.errors, c.tenantsG} {
		ch := make(chan prometheus.Metric)
		go func() {
			vec.Collect(ch)
			close(ch)
		}()
		for m := range ch {
			pb := &dto.Metric{}
			if err := m.Write(pb); err != nil {
				for range ch {
				}
				return nil, fmt.Errorf("reading %s: %w", m.Desc(), err)
			}
			out = append(out, frozen{desc: m.Desc(), pb: pb})
		}
	}
	return out, nil
}

// frozen is a metric's state at one moment.
type frozen struct {
	desc *prometheus.Desc
	pb   *dto.Metric
}

func (f frozen) Desc() *prometheus.Desc { return f.desc }

func (f frozen) Write(out *dto.Metric) error {
	proto.Reset(out)
	proto.Merge(out, f.pb)
	return nil
}

// Quantiles of one phase.
type Quantiles struct{ P50, P95, P99 time.Duration }

// MarshalJSON writes seconds, as the metrics do.
func (q Quantiles) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		P50 float64 `json:"p50_seconds"`
		P95 float64 `json:"p95_seconds"`
		P99 float64 `json:"p99_seconds"`
	}{q.P50.Seconds(), q.P95.Seconds(), q.P99.Seconds()})
}

// TableLatency is what check reports per probed table.
type TableLatency struct {
	Schema    string    `json:"schema"`
	Table     string    `json:"table"`
	Samples   int       `json:"samples"`
	Planning  Quantiles `json:"planning"`
	Execution Quantiles `json:"execution"`
	Total     Quantiles `json:"total"`
	// PlanningShare is planning p95 over total p95 (rule 6); 0 without samples.
	PlanningShare float64 `json:"planning_share_of_p95"`
}

// Summary gives the quantiles of every probed table's timings of the last
// window (at most the retention), from the raw timings, exactly.
func (c *Collector) Summary(window time.Duration) []TableLatency {
	c.mu.Lock()
	defer c.mu.Unlock()
	keys := map[tableName]bool{}
	for k := range c.samples {
		keys[k] = true
	}
	for _, t := range c.targets {
		keys[tableName{t.schema, t.table}] = true
	}
	since := time.Now().Add(-window)
	var out []TableLatency
	for k := range keys {
		var plan, exec, total []time.Duration
		for _, s := range c.samples[k] {
			if s.at.Before(since) {
				continue
			}
			plan = append(plan, s.t.Planning)
			exec = append(exec, s.t.Execution)
			total = append(total, s.t.Total)
		}
		tl := TableLatency{Schema: k.schema, Table: k.table, Samples: len(total),
			Planning: quantiles(plan), Execution: quantiles(exec), Total: quantiles(total)}
		tl.PlanningShare, _ = playbook.PlanningShare(tl.Planning.P95.Seconds(), tl.Total.P95.Seconds())
		out = append(out, tl)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Schema != out[j].Schema {
			return out[i].Schema < out[j].Schema
		}
		return out[i].Table < out[j].Table
	})
	return out
}

// quantiles by nearest rank.
func quantiles(d []time.Duration) Quantiles {
	if len(d) == 0 {
		return Quantiles{}
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	rank := func(q float64) time.Duration {
		i := int(math.Ceil(q*float64(len(d)))) - 1
		return d[min(max(i, 0), len(d)-1)]
	}
	return Quantiles{P50: rank(0.50), P95: rank(0.95), P99: rank(0.99)}
}
