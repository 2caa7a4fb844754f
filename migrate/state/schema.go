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

// schemaDDL creates the state schema. Every statement is idempotent.
var schemaDDL = []string{
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
}

// Ensure creates the state schema once, serialised by an advisory lock so
// that concurrent first runs do not collide.
func Ensure(ctx context.Context, pool *pgxpool.Pool) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, 0)`, AdvisoryNamespace); err != nil {
			return err
		}
		for _, stmt := range schemaDDL {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("creating the pgcapacity state schema: %w", err)
			}
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
