package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/sigid/pgcapacity/rules"
)

// runRules prints the Prometheus recording and alert rules for the
// configured thresholds, as a rule file or a PrometheusRule manifest.
func runRules(_ context.Context, env *environment, args []string) (int, error) {
	flags := flag.NewFlagSet("rules", flag.ContinueOnError)
	flags.SetOutput(env.stderr)
	format := flags.String("format", "prometheus", "prometheus (a rule file), kubernetes (a PrometheusRule manifest), thanos (a Thanos Ruler file) or mimir (a mimirtool file, groups within Mimir's limits)")
	name := flags.String("name", "pgcapacity", "metadata.name of the PrometheusRule (kubernetes) or the rule namespace (mimir)")
	out := flags.String("o", "", "write to this file instead of standard output")
	flags.Usage = func() {
		fmt.Fprintln(env.stderr, "usage: pgcapacity rules [--format prometheus|kubernetes|thanos|mimir] [--name NAME] [-o FILE]")
		fmt.Fprintln(env.stderr, "prints the alert and recording rules; thresholds come from the PGCAPACITY_* settings (pgcapacity help).")
		flags.PrintDefaults()
	}
	if err := parseFlags(flags, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, nil
		}
		return exitError, err
	}
	if flags.NArg() > 0 {
		return exitError, fmt.Errorf("unexpected argument %q: pgcapacity rules takes only flags (-o FILE to write a file)", flags.Arg(0))
	}
	file, err := rules.Generate(rules.FromConfig(env.cfg))
	if err != nil {
		return exitError, err
	}
	text, err := file.Render(*format, *name)
	if err != nil {
		return exitError, err
	}
	if *out == "" {
		_, err = env.stdout.Write(text)
		return exitOK, err
	}
	if err := os.WriteFile(*out, text, 0o644); err != nil {
		return exitError, fmt.Errorf("writing the rules: %w", err)
	}
	return exitOK, nil
}
