// Package probes_test measures what the latency probes cost the database:
// the CPU time of the PostgreSQL backend that runs them, read from
// /proc/<pid>/schedstat, per probe round, on the reference SigID data set.
// At the defaults (every probe once per PGCAPACITY_PROBE_INTERVAL = 15 s,
// tenant sample re-read every 10 min; one probe derived from each hot
// table's definition) the share of one core is
//
//	round CPU / 15 s + (round-with-refresh CPU − round CPU) / 600 s
//
// which the benchmark reports as %core-at-defaults; the budget is 1 %.
//
//	go test ./bench/probes -run '^$' -bench . -benchtime 400x
//
// PGCAPACITY_BENCH_SCALE sets the sigid.DefaultGenerate scale (default 100:
// about 200,000 sessions in 16 partitions per table).
package probes_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sigid/pgcapacity/collector"
	"github.com/sigid/pgcapacity/collector/probes"
	"github.com/sigid/pgcapacity/internal/config"
	"github.com/sigid/pgcapacity/internal/sigid"
	"github.com/sigid/pgcapacity/internal/throwaway/pgtest"
)

var cluster pgtest.Cluster

func TestMain(m *testing.M) { pgtest.Main(m, &cluster) }

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// referenceDB loads the reference schema and data once per benchmark run.
func referenceDB(b *testing.B) string {
	b.Helper()
	ctx := context.Background()
	url := pgtest.NewDatabase(b, &cluster)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := sigid.Apply(ctx, conn, sigid.SchemaOptions{}); err != nil {
		b.Fatal(err)
	}
	scale := envInt("PGCAPACITY_BENCH_SCALE", 100)
	start := time.Now()
	counts, err := sigid.Generate(ctx, conn, sigid.DefaultGenerate(scale))
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("reference data at scale %d: %d rows (%d sessions) in %s", scale, counts.Total(), counts.Sessions, time.Since(start).Round(time.Millisecond))
	return url
}

// backendCPU is the CPU time the backend with pid has used.
func backendCPU(pid uint32) (time.Duration, error) {
	// schedstat: nanoseconds on CPU, first field.
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/schedstat", pid))
	if err != nil {
		return 0, fmt.Errorf("reading the backend's CPU time (the server must run on this machine): %w", err)
	}
	ns, err := strconv.ParseInt(strings.Fields(string(data))[0], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parsing /proc/%d/schedstat: %w", pid, err)
	}
	return time.Duration(ns), nil
}

// rounds runs n probe rounds on a one-connection pool and returns the
// backend CPU time and the wall time per round. refresh is how often the
// tenant sample is re-read.
func rounds(b *testing.B, url string, n int, refresh time.Duration, timed bool) (cpu, wall time.Duration) {
	b.Helper()
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		b.Fatal(err)
	}
	cfg.MaxConns = 1 // every probe on one backend, whose CPU time is read
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	// The defaults: a probe derived from each hot table's definition.
	defaults, err := config.Load()
	if err != nil {
		b.Fatal(err)
	}
	c, err := probes.New(probes.Options{Derive: true, Selection: collector.Selection{HotTables: defaults.HotTables}, TenantRefresh: refresh})
	if err != nil {
		b.Fatal(err)
	}
	// Warm up: the first round loads the tenant sample and the caches.
	for range 20 {
		if _, err := c.Round(ctx, pool); err != nil {
			b.Fatal(err)
		}
	}
	var pid uint32
	if err := pool.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		b.Fatal(err)
	}
	before, err := backendCPU(pid)
	if err != nil {
		b.Fatal(err)
	}
	if timed {
		b.ResetTimer()
		b.StartTimer()
	}
	start := time.Now()
	for range n {
		runs, err := c.Round(ctx, pool)
		if err != nil {
			b.Fatal(err)
		}
		if want := len(sigid.HashTables()); len(runs) != want {
			b.Fatalf("%d of %d probes ran: the reference data lacks tenants", len(runs), want)
		}
		for _, r := range runs {
			if r.Err != nil {
				b.Fatalf("probe %s: %v", r.Probe, r.Err)
			}
		}
	}
	elapsed := time.Since(start)
	if timed {
		b.StopTimer()
	}
	after, err := backendCPU(pid)
	if err != nil {
		b.Fatal(err)
	}
	return (after - before) / time.Duration(n), elapsed / time.Duration(n)
}

func BenchmarkProbeCost(b *testing.B) {
	url := referenceDB(b) // once: the sub-benchmark runs more than once
	var cfg config.Config
	cfg.ProbeInterval = config.Duration(15 * time.Second)
	cfg.ProbeTenantRefresh = config.Duration(probes.DefaultTenantRefresh)
	interval, refreshEvery := cfg.ProbeInterval.D(), cfg.ProbeTenantRefresh.D()

	b.Run("defaults", func(b *testing.B) {
		round, wall := rounds(b, url, b.N, time.Hour, true)
		// The same rounds with the tenant sample re-read each time: the
		// difference is the refresh's cost.
		refreshed, _ := rounds(b, url, 50, time.Nanosecond, false)
		refresh := max(refreshed-round, 0)
		share := round.Seconds()/interval.Seconds() + refresh.Seconds()/refreshEvery.Seconds()
		b.ReportMetric(float64(round.Microseconds()), "db-cpu-µs/round")
		b.ReportMetric(float64(refresh.Microseconds()), "db-cpu-µs/refresh")
		b.ReportMetric(float64(wall.Microseconds()), "wall-µs/round")
		b.ReportMetric(100*share, "%core-at-defaults")
		b.Logf("%d rounds of %d probes: %s backend CPU per round (%s wall); tenant refresh %s; "+
			"one round per %s and a refresh per %s cost %.4f%% of one core (budget 1%%)",
			b.N, len(sigid.HashTables()), round, wall, refresh, interval, refreshEvery, 100*share)
		if share >= 0.01 {
			b.Errorf("the probes cost %.3f%% of one core at the defaults, over the 1%% budget", 100*share)
		}
	})
}
