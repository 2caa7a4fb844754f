package state

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

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
	Phase               Phase
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

// LiveOID is the table that currently carries the original name.
func (m *Migration) LiveOID() uint32 {
	if m.Phase == PhaseSwapped {
		return *m.NewOID
	}
	return m.OriginalOID
}

// ShadowOID is the table kept current beside the live one.
func (m *Migration) ShadowOID() uint32 {
	if m.Phase == PhaseSwapped {
		return m.OriginalOID
	}
	return *m.NewOID
}

// Active reports whether the migration still holds objects in the database.
func (m *Migration) Active() bool { return m.Phase.Active() }

// ErrNoMigration is returned for an unknown migration id.
var ErrNoMigration = errors.New("no such migration")

// Load reads migration id.
func Load(ctx context.Context, q Reader, id int64) (*Migration, error) {
	return load(ctx, q, id, false)
}

// LoadForUpdate reads migration id and locks its row until the end of the
// transaction q, so that its phase cannot change under the caller.
func LoadForUpdate(ctx context.Context, q DB, id int64) (*Migration, error) {
	return load(ctx, q, id, true)
}

func load(ctx context.Context, q Reader, id int64, forUpdate bool) (*Migration, error) {
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

// List returns every migration, newest first; none when the state schema
// does not exist.
func List(ctx context.Context, q Reader) ([]*Migration, error) {
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

// NextID is the id the next migration will most likely get (plan shows it).
// It refuses a state newer than this pgcapacity: plan shows what this
// binary would run, and it must not run on that state.
func NextID(ctx context.Context, q Reader) (int64, error) {
	if err := CheckReadable(ctx, q); err != nil {
		return 0, err
	}
	var stateExists bool
	if err := q.QueryRow(ctx, `SELECT pg_catalog.to_regclass('pgcapacity.migration') IS NOT NULL`).Scan(&stateExists); err != nil {
		return 0, err
	}
	if !stateExists {
		return 1, nil
	}
	var id int64
	if err := q.QueryRow(ctx, `SELECT coalesce((SELECT max(id) + 1 FROM pgcapacity.migration), 1)`).Scan(&id); err != nil {
		return 0, fmt.Errorf("reading the next migration id: %w", err)
	}
	return id, nil
}

// New is what start records of a migration before it creates anything.
type New struct {
	Schema, Table       string
	OriginalOID         uint32
	From, To            int
	Key                 []string
	Reason              string
	Requester, Approver string
	ForceDecreaseReason *string
	EstimatedRows       int64
}

// Insert records a new migration in the copying phase and returns its id.
func Insert(ctx context.Context, q DB, n New) (int64, error) {
	var id int64
	err := q.QueryRow(ctx, `
		INSERT INTO pgcapacity.migration (schema_name, table_name, original_oid, new_name, retained_name, from_partitions, to_partitions,
		    key_columns, phase, reason, requester, approver, force_decrease_reason, estimated_rows, copy_started_at)
		VALUES ($1, $2, $3, '', '', $4, $5, $6, $7, $8, $9, $10, $11, $12, now()) RETURNING id`,
		n.Schema, n.Table, n.OriginalOID, n.From, n.To, n.Key, string(TransitionFor(StepStart).To), n.Reason, n.Requester, n.Approver, n.ForceDecreaseReason, n.EstimatedRows).Scan(&id)
	return id, err
}

// SetNewTable records the new table start created.
func SetNewTable(ctx context.Context, q DB, id int64, oid uint32, newName, retainedName string) error {
	if _, err := q.Exec(ctx, `UPDATE pgcapacity.migration SET new_oid = $2, new_name = $3, retained_name = $4 WHERE id = $1`, id, oid, newName, retainedName); err != nil {
		return fmt.Errorf("recording the new table: %w", err)
	}
	return nil
}

// SetError records the last error of a step; errors recording it are
// ignored (the step's own error is what the caller reports).
func SetError(ctx context.Context, q DB, id int64, msg string) {
	_, _ = q.Exec(ctx, `UPDATE pgcapacity.migration SET last_error = $2 WHERE id = $1`, id, msg)
}

// SetValidated records a passing validation.
func SetValidated(ctx context.Context, q DB, id int64) error {
	if _, err := q.Exec(ctx, `UPDATE pgcapacity.migration SET validated_at = now(), last_error = NULL WHERE id = $1`, id); err != nil {
		return fmt.Errorf("recording the validation: %w", err)
	}
	return nil
}

// SetLockHold records the exclusive lock hold of the last swap or rollback.
func SetLockHold(ctx context.Context, q DB, id int64, hold time.Duration) error {
	if _, err := q.Exec(ctx, `UPDATE pgcapacity.migration SET last_lock_hold_seconds = $2 WHERE id = $1`, id, hold.Seconds()); err != nil {
		return fmt.Errorf("recording the lock hold: %w", err)
	}
	return nil
}

// ClearPostSwap records that the steps after a swap or rollback are done.
func ClearPostSwap(ctx context.Context, q DB, id int64) error {
	if _, err := q.Exec(ctx, `UPDATE pgcapacity.migration SET post_swap_pending = false WHERE id = $1`, id); err != nil {
		return fmt.Errorf("recording the post-swap steps: %w", err)
	}
	return nil
}
