package statements

import (
	"slices"

	"github.com/sigid/pgcapacity/internal/sqllex"
)

// Table is a watched table: the metrics' schema and table labels.
type Table struct{ Schema, Name string }

// names maps the names a statement may use for a watched table to it: the
// table's own name, its partitions' names and the views over it. One entry
// per relation name, tables by index and schema names shared: at 16,384
// partitions this is most of what the collector keeps between rounds.
type names struct {
	tables  []Table
	index   map[Table]int32
	schemas map[string]string // each schema name once
	byRel   map[string]relNames
}

// relNames are the relations of one name: nearly always one.
type relNames struct {
	first relName
	more  []relName
}

type relName struct {
	schema string
	table  int32 // index into names.tables
}

func newNames() *names {
	return &names{index: map[Table]int32{}, schemas: map[string]string{}, byRel: map[string]relNames{}}
}

// add records that relation schema.rel stands for table t.
func (n *names) add(schema, rel string, t Table) {
	ti, ok := n.index[t]
	if !ok {
		ti = int32(len(n.tables))
		n.index[t] = ti
		n.tables = append(n.tables, t)
	}
	if s, ok := n.schemas[schema]; ok {
		schema = s
	} else {
		n.schemas[schema] = schema
	}
	r := relName{schema, ti}
	rs, ok := n.byRel[rel]
	switch {
	case !ok:
		rs.first = r
	case rs.first == r || slices.Contains(rs.more, r):
		return
	default:
		rs.more = append(rs.more, r)
	}
	n.byRel[rel] = rs
}

// each calls f with every relation named rel.
func (rs relNames) each(f func(relName)) {
	if rs.first.schema == "" && rs.more == nil {
		return // no such name
	}
	f(rs.first)
	for _, r := range rs.more {
		f(r)
	}
}

// Attribute lists the watched tables a statement's text names. It reads
// identifiers the way PostgreSQL does (unquoted ones fold to lower case,
// quoted ones keep theirs; strings and comments are skipped): schema.rel
// matches only that schema, a bare rel matches a watched relation of that
// name in any schema. It does not resolve aliases, CTE names or the
// search_path, so a column or alias spelled like a watched table counts.
func (n *names) Attribute(query string) []Table {
	toks, err := sqllex.Scan(query)
	if err != nil {
		return nil // unreadable text (truncated?): no attribution
	}
	if len(toks) > 0 && toks[0].Kind == sqllex.Word && toks[0].Value == "explain" {
		return nil // not workload: EXPLAIN (ANALYZE) is how pgcapacity's own probes run
	}
	var out []Table
	addAll := func(rel, schema string) {
		n.byRel[rel].each(func(r relName) {
			if t := n.tables[r.table]; (schema == "" || r.schema == schema) && !slices.Contains(out, t) {
				out = append(out, t)
			}
		})
	}
	ident := func(i int) (string, bool) {
		if i < 0 || i >= len(toks) {
			return "", false
		}
		if k := toks[i].Kind; k == sqllex.Word || k == sqllex.QuotedIdent {
			return toks[i].Value, true
		}
		return "", false
	}
	dot := func(i int) bool {
		return i >= 0 && i < len(toks) && toks[i].Kind == sqllex.Punct && toks[i].Value == "."
	}
	for i := range toks {
		name, ok := ident(i)
		if !ok {
			continue
		}
		if dot(i - 1) {
			// Second part of a qualified name: schema.rel.
			if schema, ok := ident(i - 2); ok {
				addAll(name, schema)
			}
			continue
		}
		if dot(i + 1) {
			continue // a qualifier: schema, alias or table of a column
		}
		addAll(name, "")
	}
	return out
}
