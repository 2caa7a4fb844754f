// Package migrationtables recognises the tables `pgcapacity migrate` owns,
// from the records migrate keeps in the pgcapacity schema: a migration's
// shadow table (the new table being filled, or the new table after a
// rollback) and its retained table (the original, kept for rollback after
// a swap). The stats and sizes collectors keep these apart from the
// watched tables and publish them as pgcapacity_migration_table_*{id,role}.
//
// A table is one of them when its OID is the one a migration recorded and
// it carries the name recorded for that role. Names alone are not enough
// (a user may name a table n1_session), and the OID alone is not either
// (after a swap the new table carries the live name; a dropped table's OID
// may be reused).
//
// Read queries migrate's state read-only (migrate/state.go defines the
// schema); migrate itself does not import this package.
package migrationtables

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Roles of a migration table, the role label's values.
const (
	RoleShadow   = "shadow"   // the new table while not live
	RoleRetained = "retained" // the original while not live
)

// Table is one table a migration owns.
type Table struct {
	ID   int64
	Role string
}

// Records are the migrations recorded in a database, by the OIDs of the
// tables they own. The zero value knows no migration.
type Records struct {
	// Several per OID: a table that one migration created and made live
	// is the original of the next migration of that table.
	byOID map[uint32][]record
}

type record struct {
	Table
	schema, name string
}

// Querier is what Read needs of a pool or connection.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// existsSQL: no pgcapacity schema means no migration was ever started.
// Checking first keeps such databases free of an error per round in their
// server log.
const existsSQL = `SELECT to_regclass('pgcapacity.migration') IS NOT NULL`

// recordsSQL reads every migration, finished ones too: a table the round's
// catalog query saw may have been dropped by a drop-old or abort that
// committed since, and must still not count as an ordinary table.
const recordsSQL = `
SELECT id, schema_name, original_oid, retained_name, new_oid, new_name
FROM pgcapacity.migration`

// Read returns the migrations recorded in the database. Read it after the
// catalog query whose tables it classifies: a migration that started in
// between is then already recorded.
func Read(ctx context.Context, q Querier) (Records, error) {
	var exists bool
	if err := q.QueryRow(ctx, existsSQL).Scan(&exists); err != nil {
		return Records{}, fmt.Errorf("looking for migrate's records: %w", err)
	}
	if !exists {
		return Records{}, nil
	}
	rows, err := q.Query(ctx, recordsSQL)
	if err != nil {
		return Records{}, fmt.Errorf("reading migrate's records of its tables: %w", err)
	}
	defer rows.Close()
	r := Records{byOID: map[uint32][]record{}}
	for rows.Next() {
		var (
			id                        int64
			schema, retained, newName string
			original                  uint32
			newOID                    *uint32
		)
		if err := rows.Scan(&id, &schema, &original, &retained, &newOID, &newName); err != nil {
			return Records{}, fmt.Errorf("reading migrate's records of its tables: %w", err)
		}
		r.byOID[original] = append(r.byOID[original], record{Table{id, RoleRetained}, schema, retained})
		if newOID != nil {
			r.byOID[*newOID] = append(r.byOID[*newOID], record{Table{id, RoleShadow}, schema, newName})
		}
	}
	if err := rows.Err(); err != nil {
		return Records{}, fmt.Errorf("reading migrate's records of its tables: %w", err)
	}
	return r, nil
}

// Lookup says whether the partitioned table with this OID and current name
// is a migration's shadow or retained table.
func (r Records) Lookup(oid uint32, schema, name string) (Table, bool) {
	for _, rec := range r.byOID[oid] {
		if rec.schema == schema && rec.name == name {
			return rec.Table, true
		}
	}
	return Table{}, false
}
