package main

import (
	"flag"
	"slices"
	"testing"
)

// TestReorderAsksTheFlagSet: boolean flags (whatever their name) never take
// the next argument as a value; other flags do.
func TestReorderAsksTheFlagSet(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{name: "id first", args: []string{"3", "--now", "x"}, want: []string{"--now", "x", "3"}},
		{name: "bool before id", args: []string{"--json", "3"}, want: []string{"--json", "3"}},
		{name: "new bool before id", args: []string{"--brand-new-bool", "3"}, want: []string{"--brand-new-bool", "3"}},
		{name: "value with =", args: []string{"--now=x", "3"}, want: []string{"--now=x", "3"}},
		{name: "help", args: []string{"-h", "3"}, want: []string{"-h", "3"}},
		{name: "after --", args: []string{"--json", "--", "-4"}, want: []string{"--json", "-4"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			fs.Bool("json", false, "")
			fs.Bool("brand-new-bool", false, "")
			fs.String("now", "", "")
			if got := reorder(fs, tc.args); !slices.Equal(got, tc.want) {
				t.Errorf("reorder(%q) = %q, want %q", tc.args, got, tc.want)
			}
		})
	}
}
