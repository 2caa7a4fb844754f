package statements

import (
	"github.com/sigid/pgcapacity/internal/sqllex"
)

// Table is a watched table: the metrics' schema and table labels.
type Table struct{ Schema, Name string }

// names maps the names a statement may use for a watched table to it: the
// table's own name, its partitions' names and the views over it.
type names struct {
	qualified map[[2]string][]Table // (schema, relation) → tables
	bare      map[string][]Table    // relation → tables, in any schema
}

func newNames() *names {
	return &names{qualified: map[[2]string][]Table{}, bare: map[string][]Table{}}
}

// add records that relation schema.rel stands for table t.
func (n *names) add(schema, rel string, t Table) {
	q := [2]string{schema, rel}
	if !contains(n.qualified[q], t) {
		n.qualified[q] = append(n.qualified[q], t)
	}
	if !contains(n.bare[rel], t) {
		n.bare[rel] = append(n.bare[rel], t)
	}
}

func contains(ts []Table, t Table) bool {
	for _, x := range ts {
		if x == t {
			return true
		}
	}
	return false
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
	addAll := func(ts []Table) {
		for _, t := range ts {
			if !contains(out, t) {
				out = append(out, t)
			}
		}
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
				addAll(n.qualified[[2]string{schema, name}])
			}
			continue
		}
		if dot(i + 1) {
			continue // a qualifier: schema, alias or table of a column
		}
		addAll(n.bare[name])
	}
	return out
}
