package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"

	"github.com/sigid/pgcapacity/dashboards"
)

// runDashboards writes the Grafana dashboards, with the configured
// thresholds drawn on them, into DIR (default: the current directory).
func runDashboards(_ context.Context, env *environment, args []string) (int, error) {
	flags := flag.NewFlagSet("dashboards", flag.ContinueOnError)
	flags.SetOutput(env.stderr)
	flags.Usage = func() {
		fmt.Fprintln(env.stderr, "usage: pgcapacity dashboards [DIR]")
		fmt.Fprintln(env.stderr, "writes the Grafana dashboards (JSON) into DIR, the current directory when omitted;")
		fmt.Fprintln(env.stderr, "thresholds drawn on the panels come from the PGCAPACITY_* settings, as in `pgcapacity rules`.")
	}
	if err := parseFlags(flags, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, nil
		}
		return exitError, err
	}
	if flags.NArg() > 1 {
		return exitError, fmt.Errorf("takes one directory, got %d arguments: pgcapacity dashboards [DIR]", flags.NArg())
	}
	dir := "."
	if flags.NArg() == 1 {
		dir = flags.Arg(0)
	}
	if info, err := os.Stat(dir); err == nil && !info.IsDir() {
		return exitError, fmt.Errorf("%s is a file, not a directory: give the directory to write the dashboards into", dir)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return exitError, fmt.Errorf("checking the dashboards directory: %w", err)
	}
	files, err := dashboards.Build(dashboards.OptionsFrom(env.cfg))
	if err != nil {
		return exitError, err
	}
	written, err := dashboards.Write(dir, files)
	for _, path := range written {
		fmt.Fprintln(env.stdout, path)
	}
	if err != nil {
		return exitError, err
	}
	return exitOK, nil
}
