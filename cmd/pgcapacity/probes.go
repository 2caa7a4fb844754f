package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sigid/pgcapacity/collector/probes"
	"github.com/sigid/pgcapacity/internal/config"
)

// probesReport is what `pgcapacity probes` prints: every probe that runs
// against this database, with its SQL, and the hot tables that have none.
type probesReport struct {
	probes.Resolution
	// UnmatchedHotTables are PGCAPACITY_HOT_TABLES patterns that match no
	// watched table: not applicable here.
	UnmatchedHotTables []string `json:"unmatched_hot_tables"`
}

func runProbes(ctx context.Context, env *environment, args []string) (int, error) {
	pool, asJSON, err := openReport(ctx, env, "probes", "the probes", args)
	if err != nil {
		return exitError, err
	}
	defer pool.Close()
	ctx, cancel := context.WithTimeout(ctx, 3*env.cfg.QueryTimeout.D())
	defer cancel()
	c, err := probes.NewFromConfig(env.cfg, nil)
	if err != nil {
		return exitError, err
	}
	// What serve would refuse at start, this refuses too.
	if err := c.Validate(ctx, pool); err != nil {
		return exitError, describeDBError(err)
	}
	rep, err := resolveProbes(ctx, env.cfg, c, pool)
	if err != nil {
		return exitError, describeDBError(err)
	}
	if asJSON {
		if err := writeJSON(env.stdout, rep); err != nil {
			return exitError, err
		}
		return exitOK, nil
	}
	writeProbes(env.stdout, env.cfg.ProbeInterval, rep)
	return exitOK, nil
}

// resolveProbes reads which probes run now and which hot-table patterns
// match nothing.
func resolveProbes(ctx context.Context, cfg config.Config, c *probes.Collector, pool *pgxpool.Pool) (probesReport, error) {
	res, err := c.Resolve(ctx, pool)
	if err != nil {
		return probesReport{}, fmt.Errorf("resolving the latency probes: %w", err)
	}
	unmatched, err := probes.UnmatchedHotTables(ctx, pool, selection(cfg))
	if err != nil {
		return probesReport{}, err
	}
	return probesReport{Resolution: res, UnmatchedHotTables: append([]string{}, unmatched...)}, nil
}

// writeProbes prints every probe with its SQL, so what runs against the
// database is never a surprise.
func writeProbes(w io.Writer, interval config.Duration, r probesReport) {
	fmt.Fprintf(w, "Latency probes: each runs every %s as EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) in a read-only\n"+
		"transaction, $1 a tenant id from the planner statistics of its table's partitions, round-robin.\n", interval)
	if len(r.Probes) == 0 {
		fmt.Fprintf(w, "\n(no probes: no watched hot table can be probed from its definition, and %s_PROBES_FILE gives none)\n", config.Prefix)
	}
	for _, p := range r.Probes {
		fmt.Fprintf(w, "\n%s (%s) on %s.%s", p.Name, p.Origin, p.Schema, p.Table)
		var about []string
		if p.TableMissing {
			about = append(about, "TABLE MISSING")
		} else {
			key := "tenant key " + p.TenantKey
			if p.TenantKeyType != "" {
				key += " (" + p.TenantKeyType + ")"
			}
			about = append(about, key)
		}
		if p.Index != "" {
			about = append(about, "index "+p.Index)
		}
		if !p.TableMissing {
			about = append(about, fmt.Sprintf("%d partitions, %d tenants sampled", p.Partitions, p.TenantsSampled))
		}
		fmt.Fprintf(w, ": %s\n", strings.Join(about, ", "))
		for _, line := range strings.Split(strings.TrimRight(p.SQL, "\n"), "\n") {
			fmt.Fprintf(w, "    %s\n", line)
		}
	}
	if len(r.Unprobed) > 0 {
		fmt.Fprintf(w, "\nHot tables without a probe (give one in %s_PROBES_FILE):\n", config.Prefix)
		for _, s := range r.Unprobed {
			fmt.Fprintf(w, "  %s.%s: %s\n", s.Schema, s.Table, s.Reason)
		}
	}
	if len(r.UnmatchedHotTables) > 0 {
		fmt.Fprintf(w, "\nnot applicable: %s_HOT_TABLES patterns matching no watched table: %s\n", config.Prefix, strings.Join(r.UnmatchedHotTables, ", "))
	}
}
