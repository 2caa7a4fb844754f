package migrate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Phases of a migration.
const (
	PhaseCopying    = "copying"     // capture installed, copy in progress
	PhaseCatchingUp = "catching_up" // copy done, replaying the backlog
	PhaseReady      = "ready"       // backlog small: validate, then swap
	PhaseSwapped    = "swapped"     // new table live, original retained and kept current
	PhaseRolledBack = "rolled_back" // original live again, new table kept current
	PhaseDropped    = "dropped"     // original dropped after the rollback period: done
	PhaseAborted    = "aborted"     // everything the migration created removed
)

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

// advisoryNamespace is the first key of every pgcapacity advisory lock.
const advisoryNamespace = 0x70676361 // "pgca"

// ensureSchema creates the state schema once, serialised by an advisory
// lock so that concurrent first runs do not collide.
func ensureSchema(ctx context.Context, pool *pgxpool.Pool) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, 0)`, advisoryNamespace); err != nil {
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

// Migration is one row of pgcapacity.migration.
type Migration struct {
	ID                  int64
	Schema              string
	Table               string
	OriginalOID         uint32
	NewOID              *uint32
	NewName             string
	RetainedName        string
	FromPartitions      int
	ToPartitions        int
	KeyColumns          []string
	Phase               string
	Reason              string
	Requester           string
	Approver            string
	ForceDecreaseReason *string
	CreatedAt           time.Time
	CopyStartedAt       *time.Time
	CopyFinishedAt      *time.Time
	ValidatedAt         *time.Time
	SwappedAt           *time.Time
	RolledBackAt        *time.Time
	RollbackDeadline    *time.Time
	FinishedAt          *time.Time
	EstimatedRows       int64
	Swaps               int
	LastLockHoldSeconds *float64
	PostSwapPending     bool
	LastError           *string
}

const migrationColumns = `id, schema_name, table_name, original_oid, new_oid, new_name, retained_name, from_partitions, to_partitions,
	key_columns, phase, reason, requester, approver, force_decrease_reason, created_at, copy_started_at, copy_finished_at,
	validated_at, swapped_at, rolled_back_at, rollback_deadline, finished_at, estimated_rows, swaps, last_lock_hold_seconds,
	post_swap_pending, last_error`

// ErrNoMigration is returned for an unknown migration id.
var ErrNoMigration = errors.New("no such migration")

func loadMigration(ctx context.Context, q db, id int64, forUpdate bool) (*Migration, error) {
	sql := `SELECT ` + migrationColumns + ` FROM pgcapacity.migration WHERE id = $1`
	if forUpdate {
		sql += ` FOR UPDATE`
	}
	rows, err := q.Query(ctx, sql, id)
	if err != nil {
		if isUndefinedTable(err) {
			return nil, fmt.Errorf("migration %d: %w: no migration was ever started in this database", id, ErrNoMigration)
		}
		return nil, fmt.Errorf("loading migration %d: %w", id, err)
	}
	m, err := pgx.CollectExactlyOneRow(rows, pgx.RowToAddrOfStructByPos[Migration])
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("migration %d: %w: list them with `pgcapacity migrate status`", id, ErrNoMigration)
	}
	if err != nil {
		return nil, fmt.Errorf("loading migration %d: %w", id, err)
	}
	return m, nil
}

// ListMigrations returns every migration, newest first.
func ListMigrations(ctx context.Context, q db) ([]*Migration, error) {
	rows, err := q.Query(ctx, `SELECT `+migrationColumns+` FROM pgcapacity.migration ORDER BY id DESC`)
	if err != nil {
		if isUndefinedTable(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("listing migrations: %w", err)
	}
	ms, err := pgx.CollectRows(rows, pgx.RowToAddrOfStructByPos[Migration])
	if err != nil {
		return nil, fmt.Errorf("listing migrations: %w", err)
	}
	return ms, nil
}

func recordEvent(ctx context.Context, q db, id int64, event, detail string) error {
	if _, err := q.Exec(ctx, `INSERT INTO pgcapacity.migration_event (migration_id, event, detail) VALUES ($1, $2, $3)`, id, event, detail); err != nil {
		return fmt.Errorf("recording the %s event of migration %d: %w", event, id, err)
	}
	return nil
}

// live and shadow: which table currently carries the original name.
func (m *Migration) liveOID() uint32 {
	if m.Phase == PhaseSwapped {
		return *m.NewOID
	}
	return m.OriginalOID
}

func (m *Migration) shadowOID() uint32 {
	if m.Phase == PhaseSwapped {
		return m.OriginalOID
	}
	return *m.NewOID
}

// Active reports whether the migration still holds objects in the database.
func (m *Migration) Active() bool { return m.Phase != PhaseDropped && m.Phase != PhaseAborted }

// tableLock holds the session advisory lock that makes one process at a
// time work on a table's migration.
type tableLock struct {
	conn *pgxpool.Conn
	key  int32
}

// lockTable takes the per-table advisory lock on a dedicated connection, or
// fails naming the process that holds it.
func lockTable(ctx context.Context, pool *pgxpool.Pool, tableOID uint32) (*tableLock, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("connecting for the migration lock: %w", err)
	}
	key := int32(tableOID)
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, $2)`, advisoryNamespace, key).Scan(&ok); err != nil {
		conn.Release()
		return nil, fmt.Errorf("taking the migration lock: %w", err)
	}
	if !ok {
		var holder string
		_ = conn.QueryRow(ctx, `
			SELECT coalesce(a.pid::text || ' (' || coalesce(nullif(a.application_name, ''), 'unknown') || ' from ' || coalesce(a.client_addr::text, 'local') || ')', 'another session')
			FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
			WHERE l.locktype = 'advisory' AND l.classid = $1::bigint::oid AND l.objid = ($2::bigint & 4294967295)::oid AND l.granted LIMIT 1`,
			advisoryNamespace, key).Scan(&holder)
		conn.Release()
		return nil, fmt.Errorf("another pgcapacity process is working on this table's migration (backend %s): wait for it to finish or stop it, then rerun", holder)
	}
	return &tableLock{conn: conn, key: key}, nil
}

func (l *tableLock) release() {
	if l == nil || l.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := l.conn.Exec(ctx, `SELECT pg_advisory_unlock($1, $2)`, advisoryNamespace, l.key); err != nil {
		// The session is unusable; closing it releases the lock server-side.
		_ = l.conn.Conn().Close(ctx)
	}
	l.conn.Release()
	l.conn = nil
}

func isUndefinedTable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "42P01" || pgErr.Code == "3F000")
}

func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}
