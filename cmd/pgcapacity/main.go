// Command pgcapacity watches hash-partitioned PostgreSQL tables, publishes
// capacity metrics for Prometheus, and changes a table's partition count online.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"syscall"

	"github.com/prometheus/common/version"
	"github.com/sigid/pgcapacity/internal/config"
)

// Exit codes: check uses 1 for "some rule holds".
const (
	exitOK      = 0
	exitFinding = 1
	exitError   = 2
)

// command is one subcommand. run returns the exit code; an error is printed
// on one line and exits 2.
type command struct {
	summary string
	run     func(ctx context.Context, env *environment, args []string) (int, error)
	// noConfig commands run with any environment: env.cfg is the zero
	// Config and the logger the default text one.
	noConfig bool
}

// environment is what every subcommand gets: its configuration, a logger
// and the standard streams.
type environment struct {
	cfg    config.Config
	logger *slog.Logger
	stdout io.Writer
	stderr io.Writer
}

func commands() map[string]command {
	return map[string]command{
		"serve":      {summary: "run the exporter: sample PostgreSQL in the background and serve /metrics", run: runServe},
		"check":      {summary: "sample once and report which operating rules hold now (--json for machines); exit 1 when some do", run: runCheck},
		"demo":       {summary: "start a throwaway PostgreSQL with the seeded SigID schema and serve metrics on it", run: runDemo},
		"probes":     {summary: "list the latency probes that run against this database, derived from the hot tables or from PGCAPACITY_PROBES_FILE, with their SQL (--json for machines)", run: runProbes},
		"rules":      {summary: "print the Prometheus alert and recording rules for this configuration", run: runRules},
		"dashboards": {summary: "write the Grafana dashboards (JSON) into a directory", run: runDashboards},
		"migrate":    {summary: "change a table's hash partition count online (plan, start, status, resume, validate, swap, rollback, drop-old, abort)", run: runMigrate},
		"version":    {summary: "print the version", run: runVersion, noConfig: true},
	}
}

func main() {
	if version.Version == "" {
		version.Version = "dev" // release builds set it with -ldflags
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout, cmds)
		return exitOK
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "pgcapacity: unknown command %q: run `pgcapacity help` for the list\n", args[0])
		return exitError
	}
	var cfg config.Config
	if !cmd.noConfig {
		var err error
		if cfg, err = config.Load(); err != nil {
			fmt.Fprintf(stderr, "pgcapacity: configuration: %v\n", err)
			return exitError
		}
	}
	env := &environment{cfg: cfg, logger: newLogger(cfg, stderr), stdout: stdout, stderr: stderr}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code, err := cmd.run(ctx, env, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return exitOK // the flag set printed its usage
	}
	var usageErr *usageError
	if errors.As(err, &usageErr) {
		return exitError // the flag set printed the error and its usage
	}
	if err != nil {
		var cfgErr *config.Error
		if errors.As(err, &cfgErr) {
			fmt.Fprintf(stderr, "pgcapacity: configuration: %v\n", cfgErr)
		} else {
			fmt.Fprintf(stderr, "pgcapacity %s: %v\n", args[0], err)
		}
		return exitError
	}
	return code
}

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "usage: pgcapacity COMMAND [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "commands:")
	names := make([]string, 0, len(cmds))
	for name := range cmds {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(w, "  %-11s %s\n", name, cmds[name].summary)
	}
	fmt.Fprintf(w, "  %-11s %s\n\n", "help", "this text")
	_ = config.Usage(w)
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
