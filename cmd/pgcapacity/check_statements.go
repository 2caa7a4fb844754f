package main

import (
	"context"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sigid/pgcapacity/collector/statements"
	"github.com/sigid/pgcapacity/internal/config"
)

// statementsReport is check's line on pg_stat_statements: whether serve's
// statements collector can read it here, and why not.
type statementsReport struct {
	Available     bool   `json:"available"`
	TrackPlanning bool   `json:"track_planning"`
	NotApplicable string `json:"not_applicable,omitempty"`
}

// sampleStatements runs one round of the statements collector. Absent or
// unusable pg_stat_statements is not applicable, not an error.
func sampleStatements(ctx context.Context, cfg config.Config, pool *pgxpool.Pool) (statementsReport, error) {
	s, err := statements.NewFromConfig(cfg, nil).Sample(ctx, pool)
	if err != nil {
		return statementsReport{}, fmt.Errorf("reading pg_stat_statements: %w", err)
	}
	return statementsReport{Available: s.Available, TrackPlanning: s.TrackPlanning, NotApplicable: s.NotApplicable}, nil
}

func writeStatements(w io.Writer, r statementsReport) {
	switch {
	case !r.Available:
		fmt.Fprintf(w, "\npg_stat_statements: not applicable: %s\n", r.NotApplicable)
	case !r.TrackPlanning:
		fmt.Fprintln(w, "\npg_stat_statements: available; pg_stat_statements.track_planning is off, so its planning time reads as zero")
	default:
		fmt.Fprintln(w, "\npg_stat_statements: available, with planning time")
	}
}
