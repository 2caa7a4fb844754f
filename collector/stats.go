package collector

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/sigid/pgcapacity/collector/migrationtables"
	"github.com/sigid/pgcapacity/internal/config"
	"github.com/sigid/pgcapacity/internal/playbook/vacuumlag"
)

// partitionTreeCTE is the full walk of the partition tree: roots and
// leaves (catalog.go). Catalog reads only: no relation locks.
const partitionTreeCTE = `
WITH RECURSIVE` + treeWalkCTE + `,
roots AS MATERIALIZED (` + rootColumnsFrom + `
    WHERE pt.partrelid IN (SELECT root FROM tree WHERE root = relid)
),
leaves AS (` + leafSelect + `
    FROM tree t` + leafJoins + `
)`

// settingsSQL reads the server settings of a round. autovacuum_vacuum_max_threshold
// exists from PostgreSQL 18 on; missing_ok makes it NULL before.
const settingsSQL = `
SELECT pg_catalog.pg_size_bytes(current_setting('shared_buffers'))::float8,
       current_setting('autovacuum_freeze_max_age')::float8,
       current_setting('autovacuum_vacuum_threshold')::float8,
       current_setting('autovacuum_vacuum_scale_factor')::float8,
       current_setting('autovacuum_analyze_threshold')::float8,
       current_setting('autovacuum_analyze_scale_factor')::float8,
       current_setting('autovacuum_vacuum_max_threshold', true),
       current_setting('server_version_num')::int,
       now(),
       pg_catalog.pg_is_in_recovery(),
       pg_catalog.pg_postmaster_start_time(),
       pg_catalog.age('3'::xid)`

// statsSQL reads the tree and its statistics: the walk when the catalog
// signature differs from $1, else the cached OIDs ($2 roots; $3 leaves with
// $4 their TOAST tables and $5 their vacuum and analyze counters when last
// read; $6 pg_class's and pg_namespace's counters when last read), and each
// leaf's pg_class columns only when they may have changed (catalog.go).
// Rows of kind 0 are the walk's, a root with one leaf and its statistics;
// else kind 1 is a root, kind 2 a leaf's statistics, kind 3 a leaf's
// pg_class columns. The cached branch joins nothing per leaf: at 4,096
// partitions every join costs as much as all the statistics functions.
// Statistics come from the pg_stat_get_* functions by OID (what
// pg_stat_user_tables wraps), which take no locks.
const statsSQL = `
WITH RECURSIVE` + treeSignatureCTE + `,` + treeWalkCTE + `,
roots AS MATERIALIZED (` + rootColumnsFrom + `
    WHERE pt.partrelid IN (SELECT root FROM tree WHERE root = relid)
),
leaves AS (` + leafSelect + `
    FROM tree t` + leafJoins + `
),
-- MATERIALIZED: every counter is read before any pg_class row, so a
-- VACUUM finishing meanwhile makes the next round read the row again.
cached AS MATERIALIZED (
    SELECT t.relid AS oid, t.toast, t.last, ` + leafKeyCached + ` AS key
    FROM unnest($3::oid[], $4::oid[], $5::int8[]) AS t(relid, toast, last)
    WHERE (SELECT s FROM sig) = $1
),
reread AS (
    SELECT c.oid, cn.nspname, c.relname, c.reltuples, c.reloptions, c.reltoastrelid, c.relfrozenxid,
           toast.relfrozenxid AS toast_frozen
    FROM cached t
    JOIN pg_catalog.pg_class c ON c.oid = t.oid
    JOIN pg_catalog.pg_namespace cn ON cn.oid = c.relnamespace
    LEFT JOIN pg_catalog.pg_class toast ON toast.oid = c.reltoastrelid
    WHERE t.key IS DISTINCT FROM t.last OR (SELECT in_recovery OR catalog_key IS DISTINCT FROM $6 FROM sig)
)
SELECT 0::int2 AS kind, (SELECT s FROM sig), (SELECT catalog_key FROM sig),
       r.root, r.root_schema, r.root_name, r.strategy, r.partition_key, r.first_key_column, r.parent_analyzed, r.parent_has_statistics,
       l.oid, l.nspname, l.relname, l.reltuples::float8, l.reloptions, l.reltoastrelid, l.relfrozenxid, toast.relfrozenxid,
       ` + leafKeyWalked + `,` + leafStatistics + `
FROM roots r
LEFT JOIN leaves l ON l.root = r.root
LEFT JOIN pg_catalog.pg_class toast ON toast.oid = l.reltoastrelid
WHERE (SELECT s FROM sig) IS DISTINCT FROM $1
UNION ALL
SELECT 1, NULL, (SELECT catalog_key FROM sig),
       r.root, r.root_schema, r.root_name, r.strategy, r.partition_key, r.first_key_column, r.parent_analyzed, r.parent_has_statistics,
       NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       NULL, NULL, NULL, NULL, NULL, NULL
FROM (` + rootColumnsFrom + `
    WHERE pt.partrelid = ANY ($2::oid[])) r
WHERE (SELECT s FROM sig) = $1
UNION ALL
SELECT 2, NULL, NULL,
       NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       l.oid, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       l.key,` + leafStatistics + `
FROM cached l
UNION ALL
SELECT 3, NULL, NULL,
       NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       c.oid, c.nspname, c.relname, c.reltuples::float8, c.reloptions, c.reltoastrelid, c.relfrozenxid, c.toast_frozen,
       NULL, NULL, NULL, NULL, NULL, NULL
FROM reread c`

// leafStatistics are the statistics of leaf l.
const leafStatistics = `
       coalesce(pg_catalog.pg_stat_get_live_tuples(l.oid), 0)::float8,
       coalesce(pg_catalog.pg_stat_get_dead_tuples(l.oid), 0)::float8,
       coalesce(pg_catalog.pg_stat_get_mod_since_analyze(l.oid), 0)::float8,
       greatest(pg_catalog.pg_stat_get_last_vacuum_time(l.oid), pg_catalog.pg_stat_get_last_autovacuum_time(l.oid)),
       greatest(pg_catalog.pg_stat_get_last_analyze_time(l.oid), pg_catalog.pg_stat_get_last_autoanalyze_time(l.oid))`

// vacuumTimeSQL reads PostgreSQL 18's cumulative vacuum time per partition
// (milliseconds); the functions do not exist before 18, so it runs only there.
const vacuumTimeSQL = `
SELECT o.oid, pg_catalog.pg_stat_get_total_vacuum_time(o.oid)::float8, pg_catalog.pg_stat_get_total_autovacuum_time(o.oid)::float8
FROM unnest($1::oid[]) AS o(oid)`

// Selection decides which partitioned tables are watched and which are hot.
type Selection struct {
	Tables       []string // patterns; empty: every hash-partitioned table
	HotTables    []string // patterns
	TenantColumn string   // tenant key when the partition key is an expression
}

func (s Selection) watched(schema, name, strategy string) bool {
	if len(s.Tables) == 0 {
		return strategy == "hash"
	}
	return matchAny(s.Tables, schema, name)
}

// Stats samples row counts, dead rows, vacuum and analyze state and xid age
// of every watched partition: two queries a round whatever the partition count.
type Stats struct {
	selection Selection
	interval  time.Duration
	detail    Detail
	// publishInfo: this collector publishes pgcapacity_partition_detail_info
	// (serve's; a benchmark's bare collectors do not).
	publishInfo bool

	mu   sync.Mutex
	lags map[uint32]lagState // by partition OID; state kept across rounds

	catalog statsCacheLock
}

// lagState remembers since when a partition's dead rows (or modified rows)
// have stood above its autovacuum (or autoanalyze) trigger.
type lagState struct {
	vacuumSince  time.Time
	analyzeSince time.Time
}

// NewStats returns the stats collector.
func NewStats(sel Selection, interval time.Duration, partitionDetail bool) *Stats {
	return &Stats{selection: sel, interval: interval, detail: detailFromBool(partitionDetail), lags: map[uint32]lagState{}}
}

// WithDetail sets which partitions publish per-partition series; it also
// makes the collector publish pgcapacity_partition_detail_info.
func (s *Stats) WithDetail(d Detail) *Stats {
	s.detail = d
	s.publishInfo = true
	return s
}

// Name implements Collector.
func (s *Stats) Name() string { return "stats" }

// Interval implements Collector.
func (s *Stats) Interval() time.Duration { return s.interval }

// Sample runs one round and returns the server settings and watched tables.
// The tables migrate owns are not among them.
func (s *Stats) Sample(ctx context.Context, db *pgxpool.Pool) (Server, []Table, error) {
	srv, tables, _, err := s.sample(ctx, db)
	return srv, tables, err
}

// sample also returns the tables migrate owns, with their partitions'
// statistics (lag is not tracked for them).
func (s *Stats) sample(ctx context.Context, db *pgxpool.Pool) (Server, []Table, []owned[Table], error) {
	var batch pgx.Batch
	var srv Server
	var maxThreshold *string
	var age3 int32 // age('3'::xid): the next transaction id is age3 + 3
	batch.Queue(settingsSQL).QueryRow(func(row pgx.Row) error {
		if err := row.Scan(&srv.SharedBuffersBytes, &srv.FreezeMaxAge, &srv.VacuumThreshold, &srv.VacuumScaleFactor,
			&srv.AnalyzeThreshold, &srv.AnalyzeScaleFactor, &maxThreshold, &srv.VersionNum, &srv.Now, &srv.InRecovery, &srv.StartedAt, &age3); err != nil {
			return err
		}
		srv.VacuumMaxThreshold = vacuumlag.ParseMaxThreshold(maxThreshold)
		return nil
	})
	var tables []Table
	cache := s.catalog.load()
	batch.Queue(statsSQL, cache.args()...).Query(func(rows pgx.Rows) error {
		// The settings row has been read: the batch answers in order.
		next, err := s.scanTables(rows, &srv, cache, uint32(age3)+3)
		tables = next
		return err
	})
	if err := db.SendBatch(ctx, &batch).Close(); err != nil {
		return srv, nil, nil, fmt.Errorf("reading partition statistics: %w", err)
	}
	// After the catalog query: a migration that started since is recorded.
	records, err := migrationtables.Read(ctx, db)
	if err != nil {
		return srv, nil, nil, err
	}
	tables, owned := splitOwned(tables, records, func(t Table) (string, string, uint32) { return t.Schema, t.Name, t.OID },
		func(t Table) bool { return s.selection.watched(t.Schema, t.Name, t.Strategy) })
	if srv.VersionNum >= 180000 {
		if err := readVacuumTime(ctx, db, tables); err != nil {
			return srv, nil, nil, err
		}
	}
	s.applyLag(srv, tables)
	return srv, tables, owned, nil
}

// readVacuumTime fills the vacuum time counters of PostgreSQL 18+.
func readVacuumTime(ctx context.Context, db *pgxpool.Pool, tables []Table) error {
	byOID := map[uint32]*Partition{}
	oids := []uint32{}
	for ti := range tables {
		for pi := range tables[ti].Partitions {
			p := &tables[ti].Partitions[pi]
			byOID[p.OID] = p
			oids = append(oids, p.OID)
		}
	}
	if len(oids) == 0 {
		return nil
	}
	rows, err := db.Query(ctx, vacuumTimeSQL, oids)
	if err != nil {
		return fmt.Errorf("reading vacuum time: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var oid uint32
		var vacuumMS, autovacuumMS float64
		if err := rows.Scan(&oid, &vacuumMS, &autovacuumMS); err != nil {
			return fmt.Errorf("reading vacuum time: %w", err)
		}
		if p := byOID[oid]; p != nil {
			p.VacuumSeconds, p.AutovacuumSeconds, p.HasVacuumTime = vacuumMS/1000, autovacuumMS/1000, true
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading vacuum time: %w", err)
	}
	return nil
}

// statsRow is one row of statsSQL; which columns are set depends on kind.
type statsRow struct {
	kind       int16
	signature  string
	catalogKey pgtype.Int8
	root       uint32 // kinds 0 and 1
	rootInfo   rootRow
	oid        pgtype.Uint32
	leaf       cachedLeaf // the pg_class columns (kinds 0 and 3)
	stats      leafStats  // kinds 0 and 2
}

// leafStats are a leaf's statistics of one round, kept by OID until the
// round's rows are all read: only what the partition needs, 4,096 of them.
type leafStats struct {
	key                  int64 // leafKey; -1 when unknown
	live, dead, modified float64
	lastVacuum, lastAna  time.Time // zero: never
}

// rootRow is a root's description.
type rootRow struct {
	schema, name, strategy, key string
	firstKey                    string
	parentAnalyzed              time.Time // zero: never, or not reported
	parentHasStatistics         bool
}

// statsScanner holds the destinations of statsSQL's columns, reused for
// every row: a row's own variables would be twenty allocations, and at
// 16,384 partitions a round's garbage is what the exporter's RSS follows.
type statsScanner struct {
	kind                                  int16
	signature                             pgtype.Text
	catalogKey                            pgtype.Int8
	root                                  pgtype.Uint32
	schema, name, strategy, key, firstKey pgtype.Text
	parentAnalyzed                        pgtype.Timestamptz
	parentHasStatistics                   pgtype.Bool
	oid                                   pgtype.Uint32
	leafSchema, leafName                  pgtype.Text
	reltuples                             pgtype.Float8
	reloptions                            []string
	toast, frozen, toastFrozen            pgtype.Uint32
	leafKey                               pgtype.Int8
	live, dead, modified                  pgtype.Float8
	lastVacuum, lastAnalyze               pgtype.Timestamptz
	dest                                  []any
}

func newStatsScanner() *statsScanner {
	sc := &statsScanner{}
	sc.dest = []any{&sc.kind, &sc.signature, &sc.catalogKey,
		&sc.root, &sc.schema, &sc.name, &sc.strategy, &sc.key, &sc.firstKey, &sc.parentAnalyzed, &sc.parentHasStatistics,
		&sc.oid, &sc.leafSchema, &sc.leafName, &sc.reltuples, &sc.reloptions, &sc.toast, &sc.frozen, &sc.toastFrozen,
		&sc.leafKey, &sc.live, &sc.dead, &sc.modified, &sc.lastVacuum, &sc.lastAnalyze}
	return sc
}

// scan reads the current row into r.
func (sc *statsScanner) scan(rows pgx.Rows, r *statsRow) error {
	sc.reloptions = nil // kept by the cache: a new slice for every row
	if err := rows.Scan(sc.dest...); err != nil {
		return err
	}
	key := int64(-1)
	if sc.leafKey.Valid {
		key = sc.leafKey.Int64
	}
	*r = statsRow{
		kind: sc.kind, signature: sc.signature.String, catalogKey: sc.catalogKey, root: sc.root.Uint32, oid: sc.oid,
		rootInfo: rootRow{schema: sc.schema.String, name: sc.name.String, strategy: sc.strategy.String, key: sc.key.String,
			firstKey: sc.firstKey.String, parentAnalyzed: sc.parentAnalyzed.Time, parentHasStatistics: sc.parentHasStatistics.Bool},
		leaf: cachedLeaf{schema: sc.leafSchema.String, name: sc.leafName.String, reltuples: sc.reltuples.Float64, reloptions: sc.reloptions,
			toast: sc.toast.Uint32, frozenXID: sc.frozen.Uint32, toastFrozenXID: sc.toastFrozen.Uint32},
		stats: leafStats{key: key, live: sc.live.Float64, dead: sc.dead.Float64, modified: sc.modified.Float64,
			lastVacuum: sc.lastVacuum.Time, lastAna: sc.lastAnalyze.Time},
	}
	return nil
}

// scanTables reads statsSQL's rows into tables, taking what they leave
// out from the cache they were asked with (old), and stores the next cache.
func (s *Stats) scanTables(rows pgx.Rows, srv *Server, old *statsCache, nextXID uint32) ([]Table, error) {
	size := 0
	if old != nil {
		size = len(old.leaves)
	}
	next := &statsCache{byOID: make(map[uint32]int, size), leaves: make([]cachedLeaf, 0, size), catalogKey: -1}
	roots := map[uint32]rootRow{}
	stats := make(map[uint32]leafStats, size) // by leaf OID
	reread := map[uint32]cachedLeaf{}         // by leaf OID
	var r statsRow
	sc := newStatsScanner()
	walked := false
	for rows.Next() {
		if err := sc.scan(rows, &r); err != nil {
			return nil, fmt.Errorf("scanning partition statistics: %w", err)
		}
		if r.catalogKey.Valid {
			next.catalogKey = r.catalogKey.Int64
		}
		switch r.kind {
		case 0, 1:
			if _, seen := roots[r.root]; !seen {
				roots[r.root] = r.rootInfo
				next.roots = append(next.roots, r.root)
			}
			if r.kind == 0 {
				walked = true
				next.signature = r.signature
			}
			if r.kind == 1 || !r.oid.Valid {
				continue // a root's row, or a partitioned table without partitions yet
			}
			r.leaf.oid, r.leaf.root, r.leaf.key = r.oid.Uint32, r.root, r.stats.key
			next.byOID[r.leaf.oid] = len(next.leaves)
			next.leaves = append(next.leaves, r.leaf)
			stats[r.leaf.oid] = r.stats
		case 2:
			stats[r.oid.Uint32] = r.stats
		case 3:
			reread[r.oid.Uint32] = r.leaf
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if !walked && len(roots) > 0 && old != nil {
		// The cached tree: each leaf's pg_class columns read again or kept.
		next.signature = old.signature
		for _, l := range old.leaves {
			st, ok := stats[l.oid]
			if !ok {
				return nil, fmt.Errorf("reading partition statistics: no statistics for cached partition OID %d", l.oid)
			}
			if fresh, ok := reread[l.oid]; ok {
				fresh.oid, fresh.root = l.oid, l.root
				l = fresh
			}
			l.key = st.key
			next.byOID[l.oid] = len(next.leaves)
			next.leaves = append(next.leaves, l)
		}
	}

	var tables []Table
	byRoot := map[uint32]int{}
	for _, oid := range next.roots {
		info := roots[oid]
		// migrate's tables are hash-partitioned: kept until the records
		// say whether they are migrate's or watched (splitOwned).
		if info.strategy != "hash" && !s.selection.watched(info.schema, info.name, info.strategy) {
			continue
		}
		tenantKey := info.firstKey
		if tenantKey == "" {
			tenantKey = s.selection.TenantColumn
		}
		t := Table{OID: oid, Schema: info.schema, Name: info.name, Strategy: info.strategy, PartitionKey: info.key,
			TenantKey: tenantKey, Hot: matchAny(s.selection.HotTables, info.schema, info.name),
			ParentStatisticsMissing: info.parentAnalyzed.IsZero() && !info.parentHasStatistics, ParentAnalyzed: info.parentAnalyzed}
		byRoot[oid] = len(tables)
		tables = append(tables, t)
	}
	counts := make([]int, len(tables))
	for _, l := range next.leaves {
		if ti, ok := byRoot[l.root]; ok {
			counts[ti]++
		}
	}
	for ti := range tables {
		tables[ti].Partitions = make([]Partition, 0, counts[ti])
	}
	for _, l := range next.leaves {
		ti, ok := byRoot[l.root]
		if !ok {
			continue
		}
		st := stats[l.oid]
		p := Partition{OID: l.oid, LiveRows: st.live, DeadRows: st.dead, ModSinceAnalyze: st.modified}
		p.Name = partitionLabel(tables[ti].Schema, l.schema, l.name)
		p.Reltuples = l.reltuples
		if l.frozenXID != 0 {
			p.XIDAge = xidAge(nextXID, l.frozenXID)
		}
		if l.toastFrozenXID != 0 {
			p.XIDAge = max(p.XIDAge, xidAge(nextXID, l.toastFrozenXID))
		}
		if srv.InRecovery {
			// n_live_tup is not replicated; reltuples is, as of the
			// primary's last VACUUM or ANALYZE.
			p.LiveRows = max(p.Reltuples, 0)
		}
		p.LastVacuum, p.LastAnalyze = st.lastVacuum, st.lastAna
		setThresholds(&p, *srv, l.reloptions)
		tables[ti].Partitions = append(tables[ti].Partitions, p)
	}
	// In PostgreSQL's order before the cache: by table, then by relname.
	sortByName(tables, func(t Table) (string, string) { return t.Schema, t.Name })
	for ti := range tables {
		ps := tables[ti].Partitions
		sort.SliceStable(ps, func(i, j int) bool {
			return next.leaves[next.byOID[ps[i].OID]].name < next.leaves[next.byOID[ps[j].OID]].name
		})
	}
	switch {
	case len(next.roots) == 0:
		next = nil // nothing to cache: the next round walks again
	case walked:
		next.catalogKey = -1 // read every row again next round, counters first
	case old.rounds+1 < fullReadEvery:
		next.rounds = old.rounds + 1
	}
	s.catalog.store(next)
	return tables, nil
}

// setThresholds sets a partition's autovacuum and autoanalyze triggers by
// vacuumlag.TriggersOf, the formula migrate plan uses too.
func setThresholds(p *Partition, srv Server, reloptions []string) {
	tr := vacuumlag.TriggersOf(vacuumlag.Settings{VacuumThreshold: srv.VacuumThreshold, VacuumScaleFactor: srv.VacuumScaleFactor,
		VacuumMaxThreshold: srv.VacuumMaxThreshold, AnalyzeThreshold: srv.AnalyzeThreshold, AnalyzeScaleFactor: srv.AnalyzeScaleFactor},
		reloptions, p.Reltuples)
	p.VacuumThreshold, p.AnalyzeThreshold, p.AutovacuumOff = tr.Vacuum, tr.Analyze, tr.AutovacuumOff
}

// applyLag computes vacuum and analyze lag (vacuumlag.Since, the one
// definition) from the crossings kept across rounds. A standby runs no
// autovacuum: it has no lag, and forgets the crossings so a promoted
// standby starts from the database's own bound.
func (s *Stats) applyLag(srv Server, tables []Table) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Only partitions above a trigger have a crossing to keep: most have
	// none, and 16,384 zero states would be a megabyte.
	seen := make(map[uint32]lagState, len(s.lags))
	if srv.InRecovery {
		s.lags = seen
		return
	}
	for ti := range tables {
		for pi := range tables[ti].Partitions {
			p := &tables[ti].Partitions[pi]
			st := s.lags[p.OID]
			st.vacuumSince, p.VacuumLag = vacuumlag.Since(vacuumlag.Observation{
				DeadRows: p.DeadRows, Trigger: p.VacuumThreshold, LastVacuum: p.LastVacuum, CountingSince: srv.StartedAt, Now: srv.Now}, st.vacuumSince)
			st.analyzeSince, p.AnalyzeLag = vacuumlag.Since(vacuumlag.Observation{
				DeadRows: p.ModSinceAnalyze, Trigger: p.AnalyzeThreshold, LastVacuum: p.LastAnalyze, CountingSince: srv.StartedAt, Now: srv.Now}, st.analyzeSince)
			if st != (lagState{}) {
				seen[p.OID] = st
			}
		}
	}
	s.lags = seen
}

// partitionLabel names a partition; schema-qualified only when it lives in
// another schema than its table, so names stay short and unique.
func partitionLabel(rootSchema, schema, name string) string {
	if schema == rootSchema {
		return name
	}
	return schema + "." + name
}

func matchAny(patterns []string, schema, name string) bool {
	return config.MatchAny(patterns, schema, name)
}
