package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
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

func runServe(ctx context.Context, env *environment, args []string) (int, error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	if err := parseFlags(fs, args); err != nil {
		return exitError, err
	}
	if err := env.cfg.RequireDatabase(); err != nil {
		return exitError, err
	}
	ln, err := net.Listen("tcp", env.cfg.ListenAddress)
	if err != nil {
		return exitError, &config.Error{Variable: config.Prefix + "_LISTEN_ADDRESS", Problem: fmt.Sprintf("cannot listen on %s: %v", env.cfg.ListenAddress, err)}
	}
	return exitOK, serve(ctx, env, ln, nil)
}

// serve runs the exporter on ln until ctx ends. started, when not nil, is
// called with the sampler once the server is listening (demo uses it).
func serve(ctx context.Context, env *environment, ln net.Listener, started func(*collector.Sampler)) error {
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
	server := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
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
	served := make(chan error, 1)
	go func() { served <- web.Serve(ln, server, flags, env.logger) }()
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

func newHandler(sampler *collector.Sampler) (http.Handler, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		sampler.Snapshot().ServeHTTP(w, r)
	})
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
