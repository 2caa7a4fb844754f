package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration that also accepts whole days ("30d", "7d12h"),
// because the operating rules are written in days and weeks.
type Duration time.Duration

// Decode implements envconfig.Decoder.
func (d *Duration) Decode(value string) error {
	parsed, err := ParseDuration(value)
	if err != nil {
		return err
	}
	*d = Duration(parsed)
	return nil
}

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String renders the duration in the same form Decode accepts, using days
// where the value is a whole number of days.
func (d Duration) String() string {
	v := time.Duration(d)
	const day = 24 * time.Hour
	if v >= day && v%day == 0 {
		return strconv.FormatInt(int64(v/day), 10) + "d"
	}
	return v.String()
}

// maxDays keeps day counts far from int64 nanosecond overflow.
const maxDays = 36500

// ParseDuration parses a Go duration with an optional leading day count,
// for example "30d", "1d12h" or "90s".
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("empty duration: give a value with a unit, such as 30s, 15m, 6h or 7d")
	}
	var days int64
	if i := strings.IndexByte(s, 'd'); i >= 0 {
		n, err := strconv.ParseInt(s[:i], 10, 32)
		if err != nil || n < 0 || n > maxDays {
			return 0, fmt.Errorf("%q is not a duration: days must be a whole number from 0 to %d, as in 7d or 1d12h", s, maxDays)
		}
		days, s = n, s[i+1:]
		if s == "" {
			return time.Duration(days) * 24 * time.Hour, nil
		}
	}
	rest, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration: use a number with a unit, such as 30s, 15m, 6h or 7d", s)
	}
	if rest < 0 {
		return 0, fmt.Errorf("%q is negative: durations must be zero or more", s)
	}
	return time.Duration(days)*24*time.Hour + rest, nil
}
