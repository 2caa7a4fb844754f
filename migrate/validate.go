package migrate

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/sigid/pgcapacity/migrate/state"
)

// Validation is the result of comparing the two tables.
type Validation struct {
	OK         bool
	Pending    int64 // keys left out because their changes are still in the log
	Partitions []PartitionCheck
	Problems   []string
}

// PartitionCheck compares one new partition with the original rows that
// hash to it.
type PartitionCheck struct {
	Remainder        int
	Name             string
	NewRows          int64
	OriginalRows     int64
	NewChecksum      string
	OriginalChecksum string
	OK               bool
}

// Validate compares row counts and content checksums per new partition in
// one snapshot, and checks that the new table's constraints and indexes
// are equivalent to the original's and all valid. A passing validation is
// recorded; the swap requires one.
func (m *Migrator) Validate(ctx context.Context, id int64, opts CopyOptions) (*Validation, error) {
	opts = opts.withDefaults()
	mig, lock, _, err := m.admit(ctx, id, state.StepValidate)
	if err != nil {
		return nil, err
	}
	defer lock.release()
	ctx = lock.bind(ctx)
	if err := m.catchUp(ctx, id, opts); err != nil {
		return nil, err
	}
	v := &Validation{}
	tx, err := m.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, `SELECT pg_catalog.set_config('search_path', '', true)`); err != nil {
		return nil, err
	}
	orig, err := tableByOID(ctx, tx, mig.OriginalOID)
	if err != nil {
		return nil, err
	}
	nt, err := tableByOID(ctx, tx, *mig.NewOID)
	if err != nil {
		return nil, err
	}
	orig.Key, nt.Key = mig.KeyColumns, mig.KeyColumns
	n := newNames(id, orig, mig.ToPartitions)
	if v.Pending, err = backlog(ctx, tx, id); err != nil {
		return nil, err
	}
	v.Problems = append(v.Problems, compareDefinitions(orig, nt, mig.ToPartitions)...)
	var invalid int64
	if err := tx.QueryRow(ctx, `
		SELECT (SELECT count(*) FROM pg_catalog.pg_index i WHERE i.indrelid IN (SELECT relid FROM pg_catalog.pg_partition_tree($1))
		          AND NOT (i.indisvalid AND i.indisready AND i.indislive))
		     + (SELECT count(*) FROM pg_catalog.pg_constraint c WHERE c.conrelid IN (SELECT relid FROM pg_catalog.pg_partition_tree($1)) AND NOT c.convalidated)`,
		nt.OID).Scan(&invalid); err != nil {
		return nil, fmt.Errorf("checking index and constraint validity: %w", err)
	}
	if invalid > 0 {
		v.Problems = append(v.Problems, fmt.Sprintf("%d index(es) or constraint(s) of the new table are not valid", invalid))
	}
	type sums struct {
		rows int64
		sum  string
	}
	origSums := map[int]*sums{}
	from := len(orig.Partitions)
	for j, p := range orig.Partitions {
		rows, err := tx.Query(ctx, validateOriginalSQL(orig, n, qi(orig.Schema, p.Name)), candidates(j, from, mig.ToPartitions), nt.OID, mig.ToPartitions)
		if err != nil {
			return nil, fmt.Errorf("checksumming %s: %w", qi(orig.Schema, p.Name), err)
		}
		for rows.Next() {
			var i int
			var c int64
			var s string
			if err := rows.Scan(&i, &c, &s); err != nil {
				rows.Close()
				return nil, err
			}
			if origSums[i] == nil {
				origSums[i] = &sums{sum: "0"}
			}
			origSums[i].rows += c
			origSums[i].sum = addDecimal(origSums[i].sum, s)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("checksumming %s: %w", qi(orig.Schema, p.Name), err)
		}
	}
	v.OK = len(v.Problems) == 0
	for _, p := range nt.Partitions {
		pc := PartitionCheck{Remainder: p.Remainder, Name: p.Name, OriginalChecksum: "0"}
		if err := tx.QueryRow(ctx, validateNewSQL(nt, n, qi(nt.Schema, p.Name))).Scan(&pc.NewRows, &pc.NewChecksum); err != nil {
			return nil, fmt.Errorf("checksumming %s: %w", qi(nt.Schema, p.Name), err)
		}
		if o := origSums[p.Remainder]; o != nil {
			pc.OriginalRows, pc.OriginalChecksum = o.rows, o.sum
		}
		pc.OK = pc.NewRows == pc.OriginalRows && pc.NewChecksum == pc.OriginalChecksum
		if !pc.OK {
			v.OK = false
		}
		v.Partitions = append(v.Partitions, pc)
	}
	sort.Slice(v.Partitions, func(i, j int) bool { return v.Partitions[i].Remainder < v.Partitions[j].Remainder })
	_ = tx.Rollback(ctx)
	if v.OK {
		if err := state.SetValidated(ctx, m.pool, id); err != nil {
			return v, err
		}
	}
	detail := fmt.Sprintf("ok=%v partitions=%d pending=%d", v.OK, len(v.Partitions), v.Pending)
	if len(v.Problems) > 0 {
		detail += "; " + strings.Join(v.Problems, "; ")
	}
	_ = state.RecordEvent(ctx, m.pool, id, "validate", detail)
	return v, nil
}

// addDecimal adds two decimal integers given as text (checksums are
// numeric sums that can exceed int64).
func addDecimal(a, b string) string {
	neg := func(s string) (bool, string) { return strings.HasPrefix(s, "-"), strings.TrimPrefix(s, "-") }
	na, da := neg(a)
	nb, db := neg(b)
	if na == nb {
		r := addDigits(da, db)
		if na && r != "0" {
			return "-" + r
		}
		return r
	}
	if cmpDigits(da, db) >= 0 {
		r := subDigits(da, db)
		if na && r != "0" {
			return "-" + r
		}
		return r
	}
	r := subDigits(db, da)
	if nb && r != "0" {
		return "-" + r
	}
	return r
}

func cmpDigits(a, b string) int {
	if len(a) != len(b) {
		if len(a) < len(b) {
			return -1
		}
		return 1
	}
	return strings.Compare(a, b)
}

func addDigits(a, b string) string {
	var out []byte
	carry := 0
	for i, j := len(a)-1, len(b)-1; i >= 0 || j >= 0 || carry > 0; i, j = i-1, j-1 {
		d := carry
		if i >= 0 {
			d += int(a[i] - '0')
		}
		if j >= 0 {
			d += int(b[j] - '0')
		}
		out = append(out, byte('0'+d%10))
		carry = d / 10
	}
	return trimDigits(reverse(out))
}

func subDigits(a, b string) string { // a >= b
	var out []byte
	borrow := 0
	for i, j := len(a)-1, len(b)-1; i >= 0; i, j = i-1, j-1 {
		d := int(a[i]-'0') - borrow
		if j >= 0 {
			d -= int(b[j] - '0')
		}
		borrow = 0
		if d < 0 {
			d += 10
			borrow = 1
		}
		out = append(out, byte('0'+d))
	}
	return trimDigits(reverse(out))
}

func reverse(b []byte) string {
	for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
	return string(b)
}

func trimDigits(s string) string {
	s = strings.TrimLeft(s, "0")
	if s == "" {
		return "0"
	}
	return s
}

// compareDefinitions lists how the new table differs from the original in
// columns, indexes and constraints, and checks its partitions.
func compareDefinitions(orig, nt *Table, to int) []string {
	var problems []string
	col := func(c Column) string {
		return fmt.Sprintf("%s %s notnull=%v generated=%v identity=%q", c.Name, c.Type, c.NotNull, c.Generated, c.Identity)
	}
	if a, b := mapStrings(orig.Columns, col), mapStrings(nt.Columns, col); strings.Join(a, "\n") != strings.Join(b, "\n") {
		problems = append(problems, fmt.Sprintf("columns differ: original %v, new %v", a, b))
	}
	ix := func(i Index) string { return fmt.Sprintf("unique=%v primary=%v %s", i.Unique, i.Primary, i.Tail) }
	if d := multisetDiff(mapStrings(orig.Indexes, ix), mapStrings(nt.Indexes, ix)); d != "" {
		problems = append(problems, "indexes differ: "+d)
	}
	con := func(c Constraint) string {
		if c.Type == "c" || c.Type == "f" {
			return c.Type + " " + c.Name + " " + c.Def
		}
		return c.Type + " " + c.Def
	}
	if d := multisetDiff(mapStrings(orig.Constraints, con), mapStrings(nt.Constraints, con)); d != "" {
		problems = append(problems, "constraints differ: "+d)
	}
	if len(nt.Partitions) != to {
		problems = append(problems, fmt.Sprintf("the new table has %d partitions, not %d", len(nt.Partitions), to))
	}
	for i, p := range nt.Partitions {
		if p.Modulus != to || p.Remainder != i {
			problems = append(problems, fmt.Sprintf("new partition %s has bound modulus %d remainder %d", p.Name, p.Modulus, p.Remainder))
		}
	}
	return append(problems, nt.Problems...)
}

func mapStrings[T any](xs []T, f func(T) string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = f(x)
	}
	sort.Strings(out)
	return out
}

func multisetDiff(a, b []string) string {
	count := map[string]int{}
	for _, x := range a {
		count[x]++
	}
	for _, x := range b {
		count[x]--
	}
	var only []string
	for k, v := range count {
		switch {
		case v > 0:
			only = append(only, "only in the original: "+k)
		case v < 0:
			only = append(only, "only in the new table: "+k)
		}
	}
	sort.Strings(only)
	return strings.Join(only, "; ")
}
