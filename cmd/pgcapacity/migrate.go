package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/jackc/pgx/v5/pgxpool"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/sigid/pgcapacity/internal/config"
	"github.com/sigid/pgcapacity/migrate"
)

// migrateCommand is one `pgcapacity migrate` subcommand.
type migrateCommand struct {
	usage   string
	summary string
	// onStandby: the command only reads, so it runs on a standby too; the
	// others write the state or the table, and plan judges vacuum lag,
	// which only the primary has.
	onStandby bool
	flags     func(fs *flag.FlagSet, env *environment, pool *poolSize) func(ctx context.Context, env *environment, m *migrate.Migrator, fs *flag.FlagSet) (int, error)
}

// poolSize is how many connections a migrate command needs, known once its
// flags are parsed: the commands that copy in parallel set conns from their
// options; the others keep the default.
type poolSize struct{ conns func() int32 }

const defaultMigrateConns = 8

func migrateCommands() map[string]migrateCommand {
	return map[string]migrateCommand{
		"plan":     {usage: "--table T --partitions N [--schema S] [--force-decrease REASON]", summary: "show what a migration would do, its exact SQL, and whether it may", flags: planFlags},
		"start":    {usage: "--table T --partitions N --reason R --requester A --approver B [copy flags]", summary: "record the migration, create the new table, capture changes, copy and catch up", flags: startFlags},
		"status":   {usage: "[ID] [--json]", summary: "phase, progress, backlog, ETA and audit trail (all migrations without ID)", flags: statusFlags, onStandby: true},
		"resume":   {usage: "ID [--follow 5s] [copy flags]", summary: "continue from the last checkpoint after any stop; --follow keeps the shadow table current", flags: resumeFlags},
		"validate": {usage: "ID [--json]", summary: "compare counts and checksums per new partition, constraints and indexes", flags: validateFlags},
		"swap":     {usage: "ID --window \"Sat 02:00-04:00 Europe/Berlin\" | --now REASON", summary: "make the new table live under the original name in one short locked transaction", flags: swapFlags},
		"rollback": {usage: "ID", summary: "make the original live again, losing no write made since the swap", flags: rollbackFlags},
		"drop-old": {usage: "ID [--rollback-period 7d]", summary: "drop the retained original once the rollback period has passed", flags: dropOldFlags},
		"abort":    {usage: "ID", summary: "before the swap (or after a rollback): remove everything the migration created", flags: abortFlags},
	}
}

func migrateUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: pgcapacity migrate COMMAND [flags]")
	fmt.Fprintln(w)
	cmds := migrateCommands()
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-9s %s\n            %s\n", n, cmds[n].summary, cmds[n].usage)
	}
	fmt.Fprintln(w, "\nrun `pgcapacity migrate COMMAND -h` for a command's flags; docs/migrate.md is the operator guide")
}

func runMigrate(ctx context.Context, env *environment, args []string) (int, error) {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		migrateUsage(env.stdout)
		return exitOK, nil
	}
	cmd, ok := migrateCommands()[args[0]]
	if !ok {
		migrateUsage(env.stderr)
		return exitError, fmt.Errorf("unknown migrate command %q", args[0])
	}
	fs := flag.NewFlagSet("migrate "+args[0], flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.stderr, "usage: pgcapacity migrate %s %s\n\n%s\n\nflags:\n", args[0], cmd.usage, cmd.summary)
		fs.PrintDefaults()
	}
	var size poolSize
	run := cmd.flags(fs, env, &size)
	if err := parseFlags(fs, reorder(fs, args[1:])); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, nil
		}
		return exitError, err
	}
	if err := env.cfg.RequireDatabase(); err != nil {
		return exitError, err
	}
	maxConns := int32(defaultMigrateConns)
	if size.conns != nil {
		maxConns = size.conns()
	}
	pool, err := migrate.NewPool(ctx, env.cfg.DatabaseURL, maxConns)
	if err != nil {
		return exitError, err
	}
	defer pool.Close()
	if !cmd.onStandby {
		if err := refuseStandby(ctx, pool, args[0]); err != nil {
			return exitError, err
		}
	}
	m := migrate.New(pool, env.logger)
	return run(ctx, env, m, fs)
}

// refuseStandby stops a command that must run on the primary before it
// reads or changes anything.
func refuseStandby(ctx context.Context, pool *pgxpool.Pool, command string) error {
	var standby bool
	if err := pool.QueryRow(ctx, `SELECT pg_catalog.pg_is_in_recovery()`).Scan(&standby); err != nil {
		return fmt.Errorf("asking whether the server is a standby: %w", err)
	}
	if standby {
		return fmt.Errorf("migrate %s: this server is a standby (pg_is_in_recovery() is true): migrations run on the primary, whose statistics plan judges too; point PGCAPACITY_DATABASE_URL at the primary (migrate status runs on a standby)", command)
	}
	return nil
}

// reorder lets the migration ID come before the flags ("swap 3 --now x"):
// the flag package stops at the first positional argument.
func reorder(fs *flag.FlagSet, args []string) []string {
	var flags, positional []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			positional = append(positional, args[i+1:]...)
			break
		}
		if strings.HasPrefix(a, "-") {
			flags = append(flags, a)
			if !strings.Contains(a, "=") && i+1 < len(args) && !isBoolFlag(fs, a) {
				flags = append(flags, args[i+1])
				i++
			}
			continue
		}
		positional = append(positional, a)
	}
	return append(flags, positional...)
}

// isBoolFlag asks the flag set, so a new boolean flag never swallows the
// argument after it. An unknown flag (also -h) takes no value: Parse then
// reports it or prints the usage.
func isBoolFlag(fs *flag.FlagSet, a string) bool {
	f := fs.Lookup(strings.TrimLeft(a, "-"))
	if f == nil {
		return true
	}
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

func migrationID(fs *flag.FlagSet) (int64, error) {
	if fs.NArg() != 1 {
		return 0, fmt.Errorf("give one migration ID (see `pgcapacity migrate status`)")
	}
	id, err := strconv.ParseInt(fs.Arg(0), 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("%q is not a migration ID: give the number `pgcapacity migrate status` lists", fs.Arg(0))
	}
	return id, nil
}

type tableFlags struct {
	schema, table        *string
	partitions           *int
	forceDecrease        *string
	assumedRowsPerSecond *float64
}

func addTableFlags(fs *flag.FlagSet) tableFlags {
	return tableFlags{
		schema:               fs.String("schema", "", "schema of the table (default: the first schema on the search_path that has it)"),
		table:                fs.String("table", "", "the hash-partitioned table (exact name; schema.table also accepted)"),
		partitions:           fs.Int("partitions", 0, "the target number of hash partitions"),
		forceDecrease:        fs.String("force-decrease", "", "allow a decrease the rules do not support, recording this reason"),
		assumedRowsPerSecond: fs.Float64("assume-rows-per-second", 50000, "copy rate used for the time estimate (measure yours with bench/migrate)"),
	}
}

func (f tableFlags) request(cfg config.Config) migrate.PlanRequest {
	schema, table := *f.schema, *f.table
	if schema == "" {
		if s, t, ok := strings.Cut(table, "."); ok {
			schema, table = s, t
		}
	}
	return migrate.PlanRequest{Schema: schema, Table: table, Partitions: *f.partitions, ForceDecreaseReason: strings.TrimSpace(*f.forceDecrease),
		Thresholds: cfg.Thresholds, TenantColumn: cfg.TenantColumn, AssumedRowsPerSecond: *f.assumedRowsPerSecond}
}

// addCopyFlags adds the copy flags and sizes the pool for --jobs parallel
// copies plus the replay, the progress reader and the lock retries.
func addCopyFlags(fs *flag.FlagSet, pool *poolSize) func() migrate.CopyOptions {
	batch := fs.Int("batch-size", 10000, "rows per copy and replay batch (one short transaction each)")
	rate := fs.Float64("max-rows-per-second", 0, "copy rate limit; 0: unlimited")
	jobs := fs.Int("jobs", 1, "original partitions copied in parallel")
	backlog := fs.Int64("backlog-target", 0, "catch-up ends when at most this many changes wait (default: the batch size)")
	lockTimeout := fs.Duration("lock-timeout", migrate.DefaultLockTimeout, "lock_timeout of the short DDL steps; they retry with backoff")
	pool.conns = func() int32 { return int32(max(*jobs+3, 4)) }
	return func() migrate.CopyOptions {
		return migrate.CopyOptions{BatchSize: *batch, MaxRowsPerSecond: *rate, Jobs: *jobs, BacklogTarget: *backlog, LockTimeout: *lockTimeout}
	}
}

func planFlags(fs *flag.FlagSet, env *environment, _ *poolSize) func(context.Context, *environment, *migrate.Migrator, *flag.FlagSet) (int, error) {
	tf := addTableFlags(fs)
	lockTimeout := fs.Duration("lock-timeout", migrate.DefaultLockTimeout, "the --lock-timeout the commands will be given; the steps shown carry it")
	return func(ctx context.Context, env *environment, m *migrate.Migrator, fs *flag.FlagSet) (int, error) {
		req := tf.request(env.cfg)
		req.LockTimeout = *lockTimeout
		p, err := m.Plan(ctx, req)
		if err != nil {
			return exitError, err
		}
		p.Print(env.stdout)
		if len(p.Refusals) > 0 {
			return exitFinding, nil
		}
		return exitOK, nil
	}
}

func startFlags(fs *flag.FlagSet, env *environment, pool *poolSize) func(context.Context, *environment, *migrate.Migrator, *flag.FlagSet) (int, error) {
	tf := addTableFlags(fs)
	reason := fs.String("reason", "", "why the partition count changes (required, recorded)")
	requester := fs.String("requester", "", "who asked for the change (required, recorded)")
	approver := fs.String("approver", "", "who approved it, not the requester (required, recorded)")
	copts := addCopyFlags(fs, pool)
	return func(ctx context.Context, env *environment, m *migrate.Migrator, fs *flag.FlagSet) (int, error) {
		stop := showProgress(env, m)
		id, err := m.Start(ctx, migrate.StartRequest{PlanRequest: tf.request(env.cfg), Reason: *reason, Requester: *requester, Approver: *approver, Copy: copts()})
		stop()
		return finishRun(env, id, err)
	}
}

func finishRun(env *environment, id int64, err error) (int, error) {
	if id > 0 {
		fmt.Fprintf(env.stdout, "migration %d\n", id)
	}
	if errors.Is(err, migrate.ErrInterrupted) {
		fmt.Fprintf(env.stderr, "pgcapacity migrate: %v\n", err)
		return 130, nil
	}
	if err != nil {
		return exitError, err
	}
	fmt.Fprintf(env.stdout, "ready: validate with `pgcapacity migrate validate %d`, then swap in a maintenance window\n", id)
	return exitOK, nil
}

func statusFlags(fs *flag.FlagSet, env *environment, _ *poolSize) func(context.Context, *environment, *migrate.Migrator, *flag.FlagSet) (int, error) {
	asJSON := fs.Bool("json", false, "print JSON")
	return func(ctx context.Context, env *environment, m *migrate.Migrator, fs *flag.FlagSet) (int, error) {
		var list []*migrate.Status
		if fs.NArg() == 0 {
			var err error
			if list, err = m.List(ctx); err != nil {
				return exitError, err
			}
		} else {
			id, err := migrationID(fs)
			if err != nil {
				return exitError, err
			}
			s, err := m.Status(ctx, id)
			if err != nil {
				return exitError, err
			}
			list = []*migrate.Status{s}
		}
		if *asJSON {
			return exitOK, writeJSON(env.stdout, statusViews(list))
		}
		if len(list) == 0 {
			fmt.Fprintln(env.stdout, "no migrations")
		}
		for _, s := range list {
			s.Print(env.stdout)
		}
		return exitOK, nil
	}
}

func resumeFlags(fs *flag.FlagSet, env *environment, pool *poolSize) func(context.Context, *environment, *migrate.Migrator, *flag.FlagSet) (int, error) {
	copts := addCopyFlags(fs, pool)
	follow := fs.Duration("follow", 0, "after catching up, keep replaying at this interval until interrupted (keeps the shadow table current)")
	return func(ctx context.Context, env *environment, m *migrate.Migrator, fs *flag.FlagSet) (int, error) {
		id, err := migrationID(fs)
		if err != nil {
			return exitError, err
		}
		stop := showProgress(env, m)
		err = m.Resume(ctx, id, copts(), *follow)
		stop()
		return finishRun(env, id, err)
	}
}

func validateFlags(fs *flag.FlagSet, env *environment, _ *poolSize) func(context.Context, *environment, *migrate.Migrator, *flag.FlagSet) (int, error) {
	asJSON := fs.Bool("json", false, "print JSON")
	return func(ctx context.Context, env *environment, m *migrate.Migrator, fs *flag.FlagSet) (int, error) {
		id, err := migrationID(fs)
		if err != nil {
			return exitError, err
		}
		v, err := m.Validate(ctx, id, migrate.CopyOptions{})
		if err != nil {
			return exitError, err
		}
		verdict := env.stdout
		if *asJSON {
			if err := writeJSON(env.stdout, validationView(v)); err != nil {
				return exitError, err
			}
			verdict = env.stderr // stdout holds only the JSON document
		} else {
			for _, p := range v.Partitions {
				mark := "ok"
				if !p.OK {
					mark = "DIFFERS"
				}
				fmt.Fprintf(env.stdout, "%-40s new %10d rows  original %10d rows  checksum %s  %s\n", p.Name, p.NewRows, p.OriginalRows, p.NewChecksum, mark)
			}
			for _, pr := range v.Problems {
				fmt.Fprintf(env.stdout, "problem: %s\n", pr)
			}
			fmt.Fprintf(env.stdout, "%d key(s) with changes still being replayed were left out on both sides\n", v.Pending)
		}
		if !v.OK {
			fmt.Fprintln(verdict, "validation FAILED: do not swap; resume, then validate again, or abort")
			return exitFinding, nil
		}
		fmt.Fprintln(verdict, "validation passed")
		return exitOK, nil
	}
}

type swapFlagValues struct {
	window, now *string
	fullCount   *bool
	maxFinal    *int64
	catchUp     *time.Duration
	lockTimeout *time.Duration
	retries     *int
	batch       *int
}

func addSwapFlags(fs *flag.FlagSet, forward bool) swapFlagValues {
	v := swapFlagValues{
		lockTimeout: fs.Duration("lock-timeout", migrate.DefaultLockTimeout, "lock_timeout of each attempt at the exclusive lock"),
		retries:     fs.Int("retries", 10, "attempts at the lock, with backoff"),
		batch:       fs.Int("batch-size", 10000, "replay batch"),
		fullCount:   fs.Bool("full-count-check", false, "count both tables in full under the lock (the lock then lasts as long as the counts)"),
		maxFinal:    fs.Int64("max-final-replay", 5000, "most captured changes left for the replay under the lock; a backlog that stays above it makes the swap wait"),
		catchUp:     fs.Duration("catch-up-timeout", 10*time.Minute, "how long the swap waits for the backlog to fall to --max-final-replay before giving up"),
	}
	if forward {
		v.window = fs.String("window", "", "maintenance window, such as \"Sat 02:00-04:00 Europe/Berlin\"; the swap refuses outside it")
		v.now = fs.String("now", "", "swap now, outside any window, recording this reason")
	}
	return v
}

func (v swapFlagValues) options(env *environment, forward bool) (migrate.SwapOptions, error) {
	o := migrate.SwapOptions{LockTimeout: *v.lockTimeout, Retries: *v.retries, BatchSize: *v.batch, RollbackPeriod: env.cfg.RollbackPeriod.D(), FullCountCheck: *v.fullCount,
		MaxFinalReplay: *v.maxFinal, CatchUpTimeout: *v.catchUp}
	if forward {
		o.Window, o.NowReason = *v.window, strings.TrimSpace(*v.now)
		if env.cfg.AlertmanagerURL != "" {
			s, err := migrate.NewSilencer(env.cfg.AlertmanagerURL, "pgcapacity migrate")
			if err != nil {
				return o, &config.Error{Variable: config.Prefix + "_ALERTMANAGER_URL", Problem: err.Error()}
			}
			o.Silence = s.Silence
		}
	}
	return o, nil
}

func swapFlags(fs *flag.FlagSet, env *environment, _ *poolSize) func(context.Context, *environment, *migrate.Migrator, *flag.FlagSet) (int, error) {
	sv := addSwapFlags(fs, true)
	return func(ctx context.Context, env *environment, m *migrate.Migrator, fs *flag.FlagSet) (int, error) {
		return runSwitch(ctx, env, m, fs, sv, true)
	}
}

func rollbackFlags(fs *flag.FlagSet, env *environment, _ *poolSize) func(context.Context, *environment, *migrate.Migrator, *flag.FlagSet) (int, error) {
	sv := addSwapFlags(fs, false)
	return func(ctx context.Context, env *environment, m *migrate.Migrator, fs *flag.FlagSet) (int, error) {
		return runSwitch(ctx, env, m, fs, sv, false)
	}
}

func runSwitch(ctx context.Context, env *environment, m *migrate.Migrator, fs *flag.FlagSet, sv swapFlagValues, forward bool) (int, error) {
	id, err := migrationID(fs)
	if err != nil {
		return exitError, err
	}
	o, err := sv.options(env, forward)
	if err != nil {
		return exitError, err
	}
	var res *migrate.SwapResult
	verb := "swapped"
	if forward {
		res, err = m.Swap(ctx, id, o)
	} else {
		verb = "rolled back"
		res, err = m.Rollback(ctx, id, o)
	}
	if err != nil {
		return exitError, err
	}
	fmt.Fprintf(env.stdout, "migration %d %s: %d rows, exclusive lock held %s (%d attempt(s), %d changes in the final replay)\n",
		id, verb, res.Rows, res.LockHold.Round(time.Millisecond), res.Attempts, res.FinalReplayed)
	if len(res.LockHolds) > 1 {
		// Every hold that blocked writes, in order: attempts that gave
		// up, the transaction, an attach of per-leaf foreign keys.
		for _, h := range res.LockHolds {
			fmt.Fprintf(env.stdout, "  %s: %s\n", h.Step, h.Hold.Round(time.Millisecond))
		}
	}
	if res.SilenceID != "" {
		fmt.Fprintf(env.stdout, "Alertmanager silence %s covers the table's alerts for the window\n", res.SilenceID)
	}
	return exitOK, nil
}

func dropOldFlags(fs *flag.FlagSet, env *environment, _ *poolSize) func(context.Context, *environment, *migrate.Migrator, *flag.FlagSet) (int, error) {
	period := fs.String("rollback-period", env.cfg.RollbackPeriod.String(), "how long after the swap the original must be kept (PGCAPACITY_ROLLBACK_PERIOD)")
	return func(ctx context.Context, env *environment, m *migrate.Migrator, fs *flag.FlagSet) (int, error) {
		id, err := migrationID(fs)
		if err != nil {
			return exitError, err
		}
		d, err := config.ParseDuration(*period)
		if err != nil {
			return exitError, fmt.Errorf("--rollback-period: %w", err)
		}
		if err := m.DropOld(ctx, id, d, migrate.CopyOptions{}); err != nil {
			return exitError, err
		}
		fmt.Fprintf(env.stdout, "migration %d finished: the original was dropped\n", id)
		return exitOK, nil
	}
}

func abortFlags(fs *flag.FlagSet, env *environment, _ *poolSize) func(context.Context, *environment, *migrate.Migrator, *flag.FlagSet) (int, error) {
	return func(ctx context.Context, env *environment, m *migrate.Migrator, fs *flag.FlagSet) (int, error) {
		id, err := migrationID(fs)
		if err != nil {
			return exitError, err
		}
		if err := m.Abort(ctx, id, migrate.CopyOptions{}); err != nil {
			return exitError, err
		}
		fmt.Fprintf(env.stdout, "migration %d aborted: the new table, capture triggers and change log are gone; the original is as it was\n", id)
		return exitOK, nil
	}
}

// showProgress draws a progress bar on a terminal, or logs progress every
// ten seconds otherwise. The returned function stops it.
func showProgress(env *environment, m *migrate.Migrator) func() {
	f, isFile := env.stderr.(*os.File)
	if isFile && term.IsTerminal(int(f.Fd())) {
		var mu sync.Mutex
		var bar *progressbar.ProgressBar
		m.Progress = func(p migrate.Progress) {
			mu.Lock()
			defer mu.Unlock()
			if p.Phase != migrate.PhaseCopying {
				if bar != nil {
					_ = bar.Finish()
					bar = nil
				}
				return
			}
			if bar == nil {
				bar = progressbar.NewOptions64(max(p.TotalBlocks, 1), progressbar.OptionSetWriter(f), progressbar.OptionSetPredictTime(true),
					progressbar.OptionSetElapsedTime(true), progressbar.OptionThrottle(200*time.Millisecond), progressbar.OptionFullWidth(),
					progressbar.OptionShowDescriptionAtLineEnd())
			}
			bar.Describe(fmt.Sprintf("%d rows, %.0f rows/s", p.CopiedRows, p.RowsPerSecond))
			_ = bar.Set64(p.DoneBlocks)
		}
		return func() {
			mu.Lock()
			defer mu.Unlock()
			if bar != nil {
				_ = bar.Finish()
				fmt.Fprintln(f)
			}
		}
	}
	var mu sync.Mutex
	last := time.Time{}
	m.Progress = func(p migrate.Progress) {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(last) < 10*time.Second {
			return
		}
		last = time.Now()
		if p.Phase == migrate.PhaseCopying {
			pct := 0.0
			if p.TotalBlocks > 0 {
				pct = 100 * float64(p.DoneBlocks) / float64(p.TotalBlocks)
			}
			env.logger.Info("copy progress", "id", p.ID, "percent", fmt.Sprintf("%.1f", pct), "rows", p.CopiedRows,
				"estimated_rows", p.EstimatedRows, "rows_per_second", int64(p.RowsPerSecond), "eta", p.ETA.Round(time.Second))
		} else {
			env.logger.Info("replay progress", "id", p.ID, "backlog", p.Backlog, "rows_per_second", int64(p.RowsPerSecond))
		}
	}
	return func() {}
}
