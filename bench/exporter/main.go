// Command exporter benchmarks pgcapacity's exporter at scale: 4 tables ×
// 1,024 hash partitions (4,096 partitions, about 16,000 relations) on a
// throwaway PostgreSQL. It prints one full sampling round's time, queries
// per round at 64 and 4,096 partitions, series with and without partition
// detail, /metrics latency under 20 concurrent scrapers and the exporter's
// RSS. With -fleet it prints instead the series per database in every
// partition detail mode at 64, 1,024 and 4,096 partitions.
//
//	go run ./bench/exporter            # the README's numbers
//	go run ./bench/exporter -fleet     # the README's fleet table
//	go run ./bench/exporter -partitions 256 -scrape-duration 5s
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/sigid/pgcapacity/collector"
	"github.com/sigid/pgcapacity/internal/dbpool"
	"github.com/sigid/pgcapacity/internal/pgstat"
	"github.com/sigid/pgcapacity/internal/throwaway"
)

type options struct {
	tables         int
	partitions     int
	smallPartition int
	rowsPerTable   int
	scrapers       int
	scrapeDuration time.Duration
	maxScrapes     int
	hold           bool
	fleet          bool
	dbTimeWindow   time.Duration
	fleetSizes     string
	modes          string
	topStatements  int
}

func main() {
	var o options
	flag.IntVar(&o.tables, "tables", 4, "hash-partitioned tables")
	flag.IntVar(&o.partitions, "partitions", 1024, "partitions per table at full scale")
	flag.IntVar(&o.smallPartition, "small-partitions", 16, "partitions per table for the query-count comparison")
	flag.IntVar(&o.rowsPerTable, "rows", 40_000, "rows per table")
	flag.IntVar(&o.scrapers, "scrapers", 20, "concurrent /metrics scrapers")
	flag.DurationVar(&o.scrapeDuration, "scrape-duration", 10*time.Second, "how long the scrapers run")
	flag.IntVar(&o.maxScrapes, "max-scrapes", 20000, "upper bound on scrapes in total")
	flag.BoolVar(&o.hold, "hold", false, "load the full-scale database, print its URL and wait (for EXPLAIN by hand)")
	flag.BoolVar(&o.fleet, "fleet", false, "print series per database in each partition detail mode at 4 × 16, 256 and 1,024 partitions instead")
	flag.DurationVar(&o.dbTimeWindow, "dbtime", 0, "with -fleet: also run serve at the default intervals this long and report its database time per hour from pg_stat_statements (0: skip)")
	flag.StringVar(&o.fleetSizes, "fleet-partitions", "16,256,1024", "with -fleet: partitions per table of each database, comma-separated")
	flag.StringVar(&o.modes, "modes", "auto,all,top,none", "with -fleet: the PGCAPACITY_PARTITION_DETAIL modes whose series are counted, comma-separated (empty: none)")
	flag.IntVar(&o.topStatements, "top-statements", 10, "with -dbtime: print this many of the costliest statements to stderr")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cluster, err := throwaway.Start(ctx, throwaway.Options{Logger: logger})
	if err != nil {
		return err
	}
	defer cluster.Stop()
	if o.fleet {
		return runFleet(ctx, cluster, logger, o)
	}

	type scale struct {
		partitions   int
		queries      int64
		roundMedian  time.Duration
		perCollector map[string]time.Duration
	}
	var scales []scale
	var bigURL string
	sizes := []int{o.smallPartition, o.partitions}
	if o.hold {
		sizes = sizes[1:]
	}
	for _, n := range sizes {
		url, err := createLoaded(ctx, cluster, logger, fmt.Sprintf("bench_%d", n), n, o)
		if err != nil {
			return err
		}
		if o.hold {
			fmt.Printf("psql '%s'\n", url)
			<-ctx.Done()
			return nil
		}
		queries, median, per, err := measureRounds(ctx, url)
		if err != nil {
			return err
		}
		scales = append(scales, scale{partitions: o.tables * n, queries: queries, roundMedian: median, perCollector: per})
		bigURL = url
	}
	relations, err := countRelations(ctx, bigURL)
	if err != nil {
		return err
	}

	bin, err := buildBinary(ctx)
	if err != nil {
		return err
	}
	detail, err := measureServe(ctx, bin, bigURL, "all", o)
	if err != nil {
		return err
	}
	noDetail, err := measureServe(ctx, bin, bigURL, "none", o)
	if err != nil {
		return err
	}

	fmt.Printf("\npgcapacity exporter benchmark: %d tables, %d relations at full scale, PostgreSQL %d, %d CPUs\n\n",
		o.tables, relations, cluster.Major(), numCPU())
	fmt.Println("| measure | value | target |")
	fmt.Println("|---|---|---|")
	for _, s := range scales {
		fmt.Printf("| queries per round (stats + sizes) at %d partitions | %d | constant |\n", s.partitions, s.queries)
	}
	for _, s := range scales {
		fmt.Printf("| full round in-process (median of 5) at %d partitions: stats %s + sizes %s | %s | |\n", s.partitions,
			s.perCollector["stats"].Round(time.Millisecond), s.perCollector["sizes"].Round(time.Millisecond), s.roundMedian.Round(time.Millisecond))
	}
	fmt.Printf("| full round inside serve (stats + sizes, steady state) at %d partitions | %s | ≤ 1.0 s |\n", scales[len(scales)-1].partitions, detail.round.Round(time.Millisecond))
	fmt.Printf("| series with partition detail | %d | |\n", detail.series)
	fmt.Printf("| series without partition detail | %d | |\n", noDetail.series)
	fmt.Printf("| /metrics p50 / p99, %d scrapers, detail on (%d scrapes) | %s / %s | p99 ≤ 50 ms |\n", o.scrapers, detail.scrapes, detail.p50.Round(time.Microsecond*10), detail.p99.Round(time.Microsecond*10))
	fmt.Printf("| /metrics p50 / p99, %d scrapers, detail off (%d scrapes) | %s / %s | |\n", o.scrapers, noDetail.scrapes, noDetail.p50.Round(time.Microsecond*10), noDetail.p99.Round(time.Microsecond*10))
	fmt.Printf("| exporter RSS after scraping, detail on (peak) | %.1f MiB (%.1f MiB) | ≤ 60 MiB |\n", detail.rssMiB, detail.peakMiB)
	fmt.Printf("| exporter RSS after scraping, detail off (peak) | %.1f MiB (%.1f MiB) | |\n", noDetail.rssMiB, noDetail.peakMiB)
	return nil
}

func numCPU() int {
	out, _ := exec.Command("nproc").Output()
	n, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	return n
}

// load creates tables × partitions and rows; four relations per partition
// (heap, primary key, two more indexes) and no TOAST, as in the target.
// createLoaded creates database name and loads o.tables tables of
// partitions partitions each into it.
func createLoaded(ctx context.Context, cluster *throwaway.Cluster, logger *slog.Logger, name string, partitions int, o options) (string, error) {
	url, err := cluster.CreateDatabase(ctx, name)
	if err != nil {
		return "", err
	}
	start := time.Now()
	if err := load(ctx, url, o.tables, partitions, o.rowsPerTable); err != nil {
		return "", err
	}
	logger.Info("loaded", "tables", o.tables, "partitions_per_table", partitions, "took", time.Since(start).Round(time.Millisecond))
	return url, nil
}

func load(ctx context.Context, url string, tables, partitions, rows int) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	for i := 0; i < tables; i++ {
		name := fmt.Sprintf("bench_%d", i)
		q := pgx.Identifier{name}.Sanitize()
		ddl := []string{
			fmt.Sprintf(`CREATE TABLE %s (tenant_id uuid NOT NULL, id bigint NOT NULL, created_at timestamptz NOT NULL DEFAULT now(), n int, PRIMARY KEY (tenant_id, id)) PARTITION BY HASH (tenant_id)`, q),
			fmt.Sprintf(`CREATE INDEX ON %s (tenant_id, created_at)`, q),
			fmt.Sprintf(`CREATE INDEX ON %s (created_at)`, q),
		}
		for p := 0; p < partitions; p++ {
			ddl = append(ddl, fmt.Sprintf(`CREATE TABLE %s PARTITION OF %s FOR VALUES WITH (MODULUS %d, REMAINDER %d)`,
				pgx.Identifier{fmt.Sprintf("%s_p%d", name, p)}.Sanitize(), q, partitions, p))
		}
		if _, err := conn.Exec(ctx, strings.Join(ddl, ";\n")); err != nil {
			return fmt.Errorf("creating %s: %w", name, err)
		}
		if _, err := conn.Exec(ctx, fmt.Sprintf(`INSERT INTO %s (tenant_id, id, n) SELECT gen_random_uuid(), g, g %% 100 FROM generate_series(1, $1) g`, q), rows); err != nil {
			return fmt.Errorf("filling %s: %w", name, err)
		}
	}
	if err := pgstat.Flush(ctx, conn); err != nil {
		return err
	}
	_, err = conn.Exec(ctx, "ANALYZE")
	return err
}

func countRelations(ctx context.Context, url string) (int, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	var n int
	err = conn.QueryRow(ctx, `SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'`).Scan(&n)
	return n, err
}

// queryCounter counts statements sent, batched ones included.
type queryCounter struct{ n atomic.Int64 }

func (c *queryCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.n.Add(1)
	return ctx
}
func (c *queryCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (c *queryCounter) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return ctx
}
func (c *queryCounter) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {
	c.n.Add(1)
}
func (c *queryCounter) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// measureRounds runs the stats and sizes collectors in-process: statements
// of one round, and the median time of five rounds.
func measureRounds(ctx context.Context, url string) (int64, time.Duration, map[string]time.Duration, error) {
	cfg, err := dbpool.Config(url, dbpool.Options{StatementTimeout: time.Minute, LockTimeout: time.Second})
	if err != nil {
		return 0, 0, nil, err
	}
	counter := &queryCounter{}
	cfg.ConnConfig.Tracer = counter
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return 0, 0, nil, err
	}
	defer pool.Close()
	if err := pool.Ping(ctx); err != nil {
		return 0, 0, nil, err
	}
	sel := collector.Selection{HotTables: []string{"bench_*"}, TenantColumn: "tenant_id"}
	cs := []collector.Collector{collector.NewStats(sel, time.Minute, true), collector.NewSizes(sel, time.Minute, true)}
	var times []time.Duration
	per := map[string][]time.Duration{}
	var queries int64
	for i := 0; i < 5; i++ {
		before := counter.n.Load()
		start := time.Now()
		for _, c := range cs {
			cstart := time.Now()
			if _, err := c.Collect(ctx, pool); err != nil {
				return 0, 0, nil, err
			}
			per[c.Name()] = append(per[c.Name()], time.Since(cstart))
		}
		times = append(times, time.Since(start))
		queries = counter.n.Load() - before
	}
	medians := map[string]time.Duration{}
	for name, ts := range per {
		medians[name] = median(ts)
	}
	return queries, median(times), medians, nil
}

func median(ts []time.Duration) time.Duration {
	sort.Slice(ts, func(i, j int) bool { return ts[i] < ts[j] })
	return ts[len(ts)/2]
}

func buildBinary(ctx context.Context) (string, error) {
	dir, err := os.MkdirTemp("", "pgcapacity-bench-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "pgcapacity")
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/pgcapacity").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build (run from the repository root): %v\n%s", err, out)
	}
	return bin, nil
}

type serveResult struct {
	round           time.Duration
	series          int
	scrapes         int
	p50, p99        time.Duration
	rssMiB, peakMiB float64
}

// measureServe runs serve on url with PGCAPACITY_PARTITION_DETAIL=detail,
// counts its series after two more rounds, scrapes it concurrently (unless
// o.scrapers is 0) and reads its RSS.
func measureServe(ctx context.Context, bin, url, detail string, o options) (serveResult, error) {
	var r serveResult
	base, cmd, err := startServe(ctx, bin, url,
		"PGCAPACITY_PARTITION_DETAIL="+detail,
		// Short intervals so a steady-state round (warm connections, the
		// other collectors' first rounds done) is measured, not the first.
		"PGCAPACITY_STATS_INTERVAL=10s",
		"PGCAPACITY_SIZES_INTERVAL=10s",
	)
	if err != nil {
		return r, err
	}
	defer stopServe(cmd)
	time.Sleep(25 * time.Second) // two more rounds of stats and sizes
	body, err := get(base + "/metrics")
	if err != nil {
		return r, err
	}
	for _, line := range strings.Split(body, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		r.series++
		for _, c := range []string{"stats", "sizes"} {
			prefix := `pgcapacity_collector_duration_seconds{collector="` + c + `"} `
			if strings.HasPrefix(line, prefix) {
				v, _ := strconv.ParseFloat(strings.TrimPrefix(line, prefix), 64)
				r.round += time.Duration(v * float64(time.Second))
			}
		}
	}
	if o.scrapers > 0 {
		r.scrapes, r.p50, r.p99, err = scrapeConcurrently(base+"/metrics", o)
		if err != nil {
			return r, err
		}
	}
	r.rssMiB, r.peakMiB, err = rss(cmd.Process.Pid)
	return r, err
}

func get(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// scrapeConcurrently runs o.scrapers loops, each asking as Prometheus does
// (protobuf or text, gzip), bounded in time and count; latency includes
// reading the whole body.
func scrapeConcurrently(url string, o options) (int, time.Duration, time.Duration, error) {
	// The body is read as sent (gzip, not inflated here): the latency is the
	// exporter's, not this client's decompression.
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: o.scrapers, DisableCompression: true}, Timeout: 10 * time.Second}
	var (
		mu        sync.Mutex
		latencies []time.Duration
		firstErr  error
		remaining atomic.Int64
	)
	remaining.Store(int64(o.maxScrapes))
	stop := time.Now().Add(o.scrapeDuration)
	var wg sync.WaitGroup
	for i := 0; i < o.scrapers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) && remaining.Add(-1) >= 0 {
				req, _ := http.NewRequest(http.MethodGet, url, nil)
				req.Header.Set("Accept-Encoding", "gzip")
				req.Header.Set("Accept", "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.6,text/plain;version=0.0.4;q=0.3,*/*;q=0.1")
				start := time.Now()
				resp, err := client.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				took := time.Since(start)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				latencies = append(latencies, took)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return 0, 0, 0, firstErr
	}
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	q := func(p float64) time.Duration { return latencies[int(p*float64(len(latencies)-1))] }
	return len(latencies), q(0.50), q(0.99), nil
}

func rss(pid int) (float64, float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	var cur, peak float64
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "VmRSS:":
			cur = kb / 1024
		case "VmHWM:":
			peak = kb / 1024
		}
	}
	return cur, peak, nil
}

// runFleet prints the series one database publishes in every partition
// detail mode, at 4 tables of 16, 256 and 1,024 partitions: what a fleet
// budgets per sidecar.
func runFleet(ctx context.Context, cluster *throwaway.Cluster, logger *slog.Logger, o options) error {
	bin, err := buildBinary(ctx)
	if err != nil {
		return err
	}
	var modes []string
	for _, m := range strings.Split(o.modes, ",") {
		if m = strings.TrimSpace(m); m != "" {
			modes = append(modes, m)
		}
	}
	var sizes []int
	for _, f := range strings.Split(o.fleetSizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return fmt.Errorf("-fleet-partitions %q: want positive partition counts separated by commas, such as 16,256,1024", o.fleetSizes)
		}
		sizes = append(sizes, n)
	}
	type row struct {
		partitions int
		series     map[string]int
		rssMiB     float64
		dbTime     time.Duration
	}
	var rows []row
	o.scrapers = 0 // series and RSS only
	for _, n := range sizes {
		url, err := createLoaded(ctx, cluster, logger, fmt.Sprintf("fleet_%d", n), n, o)
		if err != nil {
			return err
		}
		r := row{partitions: o.tables * n, series: map[string]int{}}
		if o.dbTimeWindow > 0 {
			if r.dbTime, err = measureDBTime(ctx, cluster, bin, fmt.Sprintf("fleet_%d", n), url, o.dbTimeWindow, o.topStatements); err != nil {
				return err
			}
		}
		for _, mode := range modes {
			res, err := measureServe(ctx, bin, url, mode, o)
			if err != nil {
				return fmt.Errorf("serve with detail %s at %d partitions: %w", mode, r.partitions, err)
			}
			r.series[mode] = res.series
			if mode == "auto" {
				r.rssMiB = res.rssMiB
			}
		}
		rows = append(rows, r)
	}
	fmt.Printf("\npgcapacity series per database (%d tables, PostgreSQL %d, %d CPUs, PGCAPACITY_PARTITION_TOP_K=5)\n\n", o.tables, cluster.Major(), numCPU())
	fmt.Println("| partitions | auto (default) | all | top | none | RSS, auto | database time per hour, default intervals (upper bound) |")
	fmt.Println("|---|---|---|---|---|---|---|")
	for _, r := range rows {
		fmt.Printf("| %d | %d | %d | %d | %d | %.1f MiB | %s |\n", r.partitions, r.series["auto"], r.series["all"], r.series["top"], r.series["none"], r.rssMiB, r.dbTime.Round(10*time.Millisecond))
	}
	return nil
}

// startServe starts `pgcapacity serve` on url with the extra settings env
// and waits until it is ready; stop it with stopServe.
func startServe(ctx context.Context, bin, url string, env ...string) (string, *exec.Cmd, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.CommandContext(ctx, bin, "serve")
	cmd.Env = append(append(os.Environ(),
		"PGCAPACITY_DATABASE_URL="+url,
		"PGCAPACITY_LISTEN_ADDRESS="+addr,
		"PGCAPACITY_HOT_TABLES=bench_*",
		"PGCAPACITY_LOG_LEVEL=error",
	), env...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	base := "http://" + addr
	deadline := time.Now().Add(2 * time.Minute)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base, cmd, nil
			}
		}
		if time.Now().After(deadline) {
			stopServe(cmd)
			return "", nil, errors.New("serve did not become ready in 2 minutes")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func stopServe(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(os.Interrupt)
	_ = cmd.Wait()
}

// measureDBTime runs serve at the default intervals on database name for
// window and returns the database time of every statement run in that
// database meanwhile (pg_stat_statements, execution plus planning), per
// hour. Each collector's first round falls in the window, so collectors
// slower than it (sizes every 5 minutes, admin-ops every 10) count once per
// window: an upper bound.
func measureDBTime(ctx context.Context, cluster *throwaway.Cluster, bin, name, url string, window time.Duration, top int) (time.Duration, error) {
	conn, err := pgx.Connect(ctx, cluster.ConnString("postgres"))
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS pg_stat_statements`); err != nil {
		return 0, fmt.Errorf("creating pg_stat_statements: %w", err)
	}
	if _, err := conn.Exec(ctx, `SELECT pg_stat_statements_reset()`); err != nil {
		return 0, fmt.Errorf("resetting pg_stat_statements: %w", err)
	}
	_, cmd, err := startServe(ctx, bin, url)
	if err != nil {
		return 0, err
	}
	time.Sleep(window)
	stopServe(cmd)
	var ms float64
	if err := conn.QueryRow(ctx, `SELECT coalesce(sum(s.total_exec_time + s.total_plan_time), 0)
FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = $1`, name).Scan(&ms); err != nil {
		return 0, fmt.Errorf("reading pg_stat_statements: %w", err)
	}
	if top > 0 {
		if err := printTopStatements(ctx, conn, name, window, top); err != nil {
			return 0, err
		}
	}
	return time.Duration(ms * float64(time.Millisecond) * float64(time.Hour) / float64(window)), nil
}

// printTopStatements prints to stderr the statements of database name that
// cost the most (execution plus planning) in the window: where to look.
func printTopStatements(ctx context.Context, conn *pgx.Conn, name string, window time.Duration, top int) error {
	rows, err := conn.Query(ctx, `SELECT s.calls, s.total_exec_time, s.total_plan_time, regexp_replace(s.query, '\s+', ' ', 'g')
FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = $1
ORDER BY s.total_exec_time + s.total_plan_time DESC LIMIT $2`, name, top)
	if err != nil {
		return fmt.Errorf("reading the costliest statements: %w", err)
	}
	defer rows.Close()
	fmt.Fprintf(os.Stderr, "costliest statements in %s over %s (calls, exec ms, plan ms, s/h, text):\n", name, window)
	for rows.Next() {
		var calls int64
		var execMS, planMS float64
		var text string
		if err := rows.Scan(&calls, &execMS, &planMS, &text); err != nil {
			return fmt.Errorf("reading the costliest statements: %w", err)
		}
		if len(text) > 160 {
			text = text[:160] + "…"
		}
		perHour := (execMS + planMS) / 1000 * float64(time.Hour) / float64(window)
		fmt.Fprintf(os.Stderr, "  %6d %10.1f %8.1f %7.2f  %s\n", calls, execMS, planMS, perHour, text)
	}
	return rows.Err()
}
