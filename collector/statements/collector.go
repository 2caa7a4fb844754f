// Package statements publishes pg_stat_statements per watched table rather
// than per queryid: the calls, execution time and (with
// pg_stat_statements.track_planning on) planning time of the statements
// whose text names the table, one of its partitions, or a view over it.
//
// Attribution reads each statement's normalized text once (Attribute) and
// caches the result by queryid; a round reads only the counters, without
// texts, plus the texts of at most MaxNewPerRound new statements. A
// statement naming two watched tables counts for both, so the per-table
// sums can exceed the database's total. Not attributed: statements that
// reach a table only through a function, or through a view over a view,
// and EXPLAIN statements (pgcapacity's own probes among them).
//
// The counters are pgcapacity's own and only grow: each round adds every
// pg_stat_statements entry's growth since the previous round, so an entry
// evicted (pg_stat_statements.max) or reset never makes a counter go back;
// an entry seen for the first time adds all it has.
package statements

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sigid/pgcapacity/collector"
	"github.com/sigid/pgcapacity/internal/config"
)

// Name is the collector's name.
const Name = "statements"

// DefaultMaxNewPerRound bounds the statements whose text one round reads
// and attributes.
const DefaultMaxNewPerRound = 500

var (
	tableLabels = []string{"schema", "table"}
	descCalls   = prometheus.NewDesc("pgcapacity_statements_calls_total",
		"Calls of the statements that name the table (pg_stat_statements), as counted by pgcapacity since it started.", tableLabels, nil)
	descExec = prometheus.NewDesc("pgcapacity_statements_exec_seconds_total",
		"Execution time of the statements that name the table (pg_stat_statements total_exec_time).", tableLabels, nil)
	descPlan = prometheus.NewDesc("pgcapacity_statements_plan_seconds_total",
		"Planning time of the statements that name the table (pg_stat_statements total_plan_time); only with pg_stat_statements.track_planning on.", tableLabels, nil)
	descAvailable = prometheus.NewDesc("pgcapacity_statements_available",
		"1 when pg_stat_statements is installed in this database and loaded; 0 otherwise.", nil, nil)
	descPending = prometheus.NewDesc("pgcapacity_statements_pending_attribution",
		"pg_stat_statements entries whose text is not read yet (more new statements than one round attributes).", nil, nil)
)

// Options configure a Collector.
type Options struct {
	// Tables are the watched table patterns (PGCAPACITY_TABLES); empty:
	// every hash-partitioned table.
	Tables         []string
	Interval       time.Duration
	MaxNewPerRound int
	Logger         *slog.Logger
}

// Collector is the statements collector.
type Collector struct {
	opts   Options
	logger *slog.Logger

	mu         sync.Mutex
	catalog    string             // collector.CatalogSignatureSQL when watched was read
	watched    []Table            // the watched tables, as last read
	nm         *names             // every name that stands for them
	namesKey   [sha256.Size]byte  // hash of the watched names the cache was built for
	attributed map[int64][]Table  // queryid → tables it names (maybe none)
	last       map[entry]counters // entry → counters when last added
	totals     map[Table]*counters
	unusable   string // why pg_stat_statements was unusable last round, for logging once
}

type entry struct {
	userid   uint32
	queryid  int64
	toplevel bool
}

type counters struct {
	calls      float64
	execMillis float64
	planMillis float64
}

// New builds the collector.
func New(opts Options) *Collector {
	if opts.Interval <= 0 {
		opts.Interval = time.Minute
	}
	if opts.MaxNewPerRound <= 0 {
		opts.MaxNewPerRound = DefaultMaxNewPerRound
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Collector{
		opts:       opts,
		logger:     logger.With("collector", Name),
		attributed: map[int64][]Table{},
		last:       map[entry]counters{},
		totals:     map[Table]*counters{},
	}
}

// NewFromConfig builds the collector from the configuration.
func NewFromConfig(cfg config.Config, logger *slog.Logger) *Collector {
	return New(Options{Tables: cfg.Tables, Interval: cfg.StatementsInterval.D(), Logger: logger})
}

// Name implements collector.Collector.
func (c *Collector) Name() string { return Name }

// Interval implements collector.Collector.
func (c *Collector) Interval() time.Duration { return c.opts.Interval }

// Sample is one round's result.
type Sample struct {
	Available bool
	// NotApplicable says why pg_stat_statements cannot serve when not
	// Available: the one reason the WARN and check give.
	NotApplicable string
	TrackPlanning bool
	Tables        []TableTotals
	Pending       int // entries left for later rounds by the cap
}

// TableTotals are one watched table's counters.
type TableTotals struct {
	Table
	Calls float64
	Exec  time.Duration
	Plan  time.Duration
}

// Collect implements collector.Collector.
func (c *Collector) Collect(ctx context.Context, pool *pgxpool.Pool) ([]prometheus.Metric, error) {
	s, err := c.Sample(ctx, pool)
	if err != nil {
		return nil, err
	}
	if !s.Available {
		return []prometheus.Metric{prometheus.MustNewConstMetric(descAvailable, prometheus.GaugeValue, 0)}, nil
	}
	out := []prometheus.Metric{
		prometheus.MustNewConstMetric(descAvailable, prometheus.GaugeValue, 1),
		prometheus.MustNewConstMetric(descPending, prometheus.GaugeValue, float64(s.Pending)),
	}
	for _, t := range s.Tables {
		out = append(out,
			prometheus.MustNewConstMetric(descCalls, prometheus.CounterValue, t.Calls, t.Schema, t.Name),
			prometheus.MustNewConstMetric(descExec, prometheus.CounterValue, t.Exec.Seconds(), t.Schema, t.Name))
		if s.TrackPlanning {
			out = append(out, prometheus.MustNewConstMetric(descPlan, prometheus.CounterValue, t.Plan.Seconds(), t.Schema, t.Name))
		}
	}
	return out, nil
}

// Sample runs one round: at most four queries whatever the number of
// tables, partitions and statements; the list of watched tables, their
// partitions and views is read only when the catalog changed.
func (c *Collector) Sample(ctx context.Context, pool *pgxpool.Pool) (Sample, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ext, err := readExtension(ctx, pool)
	if err != nil {
		return Sample{}, err
	}
	if why := ext.unusable(); why != "" {
		c.unavailable(why)
		return Sample{NotApplicable: why}, nil
	}
	if ext.catalog != c.catalog || c.nm == nil {
		// Tables, partitions or views may have changed: list them again.
		watched, nm, key, err := c.readWatched(ctx, pool)
		if err != nil {
			return Sample{}, err
		}
		c.watched, c.nm, c.catalog = watched, nm, ext.catalog
		if key != c.namesKey {
			// Other tables, partitions or views: attribute every statement anew.
			c.namesKey, c.attributed = key, map[int64][]Table{}
		}
	}
	watched, nm := c.watched, c.nm
	entries, err := readEntries(ctx, pool, ext)
	if err != nil {
		if why := unloaded(err); why != "" {
			c.unavailable(why)
			return Sample{NotApplicable: why}, nil
		}
		return Sample{}, err
	}
	if c.unusable != "" {
		c.logger.Info("pg_stat_statements is usable again")
		c.unusable = ""
	}
	var fresh []int64
	queued := map[int64]bool{}
	for _, e := range entries {
		if _, done := c.attributed[e.queryid]; !done && !queued[e.queryid] && len(fresh) < c.opts.MaxNewPerRound {
			queued[e.queryid] = true
			fresh = append(fresh, e.queryid)
		}
	}
	if len(fresh) > 0 {
		texts, err := readTexts(ctx, pool, ext, fresh)
		if err != nil {
			return Sample{}, err
		}
		for _, id := range fresh {
			c.attributed[id] = nm.Attribute(texts[id]) // no text (evicted meanwhile): no table
		}
	}

	// Add each attributed entry's growth; entries not yet attributed keep
	// their last counters, so nothing is lost while they wait.
	present := map[entry]bool{}
	presentIDs := map[int64]bool{}
	pending := 0
	for _, e := range entries {
		present[e.key] = true
		presentIDs[e.queryid] = true
		tables, done := c.attributed[e.queryid]
		if !done {
			pending++
			continue
		}
		prev, seen := c.last[e.key]
		growth := e.counters
		if seen && e.calls >= prev.calls && e.execMillis >= prev.execMillis && e.planMillis >= prev.planMillis {
			growth = counters{e.calls - prev.calls, e.execMillis - prev.execMillis, e.planMillis - prev.planMillis}
		}
		c.last[e.key] = e.counters
		for _, t := range tables {
			tot := c.totals[t]
			if tot == nil {
				tot = &counters{}
				c.totals[t] = tot
			}
			tot.calls += growth.calls
			tot.execMillis += growth.execMillis
			tot.planMillis += growth.planMillis
		}
	}
	// Forget what pg_stat_statements forgot: memory follows its size.
	for k := range c.last {
		if !present[k] {
			delete(c.last, k)
		}
	}
	for id := range c.attributed {
		if !presentIDs[id] {
			delete(c.attributed, id)
		}
	}
	s := Sample{Available: true, TrackPlanning: ext.trackPlanning, Pending: pending}
	for _, t := range watched {
		tot := c.totals[t]
		if tot == nil {
			tot = &counters{}
		}
		s.Tables = append(s.Tables, TableTotals{Table: t, Calls: tot.calls,
			Exec: time.Duration(tot.execMillis * float64(time.Millisecond)), Plan: time.Duration(tot.planMillis * float64(time.Millisecond))})
	}
	return s, nil
}

func (c *Collector) unavailable(why string) {
	if why != c.unusable {
		// Not applicable, not failing: the collector still succeeds.
		c.logger.Warn("pg_stat_statements is not usable; pgcapacity_statements_available is 0: install it (shared_preload_libraries, CREATE EXTENSION pg_stat_statements) or leave statements out of PGCAPACITY_COLLECTORS", "reason", why)
		c.unusable = why
	}
}

type extension struct {
	catalog       string // collector.CatalogSignatureSQL
	installed     bool
	schema        string
	major, minor  int
	trackPlanning bool
}

// unusable says why the extension cannot serve, or "".
func (e extension) unusable() string {
	switch {
	case !e.installed:
		return "the extension is not installed in this database: CREATE EXTENSION pg_stat_statements (and preload it with shared_preload_libraries)"
	case e.major < 1 || (e.major == 1 && e.minor < 8):
		return fmt.Sprintf("pg_stat_statements %d.%d predates total_exec_time (1.8, PostgreSQL 13): ALTER EXTENSION pg_stat_statements UPDATE", e.major, e.minor)
	}
	return ""
}

func readExtension(ctx context.Context, pool *pgxpool.Pool) (extension, error) {
	var e extension
	var version, track *string
	err := pool.QueryRow(ctx, `
SELECT n.nspname::text, e.extversion, current_setting('pg_stat_statements.track_planning', true), `+collector.CatalogSignatureSQL+`
FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
WHERE e.extname = 'pg_stat_statements'`).Scan(&e.schema, &version, &track, &e.catalog)
	if errors.Is(err, pgx.ErrNoRows) {
		return e, nil
	}
	if err != nil {
		return e, fmt.Errorf("looking for pg_stat_statements: %w", err)
	}
	e.installed = true
	e.trackPlanning = track != nil && *track == "on"
	if version != nil {
		major, minor, _ := strings.Cut(*version, ".")
		e.major, _ = strconv.Atoi(major)
		e.minor, _ = strconv.Atoi(minor)
	}
	return e, nil
}

// unloaded tells the error of an installed but not preloaded extension.
func unloaded(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "55000" {
		return pgErr.Message + ": add it to shared_preload_libraries and restart PostgreSQL"
	}
	return ""
}

// watchedSQL lists the partitioned tables (hash-partitioned unless
// patterns select others) with every name that stands for them: their
// partitions at every level and the views whose rules read them or one of
// their partitions. One query, whatever the number of partitions; catalog
// reads only, no relation locks.
const watchedSQL = `
WITH RECURSIVE top AS (
	SELECT c.oid, n.nspname::text AS schema, c.relname::text AS name, p.partstrat::text AS strategy
	FROM pg_partitioned_table p
	JOIN pg_class c ON c.oid = p.partrelid
	JOIN pg_namespace n ON n.oid = c.relnamespace
	WHERE NOT c.relispartition
), member AS (
	-- pg_inherits, not pg_partition_tree(): that locks every partition, so
	-- one ACCESS EXCLUSIVE lock (a swap, a DDL, VACUUM FULL) would fail the round.
	SELECT top.oid AS top, top.oid AS relid FROM top
  UNION ALL
	SELECT m.top, i.inhrelid FROM member m JOIN pg_inherits i ON i.inhparent = m.relid
)
SELECT top.schema, top.name, top.strategy, rn.nspname::text, r.relname::text
FROM top
JOIN member m ON m.top = top.oid
JOIN pg_class r ON r.oid = m.relid
JOIN pg_namespace rn ON rn.oid = r.relnamespace
UNION
SELECT top.schema, top.name, top.strategy, vn.nspname::text, v.relname::text
FROM top
JOIN member m ON m.top = top.oid
JOIN pg_depend d ON d.refclassid = 'pg_class'::regclass AND d.refobjid = m.relid AND d.classid = 'pg_rewrite'::regclass
JOIN pg_rewrite rw ON rw.oid = d.objid
JOIN pg_class v ON v.oid = rw.ev_class AND v.relkind IN ('v', 'm') AND v.oid <> m.relid
JOIN pg_namespace vn ON vn.oid = v.relnamespace
ORDER BY 1, 2, 4, 5`

func (c *Collector) readWatched(ctx context.Context, pool *pgxpool.Pool) ([]Table, *names, [sha256.Size]byte, error) {
	var key [sha256.Size]byte
	rows, err := pool.Query(ctx, watchedSQL)
	if err != nil {
		return nil, nil, key, fmt.Errorf("listing watched tables, their partitions and views: %w", err)
	}
	defer rows.Close()
	nm := newNames()
	var watched []Table
	// A hash, not the list: at 16,384 partitions the list is a megabyte.
	h := sha256.New()
	for rows.Next() {
		var schema, table, strategy, relSchema, rel string
		if err := rows.Scan(&schema, &table, &strategy, &relSchema, &rel); err != nil {
			return nil, nil, key, fmt.Errorf("reading watched tables: %w", err)
		}
		if (len(c.opts.Tables) == 0 && strategy != "h") || (len(c.opts.Tables) > 0 && !config.MatchAny(c.opts.Tables, schema, table)) {
			continue
		}
		t := Table{schema, table}
		if len(watched) == 0 || watched[len(watched)-1] != t {
			watched = append(watched, t)
		}
		nm.add(relSchema, rel, t)
		fmt.Fprintf(h, "%q.%q=%q.%q\n", relSchema, rel, schema, table)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, key, fmt.Errorf("listing watched tables: %w", err)
	}
	copy(key[:], h.Sum(nil))
	return watched, nm, key, nil
}

type stat struct {
	key     entry
	queryid int64
	counters
}

// readEntries reads the counters of this database's statements, without
// their texts.
func readEntries(ctx context.Context, pool *pgxpool.Pool, ext extension) ([]stat, error) {
	toplevel := "true"
	if ext.major > 1 || ext.minor >= 9 { // toplevel came with 1.9 (PostgreSQL 14)
		toplevel = "s.toplevel"
	}
	sql := fmt.Sprintf(`
SELECT s.userid, s.queryid, %s, s.calls, s.total_exec_time, s.total_plan_time
FROM %s.pg_stat_statements(false) s
WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND s.queryid IS NOT NULL`, toplevel, pgx.Identifier{ext.schema}.Sanitize())
	rows, err := pool.Query(ctx, sql)
	if err != nil {
		return nil, fmt.Errorf("reading pg_stat_statements: %w", err)
	}
	defer rows.Close()
	var out []stat
	for rows.Next() {
		var s stat
		var calls int64
		if err := rows.Scan(&s.key.userid, &s.queryid, &s.key.toplevel, &calls, &s.execMillis, &s.planMillis); err != nil {
			return nil, fmt.Errorf("reading pg_stat_statements: %w", err)
		}
		s.key.queryid, s.calls = s.queryid, float64(calls)
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading pg_stat_statements: %w", err)
	}
	return out, nil
}

// readTexts reads the texts of the given statements. PostgreSQL reads its
// whole query-text file for this, hence the cap on new statements and the
// cache: in a steady state no round reads texts at all.
func readTexts(ctx context.Context, pool *pgxpool.Pool, ext extension, ids []int64) (map[int64]string, error) {
	sql := fmt.Sprintf(`
SELECT DISTINCT ON (s.queryid) s.queryid, s.query
FROM %s.pg_stat_statements(true) s
WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND s.queryid = ANY($1)`, pgx.Identifier{ext.schema}.Sanitize())
	rows, err := pool.Query(ctx, sql, ids)
	if err != nil {
		return nil, fmt.Errorf("reading statement texts from pg_stat_statements: %w", err)
	}
	defer rows.Close()
	out := make(map[int64]string, len(ids))
	for rows.Next() {
		var id int64
		var text *string
		if err := rows.Scan(&id, &text); err != nil {
			return nil, fmt.Errorf("reading statement texts: %w", err)
		}
		if text != nil {
			out[id] = *text
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading statement texts: %w", err)
	}
	return out, nil
}
