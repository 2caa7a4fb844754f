package migrate

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/sigid/pgcapacity/migrate/state"
)

// Status is a migration with its progress.
type Status struct {
	*Migration
	Backlog     int64
	CopiedRows  int64
	DoneBlocks  int64
	TotalBlocks int64
	ETA         time.Duration // of the copy; 0 when unknown or done
	Events      []Event
}

// Status reads migration id with its progress and audit trail.
func (m *Migrator) Status(ctx context.Context, id int64) (*Status, error) {
	if err := state.CheckReadable(ctx, m.pool); err != nil {
		return nil, err
	}
	mig, err := state.Load(ctx, m.pool, id)
	if err != nil {
		return nil, err
	}
	return m.status(ctx, mig, true)
}

// List reads every migration, newest first.
func (m *Migrator) List(ctx context.Context) ([]*Status, error) {
	if err := state.CheckReadable(ctx, m.pool); err != nil {
		return nil, err
	}
	ms, err := ListMigrations(ctx, m.pool)
	if err != nil {
		return nil, err
	}
	var out []*Status
	for _, mig := range ms {
		s, err := m.status(ctx, mig, false)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func (m *Migrator) status(ctx context.Context, mig *Migration, events bool) (*Status, error) {
	s := &Status{Migration: mig}
	var err error
	if s.CopiedRows, s.DoneBlocks, s.TotalBlocks, err = state.CopyTotals(ctx, m.pool, mig.ID); err != nil {
		return nil, err
	}
	if mig.Active() {
		if s.Backlog, err = backlog(ctx, m.pool, mig.ID); err != nil {
			return nil, err
		}
	}
	if mig.Phase == PhaseCopying && mig.CopyStartedAt != nil && s.DoneBlocks > 0 && s.TotalBlocks > s.DoneBlocks {
		elapsed := m.now().Sub(*mig.CopyStartedAt)
		s.ETA = time.Duration(float64(elapsed) * float64(s.TotalBlocks-s.DoneBlocks) / float64(s.DoneBlocks))
	}
	if events {
		if s.Events, err = state.Events(ctx, m.pool, mig.ID); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Next says what the operator does next (state.Hints).
func (s *Status) Next() string { return state.Hint(s.Phase, s.ID, s.RollbackDeadline) }

// Print writes the status for a person.
func (s *Status) Print(w io.Writer) {
	fmt.Fprintf(w, "migration %d: %s.%s %d -> %d partitions, phase %s\n", s.ID, s.Schema, s.Table, s.FromPartitions, s.ToPartitions, s.Phase)
	fmt.Fprintf(w, "  reason: %s; requester %s; approver %s\n", s.Reason, s.Requester, s.Approver)
	if s.ForceDecreaseReason != nil {
		fmt.Fprintf(w, "  decrease forced: %s\n", *s.ForceDecreaseReason)
	}
	pct := 0.0
	if s.TotalBlocks > 0 {
		pct = 100 * float64(s.DoneBlocks) / float64(s.TotalBlocks)
	} else if s.Phase != PhaseCopying {
		pct = 100
	}
	fmt.Fprintf(w, "  copy: %d rows, %.1f%% of %d blocks", s.CopiedRows, pct, s.TotalBlocks)
	if s.ETA > 0 {
		fmt.Fprintf(w, ", about %s left", s.ETA.Round(time.Second))
	}
	fmt.Fprintf(w, "\n  backlog: %d captured changes to replay\n", s.Backlog)
	if s.SwappedAt != nil {
		fmt.Fprintf(w, "  swapped: %s (%d swap(s))", s.SwappedAt.UTC().Format(time.RFC3339), s.Swaps)
		if s.LastLockHoldSeconds != nil {
			fmt.Fprintf(w, ", last exclusive lock held %.0f ms", *s.LastLockHoldSeconds*1000)
		}
		fmt.Fprintln(w)
	}
	if s.PostSwapPending {
		fmt.Fprintf(w, "  post-swap steps pending (foreign key validation, ANALYZE): pgcapacity migrate resume %d\n", s.ID)
	}
	if s.LastError != nil {
		fmt.Fprintf(w, "  last error: %s\n", *s.LastError)
	}
	fmt.Fprintf(w, "  next: %s\n", s.Next())
	for _, e := range s.Events {
		fmt.Fprintf(w, "  %s %-10s %-12s %s\n", e.At.UTC().Format(time.RFC3339), e.Actor, e.Event, e.Detail)
	}
}
