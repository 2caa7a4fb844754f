// Command exporter benchmarks pgcapacity's exporter at scale: 4 tables ×
// 1,024 hash partitions (4,096 partitions, about 16,000 relations) on a
// throwaway PostgreSQL. It prints one full sampling round's time, queries
// per round at 64 and 4,096 partitions, series with and without partition
// detail, /metrics latency under 20 concurrent scrapers and the exporter's
// RSS. With -fleet it prints instead the series per database in every
// partition detail mode at 64, 1,024 and 4,096 partitions; with -dbtime
// also serve's database time per hour at the default intervals.
//
//	go run ./bench/exporter            # the README's numbers
//	go run ./bench/exporter -fleet     # the README's fleet table
//	go run ./bench/exporter -fleet -fleet-partitions 1024 -modes '' -rows 4000 -dbtime 6m [-dbtime-writes]
//	go run ./bench/exporter -partitions 256 -scrape-duration 5s
package main

import (
	"bytes"
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
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
	"github.com/sigid/pgcapacity/internal/config"
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
	speedup        int
	writeEvery     time.Duration // with writes: serve's sizes interval over speedup
	writes         bool
	fleetSizes     string
	modes          string
	topStatements  int
	peer           string
	peerQueries    string
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
	flag.DurationVar(&o.dbTimeWindow, "dbtime", 0, "with -fleet: also run serve this long (intervals divided by -dbtime-speedup) and report its database time per hour at its intervals: the defaults, or PGCAPACITY_*_INTERVAL and PGCAPACITY_PROBE_TENANT_REFRESH from the environment (0: skip)")
	flag.IntVar(&o.speedup, "dbtime-speedup", 10, "with -dbtime: run every collector this many times as often as its interval")
	flag.BoolVar(&o.writes, "dbtime-writes", false, "with -dbtime: a writer changes every partition between sizes rounds (the worst case for sizing only changed partitions)")
	flag.StringVar(&o.fleetSizes, "fleet-partitions", "16,256,1024", "with -fleet: partitions per table of each database, comma-separated")
	flag.StringVar(&o.modes, "modes", "auto,all,top,none", "with -fleet: the PGCAPACITY_PARTITION_DETAIL modes whose series are counted, comma-separated (empty: none)")
	flag.IntVar(&o.topStatements, "top-statements", 10, "with -dbtime: print this many of the costliest statements to stderr")
	flag.StringVar(&o.peerQueries, "peer-queries", "", "with -peer: its --extend.query-path, such as the per-table queries its newer releases run by default (README \"Database time per hour\")")
	flag.StringVar(&o.peer, "peer", "", "with -dbtime: also measure the postgres_exporter binary at this path, scraped every 30 s at the default rates, side by side (Debian: /usr/bin/prometheus-postgres-exporter)")
	flag.Parse()
	if o.peer != "" && (!o.fleet || o.dbTimeWindow <= 0) {
		fmt.Fprintln(os.Stderr, "bench: -peer measures database time: give it with -fleet and -dbtime, for example -fleet -fleet-partitions 1024 -modes '' -dbtime 6m -peer /usr/bin/prometheus-postgres-exporter")
		os.Exit(2)
	}
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
	modes := []string{"auto", "all", "none"} // auto: the default
	served := map[string]serveResult{}
	for _, mode := range modes {
		if served[mode], err = measureServe(ctx, bin, bigURL, mode, o); err != nil {
			return err
		}
	}

	fmt.Printf("\npgcapacity exporter benchmark: %d tables, %d relations at full scale, PostgreSQL %d, %d CPUs, GOGC=%s\n\n",
		o.tables, relations, cluster.Major(), numCPU(), cmp.Or(os.Getenv("GOGC"), "unset"))
	fmt.Println("| measure | value | target |")
	fmt.Println("|---|---|---|")
	for _, s := range scales {
		fmt.Printf("| queries per round (stats + sizes) at %d partitions | %d | constant |\n", s.partitions, s.queries)
	}
	for _, s := range scales {
		fmt.Printf("| full round in-process (median of 5) at %d partitions: stats %s + sizes %s | %s | |\n", s.partitions,
			s.perCollector["stats"].Round(time.Millisecond), s.perCollector["sizes"].Round(time.Millisecond), s.roundMedian.Round(time.Millisecond))
	}
	full := scales[len(scales)-1].partitions
	for _, mode := range modes {
		r := served[mode]
		target := func(t string) string {
			if mode == "auto" {
				return t
			}
			return ""
		}
		fmt.Printf("| detail `%s`: full round inside serve (stats + sizes, steady state) at %d partitions | %s | %s |\n", mode, full, r.round.Round(time.Millisecond), target("≤ 1.0 s"))
		fmt.Printf("| detail `%s`: series | %d | |\n", mode, r.series)
		fmt.Printf("| detail `%s`: /metrics p50 / p99, %d scrapers (%d scrapes) | %s / %s | %s |\n", mode, o.scrapers, r.scrapes, r.p50.Round(time.Microsecond*10), r.p99.Round(time.Microsecond*10), target("p99 ≤ 50 ms"))
		fmt.Printf("| detail `%s`: exporter RSS after scraping (peak) | %.1f MiB (%.1f MiB) | %s |\n", mode, r.rssMiB, r.peakMiB, target("≤ 64 MiB"))
		fmt.Printf("| detail `%s`: exporter CPU, start to end of scraping | %s | |\n", mode, r.cpu.Round(10*time.Millisecond))
	}
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
	cpu             time.Duration // user and system, from start to the end of scraping
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
	if r.rssMiB, r.peakMiB, err = rss(cmd.Process.Pid); err != nil {
		return r, err
	}
	r.cpu, err = processCPU(cmd.Process.Pid)
	return r, err
}

// processCPU is a process's user and system time so far (/proc/PID/stat).
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces: fields count from after its ')'.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("reading /proc/%d/stat: %d fields", pid, len(f))
	}
	utime, _ := strconv.Atoi(f[11])
	stime, _ := strconv.Atoi(f[12])
	return time.Duration(utime+stime) * (time.Second / 100), nil // in USER_HZ, 100 on Linux
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
		dbTime     dbTime
		peer       dbTime
	}
	var rows []row
	o.scrapers = 0 // series and RSS only
	var serve workload
	if o.dbTimeWindow > 0 {
		var err error
		if serve, err = serveWorkload(bin, o); err != nil {
			return err
		}
		o.writeEvery = serve.sizesInterval / time.Duration(o.speedup)
	}
	for _, n := range sizes {
		url, err := createLoaded(ctx, cluster, logger, fmt.Sprintf("fleet_%d", n), n, o)
		if err != nil {
			return err
		}
		r := row{partitions: o.tables * n, series: map[string]int{}}
		if o.dbTimeWindow > 0 {
			if r.dbTime, err = measureDBTime(ctx, fmt.Sprintf("fleet_%d", n), url, serve, o); err != nil {
				return err
			}
			if o.peer != "" {
				if r.peer, err = measureDBTime(ctx, fmt.Sprintf("fleet_%d", n), url, peerWorkload(o.peer, o), o); err != nil {
					return err
				}
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
	header := []string{"partitions"}
	for _, mode := range modes {
		if mode == "auto" {
			header = append(header, "auto (default)")
		} else {
			header = append(header, mode)
		}
	}
	if slices.Contains(modes, "auto") {
		header = append(header, "RSS, auto")
	}
	if o.dbTimeWindow > 0 {
		writes := "no writes"
		if o.writes {
			writes = "every partition written between sizes rounds"
		}
		fmt.Printf("database time: serve's statements (pg_stat_statements, execution + planning) and its backends' CPU, per hour at its intervals (%s; the defaults unless PGCAPACITY_*_INTERVAL is set), %s; measured %s at %d× those rates\n\n", serve.intervals, writes, o.dbTimeWindow, o.speedup)
		header = append(header, "database time per hour (statements / backend CPU)")
		if o.peer != "" {
			header = append(header, "postgres_exporter, scraped every 30 s", "ratio (statements / CPU)")
		}
	}
	fmt.Println("| " + strings.Join(header, " | ") + " |")
	fmt.Println(strings.Repeat("|---", len(header)) + "|")
	for _, r := range rows {
		cells := []string{fmt.Sprint(r.partitions)}
		for _, mode := range modes {
			cells = append(cells, fmt.Sprint(r.series[mode]))
		}
		if slices.Contains(modes, "auto") {
			cells = append(cells, fmt.Sprintf("%.1f MiB", r.rssMiB))
		}
		if o.dbTimeWindow > 0 {
			cells = append(cells, fmt.Sprintf("%s / %s", r.dbTime.statements.Round(10*time.Millisecond), r.dbTime.cpu.Round(10*time.Millisecond)))
			if o.peer != "" {
				cells = append(cells, fmt.Sprintf("%s / %s", r.peer.statements.Round(10*time.Millisecond), r.peer.cpu.Round(10*time.Millisecond)),
					fmt.Sprintf("%.3f / %.3f", ratio(r.dbTime.statements, r.peer.statements), ratio(r.dbTime.cpu, r.peer.cpu)))
			}
		}
		fmt.Println("| " + strings.Join(cells, " | ") + " |")
	}
	return nil
}

// ratio is a / b, or NaN when b is 0.
func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return math.NaN()
	}
	return float64(a) / float64(b)
}

// startServe starts `pgcapacity serve` on url with the extra settings env
// and waits until it is ready; stop it with stopServe.
func startServe(ctx context.Context, bin, url string, env ...string) (string, *exec.Cmd, error) {
	addr, err := freeAddress()
	if err != nil {
		return "", nil, err
	}
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
	if err := waitHTTP(base+"/readyz", 2*time.Minute); err != nil {
		stopServe(cmd)
		return "", nil, fmt.Errorf("serve: %w", err)
	}
	return base, cmd, nil
}

// freeAddress is a local TCP address nothing listens on.
func freeAddress() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// waitHTTP waits until url answers 200 OK.
func waitHTTP(url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer 200 OK in %s", url, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func stopServe(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(os.Interrupt)
	_ = cmd.Wait()
}

// dbTime is serve's cost to the database per hour at the default
// intervals: the time pg_stat_statements counts (execution plus planning,
// wall-clock, so it grows with the machine's load) and the CPU time of
// serve's backends (what the load does not inflate).
type dbTime struct {
	statements, cpu time.Duration
}

// Roles the exporters connect as in the database-time run, so their
// statements are told from each other's and from the writer's.
const (
	benchRole = "pgcapacity_bench"
	peerRole  = "postgres_exporter_bench"
)

// workload is an exporter whose database time is measured: started as role
// on the role's url, stopped by the function start returns.
type workload struct {
	name  string
	role  string
	start func(ctx context.Context, url string) (stop func(), err error)
	// intervals are the workload's own, for the report.
	intervals string
	// sizesInterval is serve's, the -dbtime-writes writer's period.
	sizesInterval time.Duration
	// settle is how long its first rounds take: each connection plans its
	// first five executions of a statement anew (custom plans) before
	// PostgreSQL settles on a cached generic plan, and the first sizes
	// rounds after the load size more than later ones: a start's cost.
	settle time.Duration
}

// serveWorkload is serve with every interval (and the probes' tenant
// refresh) as configured, the defaults unless the environment sets
// PGCAPACITY_*_INTERVAL, divided by o.speedup, so the collectors run in the
// configured proportions, speedup times as often.
func serveWorkload(bin string, o options) (workload, error) {
	cfg, err := config.Load()
	if err != nil {
		return workload{}, fmt.Errorf("reading the intervals to measure: %w", err)
	}
	intervals := []struct {
		name  string
		every config.Duration
	}{
		{"STATS_INTERVAL", cfg.StatsInterval}, {"SIZES_INTERVAL", cfg.SizesInterval},
		{"PROBE_INTERVAL", cfg.ProbeInterval}, {"STATEMENTS_INTERVAL", cfg.StatementsInterval},
		{"ADMINOPS_INTERVAL", cfg.AdminopsInterval}, {"MIGRATIONS_INTERVAL", cfg.MigrationsInterval},
		{"PROBE_TENANT_REFRESH", cfg.ProbeTenantRefresh},
	}
	var env, described []string
	for _, d := range intervals {
		env = append(env, fmt.Sprintf("%s_%s=%dms", config.Prefix, d.name, (d.every.D()/time.Duration(o.speedup)).Milliseconds()))
		described = append(described, fmt.Sprintf("%s %s", strings.ToLower(d.name), d.every))
	}
	return workload{name: "serve", role: benchRole, start: func(ctx context.Context, url string) (func(), error) {
		_, cmd, err := startServe(ctx, bin, url, env...)
		if err != nil {
			return nil, err
		}
		return func() { stopServe(cmd) }, nil
	}, intervals: strings.Join(described, ", "), sizesInterval: cfg.SizesInterval.D(),
		settle: max(firstRounds, 6*cfg.StatsInterval.D(), 2*cfg.SizesInterval.D()) / time.Duration(o.speedup)}, nil
}

// peerWorkload is postgres_exporter (the binary at path, with its default
// collectors and o.peerQueries) scraped every peerScrapeInterval divided by
// o.speedup.
func peerWorkload(path string, o options) workload {
	return workload{name: "postgres_exporter", role: peerRole, start: func(ctx context.Context, url string) (func(), error) {
		addr, err := freeAddress()
		if err != nil {
			return nil, err
		}
		args := []string{"--web.listen-address=" + addr, "--log.level=error"}
		if o.peerQueries != "" {
			args = append(args, "--extend.query-path="+o.peerQueries)
		}
		cmd := exec.CommandContext(ctx, path, args...)
		cmd.Env = append(os.Environ(), "DATA_SOURCE_NAME="+url)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("starting postgres_exporter %s: %w", path, err)
		}
		metrics := "http://" + addr + "/metrics"
		if err := waitHTTP(metrics, 2*time.Minute); err != nil {
			stopServe(cmd)
			return nil, fmt.Errorf("postgres_exporter %s: %w", path, err)
		}
		done := make(chan struct{})
		scraped := make(chan struct{})
		go func() {
			defer close(scraped)
			tick := time.NewTicker(peerScrapeInterval / time.Duration(o.speedup))
			defer tick.Stop()
			for {
				select {
				case <-done:
					return
				case <-tick.C:
					_, _ = get(metrics) // a failed scrape costs the database nothing to count
				}
			}
		}()
		return func() { close(done); <-scraped; stopServe(cmd) }, nil
	}, settle: firstRounds / time.Duration(o.speedup)}
}

// firstRounds is the least time a workload settles at its normal rates
// (workload.settle): ten scrapes of 15 s.
const firstRounds = 10 * 15 * time.Second

// peerScrapeInterval is how often the peer is scraped in the hour the
// database time is scaled to (issue 16's comparison).
const peerScrapeInterval = 30 * time.Second

// measureDBTime runs w on database name as its own role. Once its first
// rounds are done (a start's cost, not an hour's), it resets
// pg_stat_statements, waits o.dbTimeWindow and scales what w's statements
// and backends cost to an hour at its intervals. With o.writes, a writer
// updates every row of every table every sizes interval, so every
// partition has changed when sizes runs: the worst case for sizing only
// changed partitions.
func measureDBTime(ctx context.Context, name, url string, w workload, o options) (dbTime, error) {
	var r dbTime
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return r, err
	}
	defer conn.Close(ctx)
	role := pgx.Identifier{w.role}.Sanitize()
	for _, sql := range []string{
		`DO $$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '` + w.role + `') THEN CREATE ROLE ` + role + ` LOGIN IN ROLE pg_monitor; END IF; END$$`,
		`GRANT SELECT ON ALL TABLES IN SCHEMA public TO ` + role,
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			return r, fmt.Errorf("creating the benchmark role %s: %w", w.role, err)
		}
	}
	roleURL := strings.Replace(url, "postgres://"+throwaway.Superuser+"@", "postgres://"+w.role+"@", 1)
	stopWorkload, err := w.start(ctx, roleURL)
	if err != nil {
		return r, err
	}
	defer stopWorkload()
	var stop func() error
	if o.writes {
		stop = startWriter(ctx, url, o.tables, o.writeEvery)
	}
	// Past the first rounds (workload.settle): a start's cost, not an hour's.
	time.Sleep(w.settle)
	if _, err := conn.Exec(ctx, `SELECT pg_stat_statements_reset((SELECT oid FROM pg_roles WHERE rolname = $1), (SELECT oid FROM pg_database WHERE datname = $2), 0)`, w.role, name); err != nil {
		return r, fmt.Errorf("resetting pg_stat_statements: %w", err)
	}
	cpuBefore, err := backendCPU(ctx, conn, w.role)
	if err != nil {
		return r, err
	}
	time.Sleep(o.dbTimeWindow)
	cpuAfter, err := backendCPU(ctx, conn, w.role)
	if err != nil {
		return r, err
	}
	if stop != nil {
		if err := stop(); err != nil {
			return r, err
		}
	}
	var ms float64
	if err := conn.QueryRow(ctx, `SELECT coalesce(sum(s.total_exec_time + s.total_plan_time), 0)
FROM pg_stat_statements s WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = $1) AND s.userid = (SELECT oid FROM pg_roles WHERE rolname = $2)`, name, w.role).Scan(&ms); err != nil {
		return r, fmt.Errorf("reading pg_stat_statements: %w", err)
	}
	var cpu time.Duration
	for pid, after := range cpuAfter {
		cpu += after - cpuBefore[pid] // a backend started meanwhile counts from 0
	}
	perHour := func(d time.Duration) time.Duration {
		return time.Duration(float64(d) * float64(time.Hour) / float64(o.dbTimeWindow) / float64(o.speedup))
	}
	r = dbTime{statements: perHour(time.Duration(ms * float64(time.Millisecond))), cpu: perHour(cpu)}
	if o.topStatements > 0 {
		if err := printTopStatements(ctx, conn, name, w, o.dbTimeWindow*time.Duration(o.speedup), o.topStatements); err != nil {
			return r, err
		}
	}
	return r, nil
}

// backendCPU reads the CPU time (user and system) of every backend role
// has open, from /proc: the benchmark runs the server on this machine.
func backendCPU(ctx context.Context, conn *pgx.Conn, role string) (map[int]time.Duration, error) {
	rows, err := conn.Query(ctx, `SELECT pid FROM pg_stat_activity WHERE usename = $1`, role)
	if err != nil {
		return nil, fmt.Errorf("listing %s's backends: %w", role, err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return nil, fmt.Errorf("listing %s's backends: %w", role, err)
	}
	out := map[int]time.Duration{}
	for _, pid := range pids {
		cpu, err := processCPU(pid)
		if err != nil {
			continue // ended meanwhile
		}
		out[pid] = cpu
	}
	return out, nil
}

// startWriter updates every row of the bench tables every interval until
// the returned stop is called.
func startWriter(ctx context.Context, url string, tables int, every time.Duration) func() error {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			done <- err
			return
		}
		defer conn.Close(context.Background())
		for {
			for i := 0; i < tables; i++ {
				if _, err := conn.Exec(ctx, fmt.Sprintf(`UPDATE %s SET n = n + 1`, pgx.Identifier{fmt.Sprintf("bench_%d", i)}.Sanitize())); err != nil {
					if ctx.Err() != nil {
						done <- nil
					} else {
						done <- fmt.Errorf("writer: %w", err)
					}
					return
				}
			}
			select {
			case <-ctx.Done():
				done <- nil
				return
			case <-time.After(every / 2):
			}
		}
	}()
	return func() error {
		cancel()
		return <-done
	}
}

// printTopStatements prints to stderr the statements of database name that
// cost the most (execution plus planning) in the window: where to look.
func printTopStatements(ctx context.Context, conn *pgx.Conn, name string, w workload, window time.Duration, top int) error {
	rows, err := conn.Query(ctx, `SELECT s.calls, s.total_exec_time, s.total_plan_time, regexp_replace(s.query, '\s+', ' ', 'g')
FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid JOIN pg_roles u ON u.oid = s.userid
WHERE d.datname = $1 AND u.rolname = $3
ORDER BY s.total_exec_time + s.total_plan_time DESC LIMIT $2`, name, top, w.role)
	if err != nil {
		return fmt.Errorf("reading the costliest statements: %w", err)
	}
	defer rows.Close()
	fmt.Fprintf(os.Stderr, "%s's costliest statements in %s over %s at its intervals (calls, exec ms, plan ms, s/h, text):\n", w.name, name, window)
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
