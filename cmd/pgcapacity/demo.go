package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sigid/pgcapacity/collector"
	"github.com/sigid/pgcapacity/internal/config"
	"github.com/sigid/pgcapacity/internal/sigid"
	"github.com/sigid/pgcapacity/internal/throwaway"
)

// runDemo starts a throwaway PostgreSQL with the seeded SigID schema, serves
// metrics on it and prints a check report; everything goes on interrupt.
func runDemo(ctx context.Context, env *environment, args []string) (int, error) {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	scale := fs.Int("scale", 10, "data size: 1 is a few thousand rows, 1000 millions")
	partitions := fs.Int("partitions", sigid.DefaultPartitions, "hash partitions per table")
	seedValue := fs.Int64("seed", 1, "data generator seed")
	if err := parseFlags(fs, args); err != nil {
		return exitError, err
	}
	if *scale < 1 || *partitions < 1 {
		return exitError, fmt.Errorf("--scale and --partitions must be at least 1")
	}
	ln, err := net.Listen("tcp", env.cfg.ListenAddress)
	if err != nil {
		return exitError, &config.Error{Variable: config.Prefix + "_LISTEN_ADDRESS", Problem: fmt.Sprintf("cannot listen on %s: %v (set another, such as :9843)", env.cfg.ListenAddress, err)}
	}
	defer ln.Close()

	env.logger.Info("starting a throwaway PostgreSQL")
	cluster, err := throwaway.Start(ctx, throwaway.Options{Logger: env.logger})
	if err != nil {
		return exitError, err
	}
	defer cluster.Stop()
	url, err := cluster.CreateDatabase(ctx, "sigid")
	if err != nil {
		return exitError, err
	}
	if err := seedDemo(ctx, env, url, *scale, *partitions, *seedValue); err != nil {
		return exitError, err
	}
	env.cfg.DatabaseURL = url
	metricsURL := "http://" + reachable(ln.Addr()) + "/metrics"
	err = serve(ctx, env, ln, nil, func(s *collector.Sampler) {
		go printDemoReport(ctx, env, s, url, metricsURL)
	})
	if err != nil {
		return exitError, err
	}
	return exitOK, nil
}

func seedDemo(ctx context.Context, env *environment, url string, scale, partitions int, seed int64) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("connecting to the demo database: %w", err)
	}
	defer conn.Close(ctx)
	counts := map[string]int{}
	for _, t := range sigid.HashTables() {
		counts[t] = partitions
	}
	if err := sigid.Apply(ctx, conn, sigid.SchemaOptions{Partitions: counts}); err != nil {
		return err
	}
	opts := sigid.DefaultGenerate(scale)
	opts.Seed = seed
	start := time.Now()
	n, err := sigid.Generate(ctx, conn, opts)
	if err != nil {
		return err
	}
	env.logger.Info("seeded the SigID schema", "rows", n.Total(), "partitions_per_table", partitions, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// reachable turns a wildcard listen address into one a browser can open.
func reachable(addr net.Addr) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok || !tcp.IP.IsUnspecified() {
		return addr.String()
	}
	return net.JoinHostPort("127.0.0.1", fmt.Sprint(tcp.Port))
}

func printDemoReport(ctx context.Context, env *environment, s *collector.Sampler, dbURL, metricsURL string) {
	for !s.Ready() {
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
	pool, err := openPool(ctx, env.cfg, dbURL)
	if err != nil {
		env.logger.Error("demo report", "err", err)
		return
	}
	defer pool.Close()
	report, err := sampleReport(ctx, env.cfg, pool)
	if err != nil {
		env.logger.Error("demo report", "err", err)
		return
	}
	fmt.Fprintf(env.stdout, "\npgcapacity demo is running.\n  metrics:  %s\n  database: psql '%s'\n\n", metricsURL, dbURL)
	writeReport(env.stdout, env.cfg, report)
	fmt.Fprintln(env.stdout, "\nPress Ctrl-C to stop; the throwaway database is removed on exit.")
}
