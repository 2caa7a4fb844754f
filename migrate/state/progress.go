package state

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// AddCopySource records a source partition the copy reads.
func AddCopySource(ctx context.Context, q DB, id int64, oid uint32, name string) error {
	if _, err := q.Exec(ctx, `INSERT INTO pgcapacity.copy_progress (migration_id, source_oid, source_name) VALUES ($1, $2, $3)`, id, oid, name); err != nil {
		return fmt.Errorf("recording the copy checkpoints: %w", err)
	}
	return nil
}

// MeasureCopySources fixes the blocks each source partition has now: rows
// appended later arrive through capture, so the copy never chases the end
// of a growing partition.
func MeasureCopySources(ctx context.Context, q DB, id int64) error {
	if _, err := q.Exec(ctx, `UPDATE pgcapacity.copy_progress
		SET total_blocks = pg_catalog.pg_relation_size(source_oid) / current_setting('block_size')::bigint
		WHERE migration_id = $1 AND total_blocks IS NULL`, id); err != nil {
		return fmt.Errorf("measuring the source partitions: %w", err)
	}
	return nil
}

// CopySource is the checkpoint of one source partition, with its
// statistics.
type CopySource struct {
	SourceOID   uint32
	SourceName  string
	TotalBlocks int64
	NextBlock   int64
	CopiedRows  int64
	Done        bool
	Tuples      float64
	Pages       int64
}

// CopySources reads the copy checkpoints of migration id.
func CopySources(ctx context.Context, q Reader, id int64) ([]CopySource, error) {
	rows, err := q.Query(ctx, `SELECT p.source_oid, p.source_name, p.total_blocks, p.next_block, p.copied_rows, p.done, greatest(c.reltuples, 0), c.relpages::bigint
		FROM pgcapacity.copy_progress p JOIN pg_catalog.pg_class c ON c.oid = p.source_oid
		WHERE p.migration_id = $1 ORDER BY p.source_name`, id)
	if err != nil {
		return nil, fmt.Errorf("reading the copy checkpoints: %w", err)
	}
	parts, err := pgx.CollectRows(rows, pgx.RowToStructByPos[CopySource])
	if err != nil {
		return nil, fmt.Errorf("reading the copy checkpoints: %w", err)
	}
	return parts, nil
}

// CheckpointSQL advances the checkpoint of source $2 of migration $1 to
// block $3, adding $4 copied rows; it runs in the batch's transaction.
const CheckpointSQL = `UPDATE pgcapacity.copy_progress
SET next_block = $3, copied_rows = copied_rows + $4, done = $3 >= total_blocks
WHERE migration_id = $1 AND source_oid = $2`

// Checkpoint runs CheckpointSQL.
func Checkpoint(ctx context.Context, q DB, id int64, source uint32, nextBlock, rows int64) error {
	_, err := q.Exec(ctx, CheckpointSQL, id, source, nextBlock, rows)
	return err
}

// CopyTotals sums the checkpoints of migration id.
func CopyTotals(ctx context.Context, q Reader, id int64) (copied, doneBlocks, totalBlocks int64, err error) {
	if err := q.QueryRow(ctx, `SELECT coalesce(sum(copied_rows), 0)::bigint, coalesce(sum(least(next_block, total_blocks)), 0)::bigint, coalesce(sum(total_blocks), 0)::bigint
		FROM pgcapacity.copy_progress WHERE migration_id = $1`, id).Scan(&copied, &doneBlocks, &totalBlocks); err != nil {
		return 0, 0, 0, fmt.Errorf("reading the progress of migration %d: %w", id, err)
	}
	return copied, doneBlocks, totalBlocks, nil
}

// DeleteCopyProgress removes the checkpoints (abort).
func DeleteCopyProgress(ctx context.Context, q DB, id int64) error {
	_, err := q.Exec(ctx, `DELETE FROM pgcapacity.copy_progress WHERE migration_id = $1`, id)
	return err
}

// AddObjectName records the live and shadow name of a relation the swap
// renames.
func AddObjectName(ctx context.Context, q DB, id int64, side, relkind string, relid uint32, live, shadow string) error {
	if _, err := q.Exec(ctx, `INSERT INTO pgcapacity.object_name (migration_id, side, relid, relkind, live_name, shadow_name) VALUES ($1, $2, $3, $4, $5, $6)`,
		id, side, relid, relkind, live, shadow); err != nil {
		return fmt.Errorf("recording object names: %w", err)
	}
	return nil
}

// ObjectName is a relation the swap renames, with its current name.
type ObjectName struct {
	Side, Kind, Schema, Current, LiveName, ShadowName string
	IsLiveParent                                      bool
}

// ObjectNames reads the relations migration id renames; IsLiveParent marks
// liveOID. The order is byte order (COLLATE "C"), whatever the database's
// collation, so that plan can predict it.
func ObjectNames(ctx context.Context, q Reader, id int64, liveOID uint32) ([]ObjectName, error) {
	rows, err := q.Query(ctx, `SELECT o.side, o.relkind, n.nspname::text, c.relname::text, o.live_name, o.shadow_name, o.relid = $2
		FROM pgcapacity.object_name o JOIN pg_catalog.pg_class c ON c.oid = o.relid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE o.migration_id = $1 ORDER BY o.relkind COLLATE "C" DESC, c.relname COLLATE "C"`, id, liveOID)
	if err != nil {
		return nil, fmt.Errorf("reading the object names: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[ObjectName])
	if err != nil {
		return nil, fmt.Errorf("reading the object names: %w", err)
	}
	return out, nil
}

// Event is one line of a migration's audit trail.
type Event struct {
	At     time.Time
	Actor  string
	Event  string
	Detail string
}

// RecordEvent appends to the audit trail of migration id.
func RecordEvent(ctx context.Context, q DB, id int64, event, detail string) error {
	if _, err := q.Exec(ctx, `INSERT INTO pgcapacity.migration_event (migration_id, event, detail) VALUES ($1, $2, $3)`, id, event, detail); err != nil {
		return fmt.Errorf("recording the %s event of migration %d: %w", event, id, err)
	}
	return nil
}

// Events reads the audit trail of migration id, oldest first.
func Events(ctx context.Context, q Reader, id int64) ([]Event, error) {
	rows, err := q.Query(ctx, `SELECT at, actor, event, detail FROM pgcapacity.migration_event WHERE migration_id = $1 ORDER BY id`, id)
	if err != nil {
		return nil, fmt.Errorf("reading the events of migration %d: %w", id, err)
	}
	evs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Event])
	if err != nil {
		return nil, fmt.Errorf("reading the events of migration %d: %w", id, err)
	}
	return evs, nil
}

// Summary is what the metrics collector publishes of an active migration.
type Summary struct {
	ID                          int64
	Schema, Table               string
	From, To                    int
	Phase                       string
	Copied, Estimated           int64
	CopyRatio                   float64
	Backlog                     int64
	Started                     float64
	Swapped, Deadline, LockHold *float64
	Failing                     bool
}

const summarySQL = `
SELECT m.id, m.schema_name, m.table_name, m.from_partitions, m.to_partitions, m.phase,
       coalesce(p.copied, 0)::bigint, greatest(m.estimated_rows, coalesce(p.copied, 0))::bigint,
       CASE WHEN m.phase = 'copying' THEN coalesce(p.done::float8 / nullif(p.total, 0), 0) ELSE 1 END,
       coalesce(s.n_live_tup, 0)::bigint,
       extract(epoch FROM m.created_at)::float8, extract(epoch FROM m.swapped_at)::float8,
       CASE WHEN m.phase = 'swapped' THEN extract(epoch FROM m.rollback_deadline)::float8 END,
       m.last_lock_hold_seconds, m.last_error IS NOT NULL
FROM pgcapacity.migration m
LEFT JOIN LATERAL (SELECT sum(copied_rows) AS copied, sum(least(next_block, total_blocks)) AS done, sum(total_blocks) AS total
                   FROM pgcapacity.copy_progress WHERE migration_id = m.id) p ON true
LEFT JOIN pg_catalog.pg_stat_user_tables s ON s.schemaname = 'pgcapacity' AND s.relname = 'm' || m.id || '_log'
WHERE to_regclass('pgcapacity.migration') IS NOT NULL AND m.phase NOT IN ('dropped', 'aborted')
ORDER BY m.id`

// Summaries reads every active migration in one query; none when the state
// schema does not exist.
func Summaries(ctx context.Context, q Reader) ([]Summary, error) {
	exists, err := Exists(ctx, q)
	if err != nil || !exists {
		return nil, err
	}
	rows, err := q.Query(ctx, summarySQL)
	if err != nil {
		return nil, fmt.Errorf("reading migration state: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Summary])
	if err != nil {
		return nil, fmt.Errorf("reading migration state: %w", err)
	}
	return out, nil
}

// TableRecord is what a migration recorded of the tables it owns.
type TableRecord struct {
	ID           int64
	Schema       string
	OriginalOID  uint32
	RetainedName string
	NewOID       *uint32
	NewName      string
}

// TableRecords reads the tables of every migration, finished ones too;
// none when no migration was ever started. The collectors use it to keep
// migrate's shadow and retained tables apart from the watched ones.
func TableRecords(ctx context.Context, q Reader) ([]TableRecord, error) {
	// Checking first keeps a database without migrations free of an
	// error per sampling round in its server log.
	var exists bool
	if err := q.QueryRow(ctx, `SELECT to_regclass('pgcapacity.migration') IS NOT NULL`).Scan(&exists); err != nil {
		return nil, fmt.Errorf("looking for migrate's records: %w", err)
	}
	if !exists {
		return nil, nil
	}
	rows, err := q.Query(ctx, `SELECT id, schema_name, original_oid, retained_name, new_oid, new_name FROM pgcapacity.migration`)
	if err != nil {
		return nil, fmt.Errorf("reading migrate's records of its tables: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[TableRecord])
	if err != nil {
		return nil, fmt.Errorf("reading migrate's records of its tables: %w", err)
	}
	return out, nil
}
