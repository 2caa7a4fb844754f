package main

import (
	"errors"
	"flag"
)

// usageError is a command-line error that the command's flag set has
// already printed, with its usage: run exits 2 without printing it again.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// parseFlags parses args into fs (built with flag.ContinueOnError).
// flag.ErrHelp passes through; any other parse error becomes a *usageError.
func parseFlags(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return err
	}
	return &usageError{err: err}
}
