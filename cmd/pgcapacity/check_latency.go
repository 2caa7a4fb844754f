package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sigid/pgcapacity/collector/probes"
	"github.com/sigid/pgcapacity/internal/config"
	"github.com/sigid/pgcapacity/internal/playbook"
)

// checkProbeRounds is how many probe rounds check runs back to back: enough
// to see every probed table a few times, far too few for a stable p99.
const checkProbeRounds = 5

// latencyReport is check's view of the latency probes.
type latencyReport struct {
	Rounds                 int            `json:"rounds"`
	PlanningShareThreshold float64        `json:"planning_share_threshold"`
	PlanningMin            time.Duration  `json:"-"`
	PlanningMinSeconds     float64        `json:"planning_min_seconds"`
	Tables                 []latencyTable `json:"tables"`
	// The probes that ran, with their SQL, and the hot tables without one.
	probesReport
	interval config.Duration
}

type latencyTable struct {
	probes.TableLatency
	// AboveThreshold: planning is more than PGCAPACITY_PLANNING_SHARE of
	// p95 and its p95 above PGCAPACITY_PLANNING_MIN in these few rounds.
	// Shown, not judged: rule 6 needs a week.
	AboveThreshold bool   `json:"planning_share_above_threshold"`
	Error          string `json:"error,omitempty"` // the first probe error of the table
}

// sampleLatency runs a few probe rounds and summarizes them.
func sampleLatency(ctx context.Context, cfg config.Config, pool *pgxpool.Pool) (latencyReport, error) {
	c, err := probes.NewFromConfig(cfg, nil) // errors are reported below, not logged
	if err != nil {
		return latencyReport{}, err
	}
	firstErr := map[[2]string]string{}
	start := time.Now()
	for range checkProbeRounds {
		runs, err := c.Round(ctx, pool)
		if err != nil {
			return latencyReport{}, fmt.Errorf("running the latency probes: %w", err)
		}
		for _, r := range runs {
			if k := [2]string{r.Schema, r.Table}; r.Err != nil && firstErr[k] == "" {
				firstErr[k] = r.Err.Error()
			}
		}
	}
	unmatched, err := probes.UnmatchedHotTables(ctx, pool, selection(cfg))
	if err != nil {
		return latencyReport{}, err
	}
	rep := latencyReport{Rounds: checkProbeRounds, PlanningShareThreshold: cfg.PlanningShare, PlanningMin: cfg.PlanningMin.D(), PlanningMinSeconds: cfg.PlanningMin.D().Seconds(),
		probesReport: probesReport{Resolution: c.Active(), UnmatchedHotTables: append([]string{}, unmatched...)}, interval: cfg.ProbeInterval}
	for _, tl := range c.Summary(time.Since(start) + time.Minute) {
		t := latencyTable{TableLatency: tl, Error: firstErr[[2]string{tl.Schema, tl.Table}]}
		// Rule 6's condition (the playbook's), on these few rounds.
		t.AboveThreshold = tl.Samples > 0 && playbook.PlanningTimeHolds(cfg.Thresholds, tl.PlanningShare, tl.Planning.P95)
		rep.Tables = append(rep.Tables, t)
	}
	return rep, nil
}

func writeLatency(w io.Writer, l latencyReport) {
	fmt.Fprintf(w, "\nTenant-scoped probe latency, %d rounds now (p50 / p95 / p99); PartitionPlanningTimeSignificant\n"+
		"needs planning above %.0f%% of p95 and above %s over a week of probes, not over these rounds:\n\n", l.Rounds, 100*l.PlanningShareThreshold, l.PlanningMin)
	tw := tabwriter.NewWriter(w, 2, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TABLE\tSAMPLES\tPLANNING\tEXECUTION\tTOTAL\tPLANNING SHARE OF P95\t")
	if len(l.Tables) == 0 {
		fmt.Fprintln(tw, "(no probes ran)")
	}
	q := func(x probes.Quantiles) string {
		return fmt.Sprintf("%s / %s / %s", shortDuration(x.P50), shortDuration(x.P95), shortDuration(x.P99))
	}
	for _, t := range l.Tables {
		if t.Samples == 0 {
			why := "no tenants sampled yet (empty, or not analyzed)"
			if t.Error != "" {
				why = t.Error
			}
			fmt.Fprintf(tw, "%s.%s\t0\t%s\t\t\t\t\n", t.Schema, t.Table, why)
			continue
		}
		share := fmt.Sprintf("%.0f%%", 100*t.PlanningShare)
		if t.AboveThreshold {
			share += fmt.Sprintf(" (above %.0f%% and %s)", 100*l.PlanningShareThreshold, l.PlanningMin)
		}
		fmt.Fprintf(tw, "%s.%s\t%d\t%s\t%s\t%s\t%s\t\n", t.Schema, t.Table, t.Samples, q(t.Planning), q(t.Execution), q(t.Total), share)
	}
	tw.Flush()
	fmt.Fprintln(w)
	writeProbes(w, l.interval, l.probesReport)
}

// shortDuration rounds a latency for reading.
func shortDuration(d time.Duration) string {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	default:
		return d.Round(time.Microsecond).String()
	}
}
