package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/sigid/pgcapacity/collector"
	"github.com/sigid/pgcapacity/collector/adminops"
	"github.com/sigid/pgcapacity/collector/probes"
	"github.com/sigid/pgcapacity/internal/config"
	"github.com/sigid/pgcapacity/internal/dbpool"
)

// serveGCPercent is serve's GOGC unless the environment sets one. What
// serve keeps between rounds (the catalog cache, the rendered snapshot) is
// small and steady, and a round's garbage is what Go's default of 100 lets
// double the heap: at 4 × 4,096 partitions 50 keeps the RSS about 10 MiB
// lower for twice the collections, still under 1% of a core
// (bench/exporter, README "Benchmarks").
const serveGCPercent = 50

func runServe(ctx context.Context, env *environment, args []string) (int, error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	if err := parseFlags(fs, args); err != nil {
		return exitError, err
	}
	if err := env.cfg.RequireDatabase(); err != nil {
		return exitError, err
	}
	// A web configuration the toolkit would refuse (bad YAML, an unreadable
	// certificate, a password that is no bcrypt hash) exits 2 before serving.
	if err := web.Validate(env.cfg.WebConfigFile); err != nil {
		// YAML errors come on several lines; the error is one.
		lines := strings.Split(err.Error(), "\n")
		for i := range lines {
			lines[i] = strings.TrimSpace(lines[i])
		}
		return exitError, &config.Error{Variable: config.Prefix + "_WEB_CONFIG_FILE", Problem: fmt.Sprintf("%s: %s", env.cfg.WebConfigFile, strings.Join(lines, " "))}
	}
	ln, err := net.Listen("tcp", env.cfg.ListenAddress)
	if err != nil {
		return exitError, &config.Error{Variable: config.Prefix + "_LISTEN_ADDRESS", Problem: fmt.Sprintf("cannot listen on %s: %v", env.cfg.ListenAddress, err)}
	}
	var health net.Listener
	if addr := env.cfg.HealthListenAddress; addr != "" {
		if health, err = net.Listen("tcp", addr); err != nil {
			ln.Close()
			return exitError, &config.Error{Variable: config.Prefix + "_HEALTH_LISTEN_ADDRESS", Problem: fmt.Sprintf("cannot listen on %s: %v", addr, err)}
		}
	}
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(serveGCPercent)
	}
	return exitOK, serve(ctx, env, ln, health, nil)
}

// serve runs the exporter on ln until ctx ends, and the plain health
// listener on health when it is not nil. started, when not nil, is called
// with the sampler once the server is listening (demo uses it).
func serve(ctx context.Context, env *environment, ln, health net.Listener, started func(*collector.Sampler)) error {
	if health != nil {
		defer health.Close() // when serve returns before serving on it
	}
	cfg := env.cfg
	pool, err := openPool(ctx, cfg, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	cs, err := buildCollectors(env)
	if err != nil {
		return err
	}
	sampler, err := collector.NewSampler(pool, cs, collector.SamplerOptions{
		// A round may run a few statements (admin-ops runs four checks).
		RoundTimeout: 5 * cfg.QueryTimeout.D(),
		Logger:       env.logger,
	})
	if err != nil {
		return err
	}
	handler, err := newHandler(sampler)
	if err != nil {
		return err
	}
	// The servers' own errors (a TLS handshake refused, a client sending
	// plain HTTP to the TLS port) go to the structured log, not to stderr.
	errorLog := slog.NewLogLogger(env.logger.Handler(), slog.LevelWarn)
	server := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, ErrorLog: errorLog}
	webConfig := cfg.WebConfigFile
	systemd := false
	flags := &web.FlagConfig{WebListenAddresses: &[]string{ln.Addr().String()}, WebSystemdSocket: &systemd, WebConfigFile: &webConfig}

	sampleCtx, stopSampling := context.WithCancel(ctx)
	defer stopSampling()
	sampled := make(chan struct{})
	refused := make(chan error, 1)
	// Serve first: validation may wait on a database that accepts TCP and
	// never answers, and meanwhile /healthz is 200, /readyz 503 and
	// /metrics says pgcapacity_up 0.
	go func() {
		defer close(sampled)
		if err := validateCollectors(sampleCtx, env, pool, cs); err != nil {
			refused <- err
			return
		}
		warnUnmatchedHotTables(sampleCtx, env, pool)
		sampler.Run(sampleCtx)
	}()
	served := make(chan error, 2)
	go func() { served <- web.Serve(ln, server, flags, env.logger) }()
	// The health listener stays plain whatever the web configuration says:
	// it serves nothing but /healthz and /readyz, which kubelet and Docker
	// ask without a password or client certificate.
	healthServer := &http.Server{Handler: newHealthHandler(sampler), ReadHeaderTimeout: 10 * time.Second, ErrorLog: errorLog}
	if health != nil {
		go func() { served <- healthServer.Serve(health) }()
		env.logger.Info("serving /healthz and /readyz over plain HTTP", "address", health.Addr().String())
	} else if webConfig != "" {
		env.logger.Warn("the web configuration's TLS and basic auth apply to /healthz and /readyz too: set " + config.Prefix + "_HEALTH_LISTEN_ADDRESS (such as :9843) for health checks that give no password")
	}
	env.logger.Info("pgcapacity serving", "address", ln.Addr().String(), "collectors", len(cs), "version", version.Version)
	if started != nil {
		started(sampler)
	}

	var serveErr, refusal error
	select {
	case <-ctx.Done():
	case serveErr = <-served:
	case refusal = <-refused:
	}
	env.logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = server.Shutdown(shutdownCtx)
	_ = healthServer.Shutdown(shutdownCtx)
	stopSampling()
	<-sampled
	if refusal != nil {
		return refusal
	}
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return fmt.Errorf("serving HTTP: %w", serveErr)
	}
	return nil
}

// openPool opens the sampling pool (read-only, two connections, the
// configured statement and lock timeouts) that serve, check and demo share.
func openPool(ctx context.Context, cfg config.Config, url string) (*pgxpool.Pool, error) {
	poolCfg, err := dbpool.Config(url, dbpool.Options{StatementTimeout: cfg.QueryTimeout.D(), LockTimeout: cfg.LockTimeout.D()})
	if err != nil {
		return nil, &config.Error{Variable: config.Prefix + "_DATABASE_URL", Problem: err.Error()}
	}
	pool, err := pgxpool.NewWithConfig(ctx, poolCfg)
	if err != nil {
		return nil, fmt.Errorf("creating the connection pool: %w", err)
	}
	return pool, nil
}

// validator is a collector that can check its queries against the database
// at start (the admin-ops checks and the configured probes prepare theirs).
type validator interface {
	Validate(ctx context.Context, pool *pgxpool.Pool) error
}

// validateCollectors refuses to start on an operator's query that does not
// fit the database. Anything else (the database down: the pool connects
// lazily) is logged, and the collector's rounds will show it.
func validateCollectors(ctx context.Context, env *environment, pool *pgxpool.Pool, cs []collector.Collector) error {
	vctx, cancel := context.WithTimeout(ctx, 2*env.cfg.QueryTimeout.D())
	defer cancel()
	for _, c := range cs {
		v, ok := c.(validator)
		if !ok {
			continue
		}
		err := v.Validate(vctx, pool)
		var queryErr *adminops.QueryError
		var probeErr *probes.QueryError
		switch {
		case errors.As(err, &queryErr), errors.As(err, &probeErr):
			return err
		case err != nil:
			env.logger.Warn("queries not validated at start", "collector", c.Name(), "err", err)
		}
	}
	return nil
}

// warnUnmatchedHotTables logs one WARN at start naming the
// PGCAPACITY_HOT_TABLES patterns that match no watched table: such a
// pattern is not applicable here (not a failure), but its table gets no
// probe and counts in no hot-index total.
func warnUnmatchedHotTables(ctx context.Context, env *environment, pool *pgxpool.Pool) {
	ctx, cancel := context.WithTimeout(ctx, env.cfg.QueryTimeout.D())
	defer cancel()
	unmatched, err := probes.UnmatchedHotTables(ctx, pool, selection(env.cfg))
	switch {
	case err != nil:
		env.logger.Debug("hot-table patterns not checked at start", "err", err)
	case len(unmatched) > 0:
		env.logger.Warn("hot-table patterns match no watched partitioned table: not applicable here; set "+config.Prefix+"_HOT_TABLES to this database's hot tables",
			"patterns", strings.Join(unmatched, ","), "variable", config.Prefix+"_HOT_TABLES")
	}
}

// handleHealth adds /healthz (200 while the process serves, whatever the
// database does) and /readyz (200 once every collector has finished its
// first round) to mux; the main and the health listener both serve them.
func handleHealth(mux *http.ServeMux, sampler *collector.Sampler) {
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if !sampler.Ready() {
			http.Error(w, "waiting for the first sampling round", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
}

// newHealthHandler serves the health listener: /healthz and /readyz only,
// so a listener outside TLS and basic auth shows no metric.
func newHealthHandler(sampler *collector.Sampler) http.Handler {
	mux := http.NewServeMux()
	handleHealth(mux, sampler)
	return mux
}

func newHandler(sampler *collector.Sampler) (http.Handler, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		sampler.Snapshot().ServeHTTP(w, r)
	})
	handleHealth(mux, sampler)
	landing, err := web.NewLandingPage(web.LandingConfig{
		Name:        "pgcapacity",
		Description: "Capacity metrics of hash-partitioned PostgreSQL tables",
		Version:     version.Info(),
		Links: []web.LandingLinks{
			{Address: "/metrics", Text: "Metrics"},
			{Address: "/healthz", Text: "Health"},
			{Address: "/readyz", Text: "Readiness"},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("building the landing page: %w", err)
	}
	mux.Handle("/", landing)
	return mux, nil
}
