package migrate

import (
	"fmt"
	"strings"
)

// rename is one relation renamed by a swap.
type rename struct {
	kind   string // p, r (tables), I, i (indexes), S (sequences)
	schema string
	from   string
	to     string
}

func (r rename) sql() string {
	what := "TABLE"
	switch r.kind {
	case "i", "I":
		what = "INDEX"
	case "S":
		what = "SEQUENCE"
	}
	return fmt.Sprintf("ALTER %s %s RENAME TO %s", what, qi(r.schema, r.from), qi(r.to))
}

// swapInput is everything the swap script is built from. live is the
// definition of the table that carries the original name now, read inside
// the swap transaction; the "shadow" becomes live.
type swapInput struct {
	n                names
	live             *Table
	liveAfter        string   // qualified name of the current live table after the renames
	livePartitions   []string // qualified names of the live table's partitions now
	shadowPartitions []string // qualified names of the shadow's partitions after the renames
	shadowTriggers   map[string]bool
	shadowPolicies   map[string]bool
	renamesLive      []rename // live side to shadow names, applied first
	renamesShadow    []rename // shadow side to live names
	identity         []identityCarry
	serverVersion    int // server_version_num: what a foreign key can be re-created as
}

// swapLockSQL takes the locks of the swap transaction, in an order that
// lets the application's writes drain rather than deadlock with it:
//
//  1. SHARE on the table (and so its partitions) stops writes to it and
//     waits for those in flight, while writers of a referencing table go
//     on: their foreign key checks need only ROW SHARE. A cascade from the
//     table to a referencing one, which locks the table first, is either
//     done by then or waits here holding nothing of ours.
//  2. ACCESS EXCLUSIVE on the referencing tables and views then waits only
//     for their own writers, which no longer wait for anything we hold.
//  3. ACCESS EXCLUSIVE on the table (an upgrade) and the other table.
//
// Taking the referencing tables first instead deadlocks with every cascade
// in flight; taking the table first in ACCESS EXCLUSIVE deadlocks with every
// insert into a referencing table in flight. What still crosses the order
// (one transaction writing a referencing table, then the table) meets a
// transaction that notices the deadlock first and retries.
func swapLockSQL(live, other string, dependents []string) []string {
	s := []string{fmt.Sprintf("LOCK TABLE %s IN SHARE MODE", live)}
	if len(dependents) > 0 {
		s = append(s, fmt.Sprintf("LOCK TABLE %s IN ACCESS EXCLUSIVE MODE", strings.Join(dependents, ", ")))
	}
	last := live
	if other != "" {
		last += ", " + other
	}
	return append(s, fmt.Sprintf("LOCK TABLE %s IN ACCESS EXCLUSIVE MODE", last))
}

// fkForm is how a swap re-creates a foreign key of a table that references
// the migrated one, to reference the table that takes the live name.
type fkForm int

const (
	// fkNotValid: NOT VALID, validated after the commit under SHARE UPDATE
	// EXCLUSIVE on the referencing table (writes go on). Plain tables, and
	// partitioned ones from PostgreSQL 18.
	fkNotValid fkForm = iota
	// fkPerLeaf: PostgreSQL before 18 cannot add a NOT VALID foreign key
	// to a partitioned table, so NOT VALID on each leaf, validated after
	// the commit, then attached under a parent key. The attach removes the
	// leaves' triggers on the live table and its partitions under ACCESS
	// EXCLUSIVE: a second, short hold, reported with the swap's.
	fkPerLeaf
	// fkChecked: checked in the locked transaction, its cost part of the
	// hold. For a key whose action moves referencing rows between
	// partitions (MovesRows) before PostgreSQL 18: on a leaf's own key
	// such a cascade updates ONLY the leaf and fails with 23514 until the
	// attach (issue 13, D5).
	fkChecked
)

func fkFormOf(fk ForeignKey, serverVersion int) fkForm {
	switch {
	case !fk.Partitioned || serverVersion >= 180000:
		return fkNotValid
	case fk.MovesRows:
		return fkChecked
	}
	return fkPerLeaf
}

// referencingFKSQL re-creates fk in the swap transaction, after its DROP.
func referencingFKSQL(fk ForeignKey, serverVersion int) []string {
	def := strings.TrimSuffix(fk.Def, " NOT VALID")
	switch fkFormOf(fk, serverVersion) {
	case fkChecked:
		// The check joins each leaf with the whole live table: probing
		// its key index per row costs far less than hashing all of it
		// once per leaf.
		return []string{"SET LOCAL enable_hashjoin = off", "SET LOCAL enable_mergejoin = off",
			fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s %s", qi(fk.Schema, fk.Table), qi(fk.Name), def),
			"SET LOCAL enable_hashjoin TO DEFAULT", "SET LOCAL enable_mergejoin TO DEFAULT"}
	case fkPerLeaf:
		var s []string
		for _, leaf := range fk.LeafPartitions {
			s = append(s, fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s %s NOT VALID", leaf.Name, qi(fk.Name), def))
		}
		return s
	}
	return []string{fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s %s NOT VALID", qi(fk.Schema, fk.Table), qi(fk.Name), def)}
}

// identityCarry moves an identity sequence past every value in use.
type identityCarry struct {
	shadowSeqOID uint32
	value        int64
}

// swapScript is the body of the swap transaction after the locks, the final
// replay and the count check.
func swapScript(in swapInput) ([]string, error) {
	t := in.live
	newLive := t.Qualified() // the shadow takes the live name
	var s []string
	s = append(s, dropCaptureSQL(in.n, t.Qualified(), in.livePartitions)...)
	for _, r := range in.renamesLive {
		s = append(s, r.sql())
	}
	for _, r := range in.renamesShadow {
		s = append(s, r.sql())
	}
	for _, c := range in.identity {
		s = append(s, fmt.Sprintf("SELECT pg_catalog.setval(%d::pg_catalog.oid::pg_catalog.regclass, %d, true)", c.shadowSeqOID, c.value))
	}
	for _, seq := range t.Sequences {
		if !seq.Identity {
			s = append(s, fmt.Sprintf("ALTER SEQUENCE %s OWNED BY %s.%s", qi(seq.Schema, seq.Name), newLive, qi(seq.Column)))
		}
	}
	for _, fk := range t.ReferencingFKs {
		s = append(s, fmt.Sprintf("ALTER TABLE %s DROP CONSTRAINT %s", qi(fk.Schema, fk.Table), qi(fk.Name)))
		s = append(s, referencingFKSQL(fk, in.serverVersion)...)
	}
	for _, v := range t.Views {
		with, err := reloptionsClause(v.Reloptions)
		if err != nil {
			return nil, fmt.Errorf("view %s: %w", qi(v.Schema, v.Name), err)
		}
		s = append(s, fmt.Sprintf("CREATE OR REPLACE VIEW %s%s AS %s", qi(v.Schema, v.Name), with, strings.TrimSuffix(strings.TrimSpace(v.Def), ";")))
	}
	for _, tr := range t.Triggers {
		if !in.shadowTriggers[tr.Name] {
			s = append(s, tr.Def)
		}
		s = append(s, fmt.Sprintf("ALTER TABLE %s %s TRIGGER %s", newLive, triggerState(tr.Enabled), qi(tr.Name)))
		s = append(s, fmt.Sprintf("ALTER TABLE %s DISABLE TRIGGER %s", in.liveAfter, qi(tr.Name)))
	}
	if t.RowSecurity {
		s = append(s, fmt.Sprintf("ALTER TABLE %s ENABLE ROW LEVEL SECURITY", newLive))
	} else {
		s = append(s, fmt.Sprintf("ALTER TABLE %s DISABLE ROW LEVEL SECURITY", newLive))
	}
	if t.ForceRowSecurity {
		s = append(s, fmt.Sprintf("ALTER TABLE %s FORCE ROW LEVEL SECURITY", newLive))
	} else {
		s = append(s, fmt.Sprintf("ALTER TABLE %s NO FORCE ROW LEVEL SECURITY", newLive))
	}
	for _, p := range t.Policies {
		if !in.shadowPolicies[p.Name] {
			s = append(s, policySQL(p, newLive))
		}
	}
	for _, g := range t.Grants {
		s = append(s, grantSQL(g, newLive))
	}
	s = append(s, partitionGrantsSQL(t, in.shadowPartitions)...)
	if t.Comment != nil {
		s = append(s, fmt.Sprintf("COMMENT ON TABLE %s IS %s", newLive, ql(*t.Comment)))
	} else {
		s = append(s, fmt.Sprintf("COMMENT ON TABLE %s IS NULL", newLive))
	}
	for _, p := range t.Publications {
		s = append(s, fmt.Sprintf("ALTER PUBLICATION %s DROP TABLE %s", qi(p.Name), in.liveAfter))
		add := fmt.Sprintf("ALTER PUBLICATION %s ADD TABLE %s", qi(p.Name), newLive)
		if len(p.Columns) > 0 {
			add += " (" + list("", p.Columns) + ")"
		}
		if p.RowFilter != nil {
			add += " WHERE (" + *p.RowFilter + ")"
		}
		s = append(s, add)
	}
	switch t.ReplicaIdentity {
	case "f":
		s = append(s, fmt.Sprintf("ALTER TABLE %s REPLICA IDENTITY FULL", newLive))
	case "n":
		s = append(s, fmt.Sprintf("ALTER TABLE %s REPLICA IDENTITY NOTHING", newLive))
	case "d":
		s = append(s, fmt.Sprintf("ALTER TABLE %s REPLICA IDENTITY DEFAULT", newLive))
	}
	s = append(s, installCaptureSQL(in.n, newLive, in.shadowPartitions)...)
	return s, nil
}

func triggerState(enabled string) string {
	switch enabled {
	case "D":
		return "DISABLE"
	case "R":
		return "ENABLE REPLICA"
	case "A":
		return "ENABLE ALWAYS"
	}
	return "ENABLE"
}

func policySQL(p Policy, table string) string {
	roles := make([]string, len(p.Roles))
	for i, r := range p.Roles {
		if r == "public" {
			roles[i] = "PUBLIC"
		} else {
			roles[i] = qi(r)
		}
	}
	sql := fmt.Sprintf("CREATE POLICY %s ON %s AS %s FOR %s TO %s", qi(p.Name), table, p.Permissive, p.Command, strings.Join(roles, ", "))
	if p.Using != nil {
		sql += " USING (" + *p.Using + ")"
	}
	if p.WithCheck != nil {
		sql += " WITH CHECK (" + *p.WithCheck + ")"
	}
	return sql
}

// partitionGrantsSQL carries the privileges on the live table's partitions
// to the shadow's partitions (named as after the swap), so roles that read
// partitions directly keep reading them. A partition whose name the live
// table has gets that partition's grants; the others, new in the count,
// get the grants every live partition has.
func partitionGrantsSQL(live *Table, shadowPartitions []string) []string {
	var s []string
	for i, grants := range carriedPartitionGrants(live, shadowPartitions) {
		for _, g := range grants {
			s = append(s, grantSQL(g, shadowPartitions[i]))
		}
	}
	return s
}

// carriedPartitionGrants are the grants each of shadowPartitions gets (see
// partitionGrantsSQL).
func carriedPartitionGrants(live *Table, shadowPartitions []string) [][]Grant {
	byName := map[string][]Grant{}
	common := map[Grant]int{}
	for _, p := range live.Partitions {
		byName[qi(live.Schema, p.Name)] = p.Grants
		seen := map[Grant]bool{}
		for _, g := range p.Grants {
			if !seen[g] {
				seen[g] = true
				common[g]++
			}
		}
	}
	var everywhere []Grant
	if len(live.Partitions) > 0 {
		for _, g := range live.Partitions[0].Grants {
			if common[g] == len(live.Partitions) {
				everywhere = append(everywhere, g)
			}
		}
	}
	out := make([][]Grant, len(shadowPartitions))
	for i, part := range shadowPartitions {
		grants, ok := byName[part]
		if !ok {
			grants = everywhere
		}
		out[i] = grants
	}
	return out
}

func grantSQL(g Grant, table string) string {
	grantee := "PUBLIC"
	if g.Grantee != "PUBLIC" {
		grantee = qi(g.Grantee)
	}
	priv := g.Privilege
	if g.Column != "" {
		priv += " (" + qi(g.Column) + ")"
	}
	sql := fmt.Sprintf("GRANT %s ON TABLE %s TO %s", priv, table, grantee)
	if g.Grantable {
		sql += " WITH GRANT OPTION"
	}
	return sql
}

// pendingFKsSQL finds what the steps after the commit finish: every NOT
// VALID foreign key that references the live table, to validate, and the
// per-leaf constraints of partitioned referencing tables (fkPerLeaf), to
// attach under their parent (with the parent's name). A key on a partition that its siblings lack is the application's
// own, and is only validated.
const pendingFKsSQL = `
SELECT con.conrelid::pg_catalog.regclass::text, con.conname, pg_catalog.pg_get_constraintdef(con.oid), con.convalidated,
       CASE WHEN c.relispartition AND con.conparentid = 0 THEN
         (SELECT h.inhparent::pg_catalog.regclass::text FROM pg_catalog.pg_inherits h WHERE h.inhrelid = c.oid
          AND NOT EXISTS (SELECT FROM pg_catalog.pg_inherits s WHERE s.inhparent = h.inhparent AND NOT EXISTS (
            SELECT FROM pg_catalog.pg_constraint o WHERE o.conrelid = s.inhrelid AND o.conname = con.conname AND o.confrelid = $1 AND o.contype = 'f' AND o.conparentid = 0))) END
FROM pg_catalog.pg_constraint con JOIN pg_catalog.pg_class c ON c.oid = con.conrelid
WHERE con.confrelid = $1 AND con.contype = 'f' AND con.conparentid = 0 AND (NOT con.convalidated OR c.relispartition)
ORDER BY con.conrelid::pg_catalog.regclass::text COLLATE "C", con.conname COLLATE "C"`
