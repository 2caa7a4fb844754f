package main

import (
	"context"
	"errors"
)

// Subcommands still being built; each moves to its own file when it lands.

func runMigrate(context.Context, *environment, []string) (int, error) {
	return exitError, errors.New("not built yet")
}
