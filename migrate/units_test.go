package migrate

import (
	"fmt"
	"math/big"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestWindow(t *testing.T) {
	berlin, _ := time.LoadLocation("Europe/Berlin")
	utc := time.UTC
	cases := []struct {
		window string
		at     time.Time
		inside bool
	}{
		{"Sat 02:00-04:00 Europe/Berlin", time.Date(2026, 11, 28, 3, 0, 0, 0, berlin), true},
		{"Sat 02:00-04:00 Europe/Berlin", time.Date(2026, 11, 28, 2, 0, 0, 0, berlin), true},
		{"Sat 02:00-04:00 Europe/Berlin", time.Date(2026, 11, 28, 4, 0, 0, 0, berlin), false},
		{"Sat 02:00-04:00 Europe/Berlin", time.Date(2026, 11, 28, 1, 59, 0, 0, berlin), false},
		{"Sat 02:00-04:00 Europe/Berlin", time.Date(2026, 11, 27, 3, 0, 0, 0, berlin), false},
		{"Sat 02:00-04:00 Europe/Berlin", time.Date(2026, 11, 28, 2, 30, 0, 0, utc), false}, // 03:30 in Berlin? no: 03:30 CET is inside; 02:30 UTC is 03:30 CET
		{"Fri 23:00-01:00 UTC", time.Date(2026, 11, 28, 0, 30, 0, 0, utc), true},
		{"Fri 23:00-01:00 UTC", time.Date(2026, 11, 27, 23, 30, 0, 0, utc), true},
		{"Fri 23:00-01:00 UTC", time.Date(2026, 11, 28, 1, 0, 0, 0, utc), false},
		{"Fri 23:00-01:00 UTC", time.Date(2026, 11, 26, 23, 30, 0, 0, utc), false},
		{"Mon-Fri 22:00-23:30", time.Date(2026, 11, 25, 22, 15, 0, 0, utc), true},
		{"Mon-Fri 22:00-23:30", time.Date(2026, 11, 28, 22, 15, 0, 0, utc), false},
		{"Sat,Sun 10:00-11:00", time.Date(2026, 11, 29, 10, 30, 0, 0, utc), true},
		{"daily 01:00-02:00", time.Date(2026, 11, 24, 1, 30, 0, 0, utc), true},
		{"daily 01:00-02:00", time.Date(2026, 11, 24, 2, 30, 0, 0, utc), false},
	}
	// 02:30 UTC on that Saturday is 03:30 in Berlin (CET, UTC+1): inside.
	cases[5].inside = true
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s at %s", tc.window, tc.at.Format(time.RFC3339)), func(t *testing.T) {
			w, err := ParseWindow(tc.window)
			if err != nil {
				t.Fatal(err)
			}
			if got := w.Contains(tc.at); got != tc.inside {
				t.Errorf("Contains = %v, want %v", got, tc.inside)
			}
			if tc.inside && !w.EndOf(tc.at).After(tc.at) {
				t.Errorf("EndOf %v is not after %v", w.EndOf(tc.at), tc.at)
			}
			if next := w.NextStart(tc.at); !next.After(tc.at) || !w.Contains(next) {
				t.Errorf("NextStart %v: not a later opening", next)
			}
		})
	}
	w, _ := ParseWindow("Sat 02:00-04:00 Europe/Berlin")
	if end := w.EndOf(time.Date(2026, 11, 28, 3, 0, 0, 0, berlin)); !end.Equal(time.Date(2026, 11, 28, 4, 0, 0, 0, berlin)) {
		t.Errorf("EndOf = %v", end)
	}
	for _, bad := range []string{"", "Sat", "Sat 2-4", "Funday 02:00-04:00", "Sat 02:00-02:00", "Sat 02:00-04:00 Mars/Base", "Sat 25:00-26:00", "Sat 02:00-04:00 UTC extra"} {
		if _, err := ParseWindow(bad); err == nil || !strings.Contains(err.Error(), "Sat 02:00-04:00 Europe/Berlin") && !strings.Contains(err.Error(), "IANA") {
			t.Errorf("ParseWindow(%q) = %v, want an error showing the form", bad, err)
		}
	}
}

// Every hash lands in one of the candidate partitions computed for its
// original partition.
func TestCandidates(t *testing.T) {
	for _, c := range [][2]int{{8, 32}, {16, 24}, {32, 8}, {7, 5}, {4, 4}} {
		from, to := c[0], c[1]
		for range 1000 {
			h := rand.Uint64()
			j, i := int(h%uint64(from)), int32(h%uint64(to))
			if !slices.Contains(candidates(j, from, to), i) {
				t.Fatalf("%d -> %d: hash %d in original %d, new %d not among %v", from, to, h, j, i, candidates(j, from, to))
			}
		}
		if to%from == 0 && len(candidates(0, from, to)) != to/from {
			t.Errorf("%d -> %d: %d candidates, want %d", from, to, len(candidates(0, from, to)), to/from)
		}
	}
}

func TestAddDecimal(t *testing.T) {
	for range 2000 {
		a, b := rand.Int64()-rand.Int64(), rand.Int64()-rand.Int64()
		ba, bb := new(big.Int).Mul(big.NewInt(a), big.NewInt(1e12)), big.NewInt(b)
		want := new(big.Int).Add(ba, bb).String()
		if got := addDecimal(ba.String(), bb.String()); got != want {
			t.Fatalf("%s + %s = %s, want %s", ba, bb, got, want)
		}
	}
	if got := addDecimal("-5", "5"); got != "0" {
		t.Errorf("-5 + 5 = %s", got)
	}
}

func TestNames(t *testing.T) {
	long := strings.Repeat("ä", 40) // 80 bytes
	cases := []struct{ got, want string }{
		{partitionName("session", 31), "session_p31"},
		{shadowNewName(12, "session_p3"), "n12_session_p3"},
		{shadowOldName(3, `Audit"Log`), `o3_Audit"Log`},
		{qi("Odd \"Schema\"", `Audit"Log`), `"Odd ""Schema"""."Audit""Log"`},
		{ql("it's"), `'it''s'`},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
	for _, n := range []string{partitionName(long, 7), shadowNewName(1, long), shadowOldName(99999, long)} {
		if len(n) > maxIdentifierBytes || !strings.HasPrefix(long, strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(n, "n1_"), "o99999_"), "_p7")) {
			t.Errorf("%q: longer than 63 bytes or cut inside a character", n)
		}
	}
	if !strings.HasSuffix(partitionName(long, 7), "_p7") {
		t.Errorf("partition suffix lost: %q", partitionName(long, 7))
	}
	if q := dollarQuote("a $pgc$ b"); !strings.HasPrefix(q, "$pgc0$") {
		t.Errorf("dollarQuote did not avoid the tag: %s", q)
	}
}
