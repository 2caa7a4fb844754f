package collector

import (
	"cmp"
	"math"
	"slices"
	"strings"
	"sync"
)

// The catalog part of a stats round is what costs the database: at 4,096
// partitions the statement that walked the partition tree over pg_inherits
// and joined every leaf's pg_class row took 21.5 ms of backend CPU, the
// pg_stat_get_* functions on those OIDs alone 2.3 ms. So the stats
// collector keeps what it read of the catalog (statsCache) and a round's
// statement reads only what may have changed:
//
//   - The tree (which leaves belong to which top-level partitioned table)
//     is kept with a signature of the rows that define it: every
//     (inhrelid, inhparent) pair of pg_inherits and every partrelid of
//     pg_partitioned_table. Attaching, detaching, creating or dropping a
//     partition, or creating or dropping a partitioned table, changes it.
//     The statement computes the signature afresh and takes one of two
//     branches, gated by a one-time filter: unchanged, the cached OIDs;
//     changed (or nothing cached), the full walk, whose rows carry the new
//     signature. One statement either way, so a round's query count stays
//     the same and a partition attached before a round is seen by it.
//   - A leaf's pg_class row (name, schema, reloptions, reltuples,
//     relfrozenxid, its TOAST table's relfrozenxid) is read again when its
//     vacuum and analyze counters moved since the last round (VACUUM and
//     ANALYZE update reltuples and relfrozenxid in place, without a new row
//     version), and every leaf's when pg_class or pg_namespace took an
//     insert, update or delete (DDL: a rename, new reloptions; their own
//     pg_stat counters say so, about a second after the DDL commits), on a
//     standby (where no counter moves: it replays the primary's updates),
//     and every fullReadEvery rounds in any case.
//
// Catalog reads and statistics functions only: no relation locks.
const treeSignatureCTE = `
sig AS MATERIALIZED (
    SELECT ` + treeSignatureSQL + ` AS s,
        ` + catalogKeySQL + ` AS catalog_key,
        pg_catalog.pg_is_in_recovery() AS in_recovery
)`

// treeSignatureSQL is the partition tree's signature (text).
const treeSignatureSQL = `concat_ws(' ',
        (SELECT count(*) || ':' || coalesce(sum(hashint8((i.inhrelid::int8 << 32) | i.inhparent::int8)), 0)
         FROM pg_catalog.pg_inherits i),
        (SELECT count(*) || ':' || coalesce(sum(p.partrelid::int8), 0)
         FROM pg_catalog.pg_partitioned_table p))`

// catalogKeySQL sums pg_class's and pg_namespace's own row counters: it
// moves with every DDL (a rename, reloptions, an index, a rewrite) and
// never with VACUUM or ANALYZE, which update pg_class rows in place.
const catalogKeySQL = `(SELECT sum(pg_catalog.pg_stat_get_tuples_inserted(o) + pg_catalog.pg_stat_get_tuples_updated(o) + pg_catalog.pg_stat_get_tuples_deleted(o))
         FROM unnest('{pg_catalog.pg_class,pg_catalog.pg_namespace}'::regclass[]::oid[]) AS o)::int8`

// CatalogSignatureSQL is a scalar text expression that changes whenever
// the partition tree does (exactly: the pg_inherits and
// pg_partitioned_table rows) and, about a second after the DDL commits,
// whenever a relation, schema or view is created, renamed, altered or
// dropped (pg_class's, pg_namespace's and pg_rewrite's own row counters).
// A collector that lists tables, partitions and views reads the list again
// only when it changes.
const CatalogSignatureSQL = `concat_ws(' ', ` + treeSignatureSQL + `,
        (SELECT sum(pg_catalog.pg_stat_get_tuples_inserted(o) + pg_catalog.pg_stat_get_tuples_updated(o) + pg_catalog.pg_stat_get_tuples_deleted(o))
         FROM unnest('{pg_catalog.pg_class,pg_catalog.pg_namespace,pg_catalog.pg_rewrite}'::regclass[]::oid[]) AS o))`

// fullReadEvery bounds how many rounds a leaf's cached pg_class columns
// may go unread: a change that moves none of the counters (CREATE INDEX
// updates reltuples in place) is seen within it.
const fullReadEvery = 20

// treeWalkCTE lists every top-level partitioned table (root) with all its
// descendants; leaves are the relkind 'r' rows. Multi-level partitions roll
// up to their root this way.
const treeWalkCTE = `
tree AS (
    SELECT pt.partrelid AS root, pt.partrelid AS relid
    FROM pg_catalog.pg_partitioned_table pt
    WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_inherits i WHERE i.inhrelid = pt.partrelid)
  UNION ALL
    SELECT t.root, i.inhrelid
    FROM tree t JOIN pg_catalog.pg_inherits i ON i.inhparent = t.relid
)`

// rootColumnsFrom selects a root's description from pg_partitioned_table pt;
// the caller adds the WHERE that picks the roots. Used as a MATERIALIZED
// CTE so its key-column subqueries run once per table, not once per
// partition (4,096 partitions: 0.9 s against 0.3 s). Read live every round:
// a handful of rows.
const rootColumnsFrom = `
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
    JOIN pg_catalog.pg_namespace rn ON rn.oid = r.relnamespace`

// leafSelect and leafJoins select a leaf's catalog row from a source t of
// (root, relid) rows: leafSelect + "FROM <source> t" + leafJoins.
const (
	leafSelect = `
    SELECT t.root, c.oid, c.relname, cn.nspname, c.reltuples, c.reltoastrelid, c.relfrozenxid, c.relpages, c.reloptions, c.relfilenode`
	leafJoins = `
    JOIN pg_catalog.pg_class c ON c.oid = t.relid AND c.relkind = 'r'
    JOIN pg_catalog.pg_namespace cn ON cn.oid = c.relnamespace`
)

// leafKeyWalked and leafKeyCached are the sum of a leaf's (and its TOAST
// table's) vacuum and analyze counters, over the walk's columns and over
// the cached OIDs: when it moves, reltuples or relfrozenxid may have.
const (
	leafKeyWalked = `(pg_catalog.pg_stat_get_vacuum_count(l.oid) + pg_catalog.pg_stat_get_autovacuum_count(l.oid)
      + pg_catalog.pg_stat_get_analyze_count(l.oid) + pg_catalog.pg_stat_get_autoanalyze_count(l.oid)
      + CASE WHEN l.reltoastrelid = 0 THEN 0 ELSE pg_catalog.pg_stat_get_vacuum_count(l.reltoastrelid) + pg_catalog.pg_stat_get_autovacuum_count(l.reltoastrelid) END)`
	leafKeyCached = `(pg_catalog.pg_stat_get_vacuum_count(t.relid) + pg_catalog.pg_stat_get_autovacuum_count(t.relid)
      + pg_catalog.pg_stat_get_analyze_count(t.relid) + pg_catalog.pg_stat_get_autoanalyze_count(t.relid)
      + CASE WHEN t.toast = 0 THEN 0 ELSE pg_catalog.pg_stat_get_vacuum_count(t.toast) + pg_catalog.pg_stat_get_autovacuum_count(t.toast) END)`
)

// statsCache is what the stats collector last read of the catalog. It is
// immutable once stored; a round builds the next one. The zero value
// holds nothing, so the first round walks the tree.
type statsCache struct {
	signature  string
	catalogKey int64 // -1: read every leaf's pg_class row next round
	roots      []uint32
	leaves     []cachedLeaf
	byOID      map[uint32]int // index into leaves
	rounds     int            // rounds since every leaf's row was read
}

// cachedLeaf is a leaf's pg_class row as last read.
type cachedLeaf struct {
	oid, root, toast uint32
	key              int64 // leafKey when last read; -1: read next round
	schema, name     string
	reltuples        float64
	reloptions       []string
	frozenXID        uint32 // 0: unknown
	toastFrozenXID   uint32 // 0: no TOAST table
}

// args returns the cached values a round's statement takes, $1 to $6.
// A nil cache gives none, so the round walks the tree.
func (c *statsCache) args() []any {
	if c == nil {
		return []any{nil, nil, nil, nil, nil, int64(-1)}
	}
	n := len(c.leaves)
	leaves, toasts, keys := make([]uint32, n), make([]uint32, n), make([]int64, n)
	for i, l := range c.leaves {
		leaves[i], toasts[i], keys[i] = l.oid, l.toast, l.key
	}
	catalogKey := c.catalogKey
	if c.rounds+1 >= fullReadEvery {
		catalogKey = -1
	}
	return []any{c.signature, c.roots, leaves, toasts, keys, catalogKey}
}

// statsCacheLock guards a collector's cache pointer.
type statsCacheLock struct {
	mu    sync.Mutex
	cache *statsCache
}

func (l *statsCacheLock) load() *statsCache {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cache
}

func (l *statsCacheLock) store(c *statsCache) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cache = c
}

// sortByName orders tables by schema, then name, in byte order: PostgreSQL's
// for name columns, so stats and sizes list tables alike.
func sortByName[T any](tables []T, name func(T) (schema, table string)) {
	slices.SortStableFunc(tables, func(a, b T) int {
		as, an := name(a)
		bs, bn := name(b)
		return cmp.Or(strings.Compare(as, bs), strings.Compare(an, bn))
	})
}

// xidAge is PostgreSQL's age(xid) (xid_age) against next, the next
// transaction id: INT_MAX for a special xid, the 32-bit distance otherwise.
func xidAge(next, xid uint32) float64 {
	if xid < 3 {
		return math.MaxInt32
	}
	return float64(int32(next - xid))
}
