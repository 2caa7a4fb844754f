package main

import (
	"time"

	"github.com/sigid/pgcapacity/migrate"
)

// The --json views of `migrate status` and `migrate validate`, in the
// convention of writeJSON. They live here, not as tags on the migrate
// types, so the output is the command's contract, not the package's Go
// field names.

type migrationJSON struct {
	ID                  int64      `json:"id"`
	Schema              string     `json:"schema"`
	Table               string     `json:"table"`
	OriginalOID         uint32     `json:"original_oid"`
	NewOID              *uint32    `json:"new_oid"`
	NewName             string     `json:"new_name"`
	RetainedName        string     `json:"retained_name"`
	FromPartitions      int        `json:"from_partitions"`
	ToPartitions        int        `json:"to_partitions"`
	KeyColumns          []string   `json:"key_columns"`
	Phase               string     `json:"phase"`
	Reason              string     `json:"reason"`
	Requester           string     `json:"requester"`
	Approver            string     `json:"approver"`
	ForceDecreaseReason *string    `json:"force_decrease_reason"`
	CreatedAt           time.Time  `json:"created_at"`
	CopyStartedAt       *time.Time `json:"copy_started_at"`
	CopyFinishedAt      *time.Time `json:"copy_finished_at"`
	ValidatedAt         *time.Time `json:"validated_at"`
	SwappedAt           *time.Time `json:"swapped_at"`
	RolledBackAt        *time.Time `json:"rolled_back_at"`
	RollbackDeadline    *time.Time `json:"rollback_deadline"`
	FinishedAt          *time.Time `json:"finished_at"`
	EstimatedRows       int64      `json:"estimated_rows"`
	Swaps               int        `json:"swaps"`
	LastLockHoldSeconds *float64   `json:"last_lock_hold_seconds"`
	PostSwapPending     bool       `json:"post_swap_pending"`
	LastError           *string    `json:"last_error"`
}

type statusJSON struct {
	migrationJSON
	Backlog     int64       `json:"backlog"`
	CopiedRows  int64       `json:"copied_rows"`
	DoneBlocks  int64       `json:"done_blocks"`
	TotalBlocks int64       `json:"total_blocks"`
	ETASeconds  *float64    `json:"eta_seconds"` // null when unknown or done
	Events      []eventJSON `json:"events"`
}

type eventJSON struct {
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"`
	Event  string    `json:"event"`
	Detail string    `json:"detail"`
}

func statusView(s *migrate.Status) statusJSON {
	v := statusJSON{Backlog: s.Backlog, CopiedRows: s.CopiedRows, DoneBlocks: s.DoneBlocks, TotalBlocks: s.TotalBlocks, Events: []eventJSON{}}
	if m := s.Migration; m != nil {
		v.migrationJSON = migrationJSON{
			ID: m.ID, Schema: m.Schema, Table: m.Table, OriginalOID: m.OriginalOID, NewOID: m.NewOID, NewName: m.NewName,
			RetainedName: m.RetainedName, FromPartitions: m.FromPartitions, ToPartitions: m.ToPartitions, KeyColumns: m.KeyColumns,
			Phase: string(m.Phase), Reason: m.Reason, Requester: m.Requester, Approver: m.Approver, ForceDecreaseReason: m.ForceDecreaseReason,
			CreatedAt: m.CreatedAt, CopyStartedAt: m.CopyStartedAt, CopyFinishedAt: m.CopyFinishedAt, ValidatedAt: m.ValidatedAt,
			SwappedAt: m.SwappedAt, RolledBackAt: m.RolledBackAt, RollbackDeadline: m.RollbackDeadline, FinishedAt: m.FinishedAt,
			EstimatedRows: m.EstimatedRows, Swaps: m.Swaps, LastLockHoldSeconds: m.LastLockHoldSeconds,
			PostSwapPending: m.PostSwapPending, LastError: m.LastError,
		}
	}
	if s.ETA > 0 {
		eta := s.ETA.Seconds()
		v.ETASeconds = &eta
	}
	for _, e := range s.Events {
		v.Events = append(v.Events, eventJSON{At: e.At, Actor: e.Actor, Event: e.Event, Detail: e.Detail})
	}
	return v
}

func statusViews(list []*migrate.Status) []statusJSON {
	out := make([]statusJSON, 0, len(list))
	for _, s := range list {
		out = append(out, statusView(s))
	}
	return out
}

type validationJSON struct {
	OK         bool                 `json:"ok"`
	Pending    int64                `json:"pending"` // keys left out on both sides: their changes are still in the log
	Partitions []partitionCheckJSON `json:"partitions"`
	Problems   []string             `json:"problems"`
}

type partitionCheckJSON struct {
	Remainder        int    `json:"remainder"`
	Name             string `json:"name"`
	NewRows          int64  `json:"new_rows"`
	OriginalRows     int64  `json:"original_rows"`
	NewChecksum      string `json:"new_checksum"`
	OriginalChecksum string `json:"original_checksum"`
	OK               bool   `json:"ok"`
}

func validationView(v *migrate.Validation) validationJSON {
	out := validationJSON{OK: v.OK, Pending: v.Pending, Partitions: []partitionCheckJSON{}, Problems: []string{}}
	out.Problems = append(out.Problems, v.Problems...)
	for _, p := range v.Partitions {
		out.Partitions = append(out.Partitions, partitionCheckJSON{Remainder: p.Remainder, Name: p.Name, NewRows: p.NewRows,
			OriginalRows: p.OriginalRows, NewChecksum: p.NewChecksum, OriginalChecksum: p.OriginalChecksum, OK: p.OK})
	}
	return out
}
