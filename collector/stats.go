package collector

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/sigid/pgcapacity/collector/migrationtables"
	"github.com/sigid/pgcapacity/internal/config"
	"github.com/sigid/pgcapacity/internal/playbook/vacuumlag"
)

// partitionTreeCTE lists every top-level partitioned table (root) with all
// its descendants; leaves are the relkind 'r' rows. Multi-level partitions
// roll up to their root this way. Catalog reads only: no relation locks.
// roots is MATERIALIZED so its key-column subqueries run once per table,
// not once per partition (4,096 partitions: 0.9 s against 0.3 s).
const partitionTreeCTE = `
WITH RECURSIVE tree AS (
    SELECT pt.partrelid AS root, pt.partrelid AS relid
    FROM pg_catalog.pg_partitioned_table pt
    WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_inherits i WHERE i.inhrelid = pt.partrelid)
  UNION ALL
    SELECT t.root, i.inhrelid
    FROM tree t JOIN pg_catalog.pg_inherits i ON i.inhparent = t.relid
),
roots AS MATERIALIZED (
    SELECT pt.partrelid AS root, rn.nspname AS root_schema, r.relname AS root_name,
           CASE pt.partstrat WHEN 'h' THEN 'hash' WHEN 'l' THEN 'list' WHEN 'r' THEN 'range' ELSE pt.partstrat::text END AS strategy,
           coalesce((SELECT string_agg(coalesce(a.attname::text, 'expression'), ',' ORDER BY k.ord)
                     FROM unnest(pt.partattrs::int2[]) WITH ORDINALITY AS k(attnum, ord)
                     LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = pt.partrelid AND a.attnum = k.attnum), '') AS partition_key,
           (SELECT a.attname::text FROM pg_catalog.pg_attribute a
             WHERE a.attrelid = pt.partrelid AND a.attnum = pt.partattrs[0]) AS first_key_column,
           greatest(pg_catalog.pg_stat_get_last_analyze_time(pt.partrelid), pg_catalog.pg_stat_get_last_autoanalyze_time(pt.partrelid)) AS parent_analyzed,
           (r.reltuples >= 0 AND current_setting('server_version_num')::int >= 140000)
             OR EXISTS (SELECT 1 FROM pg_catalog.pg_stats s WHERE s.schemaname = rn.nspname AND s.tablename = r.relname) AS parent_has_statistics
    FROM pg_catalog.pg_partitioned_table pt
    JOIN pg_catalog.pg_class r ON r.oid = pt.partrelid
    JOIN pg_catalog.pg_namespace rn ON rn.oid = r.relnamespace
    WHERE pt.partrelid IN (SELECT root FROM tree WHERE root = relid)
),
leaves AS (
    SELECT t.root, c.oid, c.relname, cn.nspname, c.reltuples, c.reltoastrelid, c.relfrozenxid, c.relpages, c.reloptions
    FROM tree t
    JOIN pg_catalog.pg_class c ON c.oid = t.relid AND c.relkind = 'r'
    JOIN pg_catalog.pg_namespace cn ON cn.oid = c.relnamespace
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
       pg_catalog.pg_postmaster_start_time()`

// statsSQL reads one row per root and leaf partition. Statistics come from
// the pg_stat_get_* functions by OID (what pg_stat_user_tables wraps), which
// take no locks.
const statsSQL = partitionTreeCTE + `
SELECT r.root, r.root_schema, r.root_name, r.strategy, r.partition_key, coalesce(r.first_key_column, ''),
       r.parent_analyzed, r.parent_has_statistics,
       l.oid, coalesce(l.nspname, ''), coalesce(l.relname, ''),
       coalesce(l.reltuples, 0)::float8,
       coalesce(pg_catalog.pg_stat_get_live_tuples(l.oid), 0)::float8,
       coalesce(pg_catalog.pg_stat_get_dead_tuples(l.oid), 0)::float8,
       coalesce(pg_catalog.pg_stat_get_mod_since_analyze(l.oid), 0)::float8,
       greatest(pg_catalog.pg_stat_get_last_vacuum_time(l.oid), pg_catalog.pg_stat_get_last_autovacuum_time(l.oid)),
       greatest(pg_catalog.pg_stat_get_last_analyze_time(l.oid), pg_catalog.pg_stat_get_last_autoanalyze_time(l.oid)),
       coalesce(l.reloptions, '{}'),
       coalesce(greatest(age(l.relfrozenxid), age(toast.relfrozenxid)), 0)::float8
FROM roots r
LEFT JOIN leaves l ON l.root = r.root
LEFT JOIN pg_catalog.pg_class toast ON toast.oid = l.reltoastrelid
ORDER BY r.root_schema, r.root_name, l.relname`

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
	batch.Queue(settingsSQL).QueryRow(func(row pgx.Row) error {
		if err := row.Scan(&srv.SharedBuffersBytes, &srv.FreezeMaxAge, &srv.VacuumThreshold, &srv.VacuumScaleFactor,
			&srv.AnalyzeThreshold, &srv.AnalyzeScaleFactor, &maxThreshold, &srv.VersionNum, &srv.Now, &srv.InRecovery, &srv.StartedAt); err != nil {
			return err
		}
		srv.VacuumMaxThreshold = vacuumlag.ParseMaxThreshold(maxThreshold)
		return nil
	})
	var tables []Table
	batch.Queue(statsSQL).Query(func(rows pgx.Rows) error {
		var err error
		tables, err = s.scanTables(rows, &srv)
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

func (s *Stats) scanTables(rows pgx.Rows, srv *Server) ([]Table, error) {
	var tables []Table
	for rows.Next() {
		var (
			rootOID                               uint32
			schema, name, strategy, key, firstKey string
			oid                                   *uint32
			leafSchema, leafName                  string
			p                                     Partition
			lastVacuum, lastAnalyze               *time.Time
			reloptions                            []string
			parentAnalyzed                        *time.Time
			parentHasStatistics                   bool
		)
		if err := rows.Scan(&rootOID, &schema, &name, &strategy, &key, &firstKey, &parentAnalyzed, &parentHasStatistics, &oid, &leafSchema, &leafName,
			&p.Reltuples, &p.LiveRows, &p.DeadRows, &p.ModSinceAnalyze, &lastVacuum, &lastAnalyze,
			&reloptions, &p.XIDAge); err != nil {
			return nil, fmt.Errorf("scanning partition statistics: %w", err)
		}
		// migrate's tables are hash-partitioned: kept until the records
		// say whether they are migrate's or watched (splitOwned).
		if strategy != "hash" && !s.selection.watched(schema, name, strategy) {
			continue
		}
		if n := len(tables); n == 0 || tables[n-1].OID != rootOID {
			tenantKey := firstKey
			if tenantKey == "" {
				tenantKey = s.selection.TenantColumn
			}
			tables = append(tables, Table{OID: rootOID, Schema: schema, Name: name, Strategy: strategy, PartitionKey: key,
				TenantKey: tenantKey, Hot: matchAny(s.selection.HotTables, schema, name),
				ParentStatisticsMissing: parentAnalyzed == nil && !parentHasStatistics})
			if parentAnalyzed != nil {
				tables[len(tables)-1].ParentAnalyzed = *parentAnalyzed
			}
		}
		if oid == nil {
			continue // a partitioned table without partitions yet
		}
		p.OID = *oid
		p.Name = partitionLabel(schema, leafSchema, leafName)
		if srv.InRecovery {
			// n_live_tup is not replicated; reltuples is, as of the
			// primary's last VACUUM or ANALYZE.
			p.LiveRows = max(p.Reltuples, 0)
		}
		if lastVacuum != nil {
			p.LastVacuum = *lastVacuum
		}
		if lastAnalyze != nil {
			p.LastAnalyze = *lastAnalyze
		}
		setThresholds(&p, *srv, reloptions)
		t := &tables[len(tables)-1]
		t.Partitions = append(t.Partitions, p)
	}
	return tables, rows.Err()
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
			seen[p.OID] = st
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
