package main

import (
	"context"
	"fmt"

	"github.com/prometheus/common/version"
)

func runVersion(_ context.Context, env *environment, _ []string) (int, error) {
	fmt.Fprintln(env.stdout, version.Print("pgcapacity"))
	return exitOK, nil
}
