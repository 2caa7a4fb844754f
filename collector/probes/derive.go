package probes

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/sigid/pgcapacity/collector"
	"github.com/sigid/pgcapacity/collector/migrationtables"
	"github.com/sigid/pgcapacity/internal/config"
)

// Origins of a probe.
const (
	// OriginDerived: built from the table's own definition.
	OriginDerived = "derived"
	// OriginFile: written in PGCAPACITY_PROBES_FILE (or given in Options.Probes).
	OriginFile = "file"
)

// derivedLimit bounds the rows a derived probe reads: a tenant-scoped
// lookup, not a scan of the tenant.
const derivedLimit = 10

// catalogSQL lists every partitioned table that is not itself a partition,
// with its first partition key column and the btree index of the parent
// that leads with that column: valid, not partial (a predicate the probe
// would have to repeat), preferring the primary key, then unique indexes,
// then indexes with a second key column. Catalog reads only: no locks, one
// query whatever the number of tables and partitions.
const catalogSQL = `
SELECT c.oid, n.nspname::text, c.relname::text,
	CASE pt.partstrat WHEN 'h' THEN 'hash' WHEN 'l' THEN 'list' WHEN 'r' THEN 'range' ELSE pt.partstrat::text END,
	a.attname::text, format_type(a.atttypid, a.atttypmod), ix.indexname, ix.next_column
FROM pg_catalog.pg_partitioned_table pt
JOIN pg_catalog.pg_class c ON c.oid = pt.partrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = pt.partrelid AND a.attnum = pt.partattrs[0]
LEFT JOIN LATERAL (
	SELECT ic.relname::text AS indexname, na.attname::text AS next_column
	FROM pg_catalog.pg_index i
	JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
	JOIN pg_catalog.pg_am am ON am.oid = ic.relam AND am.amname = 'btree'
	LEFT JOIN pg_catalog.pg_attribute na ON na.attrelid = i.indrelid
		AND na.attnum = i.indkey[1] AND i.indnkeyatts > 1 AND NOT na.attisdropped
	WHERE i.indrelid = c.oid AND i.indkey[0] = pt.partattrs[0] AND pt.partattrs[0] <> 0
		AND i.indisvalid AND i.indpred IS NULL
	ORDER BY i.indisprimary DESC, i.indisunique DESC, (na.attname IS NOT NULL) DESC, ic.relname
	LIMIT 1
) ix ON true
WHERE NOT c.relispartition
ORDER BY 2, 3`

// catalogTable is one partitioned table as catalogSQL reads it.
type catalogTable struct {
	oid                     uint32
	schema, table, strategy string
	key, keyType            string // empty: the first partition key is an expression
	index, next             string // the tenant-leading btree index and its second key column, when any
}

// readCatalog reads the partitioned tables, leaving out the shadow and
// retained tables of migrate (recognised from its records, as the stats
// and sizes collectors do): they are not watched, so they get no derived
// probe and match no hot-table pattern.
func readCatalog(ctx context.Context, q querier) ([]catalogTable, error) {
	tables, err := scanCatalog(ctx, q)
	if err != nil {
		return nil, err
	}
	// After the catalog query: a migration that started since is recorded.
	records, err := migrationtables.Read(ctx, q)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(tables, func(t catalogTable) bool {
		_, owned := records.Lookup(t.oid, t.schema, t.table)
		return owned
	}), nil
}

func scanCatalog(ctx context.Context, q querier) ([]catalogTable, error) {
	rows, err := q.Query(ctx, catalogSQL)
	if err != nil {
		return nil, fmt.Errorf("reading partitioned tables and their tenant-leading indexes: %w", err)
	}
	defer rows.Close()
	var out []catalogTable
	for rows.Next() {
		var t catalogTable
		var key, keyType, index, next *string
		if err := rows.Scan(&t.oid, &t.schema, &t.table, &t.strategy, &key, &keyType, &index, &next); err != nil {
			return nil, fmt.Errorf("reading partitioned tables: %w", err)
		}
		t.key, t.keyType, t.index, t.next = deref(key), deref(keyType), deref(index), deref(next)
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading partitioned tables and their tenant-leading indexes: %w", err)
	}
	return out, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// Skipped is a watched hot table that has no derived probe, and why.
type Skipped struct {
	Schema string `json:"schema"`
	Table  string `json:"table"`
	Reason string `json:"reason"`
}

// derive builds one probe per watched hot table from its definition, and
// says why the other watched hot tables have none.
func derive(tables []catalogTable, sel collector.Selection) ([]Probe, []Skipped) {
	var probes []Probe
	var skipped []Skipped
	for _, t := range tables {
		if !sel.Watches(t.schema, t.table, t.strategy) || !config.MatchAny(sel.HotTables, t.schema, t.table) {
			continue
		}
		skip := func(reason string) {
			skipped = append(skipped, Skipped{Schema: t.schema, Table: t.table, Reason: reason})
		}
		switch {
		case t.strategy != "hash":
			skip(t.strategy + "-partitioned: a derived probe needs a hash partition key, the tenant key")
		case t.key == "":
			skip("the partition key is an expression, not a tenant column")
		case t.index == "":
			skip(fmt.Sprintf("no valid, non-partial btree index leads with the tenant key %s", t.key))
		default:
			probes = append(probes, Probe{
				Name: probeName(t.table), Schema: t.schema, Table: t.table, SQL: derivedSQL(t),
				Origin: OriginDerived, TenantKey: t.key, TenantKeyType: t.keyType, Index: t.index,
			})
		}
	}
	// Two schemas with a table of the same name: qualify both names.
	count := map[string]int{}
	for _, p := range probes {
		count[p.Name]++
	}
	for i, p := range probes {
		if count[p.Name] > 1 {
			probes[i].Name = probeName(p.Schema + "_" + p.Table)
		}
	}
	return probes, skipped
}

// derivedSQL is the tenant-scoped lookup the tenant-leading index serves:
// equality on the tenant key ($1, planned as the value it is, so the
// partition is pruned at planning as in the service's own queries) and,
// when the index has a second key column, equality on that too, with the
// value taken from the tenant's own first entry of the index, so the probe
// reads a real row through both index columns. Statistics give tenant ids
// per partition, but pairing one with a second-column value sampled apart
// from it would mostly look up a row that does not exist.
func derivedSQL(t catalogTable) string {
	table := pgx.Identifier{t.schema, t.table}.Sanitize()
	key := pgx.Identifier{t.key}.Sanitize()
	if t.next == "" {
		return fmt.Sprintf("SELECT *\nFROM %s\nWHERE %s = $1\nLIMIT %d", table, key, derivedLimit)
	}
	next := pgx.Identifier{t.next}.Sanitize()
	return fmt.Sprintf("SELECT *\nFROM %s\nWHERE %s = $1\n  AND %s = (SELECT %[3]s FROM %[1]s WHERE %[2]s = $1 ORDER BY %[3]s LIMIT 1)\nLIMIT %d",
		table, key, next, derivedLimit)
}

var nameUnsafe = regexp.MustCompile(`[^A-Za-z0-9_]+`)

// probeName makes a table name a probe name (letters, digits, underscores).
func probeName(s string) string {
	s = strings.Trim(nameUnsafe.ReplaceAllString(s, "_"), "_")
	if s == "" || (s[0] >= '0' && s[0] <= '9') {
		s = "t_" + s
	}
	return s
}

// unmatchedHot are the hot-table patterns that match no watched
// partitioned table.
func unmatchedHot(tables []catalogTable, sel collector.Selection) []string {
	var out []string
	for _, p := range sel.HotTables {
		matched := false
		for _, t := range tables {
			if sel.Watches(t.schema, t.table, t.strategy) && config.Pattern(p, t.schema, t.table) {
				matched = true
				break
			}
		}
		if !matched {
			out = append(out, strings.TrimSpace(p))
		}
	}
	return out
}

// UnmatchedHotTables reads the catalog and returns the PGCAPACITY_HOT_TABLES
// patterns that match no watched partitioned table: one catalog query.
func UnmatchedHotTables(ctx context.Context, q querier, sel collector.Selection) ([]string, error) {
	tables, err := readCatalog(ctx, q)
	if err != nil {
		return nil, err
	}
	return unmatchedHot(tables, sel), nil
}
