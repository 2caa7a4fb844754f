package migrate

import (
	"fmt"
	"strings"
)

// The SQL of every step is built here, from the table's definition, so that
// `migrate plan` prints exactly what the other commands run.

// names of a migration's objects.
type names struct {
	id          int64
	schema      string
	original    string // the table's name
	newTable    string // the new table before the swap
	retained    string // the original after the swap
	partitions  int    // target count
	logTable    string // qualified
	captureFunc string // qualified
	guardFunc   string // qualified
}

func newNames(id int64, t *Table, partitions int) names {
	return names{
		id:          id,
		schema:      t.Schema,
		original:    t.Name,
		newTable:    shadowNewName(id, t.Name),
		retained:    shadowOldName(id, t.Name),
		partitions:  partitions,
		logTable:    qi(StateSchema, logTableName(id)),
		captureFunc: qi(StateSchema, captureFunctionName(id)),
		guardFunc:   qi(StateSchema, guardFunctionName(id)),
	}
}

func (n names) newQualified() string { return qi(n.schema, n.newTable) }

// newPartitionShadow and newPartitionLive name new partition i before and
// after the swap.
func (n names) newPartitionShadow(i int) string {
	return shadowNewName(n.id, partitionName(n.original, i))
}
func (n names) newPartitionLive(i int) string { return partitionName(n.original, i) }

// commonReloptions returns the storage parameters every partition shares.
func commonReloptions(t *Table) []string {
	if len(t.Partitions) == 0 {
		return nil
	}
	first := strings.Join(t.Partitions[0].Reloptions, "\x00")
	for _, p := range t.Partitions[1:] {
		if strings.Join(p.Reloptions, "\x00") != first {
			return nil
		}
	}
	return t.Partitions[0].Reloptions
}

// createNewTableSQL creates the new partitioned table: columns, defaults,
// identity, generated columns, CHECK constraints, storage, compression,
// column comments and extended statistics by LIKE; keys, indexes and
// outgoing foreign keys explicitly under shadow names; then the partitions.
func createNewTableSQL(t *Table, n names, currentUser string) ([]string, error) {
	nt := n.newQualified()
	stmts := []string{
		fmt.Sprintf("CREATE TABLE %s (LIKE %s INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING GENERATED INCLUDING CONSTRAINTS "+
			"INCLUDING STORAGE INCLUDING COMPRESSION INCLUDING COMMENTS INCLUDING STATISTICS) PARTITION BY %s",
			nt, t.Qualified(), t.PartKeyDef),
	}
	if t.Owner != currentUser {
		stmts = append(stmts, fmt.Sprintf("ALTER TABLE %s OWNER TO %s", nt, qi(t.Owner)))
	}
	defs := map[string]Constraint{}
	for _, c := range t.Constraints {
		defs[c.Name] = c
	}
	for _, ix := range t.Indexes {
		if ix.Constraint != "" {
			stmts = append(stmts, fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s %s", nt, qi(shadowNewName(n.id, ix.Constraint)), defs[ix.Constraint].Def))
			continue
		}
		unique := ""
		if ix.Unique {
			unique = "UNIQUE "
		}
		stmts = append(stmts, fmt.Sprintf("CREATE %sINDEX %s ON %s %s", unique, qi(shadowNewName(n.id, ix.Name)), nt, ix.Tail))
	}
	for _, c := range t.Constraints {
		if c.Type == "f" {
			stmts = append(stmts, fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s %s", nt, qi(c.Name), c.Def))
		}
	}
	with, err := reloptionsClause(commonReloptions(t))
	if err != nil {
		return nil, err
	}
	for i := 0; i < n.partitions; i++ {
		stmts = append(stmts, fmt.Sprintf("CREATE TABLE %s PARTITION OF %s FOR VALUES WITH (MODULUS %d, REMAINDER %d)%s",
			qi(n.schema, n.newPartitionShadow(i)), nt, n.partitions, i, with))
	}
	return stmts, nil
}

// keyTypes returns the key columns with their types.
func keyTypes(t *Table) ([]string, error) {
	types := map[string]string{}
	for _, c := range t.Columns {
		types[c.Name] = c.Type
	}
	var cols []string
	for _, k := range t.Key {
		typ, ok := types[k]
		if !ok {
			return nil, fmt.Errorf("key column %q not found in %s", k, t.Qualified())
		}
		cols = append(cols, qi(k)+" "+typ)
	}
	return cols, nil
}

func list(prefix string, cols []string) string {
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = prefix + qi(c)
	}
	return strings.Join(parts, ", ")
}

func keyJoin(a, b string, key []string) string {
	parts := make([]string, len(key))
	for i, k := range key {
		parts[i] = fmt.Sprintf("%s.%s = %s.%s", a, qi(k), b, qi(k))
	}
	return strings.Join(parts, " AND ")
}

// captureSetupSQL creates the change log and the trigger functions. The
// capture function is SECURITY DEFINER so that the application's roles,
// which have no rights on the pgcapacity schema, can write through it.
func captureSetupSQL(t *Table, n names) ([]string, error) {
	cols, err := keyTypes(t)
	if err != nil {
		return nil, err
	}
	ins := func(rec string) string {
		return fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s);", n.logTable, list("", t.Key), list(rec+".", t.Key))
	}
	body := fmt.Sprintf(`
BEGIN
  IF TG_OP = 'DELETE' THEN
    %s
  ELSE
    %s
    IF TG_OP = 'UPDATE' AND (%s) IS DISTINCT FROM (%s) THEN
      %s
    END IF;
  END IF;
  RETURN NULL;
END
`, ins("OLD"), ins("NEW"), list("OLD.", t.Key), list("NEW.", t.Key), ins("OLD"))
	if len(t.Key) == 1 {
		body = strings.Replace(body, fmt.Sprintf("(%s) IS DISTINCT FROM (%s)", list("OLD.", t.Key), list("NEW.", t.Key)),
			fmt.Sprintf("%s IS DISTINCT FROM %s", list("OLD.", t.Key), list("NEW.", t.Key)), 1)
	}
	guard := fmt.Sprintf(`
BEGIN
  RAISE EXCEPTION USING MESSAGE = %s, HINT = %s;
END
`, ql(fmt.Sprintf("pgcapacity migration %d captures the changes of this table: TRUNCATE would bypass the capture", n.id)),
		ql(fmt.Sprintf("finish the migration (pgcapacity migrate drop-old %d) or abort it (pgcapacity migrate abort %d) first", n.id, n.id)))
	return []string{
		fmt.Sprintf("CREATE TABLE %s (seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, %s)", n.logTable, strings.Join(cols, ", ")),
		fmt.Sprintf("CREATE INDEX %s ON %s (%s)", qi(fmt.Sprintf("m%d_log_key", n.id)), n.logTable, list("", t.Key)),
		fmt.Sprintf("CREATE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS %s",
			n.captureFunc, dollarQuote(body)),
		fmt.Sprintf("CREATE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS %s",
			n.guardFunc, dollarQuote(guard)),
	}, nil
}

// installCaptureSQL puts the capture trigger on the live table and a
// TRUNCATE guard on it and each of its partitions (statement triggers are
// not inherited).
func installCaptureSQL(n names, live string, partitions []string) []string {
	stmts := []string{
		fmt.Sprintf("CREATE TRIGGER %s AFTER INSERT OR UPDATE OR DELETE ON %s FOR EACH ROW EXECUTE FUNCTION %s()", qi(captureTriggerName(n.id)), live, n.captureFunc),
		fmt.Sprintf("CREATE TRIGGER %s BEFORE TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION %s()", qi(guardTriggerName(n.id)), live, n.guardFunc),
	}
	for _, p := range partitions {
		stmts = append(stmts, fmt.Sprintf("CREATE TRIGGER %s BEFORE TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION %s()", qi(guardTriggerName(n.id)), p, n.guardFunc))
	}
	return stmts
}

func dropCaptureSQL(n names, live string, partitions []string) []string {
	stmts := []string{
		fmt.Sprintf("DROP TRIGGER IF EXISTS %s ON %s", qi(captureTriggerName(n.id)), live),
		fmt.Sprintf("DROP TRIGGER IF EXISTS %s ON %s", qi(guardTriggerName(n.id)), live),
	}
	for _, p := range partitions {
		stmts = append(stmts, fmt.Sprintf("DROP TRIGGER IF EXISTS %s ON %s", qi(guardTriggerName(n.id)), p))
	}
	return stmts
}

func overriding(t *Table) string {
	if t.HasIdentityAlways() {
		return " OVERRIDING SYSTEM VALUE"
	}
	return ""
}

// copyBatchSQL copies the rows of one source partition in a block range
// ($1 inclusive, $2 exclusive) into the new table, routed by its
// partitioning. The plain form is the fast path; a row updated during the
// copy can reappear as a new version in a later block range of the same
// partition, and then the batch is rerun in the conflict form, which skips
// rows already copied (replay brings them up to date).
func copyBatchSQL(t *Table, n names, source string) (plain, onConflict, count string) {
	cols := t.InsertableColumns()
	where := fmt.Sprintf("ctid >= format('(%%s,0)', $1::bigint)::tid AND ctid < format('(%%s,0)', $2::bigint)::tid")
	plain = fmt.Sprintf(`INSERT INTO %s (%s)%s SELECT %s FROM ONLY %s WHERE %s`,
		n.newQualified(), list("", cols), overriding(t), list("", cols), source, where)
	return plain, plain + " ON CONFLICT DO NOTHING", fmt.Sprintf(`SELECT count(*) FROM ONLY %s WHERE %s`, source, where)
}

// replaySQL consumes up to $1 log entries in log order and resynchronises
// their keys from the live table into the shadow: delete the keys the live
// table no longer has (or has with another identity ALWAYS value), then upsert the live rows (an update that changes
// nothing is skipped, and one that changes no indexed column stays HOT).
// When a unique key other than the replay key makes the upsert collide (a
// value moving between rows), the stale shadow row holding the value may
// belong to a key of a later batch: the batch then falls back to
// resynchronising every key still in the log as well, removing the shadow
// rows that differ from the live ones and inserting the live rows missing.
// In the batch's snapshot every shadow row that differs from its live row
// has a log entry, so afterwards the shadow holds only live rows and no
// unique key can collide. Rerunning either is harmless; a change committed
// after the snapshot leaves its own log entry for the next round.
type replayStatements struct {
	take, remove, upsert   string
	resyncStale, resyncAdd string // the fallback: batch keys and all logged keys
	check                  string // changedKeysCheckSQL
}

func replaySQL(t *Table, n names, live, shadow string) replayStatements {
	cols := t.InsertableColumns()
	keys := fmt.Sprintf("jsonb_populate_recordset(NULL::%s, $1)", n.logTable)
	resync := fmt.Sprintf("(SELECT %s FROM %s UNION SELECT %s FROM %s)", list("", t.Key), keys, list("", t.Key), n.logTable)
	isKey := map[string]bool{}
	for _, k := range t.Key {
		isKey[k] = true
	}
	// An identity GENERATED ALWAYS column can only be written by an
	// INSERT OVERRIDING SYSTEM VALUE, never by the upsert's UPDATE (428C9):
	// a shadow row whose identity value differs from the live row's (the
	// key deleted and inserted again) is removed and inserted instead.
	var always []string
	for _, c := range t.Columns {
		if c.Identity == "a" && !isKey[c.Name] {
			always = append(always, c.Name)
			isKey[c.Name] = true
		}
	}
	sameRow := keyJoin("l", "k", t.Key)
	for _, c := range always {
		sameRow += fmt.Sprintf(" AND l.%s IS NOT DISTINCT FROM t.%s", qi(c), qi(c))
	}
	var set, cur, exc []string
	for _, c := range cols {
		if isKey[c] {
			continue
		}
		set = append(set, fmt.Sprintf("%s = EXCLUDED.%s", qi(c), qi(c)))
		cur = append(cur, "s."+qi(c))
		exc = append(exc, "EXCLUDED."+qi(c))
	}
	conflict := "DO NOTHING"
	if len(set) > 0 {
		conflict = fmt.Sprintf("DO UPDATE SET %s WHERE (%s) IS DISTINCT FROM (%s)", strings.Join(set, ", "), strings.Join(cur, ", "), strings.Join(exc, ", "))
		if len(cur) == 1 {
			conflict = fmt.Sprintf("DO UPDATE SET %s WHERE %s IS DISTINCT FROM %s", set[0], cur[0], exc[0])
		}
	}
	return replayStatements{
		take: fmt.Sprintf(`WITH d AS (
  DELETE FROM %s WHERE seq IN (SELECT seq FROM %s ORDER BY seq LIMIT $1) RETURNING %s
)
SELECT count(*), coalesce(jsonb_agg(DISTINCT to_jsonb(d)), '[]'::jsonb) FROM d`, n.logTable, n.logTable, list("", t.Key)),
		remove: fmt.Sprintf(`DELETE FROM %s t USING %s k WHERE %s AND NOT EXISTS (SELECT 1 FROM %s l WHERE %s)`,
			shadow, keys, keyJoin("t", "k", t.Key), live, sameRow),
		upsert: fmt.Sprintf(`INSERT INTO %s AS s (%s)%s SELECT %s FROM %s t JOIN %s k ON %s ON CONFLICT (%s) %s`,
			shadow, list("", cols), overriding(t), list("t.", cols), live, keys, keyJoin("t", "k", t.Key), list("", t.Key), conflict),
		resyncStale: fmt.Sprintf(`DELETE FROM %s t USING %s k WHERE %s AND NOT EXISTS (SELECT 1 FROM %s l WHERE %s AND ROW(%s) IS NOT DISTINCT FROM ROW(%s))`,
			shadow, resync, keyJoin("t", "k", t.Key), live, keyJoin("l", "k", t.Key), list("l.", cols), list("t.", cols)),
		resyncAdd: fmt.Sprintf(`INSERT INTO %s (%s)%s SELECT %s FROM %s t JOIN %s k ON %s ON CONFLICT (%s) DO NOTHING`,
			shadow, list("", cols), overriding(t), list("t.", cols), live, resync, keyJoin("t", "k", t.Key), list("", t.Key)),
		check: changedKeysCheckSQL(t, n, live, shadow),
	}
}

// rowHash is an order-independent content checksum term of one row.
func rowHash(t *Table) string {
	return fmt.Sprintf("('x' || left(md5(ROW(%s)::text), 16))::bit(64)::bigint::numeric", list("t.", t.AllColumns()))
}

func notPending(t *Table, n names) string {
	return fmt.Sprintf("NOT EXISTS (SELECT 1 FROM %s g WHERE %s)", n.logTable, keyJoin("g", "t", t.Key))
}

// validateOriginalSQL counts and checksums one original partition's rows
// grouped by the new partition each hashes to ($1 the candidate remainders,
// $2 the new parent's OID, $3 the new modulus); keys with changes still in
// the log are left out on both sides.
func validateOriginalSQL(t *Table, n names, source string) string {
	return fmt.Sprintf(`SELECT c.i, count(*), coalesce(sum(%s), 0)
FROM ONLY %s t
CROSS JOIN LATERAL (SELECT i FROM unnest($1::int[]) AS i WHERE satisfies_hash_partition($2::oid, $3::int, i, %s) LIMIT 1) c
WHERE %s
GROUP BY c.i`, rowHash(t), source, list("t.", t.KeyColumns), notPending(t, n))
}

func validateNewSQL(t *Table, n names, partition string) string {
	return fmt.Sprintf(`SELECT count(*), coalesce(sum(%s), 0) FROM ONLY %s t WHERE %s`, rowHash(t), partition, notPending(t, n))
}

// candidates lists the new partitions that rows of original partition j
// (of from) can hash to: h ≡ j (mod from) and h ≡ i (mod to) need
// i ≡ j (mod gcd(from, to)).
func candidates(j, from, to int) []int32 {
	g := gcd(from, to)
	var out []int32
	for i := 0; i < to; i++ {
		if i%g == j%g {
			out = append(out, int32(i))
		}
	}
	return out
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// snapshotCountSQL counts both tables in one snapshot, leaving out keys
// whose changes are still in the log (they are checked under the lock).
func snapshotCountSQL(t *Table, n names, live, shadow string) string {
	return fmt.Sprintf(`SELECT (SELECT count(*) FROM %s t WHERE %s), (SELECT count(*) FROM %s t WHERE %s)`,
		live, notPending(t, n), shadow, notPending(t, n))
}

// changedKeysCheckSQL counts, among the keys replayed since the snapshot
// count ($1: JSON arrays of key objects), those whose rows differ between
// the two tables: present on one side only, or with different content.
// Correlated subqueries keep it to index lookups per key whatever the
// planner guesses about the number of keys.
func changedKeysCheckSQL(t *Table, n names, live, shadow string) string {
	cols := t.AllColumns()
	return fmt.Sprintf(`WITH k AS (
  SELECT DISTINCT %s FROM unnest($1::text[]) AS j, jsonb_populate_recordset(NULL::%s, j::jsonb) AS r
)
SELECT count(*) FROM k
WHERE (SELECT ROW(%s) FROM %s l WHERE %s) IS DISTINCT FROM (SELECT ROW(%s) FROM %s s WHERE %s)`,
		list("r.", t.Key), n.logTable, list("l.", cols), live, keyJoin("l", "k", t.Key), list("s.", cols), shadow, keyJoin("s", "k", t.Key))
}
