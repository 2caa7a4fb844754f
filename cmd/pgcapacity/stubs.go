package main

import (
	"context"
	"errors"
)

// Subcommands still being built; each moves to its own file when it lands.

func runRules(context.Context, *environment, []string) (int, error) {
	return exitError, errors.New("not built yet")
}

func runDashboards(context.Context, *environment, []string) (int, error) {
	return exitError, errors.New("not built yet")
}

func runMigrate(context.Context, *environment, []string) (int, error) {
	return exitError, errors.New("not built yet")
}

func runDemo(context.Context, *environment, []string) (int, error) {
	return exitError, errors.New("not built yet")
}
