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
// Read reads migrate's records through its store (migrate/state, which
// defines the schema); migrate itself does not import this package.
package migrationtables

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/sigid/pgcapacity/migrate/state"
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

// Read returns the migrations recorded in the database. Read it after the
// catalog query whose tables it classifies: a migration that started in
// between is then already recorded. It reads every migration, finished ones
// too: a table the round's catalog query saw may have been dropped by a
// drop-old or abort that committed since, and must still not count as an
// ordinary table.
func Read(ctx context.Context, q Querier) (Records, error) {
	recs, err := state.TableRecords(ctx, q)
	if err != nil || len(recs) == 0 {
		return Records{}, err
	}
	r := Records{byOID: map[uint32][]record{}}
	for _, rec := range recs {
		r.byOID[rec.OriginalOID] = append(r.byOID[rec.OriginalOID], record{Table{rec.ID, RoleRetained}, rec.Schema, rec.RetainedName})
		if rec.NewOID != nil {
			r.byOID[*rec.NewOID] = append(r.byOID[*rec.NewOID], record{Table{rec.ID, RoleShadow}, rec.Schema, rec.NewName})
		}
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
