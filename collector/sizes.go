package collector

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sigid/pgcapacity/collector/migrationtables"
)

// sizesSQL reads heap, index and tenant-leading index bytes of every leaf
// whose files may have changed since the last round. Heap is the main fork
// of the table and of its TOAST table: one file size each, not
// pg_table_size's six (free space and visibility maps are not what
// outgrows memory).
//
// A leaf's change key is a 64-bit hash of what moves whenever its files
// can grow or shrink: its rows inserted, updated and deleted and its
// vacuums (its TOAST table's too) and the file numbers of heap and TOAST
// table (a hash, not the text: 16,384 keys are sent back each round). $2 are the
// leaves sized last round, $3 their keys then: a leaf whose key is the same
// is not sized again (nor opened: a locked one cannot stall the round), and
// its sizes are kept. Index DDL (CREATE and DROP INDEX, REINDEX) and other
// rewrites (TRUNCATE, VACUUM FULL, CLUSTER) insert or update pg_class rows:
// when pg_class's own counters moved since the last round ($4), every leaf
// is sized (a per-leaf index list costs twice the rest of the key), and on
// a standby, where no counter moves (it replays the primary's writes). The
// counters are reported about a second after a transaction ends, so a
// write just before a round is sized the round after; and every
// fullSizeEvery rounds every leaf is sized in any case.
//
// pg_relation_size takes ACCESS SHARE on the relation and would queue
// behind DDL or a migration's ACCESS EXCLUSIVE lock (granted or waiting).
// So a relation with such a lock in pg_locks is sized from the catalog
// (relpages × block_size, as of its last VACUUM/ANALYZE) without touching
// it; the session's lock_timeout is the backstop for the race between
// reading pg_locks and sizing. $1 is the tenant column used when a
// partition key is an expression.
const sizesSQL = partitionTreeCTE + `,
locked AS (
    SELECT DISTINCT l.relation
    FROM pg_catalog.pg_locks l
    WHERE l.locktype = 'relation' AND l.mode = 'AccessExclusiveLock'
      AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
),
block AS (SELECT current_setting('block_size')::bigint AS bytes),
last AS (SELECT * FROM unnest($2::oid[], $3::int8[]) AS k(oid, key)),
catalog AS MATERIALIZED (SELECT ` + catalogKeySQL + ` AS catalog_key, pg_catalog.pg_is_in_recovery() AS in_recovery)
SELECT (SELECT catalog_key FROM catalog), r.root, r.root_schema, r.root_name, r.strategy, coalesce(l.nspname, ''), coalesce(l.relname, ''), l.oid, k.key, coalesce(k.changed, false),
       coalesce(k.changed AND (l.oid IN (SELECT relation FROM locked) OR l.reltoastrelid IN (SELECT relation FROM locked)), false) AS heap_estimated,
       CASE WHEN NOT k.changed THEN NULL
            WHEN l.oid IN (SELECT relation FROM locked) OR l.reltoastrelid IN (SELECT relation FROM locked)
            THEN (l.relpages::bigint + coalesce((SELECT t.relpages FROM pg_catalog.pg_class t WHERE t.oid = l.reltoastrelid), 0)) * (SELECT bytes FROM block)
            ELSE pg_catalog.pg_relation_size(l.oid)
                 + CASE WHEN l.reltoastrelid = 0 THEN 0 ELSE pg_catalog.pg_relation_size(l.reltoastrelid) END
       END::float8 AS heap_bytes,
       coalesce(ix.estimated, false), ix.index_bytes, ix.tenant_index_bytes
FROM roots r
LEFT JOIN leaves l ON l.root = r.root
LEFT JOIN last ON last.oid = l.oid
LEFT JOIN LATERAL (
    SELECT k.key, k.key IS DISTINCT FROM last.key OR (SELECT catalog_key IS DISTINCT FROM $4 OR in_recovery FROM catalog) AS changed
    FROM (SELECT pg_catalog.hashtextextended(concat_ws(' ',
        pg_catalog.pg_stat_get_tuples_inserted(l.oid) + pg_catalog.pg_stat_get_tuples_updated(l.oid) + pg_catalog.pg_stat_get_tuples_deleted(l.oid),
        pg_catalog.pg_stat_get_vacuum_count(l.oid) + pg_catalog.pg_stat_get_autovacuum_count(l.oid),
        l.relfilenode,
        CASE WHEN l.reltoastrelid <> 0 THEN (SELECT concat_ws('.', t.relfilenode,
                pg_catalog.pg_stat_get_tuples_inserted(t.oid) + pg_catalog.pg_stat_get_tuples_deleted(t.oid),
                pg_catalog.pg_stat_get_vacuum_count(t.oid) + pg_catalog.pg_stat_get_autovacuum_count(t.oid))
            FROM pg_catalog.pg_class t WHERE t.oid = l.reltoastrelid) END,
        r.first_key_column), 0) AS key) k
) k ON l.oid IS NOT NULL
LEFT JOIN LATERAL (
    SELECT coalesce(bool_or(s.estimated), false) AS estimated,
           coalesce(sum(s.bytes), 0)::float8 AS index_bytes,
           coalesce(sum(s.bytes) FILTER (WHERE s.tenant_leading), 0)::float8 AS tenant_index_bytes
    FROM (
        SELECT (x.indexrelid IN (SELECT relation FROM locked) OR x.indrelid IN (SELECT relation FROM locked)) AS estimated,
               CASE WHEN x.indexrelid IN (SELECT relation FROM locked) OR x.indrelid IN (SELECT relation FROM locked)
                    THEN ic.relpages::bigint * (SELECT bytes FROM block)
                    ELSE pg_catalog.pg_relation_size(x.indexrelid) END AS bytes,
               (am.amname = 'btree' AND EXISTS (
                    SELECT 1 FROM pg_catalog.pg_attribute a
                    WHERE a.attrelid = l.oid AND a.attnum = x.indkey[0]
                      AND a.attname = coalesce(r.first_key_column, $1))) AS tenant_leading
        FROM pg_catalog.pg_index x
        JOIN pg_catalog.pg_class ic ON ic.oid = x.indexrelid
        JOIN pg_catalog.pg_am am ON am.oid = ic.relam
        WHERE x.indrelid = l.oid
        OFFSET 0 -- not flattened: the condition on k gates the sizing
    ) s
    WHERE k.changed
) ix ON k.changed`

// fullSizeEvery: every this many rounds every leaf is sized, whatever its
// change key says (six hours at the default 15-minute interval). Only a
// backstop: every way a file grows or shrinks moves a counter of the key
// or pg_class's; sizing all 16,384 relations of 4,096 partitions costs
// about fifteen unchanged rounds.
const fullSizeEvery = 24

// Sizes samples on-disk sizes of every watched partition: one query a
// round whatever the partition count. It sizes again only the partitions
// whose files may have changed since its last round (sizesSQL) and keeps
// the others' sizes.
type Sizes struct {
	selection Selection
	interval  time.Duration
	detail    Detail

	mu         sync.Mutex
	last       map[uint32]sizedLeaf // by leaf OID, as of the last round
	catalogKey *int64               // pg_class's and pg_namespace's counters then
	rounds     int                  // rounds since every leaf was sized
}

// sizedLeaf is a leaf's sizes and the change key they were read with.
type sizedLeaf struct {
	key   int64
	sizes PartitionSizes
}

// NewSizes returns the sizes collector.
func NewSizes(sel Selection, interval time.Duration, partitionDetail bool) *Sizes {
	return &Sizes{selection: sel, interval: interval, detail: detailFromBool(partitionDetail)}
}

// WithDetail sets which partitions publish per-partition series.
func (s *Sizes) WithDetail(d Detail) *Sizes {
	s.detail = d
	return s
}

// Name implements Collector.
func (s *Sizes) Name() string { return "sizes" }

// Interval implements Collector.
func (s *Sizes) Interval() time.Duration { return s.interval }

// Sample runs one round and returns the sizes of the watched tables; the
// tables migrate owns are not among them.
func (s *Sizes) Sample(ctx context.Context, db *pgxpool.Pool) ([]TableSizes, error) {
	tables, _, err := s.sample(ctx, db)
	return tables, err
}

// sample also returns the sizes of the tables migrate owns.
func (s *Sizes) sample(ctx context.Context, db *pgxpool.Pool) ([]TableSizes, []owned[TableSizes], error) {
	tables, err := s.read(ctx, db)
	if err != nil {
		return nil, nil, err
	}
	// After the catalog query: a migration that started since is recorded.
	records, err := migrationtables.Read(ctx, db)
	if err != nil {
		return nil, nil, err
	}
	tables, mine := splitOwned(tables, records, func(t TableSizes) (string, string, uint32) { return t.Schema, t.Name, t.OID },
		func(t TableSizes) bool { return s.selection.watched(t.Schema, t.Name, t.Strategy) })
	return tables, mine, nil
}

func (s *Sizes) read(ctx context.Context, db *pgxpool.Pool) ([]TableSizes, error) {
	// One round at a time: each round's keys are the previous round's.
	s.mu.Lock()
	defer s.mu.Unlock()
	oids := make([]uint32, 0, len(s.last))
	keys := make([]int64, 0, len(s.last))
	catalogKey := s.catalogKey
	if s.rounds+1 < fullSizeEvery {
		for oid, l := range s.last {
			if !l.sizes.Estimated { // sized from the catalog: size again
				oids = append(oids, oid)
				keys = append(keys, l.key)
			}
		}
	}
	rows, err := db.Query(ctx, sizesSQL, s.selection.TenantColumn, oids, keys, catalogKey)
	if err != nil {
		return nil, fmt.Errorf("reading partition sizes: %w", err)
	}
	var tables []TableSizes
	byRoot := map[uint32]int{} // index into tables
	var relnames [][]string    // relnames[i][j]: tables[i].Partitions[j]'s leaf
	next := make(map[uint32]sizedLeaf, len(s.last))
	sizedAll := true
	// Declared once, not per row: scan destinations escape, and per row
	// they would be a round's largest garbage at 16,384 partitions.
	var (
		rootOID                                      uint32
		schema, name, strategy, leafSchema, leafName string
		oid                                          pgtype.Uint32
		key                                          pgtype.Int8
		changed, heapEstimated, indexEstimated       bool
		heap, index, tenantIndex                     pgtype.Float8
	)
	for rows.Next() {
		if err := rows.Scan(&catalogKey, &rootOID, &schema, &name, &strategy, &leafSchema, &leafName, &oid, &key, &changed, &heapEstimated, &heap,
			&indexEstimated, &index, &tenantIndex); err != nil {
			rows.Close()
			return nil, fmt.Errorf("scanning partition sizes: %w", err)
		}
		// migrate's tables are hash-partitioned: kept until the records
		// say whether they are migrate's or watched (splitOwned).
		if strategy != "hash" && !s.selection.watched(schema, name, strategy) {
			continue
		}
		ti, ok := byRoot[rootOID]
		if !ok {
			ti = len(tables)
			byRoot[rootOID] = ti
			tables = append(tables, TableSizes{OID: rootOID, Schema: schema, Name: name, Hot: matchAny(s.selection.HotTables, schema, name), Strategy: strategy})
			relnames = append(relnames, nil)
		}
		if !oid.Valid {
			continue
		}
		var p PartitionSizes
		if changed {
			p = PartitionSizes{HeapBytes: heap.Float64, IndexBytes: index.Float64, TenantIndexBytes: tenantIndex.Float64,
				Estimated: heapEstimated || indexEstimated}
		} else {
			sizedAll = false
			p = s.last[oid.Uint32].sizes
		}
		p.Name = partitionLabel(schema, leafSchema, leafName)
		next[oid.Uint32] = sizedLeaf{key: key.Int64, sizes: p}
		tables[ti].Partitions = append(tables[ti].Partitions, p)
		relnames[ti] = append(relnames[ti], leafName)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading partition sizes: %w", err)
	}
	sortSizes(tables, relnames)
	s.last, s.catalogKey = next, catalogKey
	if sizedAll {
		s.rounds = 0
	} else {
		s.rounds++
	}
	return tables, nil
}

// sortSizes puts tables in stats' order, by schema and name, and each
// one's partitions by leaf relname (relnames, parallel to them): in Go, as
// stats does, not in the statement, where sorting 4,096 rows by name took
// 20 of an unchanged round's 50 ms.
func sortSizes(tables []TableSizes, relnames [][]string) {
	for ti := range tables {
		sort.Stable(byRelname{tables[ti].Partitions, relnames[ti]})
	}
	sortByName(tables, func(t TableSizes) (string, string) { return t.Schema, t.Name })
}

// byRelname sorts a table's partitions by their leaves' relnames, in place.
type byRelname struct {
	partitions []PartitionSizes
	relnames   []string
}

func (b byRelname) Len() int           { return len(b.partitions) }
func (b byRelname) Less(i, j int) bool { return b.relnames[i] < b.relnames[j] }
func (b byRelname) Swap(i, j int) {
	b.partitions[i], b.partitions[j] = b.partitions[j], b.partitions[i]
	b.relnames[i], b.relnames[j] = b.relnames[j], b.relnames[i]
}

var (
	descHotTenantIndex      = newDesc("hot_tenant_index_bytes", "All tenant-leading btree indexes of hot tables together, in bytes.", nil)
	descTableTenantIndex    = newDesc("table_tenant_index_bytes", "Btree indexes whose leading column is the tenant key, all partitions, in bytes.", tableLabels)
	descTableTenantIndexMax = newDesc("table_tenant_index_partition_max_bytes", "The largest single partition's tenant-leading btree indexes, in bytes.", tableLabels)
	descTableHeap           = newDesc("table_heap_bytes", "Heap (main fork, with TOAST) of all partitions, in bytes.", tableLabels)
	descTableIndex          = newDesc("table_index_bytes", "All indexes of all partitions, in bytes.", tableLabels)
	descTableSizesEstimated = newDesc("table_sizes_estimated_partitions", "Partitions sized from the catalog this round because they were locked by DDL.", tableLabels)
	descPartHeap            = newDesc("partition_heap_bytes", "Heap (main fork, with its TOAST table's) of the partition, in bytes.", partitionLabels)
	descPartIndex           = newDesc("partition_index_bytes", "All indexes of the partition, in bytes.", partitionLabels)
	descPartTenantIndex     = newDesc("partition_tenant_index_bytes", "Tenant-leading btree indexes of the partition, in bytes.", partitionLabels)
)

// Collect implements Collector.
func (s *Sizes) Collect(ctx context.Context, db *pgxpool.Pool) ([]prometheus.Metric, error) {
	tables, mine, err := s.sample(ctx, db)
	if err != nil {
		return nil, err
	}
	out := metricList(s.metrics(tables))
	ownedMetrics(&out, descMigrationTableBytes, mine, func(t TableSizes) float64 {
		var bytes float64
		for _, p := range t.Partitions {
			bytes += p.HeapBytes + p.IndexBytes
		}
		return bytes
	})
	return out, nil
}

func (s *Sizes) metrics(tables []TableSizes) []prometheus.Metric {
	var out metricList
	var hot float64
	partitions := 0
	for _, t := range tables {
		partitions += len(t.Partitions)
	}
	mode := s.detail.resolve(partitions)
	for _, t := range tables {
		total, partMax := t.TenantIndexBytes()
		if t.Hot {
			hot += total
		}
		var heap, index, estimated float64
		for _, p := range t.Partitions {
			heap += p.HeapBytes
			index += p.IndexBytes
			estimated += boolFloat(p.Estimated)
		}
		out.add(descTableTenantIndex, total, t.Schema, t.Name)
		out.add(descTableTenantIndexMax, partMax, t.Schema, t.Name)
		out.add(descTableHeap, heap, t.Schema, t.Name)
		out.add(descTableIndex, index, t.Schema, t.Name)
		out.add(descTableSizesEstimated, estimated, t.Schema, t.Name)
		shown := shownPartitions(mode, len(t.Partitions), s.detail.TopK,
			func(i int) float64 { return t.Partitions[i].TenantIndexBytes })
		pairs := newTableLabelPairs(t.Schema, t.Name)
		for i, p := range t.Partitions {
			if shown != nil && !shown[i] {
				continue
			}
			l := pairs.partition(p.Name)
			out.addShared(descPartHeap, p.HeapBytes, l)
			out.addShared(descPartIndex, p.IndexBytes, l)
			out.addShared(descPartTenantIndex, p.TenantIndexBytes, l)
		}
	}
	out.add(descHotTenantIndex, hot)
	return out
}
