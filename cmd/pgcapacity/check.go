package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/sigid/pgcapacity/collector"
	"github.com/sigid/pgcapacity/collector/adminops"
	"github.com/sigid/pgcapacity/internal/config"
	"github.com/sigid/pgcapacity/internal/playbook"
	"github.com/sigid/pgcapacity/internal/units"
)

// checkReport is what `check` prints; each part comes from one area.
type checkReport struct {
	// InRecovery: sampled on a standby (pg_is_in_recovery()), where no rule
	// is judged: the alerts evaluate on primaries only (standbyNotJudged).
	InRecovery bool             `json:"in_recovery"`
	Capacity   playbook.Report  `json:"capacity"`
	Latency    latencyReport    `json:"latency"`
	Statements statementsReport `json:"statements"`
	AdminOps   adminops.Result  `json:"adminops"`
	// SwitchedOff are the optional collectors PGCAPACITY_COLLECTORS leaves
	// out: check skips them as serve does, and their sections stay empty.
	SwitchedOff []string `json:"switched_off"`
}

// checkOptional are the collectors check runs only when PGCAPACITY_COLLECTORS
// names them; stats and sizes are what the capacity rules read, so check
// always samples them.
func checkOptional() []string { return []string{"probes", "statements", "adminops"} }

// switchedOff is the line check prints for a section whose collector is
// left out.
func switchedOff(w io.Writer, what, collector string) {
	fmt.Fprintf(w, "\n%s: switched off (PGCAPACITY_COLLECTORS leaves out %s)\n", what, collector)
}

// holds reports whether any rule holds now.
func (r checkReport) holds() bool {
	return len(r.Capacity.Holding()) > 0
}

func runCheck(ctx context.Context, env *environment, args []string) (int, error) {
	pool, asJSON, err := openReport(ctx, env, "check", "the report", args)
	if err != nil {
		return exitError, err
	}
	defer pool.Close()
	report, err := sampleReport(ctx, env.cfg, pool)
	if err != nil {
		return exitError, err
	}
	if asJSON {
		if err := writeJSON(env.stdout, report); err != nil {
			return exitError, err
		}
	} else {
		writeReport(env.stdout, env.cfg, report)
	}
	if report.holds() {
		return exitFinding, nil
	}
	return exitOK, nil
}

// openReport parses the flags of a report command (check, probes: --json
// only) and opens its pool on the configured database.
func openReport(ctx context.Context, env *environment, command, what string, args []string) (pool *pgxpool.Pool, asJSON bool, err error) {
	fs := flag.NewFlagSet(command, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	jsonFlag := fs.Bool("json", false, "print "+what+" as JSON")
	if err := parseFlags(fs, args); err != nil {
		return nil, false, err
	}
	if err := env.cfg.RequireDatabase(); err != nil {
		return nil, false, err
	}
	pool, err = openPool(ctx, env.cfg, env.cfg.DatabaseURL)
	return pool, *jsonFlag, err
}

// sampleReport runs one round of the capacity collectors and judges it.
func sampleReport(ctx context.Context, cfg config.Config, pool *pgxpool.Pool) (checkReport, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*cfg.QueryTimeout.D())
	defer cancel()
	sel := selection(cfg)
	srv, tables, err := collector.NewStats(sel, cfg.StatsInterval.D(), false).Sample(ctx, pool)
	if err != nil {
		return checkReport{}, describeDBError(err)
	}
	sizes, err := collector.NewSizes(sel, cfg.SizesInterval.D(), false).Sample(ctx, pool)
	if err != nil {
		return checkReport{}, describeDBError(err)
	}
	report := checkReport{InRecovery: srv.InRecovery, Capacity: playbook.Evaluate(cfg.Thresholds, srv, tables, sizes), SwitchedOff: []string{}}
	for _, name := range checkOptional() {
		if !cfg.CollectorEnabled(name) {
			report.SwitchedOff = append(report.SwitchedOff, name)
			continue
		}
		switch name {
		case "probes":
			report.Latency, err = sampleLatency(ctx, cfg, pool)
		case "statements":
			report.Statements, err = sampleStatements(ctx, cfg, pool)
		case "adminops":
			report.AdminOps, err = sampleAdminOps(ctx, cfg, pool)
		}
		if err != nil {
			return checkReport{}, describeDBError(err)
		}
	}
	if srv.InRecovery {
		standbyNotJudged(&report.Capacity)
	}
	return report, nil
}

// notJudgedOnStandby is the detail of every rule check samples on a standby.
const notJudgedOnStandby = "not judged: standby (the alerts evaluate on the primary; run check there)"

// standbyNotJudged turns a standby's verdicts into "not judged", as the
// alerts do (they evaluate on primaries only, so an HA cluster raises each
// once): a standby has no vacuum lag of its own (autovacuum runs on the
// primary), its live rows are reltuples as of the primary's last VACUUM or
// ANALYZE, and it records no analyze times for the parent statistics rule.
func standbyNotJudged(r *playbook.Report) {
	for i := range r.Findings {
		r.Findings[i].Holds = false
		r.Findings[i].Detail = notJudgedOnStandby
	}
	// None holds: back from holding-first to Evaluate's order, table by
	// table in the rules' order, the server's rules last.
	rule, table := map[string]int{}, map[string]int{"": len(r.Tables)}
	for i, ru := range playbook.Rules() {
		rule[ru.Name] = i
	}
	for i, t := range r.Tables {
		table[t.Schema+"."+t.Table] = i
	}
	key := func(f playbook.Finding) int {
		name := f.Schema + "." + f.Table
		if f.Table == "" {
			name = ""
		}
		return table[name]*100 + rule[f.Rule]
	}
	slices.SortStableFunc(r.Findings, func(a, b playbook.Finding) int { return key(a) - key(b) })
	for i := range r.Tables {
		r.Tables[i].ParentStatisticsStale = false
	}
}

// writeParentStatistics prints one line per table whose parent autovacuum
// never analyzes: missing statistics, or their age, and whether they are
// stale by the alert's definition (playbook.ParentStatisticsStale).
func writeParentStatistics(w io.Writer, maxAge config.Duration, standby bool, tables []playbook.TableSummary) {
	const fix = "run ANALYZE ONLY on 18+, ANALYZE before"
	for _, t := range tables {
		name := t.Schema + "." + t.Table
		var state string
		switch {
		case standby && t.ParentStatisticsMissing:
			state = "missing in the replicated catalog; not judged: standby (judge it on the primary)"
		case standby:
			state = "present in the replicated catalog; not judged: standby (a standby records no analyze times)"
		case t.ParentStatisticsMissing && t.ParentStatisticsStale:
			state = fmt.Sprintf("STALE: missing while its partitions have been analyzed (autovacuum never analyzes a partitioned parent; %s)", fix)
		case t.ParentStatisticsMissing:
			state = fmt.Sprintf("missing, no partition analyzed yet (autovacuum never analyzes a partitioned parent; %s once it holds data)", fix)
		case t.ParentAnalyzeAgeSeconds != nil && t.ParentStatisticsStale:
			state = fmt.Sprintf("STALE: analyzed %s ago, more than %s, and its partitions have been analyzed since (%s)", seconds(*t.ParentAnalyzeAgeSeconds), maxAge, fix)
		case t.ParentAnalyzeAgeSeconds != nil:
			state = fmt.Sprintf("analyzed %s ago", seconds(*t.ParentAnalyzeAgeSeconds))
		default:
			state = "analyzed, age not reported by this server"
		}
		fmt.Fprintf(w, "parent statistics of %s: %s\n", name, state)
	}
	if slices.ContainsFunc(tables, func(t playbook.TableSummary) bool { return t.ParentStatisticsStale }) {
		fmt.Fprintf(w, "(stale parent statistics raise %s on hot tables; docs/runbooks.md)\n", playbook.AlertParentStatistics)
	}
}

func seconds(s float64) string { return (time.Duration(s) * time.Second).String() }

// describeDBError adds the fix to the errors an operator meets first.
func describeDBError(err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "failed to connect") || strings.Contains(msg, "connect:"):
		return fmt.Errorf("%w (is the server up, and is PGCAPACITY_DATABASE_URL right?)", err)
	case strings.Contains(msg, "permission denied"):
		return fmt.Errorf("%w (grant the pgcapacity role pg_monitor: GRANT pg_monitor TO pgcapacity)", err)
	}
	return err
}

func writeReport(w io.Writer, cfg config.Config, r checkReport) {
	c := r.Capacity
	fmt.Fprintf(w, "Capacity of watched partitioned tables, sampled %s\n", c.SampledAt.Format(time.RFC3339))
	if r.InRecovery {
		fmt.Fprintln(w, "This server is a standby (pg_is_in_recovery()): live rows are reltuples as of the primary's last\n"+
			"VACUUM or ANALYZE, vacuum lag is not measured (autovacuum runs on the primary), and no rule is judged.")
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 2, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "TABLE\tSTRATEGY\tHOT\tPARTS\tLIVE ROWS\tAVG/PART\tMEDIAN\tMAX\tSKEW\tTENANT IDX\tLARGEST PART IDX\tVACUUM LAG\t")
	for _, t := range c.Tables {
		skew := "-"
		if t.SkewRatio != nil {
			skew = fmt.Sprintf("%.2f", *t.SkewRatio)
		}
		hot := ""
		if t.Hot {
			hot = "yes"
		}
		lag := (time.Duration(t.VacuumLagSeconds) * time.Second).String()
		if r.InRecovery {
			lag = "-"
		}
		fmt.Fprintf(tw, "%s.%s\t%s\t%s\t%d\t%.0f\t%.0f\t%.0f\t%.0f\t%s\t%s\t%s\t%s\t\n",
			t.Schema, t.Table, t.Strategy, hot, t.Partitions, t.LiveRows, t.AvgLiveRows, t.MedianLiveRows, t.MaxLiveRows,
			skew, units.Bytes(t.TenantIndexBytes), units.Bytes(t.TenantIndexMaxBytes), lag)
	}
	tw.Flush()
	if len(c.Tables) == 0 {
		fmt.Fprintln(w, "(no watched tables: set PGCAPACITY_TABLES, or create hash-partitioned tables)")
	}
	writeParentStatistics(w, cfg.ParentAnalyzeMaxAge, r.InRecovery, c.Tables)
	fmt.Fprintf(w, "\nshared_buffers %s; hot tenant-leading btree indexes %s", units.Bytes(c.SharedBuffersBytes), units.Bytes(c.HotTenantIndexBytes))
	if c.SharedBuffersBytes > 0 {
		fmt.Fprintf(w, " (%.0f%% of it)", 100*c.HotTenantIndexBytes/c.SharedBuffersBytes)
	}
	fmt.Fprintln(w)
	for _, name := range checkOptional() {
		switch off := slices.Contains(r.SwitchedOff, name); {
		case name == "probes" && off:
			switchedOff(w, "Tenant-scoped probe latency", name)
		case name == "probes":
			writeLatency(w, r.Latency)
		case name == "statements" && off:
			switchedOff(w, "pg_stat_statements", name)
		case name == "statements":
			writeStatements(w, r.Statements)
		case name == "adminops" && off:
			switchedOff(w, "Admin operations", name)
		case name == "adminops":
			writeAdminOps(w, r.AdminOps)
		}
	}
	fmt.Fprintf(w, "\nOperating rules right now (alerts fire only after %s):\n", cfg.RuleWindow)
	for _, f := range c.Findings {
		verdict := "ok   "
		switch {
		case r.InRecovery:
			verdict = "n/a  "
		case f.Holds:
			verdict = "HOLDS"
		}
		where := "server"
		if f.Table != "" {
			where = f.Schema + "." + f.Table
		}
		fmt.Fprintf(w, "  %s  %-34s %-36s %s\n", verdict, f.Rule, where, f.Detail)
	}
	if r.InRecovery {
		fmt.Fprintln(w, "\nNo rule is judged on a standby: run check against the primary.")
	} else if n := len(c.Holding()); n > 0 {
		fmt.Fprintf(w, "\n%d rule(s) hold now: see docs/runbooks.md and `pgcapacity migrate plan`.\n", n)
	} else {
		fmt.Fprintln(w, "\nNo rule holds now.")
	}
}
