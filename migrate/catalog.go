package migrate

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// db is what the catalog readers and steps need: a connection or a transaction.
type db interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Table is the full definition of a hash-partitioned table, as far as a
// migration must reproduce or carry it.
type Table struct {
	OID              uint32
	Schema           string
	Name             string
	Owner            string
	Tuples           float64
	PartKeyDef       string   // pg_get_partkeydef: "HASH (tenant_id)"
	Strategy         string   // h, l, r
	KeyColumns       []string // partition key columns; empty when the key has expressions
	Partitions       []Partition
	Columns          []Column
	Key              []string // primary key or unique key (including the partition key) used for capture and replay
	KeyName          string   // constraint or index providing Key
	Indexes          []Index
	Constraints      []Constraint
	Triggers         []Trigger
	Policies         []Policy
	RowSecurity      bool
	ForceRowSecurity bool
	ReplicaIdentity  string
	Grants           []Grant
	Comment          *string
	ReferencingFKs   []ForeignKey
	Views            []View
	Publications     []Publication
	Sequences        []Sequence
	Problems         []string // reasons a migration cannot proceed
}

// Partition is one direct child of the table.
type Partition struct {
	OID        uint32
	Name       string
	Kind       string
	Modulus    int
	Remainder  int
	Pages      int64
	Tuples     float64
	Reloptions []string
	Indexes    []NamedRel
	Grants     []Grant // privileges on this partition itself, owner's left out
}

// NamedRel is a relation by OID and name.
type NamedRel struct {
	OID  uint32
	Name string
}

// Column is a live column of the table.
type Column struct {
	Name      string
	Type      string
	NotNull   bool
	Generated bool
	Identity  string // "", "a" (always), "d" (by default)
}

// Index is an index on the parent table.
type Index struct {
	OID        uint32
	Name       string
	Def        string
	Tail       string // the definition after "ON table ": method, columns, INCLUDE, WITH, WHERE
	Unique     bool
	Primary    bool
	Constraint string // name of the constraint the index backs, if any
	Columns    []string
	Bytes      int64 // all partitions together
	LeadColumn string
}

// Constraint is a constraint on the parent table.
type Constraint struct {
	Name      string
	Type      string // p, u, x, c, f
	Def       string
	Validated bool
}

// Trigger is a user trigger on the parent table.
type Trigger struct {
	Name    string
	Def     string
	Enabled string
}

// Policy is a row-level security policy.
type Policy struct {
	Name       string
	Permissive string
	Command    string
	Roles      []string
	Using      *string
	WithCheck  *string
}

// Grant is one privilege on the table or one of its columns.
type Grant struct {
	Grantee   string // role name or PUBLIC
	Privilege string
	Column    string // empty for table privileges
	Grantable bool
}

// ForeignKey references the table from another table.
type ForeignKey struct {
	Name           string
	TableOID       uint32
	Schema         string
	Table          string
	Def            string
	Partitioned    bool
	LeafPartitions []NamedRel
	Validated      bool
	// MovesRows: the key's action on update (cascade, set null, set
	// default) or on delete (set null, set default) writes a column of the
	// partitioned referencing table's partition key (an expression key
	// counts as written), so it can move a referencing row to another
	// partition.
	MovesRows bool
}

// View depends on the table.
type View struct {
	OID        uint32
	Schema     string
	Name       string
	Kind       string
	Def        string
	Reloptions []string
}

// Publication includes the table explicitly.
type Publication struct {
	Name      string
	RowFilter *string
	Columns   []string
}

// Sequence belongs to a column of the table (identity or serial).
type Sequence struct {
	OID      uint32
	Schema   string
	Name     string
	Column   string
	Identity bool
}

// ErrNotFound is returned when the table does not exist.
var ErrNotFound = errors.New("table not found")

var boundRe = regexp.MustCompile(`(?i)^FOR VALUES WITH \(modulus (\d+), remainder (\d+)\)$`)

// ReadTable reads the definition of schema.name. It must run inside a
// transaction with search_path set to ” so that every name in the
// definitions it reads comes back schema-qualified.
func ReadTable(ctx context.Context, q db, schema, name string) (*Table, error) {
	t := &Table{Schema: schema, Name: name}
	var kind string
	err := q.QueryRow(ctx, `
		SELECT c.oid, c.relkind::text, pg_catalog.pg_get_userbyid(c.relowner), c.reltuples,
		       c.relrowsecurity, c.relforcerowsecurity, c.relreplident::text,
		       pg_catalog.obj_description(c.oid, 'pg_class')
		FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relname = $2`, schema, name).
		Scan(&t.OID, &kind, &t.Owner, &t.Tuples, &t.RowSecurity, &t.ForceRowSecurity, &t.ReplicaIdentity, &t.Comment)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%s: %w: check the schema and table name (names are case-sensitive)", qi(schema, name), ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading table %s: %w", qi(schema, name), err)
	}
	if kind != "p" {
		t.Problems = append(t.Problems, fmt.Sprintf("%s is not partitioned (relkind %q): migrate changes the partition count of hash-partitioned tables only", qi(schema, name), kind))
		return t, nil
	}
	var keyAttrs []int16
	if err := q.QueryRow(ctx, `
		SELECT p.partstrat::text, pg_catalog.pg_get_partkeydef(p.partrelid), p.partattrs::int2[]
		FROM pg_catalog.pg_partitioned_table p WHERE p.partrelid = $1`, t.OID).Scan(&t.Strategy, &t.PartKeyDef, &keyAttrs); err != nil {
		return nil, fmt.Errorf("reading the partition key of %s: %w", qi(schema, name), err)
	}
	if t.Strategy != "h" {
		t.Problems = append(t.Problems, fmt.Sprintf("%s is partitioned by %s, not by hash: migrate changes hash partition counts only", qi(schema, name), t.PartKeyDef))
	}
	for _, a := range keyAttrs {
		if a == 0 {
			t.Problems = append(t.Problems, fmt.Sprintf("the partition key %s of %s contains an expression: only plain column keys are supported", t.PartKeyDef, qi(schema, name)))
			break
		}
	}
	steps := []func(context.Context, db, *Table) error{
		readColumns, readKeyColumns, readPartitions, readIndexes, readConstraints, readTriggers,
		readPolicies, readGrants, readPartitionGrants, readReferencingFKs, readViews, readPublications, readSequences,
	}
	for _, step := range steps {
		if err := step(ctx, q, t); err != nil {
			return nil, err
		}
	}
	t.chooseKey()
	return t, nil
}

func readColumns(ctx context.Context, q db, t *Table) error {
	rows, err := q.Query(ctx, `
		SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attgenerated <> '', a.attidentity::text
		FROM pg_catalog.pg_attribute a
		WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`, t.OID)
	if err != nil {
		return fmt.Errorf("reading the columns of %s: %w", t.Qualified(), err)
	}
	t.Columns, err = pgx.CollectRows(rows, pgx.RowToStructByPos[Column])
	if err != nil {
		return fmt.Errorf("reading the columns of %s: %w", t.Qualified(), err)
	}
	return nil
}

func readKeyColumns(ctx context.Context, q db, t *Table) error {
	rows, err := q.Query(ctx, `
		SELECT a.attname FROM pg_catalog.pg_partitioned_table p,
		       unnest(p.partattrs::int2[]) WITH ORDINALITY AS k(attnum, ord)
		JOIN pg_catalog.pg_attribute a ON a.attnum = k.attnum
		WHERE p.partrelid = $1 AND a.attrelid = $1 ORDER BY k.ord`, t.OID)
	if err != nil {
		return fmt.Errorf("reading the partition key columns of %s: %w", t.Qualified(), err)
	}
	t.KeyColumns, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("reading the partition key columns of %s: %w", t.Qualified(), err)
	}
	return nil
}

func readPartitions(ctx context.Context, q db, t *Table) error {
	rows, err := q.Query(ctx, `
		SELECT c.oid, c.relname, c.relkind::text, pg_catalog.pg_get_expr(c.relpartbound, c.oid),
		       pg_catalog.pg_relation_size(c.oid) / current_setting('block_size')::bigint,
		       c.reltuples, coalesce(c.reloptions, '{}'),
		       coalesce((SELECT array_agg(ic.oid ORDER BY ic.relname) FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid WHERE i.indrelid = c.oid), '{}'),
		       coalesce((SELECT array_agg(ic.relname::text ORDER BY ic.relname) FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid WHERE i.indrelid = c.oid), '{}')
		FROM pg_catalog.pg_inherits h JOIN pg_catalog.pg_class c ON c.oid = h.inhrelid
		WHERE h.inhparent = $1`, t.OID)
	if err != nil {
		return fmt.Errorf("reading the partitions of %s: %w", t.Qualified(), err)
	}
	defer rows.Close()
	for rows.Next() {
		var p Partition
		var bound string
		var idxOIDs []uint32
		var idxNames []string
		if err := rows.Scan(&p.OID, &p.Name, &p.Kind, &bound, &p.Pages, &p.Tuples, &p.Reloptions, &idxOIDs, &idxNames); err != nil {
			return fmt.Errorf("reading the partitions of %s: %w", t.Qualified(), err)
		}
		for i := range idxOIDs {
			p.Indexes = append(p.Indexes, NamedRel{idxOIDs[i], idxNames[i]})
		}
		if m := boundRe.FindStringSubmatch(bound); m != nil {
			p.Modulus, _ = strconv.Atoi(m[1])
			p.Remainder, _ = strconv.Atoi(m[2])
		} else if t.Strategy == "h" {
			t.Problems = append(t.Problems, fmt.Sprintf("partition %s has an unexpected bound %q", qi(t.Schema, p.Name), bound))
		}
		if p.Kind != "r" {
			t.Problems = append(t.Problems, fmt.Sprintf("partition %s is itself partitioned or not a plain table (relkind %q): sub-partitioned tables are not supported", qi(t.Schema, p.Name), p.Kind))
		}
		t.Partitions = append(t.Partitions, p)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading the partitions of %s: %w", t.Qualified(), err)
	}
	sort.Slice(t.Partitions, func(i, j int) bool {
		a, b := t.Partitions[i], t.Partitions[j]
		if a.Modulus != b.Modulus {
			return a.Modulus < b.Modulus
		}
		return a.Remainder < b.Remainder
	})
	if t.Strategy == "h" && len(t.Partitions) == 0 {
		t.Problems = append(t.Problems, fmt.Sprintf("%s has no partitions", t.Qualified()))
	}
	for _, p := range t.Partitions {
		if p.Modulus != len(t.Partitions) {
			t.Problems = append(t.Problems, fmt.Sprintf("%s mixes hash moduli (partition %s has modulus %d of %d partitions): give it a uniform partitioning first", t.Qualified(), qi(t.Schema, p.Name), p.Modulus, len(t.Partitions)))
			break
		}
	}
	return nil
}

func readIndexes(ctx context.Context, q db, t *Table) error {
	rows, err := q.Query(ctx, `
		SELECT i.indexrelid, ic.relname, pg_catalog.pg_get_indexdef(i.indexrelid),
		       'CREATE ' || CASE WHEN i.indisunique THEN 'UNIQUE ' ELSE '' END || 'INDEX ' || quote_ident(ic.relname)
		         || ' ON ONLY ' || quote_ident(n.nspname) || '.' || quote_ident(c.relname) || ' ',
		       i.indisunique, i.indisprimary, coalesce(con.conname, ''),
		       coalesce((SELECT array_agg(a.attname::text ORDER BY k.ord) FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, ord)
		                 JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
		                 WHERE k.ord <= i.indnkeyatts), '{}'),
		       i.indexprs IS NULL AND i.indpred IS NULL,
		       coalesce((SELECT sum(pg_catalog.pg_relation_size(pt.relid)) FROM pg_catalog.pg_partition_tree(i.indexrelid) pt), 0)::bigint,
		       coalesce((SELECT a.attname::text FROM pg_catalog.pg_attribute a WHERE a.attrelid = i.indrelid AND a.attnum = i.indkey[0]), ''),
		       am.amname
		FROM pg_catalog.pg_index i
		JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
		JOIN pg_catalog.pg_class c ON c.oid = i.indrelid
		JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_catalog.pg_am am ON am.oid = ic.relam
		LEFT JOIN pg_catalog.pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid AND con.contype IN ('p', 'u', 'x')
		WHERE i.indrelid = $1 ORDER BY ic.relname`, t.OID)
	if err != nil {
		return fmt.Errorf("reading the indexes of %s: %w", t.Qualified(), err)
	}
	defer rows.Close()
	for rows.Next() {
		var ix Index
		var prefix, am string
		var plain bool
		if err := rows.Scan(&ix.OID, &ix.Name, &ix.Def, &prefix, &ix.Unique, &ix.Primary, &ix.Constraint, &ix.Columns, &plain, &ix.Bytes, &ix.LeadColumn, &am); err != nil {
			return fmt.Errorf("reading the indexes of %s: %w", t.Qualified(), err)
		}
		if !strings.HasPrefix(ix.Def, prefix) {
			return fmt.Errorf("reading index %s of %s: its definition %q does not start as expected (%q)", qi(t.Schema, ix.Name), t.Qualified(), ix.Def, prefix)
		}
		ix.Tail = strings.TrimPrefix(ix.Def, prefix)
		if !plain {
			ix.Columns = nil // expression or partial index: not a usable key
		}
		if am != "btree" {
			ix.LeadColumn = ""
		}
		t.Indexes = append(t.Indexes, ix)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading the indexes of %s: %w", t.Qualified(), err)
	}
	return nil
}

func readConstraints(ctx context.Context, q db, t *Table) error {
	rows, err := q.Query(ctx, `
		SELECT conname, contype::text, pg_catalog.pg_get_constraintdef(oid), convalidated
		FROM pg_catalog.pg_constraint WHERE conrelid = $1 AND contype IN ('p', 'u', 'x', 'c', 'f') ORDER BY conname`, t.OID)
	if err != nil {
		return fmt.Errorf("reading the constraints of %s: %w", t.Qualified(), err)
	}
	t.Constraints, err = pgx.CollectRows(rows, pgx.RowToStructByPos[Constraint])
	if err != nil {
		return fmt.Errorf("reading the constraints of %s: %w", t.Qualified(), err)
	}
	for _, c := range t.Constraints {
		if c.Type == "f" && strings.Contains(c.Def, " REFERENCES "+t.Qualified()+"(") {
			t.Problems = append(t.Problems, fmt.Sprintf("foreign key %s of %s references the table itself: self-referencing tables are not supported", qi(c.Name), t.Qualified()))
		}
	}
	return nil
}

func readTriggers(ctx context.Context, q db, t *Table) error {
	rows, err := q.Query(ctx, `
		SELECT tgname, pg_catalog.pg_get_triggerdef(oid), tgenabled::text
		FROM pg_catalog.pg_trigger WHERE tgrelid = $1 AND NOT tgisinternal AND tgname NOT LIKE 'pgcapacity\_m%' ORDER BY tgname`, t.OID)
	if err != nil {
		return fmt.Errorf("reading the triggers of %s: %w", t.Qualified(), err)
	}
	t.Triggers, err = pgx.CollectRows(rows, pgx.RowToStructByPos[Trigger])
	if err != nil {
		return fmt.Errorf("reading the triggers of %s: %w", t.Qualified(), err)
	}
	return nil
}

func readPolicies(ctx context.Context, q db, t *Table) error {
	rows, err := q.Query(ctx, `
		SELECT policyname, permissive, cmd, roles::text[], qual, with_check
		FROM pg_catalog.pg_policies WHERE schemaname = $1 AND tablename = $2 ORDER BY policyname`, t.Schema, t.Name)
	if err != nil {
		return fmt.Errorf("reading the policies of %s: %w", t.Qualified(), err)
	}
	t.Policies, err = pgx.CollectRows(rows, pgx.RowToStructByPos[Policy])
	if err != nil {
		return fmt.Errorf("reading the policies of %s: %w", t.Qualified(), err)
	}
	return nil
}

func readGrants(ctx context.Context, q db, t *Table) error {
	rows, err := q.Query(ctx, `
		SELECT coalesce(r.rolname::text, 'PUBLIC'), a.privilege_type, '', a.is_grantable
		FROM pg_catalog.pg_class c, aclexplode(c.relacl) a LEFT JOIN pg_catalog.pg_roles r ON r.oid = a.grantee
		WHERE c.oid = $1 AND a.grantee <> c.relowner
		UNION ALL
		SELECT coalesce(r.rolname::text, 'PUBLIC'), a.privilege_type, at.attname::text, a.is_grantable
		FROM pg_catalog.pg_class c JOIN pg_catalog.pg_attribute at ON at.attrelid = c.oid AND at.attnum > 0 AND NOT at.attisdropped,
		     aclexplode(at.attacl) a LEFT JOIN pg_catalog.pg_roles r ON r.oid = a.grantee
		WHERE c.oid = $1 AND a.grantee <> c.relowner
		ORDER BY 1, 3, 2`, t.OID)
	if err != nil {
		return fmt.Errorf("reading the privileges on %s: %w", t.Qualified(), err)
	}
	t.Grants, err = pgx.CollectRows(rows, pgx.RowToStructByPos[Grant])
	if err != nil {
		return fmt.Errorf("reading the privileges on %s: %w", t.Qualified(), err)
	}
	return nil
}

// readPartitionGrants reads the privileges granted on each partition in one
// query: roles such as the monitoring role read partitions directly.
func readPartitionGrants(ctx context.Context, q db, t *Table) error {
	if len(t.Partitions) == 0 {
		return nil
	}
	rows, err := q.Query(ctx, `
		SELECT c.oid, coalesce(r.rolname::text, 'PUBLIC'), a.privilege_type, '', a.is_grantable
		FROM pg_catalog.pg_inherits h JOIN pg_catalog.pg_class c ON c.oid = h.inhrelid, aclexplode(c.relacl) a LEFT JOIN pg_catalog.pg_roles r ON r.oid = a.grantee
		WHERE h.inhparent = $1 AND a.grantee <> c.relowner
		UNION ALL
		SELECT c.oid, coalesce(r.rolname::text, 'PUBLIC'), a.privilege_type, at.attname::text, a.is_grantable
		FROM pg_catalog.pg_inherits h JOIN pg_catalog.pg_class c ON c.oid = h.inhrelid
		     JOIN pg_catalog.pg_attribute at ON at.attrelid = c.oid AND at.attnum > 0 AND NOT at.attisdropped,
		     aclexplode(at.attacl) a LEFT JOIN pg_catalog.pg_roles r ON r.oid = a.grantee
		WHERE h.inhparent = $1 AND a.grantee <> c.relowner
		ORDER BY 1, 2, 4, 3`, t.OID)
	if err != nil {
		return fmt.Errorf("reading the privileges on the partitions of %s: %w", t.Qualified(), err)
	}
	defer rows.Close()
	byOID := map[uint32]int{}
	for i, p := range t.Partitions {
		byOID[p.OID] = i
	}
	for rows.Next() {
		var oid uint32
		var g Grant
		if err := rows.Scan(&oid, &g.Grantee, &g.Privilege, &g.Column, &g.Grantable); err != nil {
			return fmt.Errorf("reading the privileges on the partitions of %s: %w", t.Qualified(), err)
		}
		if i, ok := byOID[oid]; ok {
			t.Partitions[i].Grants = append(t.Partitions[i].Grants, g)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading the privileges on the partitions of %s: %w", t.Qualified(), err)
	}
	return nil
}

func readReferencingFKs(ctx context.Context, q db, t *Table) error {
	rows, err := q.Query(ctx, `
		SELECT con.conname, c.oid, n.nspname, c.relname, pg_catalog.pg_get_constraintdef(con.oid), c.relkind = 'p',
		       coalesce((SELECT array_agg(pt.relid::oid ORDER BY pt.relid::text) FROM pg_catalog.pg_partition_tree(c.oid) pt WHERE pt.isleaf AND pt.relid <> c.oid), '{}'),
		       coalesce((SELECT array_agg(pt.relid::pg_catalog.regclass::text ORDER BY pt.relid::text) FROM pg_catalog.pg_partition_tree(c.oid) pt WHERE pt.isleaf AND pt.relid <> c.oid), '{}'),
		       con.convalidated,
		       c.relkind = 'p' AND (con.confupdtype IN ('c', 'n', 'd') OR con.confdeltype IN ('n', 'd')) AND EXISTS (
		         SELECT FROM pg_catalog.pg_partition_tree(c.oid) pt JOIN pg_catalog.pg_partitioned_table p ON p.partrelid = pt.relid
		         WHERE 0 = ANY (p.partattrs::int2[]) OR EXISTS (
		           SELECT FROM unnest(p.partattrs::int2[]) k(attnum)
		           JOIN pg_catalog.pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = k.attnum
		           JOIN pg_catalog.pg_attribute f ON f.attrelid = c.oid AND f.attnum = ANY (con.conkey) AND f.attname = a.attname))
		FROM pg_catalog.pg_constraint con
		JOIN pg_catalog.pg_class c ON c.oid = con.conrelid
		JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE con.confrelid = $1 AND con.contype = 'f' AND con.conparentid = 0 AND con.conrelid <> $1
		ORDER BY n.nspname, c.relname, con.conname`, t.OID)
	if err != nil {
		return fmt.Errorf("reading the foreign keys referencing %s: %w", t.Qualified(), err)
	}
	defer rows.Close()
	for rows.Next() {
		var fk ForeignKey
		var leafOIDs []uint32
		var leafNames []string
		if err := rows.Scan(&fk.Name, &fk.TableOID, &fk.Schema, &fk.Table, &fk.Def, &fk.Partitioned, &leafOIDs, &leafNames, &fk.Validated, &fk.MovesRows); err != nil {
			return fmt.Errorf("reading the foreign keys referencing %s: %w", t.Qualified(), err)
		}
		for i := range leafOIDs {
			fk.LeafPartitions = append(fk.LeafPartitions, NamedRel{leafOIDs[i], leafNames[i]})
		}
		t.ReferencingFKs = append(t.ReferencingFKs, fk)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading the foreign keys referencing %s: %w", t.Qualified(), err)
	}
	return nil
}

func readViews(ctx context.Context, q db, t *Table) error {
	rows, err := q.Query(ctx, `
		SELECT DISTINCT v.oid, n.nspname::text, v.relname::text, v.relkind::text,
		       CASE WHEN v.relkind IN ('v', 'm') THEN pg_catalog.pg_get_viewdef(v.oid) ELSE '' END,
		       coalesce(v.reloptions, '{}')
		FROM pg_catalog.pg_depend d
		JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid
		JOIN pg_catalog.pg_class v ON v.oid = r.ev_class
		JOIN pg_catalog.pg_namespace n ON n.oid = v.relnamespace
		WHERE d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
		  AND d.refobjid = $1 AND v.oid <> $1
		ORDER BY 2, 3`, t.OID)
	if err != nil {
		return fmt.Errorf("reading the views over %s: %w", t.Qualified(), err)
	}
	t.Views, err = pgx.CollectRows(rows, pgx.RowToStructByPos[View])
	if err != nil {
		return fmt.Errorf("reading the views over %s: %w", t.Qualified(), err)
	}
	for _, v := range t.Views {
		if v.Kind != "v" {
			t.Problems = append(t.Problems, fmt.Sprintf("%s (relkind %q) depends on %s and cannot be redirected in place: drop it before the migration and recreate it after the swap", qi(v.Schema, v.Name), v.Kind, t.Qualified()))
		}
	}
	return nil
}

func readPublications(ctx context.Context, q db, t *Table) error {
	var version int
	if err := q.QueryRow(ctx, `SELECT current_setting('server_version_num')::int`).Scan(&version); err != nil {
		return fmt.Errorf("reading the server version: %w", err)
	}
	query := `SELECT p.pubname::text, NULL::text, '{}'::text[] FROM pg_catalog.pg_publication_rel pr JOIN pg_catalog.pg_publication p ON p.oid = pr.prpubid WHERE pr.prrelid = $1 ORDER BY 1`
	if version >= 150000 {
		query = `SELECT p.pubname::text, pg_catalog.pg_get_expr(pr.prqual, pr.prrelid),
		       coalesce((SELECT array_agg(a.attname::text ORDER BY k.ord) FROM unnest(pr.prattrs::int2[]) WITH ORDINALITY k(attnum, ord)
		                 JOIN pg_catalog.pg_attribute a ON a.attrelid = pr.prrelid AND a.attnum = k.attnum), '{}')
		FROM pg_catalog.pg_publication_rel pr JOIN pg_catalog.pg_publication p ON p.oid = pr.prpubid WHERE pr.prrelid = $1 ORDER BY 1`
	}
	rows, err := q.Query(ctx, query, t.OID)
	if err != nil {
		return fmt.Errorf("reading the publications of %s: %w", t.Qualified(), err)
	}
	t.Publications, err = pgx.CollectRows(rows, pgx.RowToStructByPos[Publication])
	if err != nil {
		return fmt.Errorf("reading the publications of %s: %w", t.Qualified(), err)
	}
	return nil
}

func readSequences(ctx context.Context, q db, t *Table) error {
	rows, err := q.Query(ctx, `
		SELECT s.oid, n.nspname::text, s.relname::text, a.attname::text, d.deptype = 'i'
		FROM pg_catalog.pg_depend d
		JOIN pg_catalog.pg_class s ON s.oid = d.objid AND s.relkind = 'S'
		JOIN pg_catalog.pg_namespace n ON n.oid = s.relnamespace
		JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
		WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
		  AND d.refobjid = $1 AND d.deptype IN ('a', 'i')
		ORDER BY a.attnum`, t.OID)
	if err != nil {
		return fmt.Errorf("reading the sequences of %s: %w", t.Qualified(), err)
	}
	t.Sequences, err = pgx.CollectRows(rows, pgx.RowToStructByPos[Sequence])
	if err != nil {
		return fmt.Errorf("reading the sequences of %s: %w", t.Qualified(), err)
	}
	return nil
}

// chooseKey picks the key that capture logs and replay matches on: the
// primary key, else the first unique key over NOT NULL columns; either must
// contain every partition key column.
func (t *Table) chooseKey() {
	if t.Strategy != "h" || len(t.KeyColumns) == 0 {
		return
	}
	notNull := map[string]bool{}
	for _, c := range t.Columns {
		notNull[c.Name] = c.NotNull
	}
	usable := func(ix Index) bool {
		if !ix.Unique || len(ix.Columns) == 0 {
			return false
		}
		has := map[string]bool{}
		for _, c := range ix.Columns {
			if !notNull[c] {
				return false
			}
			has[c] = true
		}
		for _, k := range t.KeyColumns {
			if !has[k] {
				return false
			}
		}
		return true
	}
	candidates := append([]Index(nil), t.Indexes...)
	sort.SliceStable(candidates, func(i, j int) bool { return candidates[i].Primary && !candidates[j].Primary })
	for _, ix := range candidates {
		if usable(ix) {
			t.Key, t.KeyName = ix.Columns, ix.Name
			return
		}
	}
	t.Problems = append(t.Problems, fmt.Sprintf("%s has no primary key or unique key over NOT NULL columns that includes the partition key (%s): add one, since change capture and replay match rows by it", t.Qualified(), strings.Join(t.KeyColumns, ", ")))
}

// Qualified is the quoted schema-qualified name.
func (t *Table) Qualified() string { return qi(t.Schema, t.Name) }

// InsertableColumns are the columns a copy writes: all but generated ones.
func (t *Table) InsertableColumns() []string {
	var cols []string
	for _, c := range t.Columns {
		if !c.Generated {
			cols = append(cols, c.Name)
		}
	}
	return cols
}

// AllColumns are the names of every live column, in order.
func (t *Table) AllColumns() []string {
	cols := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		cols[i] = c.Name
	}
	return cols
}

// HasIdentityAlways reports a GENERATED ALWAYS identity column, which a
// copy must write with OVERRIDING SYSTEM VALUE.
func (t *Table) HasIdentityAlways() bool {
	for _, c := range t.Columns {
		if c.Identity == "a" {
			return true
		}
	}
	return false
}

// PartitionBytes is the heap size of all partitions (from block counts).
func (t *Table) Pages() int64 {
	var n int64
	for _, p := range t.Partitions {
		n += p.Pages
	}
	return n
}

// Rows is the planner's row estimate summed over partitions (never negative).
func (t *Table) Rows() float64 {
	var n float64
	for _, p := range t.Partitions {
		if p.Tuples > 0 {
			n += p.Tuples
		}
	}
	return n
}
