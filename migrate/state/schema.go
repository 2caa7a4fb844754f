// Package state is the store of pgcapacity migrate: every statement that
// reads or writes the pgcapacity schema's state tables (migration,
// copy_progress, object_name, migration_event) lives here, so the layout of
// the state has one owner and its upgrades one place.
package state

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/common/version"
)

// DB is a connection, a pool or a transaction.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Reader is what the read-only functions need.
type Reader interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// AdvisoryNamespace is the first key of every pgcapacity advisory lock.
const AdvisoryNamespace = 0x70676361 // "pgca"

// SchemaVersion is the layout of the state this pgcapacity reads and
// writes. Every change to the state tables adds an upgrade below and raises
// it; pgcapacity.schema_version records the version a database is at, and
// its layout never changes, so every release can read it.
const SchemaVersion = 2

// upgrade moves the state from version to-1 to version to.
type upgrade struct {
	to    int
	why   string
	stmts []string
}

// upgrades are applied in order from the version a database is at. Version
// 1 is the layout of every release before the version row: the DDL it ran,
// unchanged (testdata/schema-v1.sql keeps a copy, so that a change here
// shows). Each statement is idempotent, so that creating a partial state
// schema again completes it.
var upgrades = []upgrade{
	{to: 1, why: "the state tables", stmts: []string{
		`CREATE SCHEMA IF NOT EXISTS pgcapacity`,
		`CREATE TABLE IF NOT EXISTS pgcapacity.migration (
		id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
		schema_name text NOT NULL,
		table_name text NOT NULL,
		original_oid oid NOT NULL,
		new_oid oid,
		new_name text NOT NULL,
		retained_name text NOT NULL,
		from_partitions int NOT NULL,
		to_partitions int NOT NULL,
		key_columns text[] NOT NULL,
		phase text NOT NULL,
		reason text NOT NULL,
		requester text NOT NULL,
		approver text NOT NULL,
		force_decrease_reason text,
		created_at timestamptz NOT NULL DEFAULT now(),
		copy_started_at timestamptz,
		copy_finished_at timestamptz,
		validated_at timestamptz,
		swapped_at timestamptz,
		rolled_back_at timestamptz,
		rollback_deadline timestamptz,
		finished_at timestamptz,
		estimated_rows bigint NOT NULL DEFAULT 0,
		swaps int NOT NULL DEFAULT 0,
		last_lock_hold_seconds double precision,
		post_swap_pending boolean NOT NULL DEFAULT false,
		last_error text
	)`,
		`CREATE UNIQUE INDEX IF NOT EXISTS migration_one_active_per_table ON pgcapacity.migration (schema_name, table_name)
		WHERE phase NOT IN ('dropped', 'aborted')`,
		`CREATE TABLE IF NOT EXISTS pgcapacity.copy_progress (
		migration_id bigint NOT NULL REFERENCES pgcapacity.migration ON DELETE CASCADE,
		source_oid oid NOT NULL,
		source_name text NOT NULL,
		total_blocks bigint,
		next_block bigint NOT NULL DEFAULT 0,
		copied_rows bigint NOT NULL DEFAULT 0,
		done boolean NOT NULL DEFAULT false,
		PRIMARY KEY (migration_id, source_oid)
	)`,
		`CREATE TABLE IF NOT EXISTS pgcapacity.object_name (
		migration_id bigint NOT NULL REFERENCES pgcapacity.migration ON DELETE CASCADE,
		side text NOT NULL CHECK (side IN ('original', 'new')),
		relid oid NOT NULL,
		relkind text NOT NULL,
		live_name text NOT NULL,
		shadow_name text NOT NULL,
		PRIMARY KEY (migration_id, relid)
	)`,
		`CREATE TABLE IF NOT EXISTS pgcapacity.migration_event (
		id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
		migration_id bigint NOT NULL REFERENCES pgcapacity.migration ON DELETE CASCADE,
		at timestamptz NOT NULL DEFAULT now(),
		actor text NOT NULL DEFAULT current_user,
		event text NOT NULL,
		detail text NOT NULL DEFAULT ''
	)`,
	}},
	{to: 2, why: "the schema version row", stmts: []string{
		// One row (the singleton key): the version, and which pgcapacity
		// wrote it, so that an older one can name the release to install.
		`CREATE TABLE IF NOT EXISTS pgcapacity.schema_version (
		singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
		version int NOT NULL,
		release text NOT NULL,
		upgraded_at timestamptz NOT NULL DEFAULT now()
	)`,
	}},
}

// upgradeLockTimeout bounds the wait of an upgrade's DDL behind a running
// migration's transactions (copy and replay batches are short).
const upgradeLockTimeout = "30s"

// NewerError refuses a state written by a newer pgcapacity: this one
// cannot tell what the newer columns and phases mean, and writing would
// corrupt them.
type NewerError struct {
	State, Binary               int    // schema versions
	StateRelease, BinaryRelease string // the pgcapacity releases
}

func (e *NewerError) Error() string {
	return fmt.Sprintf("the pgcapacity state in this database is at schema version %d (written by pgcapacity %s), newer than this pgcapacity %s knows (schema version %d): upgrade pgcapacity to %s or newer and rerun; an older pgcapacity never reads or changes a newer state",
		e.State, e.StateRelease, e.BinaryRelease, e.Binary, e.StateRelease)
}

// Release is the pgcapacity release recorded with the schema version.
func Release() string {
	if version.Version == "" {
		return "(development build)"
	}
	return version.Version
}

// schemaVersion reads the version of the state: 0 without a state schema,
// 1 for the layout before the version row.
func schemaVersion(ctx context.Context, q Reader) (v int, release string, err error) {
	var hasRow, hasState bool
	if err := q.QueryRow(ctx, `SELECT pg_catalog.to_regclass('pgcapacity.schema_version') IS NOT NULL, pg_catalog.to_regclass('pgcapacity.migration') IS NOT NULL`).Scan(&hasRow, &hasState); err != nil {
		return 0, "", fmt.Errorf("reading the version of the pgcapacity state: %w", err)
	}
	switch {
	case hasRow:
	case hasState:
		return 1, "a release without the version row", nil
	default:
		return 0, "", nil
	}
	err = q.QueryRow(ctx, `SELECT version, release FROM pgcapacity.schema_version`).Scan(&v, &release)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, "", errors.New("pgcapacity.schema_version has no row: the state was changed outside pgcapacity; restore the row (version and release of the pgcapacity that last ran) and rerun")
	}
	if err != nil {
		return 0, "", fmt.Errorf("reading the version of the pgcapacity state: %w", err)
	}
	return v, release, nil
}

// CheckReadable refuses a state newer than this pgcapacity; an older one it
// reads as it is (the commands that change it upgrade it first).
func CheckReadable(ctx context.Context, q Reader) error {
	v, rel, err := schemaVersion(ctx, q)
	if err != nil {
		return err
	}
	if v > SchemaVersion {
		return &NewerError{State: v, Binary: SchemaVersion, StateRelease: rel, BinaryRelease: Release()}
	}
	return nil
}

// Ensure creates the state schema, or upgrades it to SchemaVersion, and
// refuses a newer one (start runs it).
func Ensure(ctx context.Context, pool *pgxpool.Pool) error { return migrateSchema(ctx, pool, true) }

// Upgrade upgrades an existing state schema to SchemaVersion and refuses a
// newer one; without a state schema it creates nothing (every command on a
// recorded migration runs it before reading the migration).
func Upgrade(ctx context.Context, pool *pgxpool.Pool) error {
	// The common case, a current state, takes no lock.
	v, rel, err := schemaVersion(ctx, pool)
	switch {
	case err != nil:
		return err
	case v > SchemaVersion:
		return &NewerError{State: v, Binary: SchemaVersion, StateRelease: rel, BinaryRelease: Release()}
	case v == SchemaVersion || v == 0:
		return nil
	}
	return migrateSchema(ctx, pool, false)
}

// migrateSchema runs the upgrades from the database's version in one
// transaction, serialised by an advisory lock: a second process starting
// at once waits, then finds the state current.
func migrateSchema(ctx context.Context, pool *pgxpool.Pool, create bool) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, 0)`, AdvisoryNamespace); err != nil {
			return fmt.Errorf("taking the lock of the pgcapacity state schema: %w", err)
		}
		if _, err := tx.Exec(ctx, `SELECT pg_catalog.set_config('lock_timeout', $1, true)`, upgradeLockTimeout); err != nil {
			return err
		}
		v, rel, err := schemaVersion(ctx, tx)
		switch {
		case err != nil:
			return err
		case v > SchemaVersion:
			return &NewerError{State: v, Binary: SchemaVersion, StateRelease: rel, BinaryRelease: Release()}
		case v == SchemaVersion || (v == 0 && !create):
			return nil
		}
		for _, u := range upgrades[v:] {
			for _, stmt := range u.stmts {
				if _, err := tx.Exec(ctx, stmt); err != nil {
					return fmt.Errorf("upgrading the pgcapacity state schema to version %d (%s): %w", u.to, u.why, err)
				}
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO pgcapacity.schema_version (version, release) VALUES ($1, $2)
			ON CONFLICT (singleton) DO UPDATE SET version = excluded.version, release = excluded.release, upgraded_at = now()`, SchemaVersion, Release()); err != nil {
			return fmt.Errorf("recording the version of the pgcapacity state schema: %w", err)
		}
		return nil
	})
}

// Exists reports whether the state schema was ever created.
func Exists(ctx context.Context, q Reader) (bool, error) {
	var exists bool
	if err := q.QueryRow(ctx, `SELECT pg_catalog.to_regclass('pgcapacity.migration') IS NOT NULL AND pg_catalog.to_regclass('pgcapacity.copy_progress') IS NOT NULL`).Scan(&exists); err != nil {
		return false, fmt.Errorf("looking for the pgcapacity schema: %w", err)
	}
	return exists, nil
}

func isUndefinedTable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "42P01" || pgErr.Code == "3F000")
}
