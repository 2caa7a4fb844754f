package probes

import (
	"context"
	"fmt"
	"slices"
	"sort"

	"github.com/jackc/pgx/v5"
)

// target is a probe's table as the database resolved it, with a small
// sample of real tenant ids for each of its leaf partitions.
type target struct {
	schema, table string
	missing       bool        // the table does not exist (or is not visible)
	partitions    []partition // sorted by name; only those with known tenants
	leaves        int         // leaf partitions, with or without known tenants
	share         int         // tenants kept per leaf (tenantBudget)
	pages         []float64   // relpages of each leaf (0 before the first VACUUM or ANALYZE)
	column        string      // the tenant column
}

type partition struct {
	name    string
	tenants []string
}

func (t *target) tenantCount() int {
	n := 0
	for _, p := range t.partitions {
		n += len(p.tenants)
	}
	return n
}

// tenantsSQL samples tenant ids per leaf partition from the planner's own
// statistics: the most common values and histogram bounds of the tenant
// column, which ANALYZE keeps for every partition. Each distinct id counts
// once, however many rows it has, so large tenants do not dominate. A
// leaf keeps its share: at most $3, and at most $4 over the table's leaf
// count, but one at least. It reads only catalogs, one query for all probe
// tables whatever the number of partitions. The tenant column is the partition key's first column,
// else the configured one.
const tenantsSQL = `
WITH wanted AS (
	SELECT w.ord, to_regclass(w.name) AS oid
	FROM unnest($1::text[]) WITH ORDINALITY AS w(name, ord)
)
SELECT w.ord::int, current_schema()::text, n.nspname::text, c.relname::text, k.col::text,
	leaf.relname::text, leaf.oid, leaf.relpages::float8, leaf.share, COALESCE(ARRAY(
		SELECT d.v FROM (SELECT DISTINCT u.v FROM unnest(
			COALESCE(s.most_common_vals::text::text[], '{}') ||
			COALESCE(s.histogram_bounds::text::text[], '{}')) AS u(v)) AS d
		ORDER BY random() LIMIT leaf.share), '{}')
FROM wanted w
LEFT JOIN pg_class c ON c.oid = w.oid
LEFT JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN LATERAL (
	SELECT COALESCE((
		SELECT a.attname FROM pg_partitioned_table p
		JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0]
		WHERE p.partrelid = c.oid), $2::name) AS col
) k ON true
LEFT JOIN LATERAL (
	-- pg_inherits, not pg_partition_tree(): that locks every partition, so
	-- one ACCESS EXCLUSIVE lock (a swap, a DDL, VACUUM FULL) would fail the refresh.
	WITH RECURSIVE tree AS (
		SELECT c.oid AS relid
	  UNION ALL
		SELECT i.inhrelid FROM tree t JOIN pg_inherits i ON i.inhparent = t.relid
	)
	SELECT lc.oid, lc.relname, lc.relpages, ln.nspname,
		least($3::int8, greatest(1, $4::int8 / count(*) OVER ()))::int AS share
	FROM tree t
	JOIN pg_class lc ON lc.oid = t.relid
	JOIN pg_namespace ln ON ln.oid = lc.relnamespace
	WHERE lc.relkind NOT IN ('p', 'I')
) leaf ON true
LEFT JOIN pg_stats s ON s.schemaname = leaf.nspname AND s.tablename = leaf.relname
	AND s.attname = k.col AND NOT s.inherited
ORDER BY w.ord, leaf.relname`

// tenantBudget is how many tenant ids a table keeps: at most perPartition
// per leaf and about perTable in all, but at least one per leaf (tenantsSQL
// computes each leaf's share).
type tenantBudget struct{ perPartition, perTable int }

// Sampling rows, for tables whose statistics are missing (never analyzed)
// or hidden (pg_stats shows only partitions the role may SELECT from, and
// grants on a partitioned table do not reach its partitions).
const (
	// fallbackRows bounds the rows read without page counts: the first
	// rows of the table, reaching only its first partitions.
	fallbackRows = 1000
	// pagesPerPartition is the expected pages a TABLESAMPLE reads of each
	// partition when page counts are known.
	pagesPerPartition = 4
	// maxSampledRows bounds the rows a TABLESAMPLE returns.
	maxSampledRows = 100000
)

// loadTargets resolves each probe table and samples its tenants.
func loadTargets(ctx context.Context, q querier, names []tableName, tenantColumn string, budget tenantBudget) (map[tableName]*target, error) {
	regnames := make([]string, len(names))
	for i, n := range names {
		if n.schema == "" {
			regnames[i] = pgx.Identifier{n.table}.Sanitize()
		} else {
			regnames[i] = pgx.Identifier{n.schema, n.table}.Sanitize()
		}
	}
	rows, err := q.Query(ctx, tenantsSQL, regnames, tenantColumn, budget.perPartition, budget.perTable)
	if err != nil {
		return nil, fmt.Errorf("sampling tenant ids from statistics: %w", err)
	}
	targets := map[tableName]*target{}
	oids := map[tableName]map[uint32]string{}
	for rows.Next() {
		var (
			ord                         int
			current                     string
			schema, table, column, leaf *string
			leafOID                     *uint32
			pages                       *float64
			share                       *int
			tenants                     []string
		)
		if err := rows.Scan(&ord, &current, &schema, &table, &column, &leaf, &leafOID, &pages, &share, &tenants); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading sampled tenant ids: %w", err)
		}
		name := names[ord-1]
		t := targets[name]
		if t == nil {
			t = &target{schema: name.schema, table: name.table}
			if t.schema == "" {
				t.schema = current
			}
			targets[name] = t
			oids[name] = map[uint32]string{}
		}
		if schema == nil {
			t.missing = true
			continue
		}
		t.schema, t.table, t.column = *schema, *table, *column
		if leaf == nil {
			continue
		}
		t.leaves, t.share = t.leaves+1, *share
		t.pages = append(t.pages, *pages)
		oids[name][*leafOID] = *leaf
		if len(tenants) > 0 {
			t.partitions = append(t.partitions, partition{name: *leaf, tenants: tenants})
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sampling tenant ids from statistics: %w", err)
	}
	for _, name := range names {
		t := targets[name]
		if t == nil || t.missing || t.leaves == 0 || len(t.partitions) > 0 {
			continue
		}
		if err := sampleRows(ctx, q, t, oids[name], t.share); err != nil {
			return nil, err
		}
	}
	return targets, nil
}

// sampleRows finds tenants of a table whose statistics are missing or
// hidden by reading rows through the parent. With page counts known, a
// TABLESAMPLE SYSTEM reads about pagesPerPartition random pages of every
// partition, so every partition is reached over a few refreshes; without,
// the first fallbackRows rows, until autovacuum analyzes the table.
func sampleRows(ctx context.Context, q querier, t *target, leaves map[uint32]string, perPartition int) error {
	col, table := pgx.Identifier{t.column}.Sanitize(), pgx.Identifier{t.schema, t.table}.Sanitize()
	sql := fmt.Sprintf("SELECT DISTINCT tableoid, %s::text FROM (SELECT tableoid, %[1]s FROM %s LIMIT %d) AS r", col, table, fallbackRows)
	var args []any
	if pages := medianPages(t.pages); pages > 0 {
		sql = fmt.Sprintf("SELECT DISTINCT tableoid, %s::text FROM %s TABLESAMPLE SYSTEM ($1) LIMIT %d", col, table, maxSampledRows)
		args = append(args, min(100, 100*pagesPerPartition/pages))
	}
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return fmt.Errorf("sampling tenant ids of %s.%s, whose statistics are missing or not visible: %w", t.schema, t.table, err)
	}
	byLeaf := map[string][]string{}
	for rows.Next() {
		var oid uint32
		var tenant *string
		if err := rows.Scan(&oid, &tenant); err != nil {
			rows.Close()
			return fmt.Errorf("reading tenant ids of %s.%s: %w", t.schema, t.table, err)
		}
		if leaf, ok := leaves[oid]; ok && tenant != nil && len(byLeaf[leaf]) < perPartition {
			byLeaf[leaf] = append(byLeaf[leaf], *tenant)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sampling tenant ids of %s.%s: %w", t.schema, t.table, err)
	}
	for leaf, tenants := range byLeaf {
		t.partitions = append(t.partitions, partition{name: leaf, tenants: tenants})
	}
	sort.Slice(t.partitions, func(i, j int) bool { return t.partitions[i].name < t.partitions[j].name })
	return nil
}

// medianPages is the median page count of the leaves that have one.
func medianPages(pages []float64) float64 {
	var known []float64
	for _, p := range pages {
		if p > 0 {
			known = append(known, p)
		}
	}
	if len(known) == 0 {
		return 0
	}
	slices.Sort(known)
	return known[len(known)/2]
}
