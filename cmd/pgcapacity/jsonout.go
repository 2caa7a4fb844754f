package main

import (
	"encoding/json"
	"io"
)

// writeJSON is the one encoder of every --json output (check, migrate
// status, migrate validate), which share one convention (README, "JSON
// output"): snake_case keys; durations as seconds, in keys ending in
// _seconds; times in RFC 3339; null for what is not known or not reported.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
