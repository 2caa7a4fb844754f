package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/version"
)

// SamplerOptions tune a Sampler.
type SamplerOptions struct {
	// RoundTimeout bounds one round of one collector.
	RoundTimeout time.Duration
	// MinBackoff is the first retry delay after a failed round; retries
	// double up to the collector's interval.
	MinBackoff time.Duration
	Logger     *slog.Logger
}

// Sampler runs every collector on its own schedule and keeps the latest
// rendered snapshot for /metrics. Scrapes never reach the database.
type Sampler struct {
	pool       *pgxpool.Pool
	collectors []Collector
	opts       SamplerOptions
	logger     *slog.Logger

	up          prometheus.Gauge
	success     *prometheus.GaugeVec
	duration    *prometheus.GaugeVec
	lastSuccess *prometheus.GaugeVec
	buildInfo   prometheus.Collector
	runtime     []prometheus.Collector

	mu          sync.Mutex // guards results and the render
	results     map[string]result
	firstRounds int

	zips      zipPool
	snapshot  atomic.Pointer[Snapshot]
	ready     atomic.Bool
	reconnect *reconnectGate
}

type result struct {
	rendered *rendered // nil before the first good round
	at       time.Time // when the rendered metrics were sampled
	maxAge   time.Duration
	lastErr  string
}

// NewSampler builds a sampler over pool. Collector names must be unique.
func NewSampler(pool *pgxpool.Pool, cs []Collector, opts SamplerOptions) (*Sampler, error) {
	if opts.RoundTimeout <= 0 {
		opts.RoundTimeout = 30 * time.Second
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	names := map[string]bool{}
	for _, c := range cs {
		if names[c.Name()] {
			return nil, fmt.Errorf("two collectors are named %q", c.Name())
		}
		names[c.Name()] = true
	}
	s := &Sampler{
		pool:       pool,
		collectors: cs,
		opts:       opts,
		logger:     opts.Logger,
		up: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "up",
			Help: "1 when the database answered the latest sampling round, 0 when it could not be reached."}),
		success: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "collector_success",
			Help: "1 when the collector's latest round succeeded."}, []string{"collector"}),
		duration: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "collector_duration_seconds",
			Help: "Duration of the collector's latest round."}, []string{"collector"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "collector_last_success_timestamp_seconds",
			Help: "When the collector's latest successful round ended; 0 before the first."}, []string{"collector"}),
		buildInfo: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: "build_info",
			Help:        "pgcapacity's version; value 1.",
			ConstLabels: prometheus.Labels{"version": version.Version, "revision": version.Revision, "goversion": runtime.Version()},
		}, func() float64 { return 1 }),
		runtime: []prometheus.Collector{collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})},
		results: map[string]result{},
	}
	// The shared backoff stops doubling at the shortest interval, so a
	// recovered database is seen within the fastest collector's interval.
	var shortest time.Duration
	for i, c := range cs {
		if i == 0 || c.Interval() < shortest {
			shortest = c.Interval()
		}
	}
	s.reconnect = newReconnectGate(pool, opts.MinBackoff, shortest)
	for _, c := range cs {
		s.success.WithLabelValues(c.Name()).Set(0)
		s.duration.WithLabelValues(c.Name()).Set(0)
		s.lastSuccess.WithLabelValues(c.Name()).Set(0)
	}
	s.render()
	return s, nil
}

// Run samples until ctx ends, each collector on its own goroutine.
func (s *Sampler) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, c := range s.collectors {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.loop(ctx, c)
		}()
	}
	wg.Wait()
}

func (s *Sampler) loop(ctx context.Context, c Collector) {
	backoff := s.opts.MinBackoff
	for {
		delay := c.Interval()
		if err := s.round(ctx, c); err != nil {
			delay = min(backoff, c.Interval())
			backoff = min(2*backoff, c.Interval())
		} else {
			backoff = s.opts.MinBackoff
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
	}
}

// RunOnce runs one round of every collector, one after another, and
// returns the errors joined.
func (s *Sampler) RunOnce(ctx context.Context) error {
	var errs []error
	for _, c := range s.collectors {
		if err := s.round(ctx, c); err != nil {
			errs = append(errs, fmt.Errorf("collector %s: %w", c.Name(), err))
		}
	}
	return errors.Join(errs...)
}

func (s *Sampler) round(ctx context.Context, c Collector) (err error) {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	start := time.Now()
	rctx, cancel := context.WithTimeout(ctx, s.opts.RoundTimeout)
	defer cancel()
	var metrics []prometheus.Metric
	err = s.reconnect.check(rctx)
	if err == nil {
		func() {
			defer func() {
				if r := recover(); r != nil {
					err = fmt.Errorf("collector panicked: %v", r)
				}
			}()
			metrics, err = c.Collect(rctx, s.pool)
		}()
	}
	elapsed := time.Since(start)
	if ctx.Err() != nil && err != nil {
		return err // shutting down: not a failure of the database
	}
	if err != nil && unreachable(err) {
		s.reconnect.down(err)
	}
	s.record(c, metrics, start, elapsed, err)
	return err
}

func (s *Sampler) record(c Collector, metrics []prometheus.Metric, start time.Time, elapsed time.Duration, err error) {
	name := c.Name()
	// Render outside the lock: the round's metrics become compressed bytes
	// and are dropped, so memory holds only the rendered form.
	var r *rendered
	if err == nil {
		out, renderErr := renderMetrics(&s.zips, metrics)
		if renderErr != nil {
			err = fmt.Errorf("rendering the round's metrics: %w", renderErr)
		} else {
			r = &out
		}
	}
	s.mu.Lock()
	prev, seen := s.results[name]
	if !seen {
		s.firstRounds++
		if s.firstRounds == len(s.collectors) {
			defer s.ready.Store(true)
		}
	}
	s.duration.WithLabelValues(name).Set(elapsed.Seconds())
	if err != nil {
		s.success.WithLabelValues(name).Set(0)
		if unreachable(err) {
			s.up.Set(0)
		} else {
			s.up.Set(1)
		}
		if msg := err.Error(); msg != prev.lastErr {
			s.logger.Warn("collector round failed", "collector", name, "err", err, "took", elapsed.Round(time.Millisecond))
			prev.lastErr = msg
		}
		// The last good metrics stay until they are stale.
		prev.maxAge = staleAfter(c.Interval(), s.opts.RoundTimeout)
		s.results[name] = prev
	} else {
		if prev.lastErr != "" {
			s.logger.Info("collector recovered", "collector", name)
		}
		s.success.WithLabelValues(name).Set(1)
		s.lastSuccess.WithLabelValues(name).Set(float64(time.Now().UnixNano()) / 1e9)
		s.up.Set(1)
		s.results[name] = result{rendered: r, at: start, maxAge: staleAfter(c.Interval(), s.opts.RoundTimeout)}
		s.logger.Debug("collector round", "collector", name, "metrics", len(metrics), "took", elapsed.Round(time.Millisecond))
	}
	s.renderLocked()
	s.mu.Unlock()
}

// staleAfter is how long a collector's last good round is served after
// its rounds start failing: a few missed rounds, then the series vanish.
func staleAfter(interval, timeout time.Duration) time.Duration {
	return 3*interval + timeout
}

// unreachable tells a database that could not be reached (or is shutting
// down) from one that answered with an error.
func unreachable(err error) bool {
	// Anything that failed while connecting, whatever the server said
	// (28P01 wrong password, 28000 unknown role, 3D000 unknown database,
	// 53300 too many connections), means no usable connection.
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code[:2] {
		case "08", "57": // connection exception, operator intervention (shutdown)
			return pgErr.Code != "57014" // query_canceled: the server answered
		case "28", "3D": // authorization, unknown database: reported outside a ConnectError too
			return true
		}
		return false
	}
	var netErr net.Error
	return errors.As(err, &netErr) || errors.Is(err, context.DeadlineExceeded) || pgconn.SafeToRetry(err) || isClosed(err)
}

func isClosed(err error) bool {
	msg := err.Error()
	for _, s := range []string{"conn closed", "unexpected EOF", "connection reset", "broken pipe", "failed to connect"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// Ready reports whether every collector has finished its first round.
func (s *Sampler) Ready() bool { return s.ready.Load() }

// Snapshot returns the latest rendered snapshot.
func (s *Sampler) Snapshot() *Snapshot { return s.snapshot.Load() }

func (s *Sampler) render() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.renderLocked()
}

// renderLocked builds a new immutable snapshot from every collector's
// latest good round plus the exporter's own health metrics.
func (s *Sampler) renderLocked() {
	reg := prometheus.NewRegistry()
	for _, c := range []prometheus.Collector{s.up, s.success, s.duration, s.lastSuccess, s.buildInfo} {
		reg.MustRegister(c)
	}
	for _, c := range s.runtime {
		reg.MustRegister(c)
	}
	own, err := renderGatherer(&s.zips, reg)
	if err != nil {
		s.logger.Error("rendering the exporter's own metrics", "err", err)
		return
	}
	parts := []rendered{own}
	seen := map[string]string{}
	for _, f := range own.families {
		seen[f] = "exporter"
	}
	names := make([]string, 0, len(s.results))
	for name := range s.results {
		names = append(names, name)
	}
	sort.Strings(names)
	now := time.Now()
	for _, name := range names {
		r := s.results[name]
		if r.rendered == nil || now.Sub(r.at) > r.maxAge {
			continue
		}
		if dup := duplicateFamily(seen, r.rendered.families, name); dup != "" {
			s.logger.Error("two collectors emit one metric family; leaving one out", "family", dup, "collector", name)
			continue
		}
		parts = append(parts, *r.rendered)
	}
	series, err := seriesPart(&s.zips, parts)
	if err != nil {
		s.logger.Error("rendering the series count", "err", err)
		return
	}
	snap, err := assemble(&s.zips, append(parts, series))
	if err != nil {
		s.logger.Error("rendering the metrics snapshot", "err", err)
		return
	}
	s.snapshot.Store(snap)
}

// duplicateFamily records owner's families in seen and returns one that
// another source already owns, which would make the exposition invalid.
func duplicateFamily(seen map[string]string, families []string, owner string) string {
	for _, f := range families {
		if other, ok := seen[f]; ok && other != owner {
			return f
		}
	}
	for _, f := range families {
		seen[f] = owner
	}
	return ""
}

// metricSlice is an unchecked collector over one round's metrics.
type metricSlice []prometheus.Metric

func (metricSlice) Describe(chan<- *prometheus.Desc) {}

func (m metricSlice) Collect(ch chan<- prometheus.Metric) {
	for _, metric := range m {
		ch <- metric
	}
}
