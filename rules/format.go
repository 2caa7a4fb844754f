package rules

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// promDuration renders d in Prometheus' duration syntax with the largest
// units first ("7d", "1h30m", "90s" as "1m30s"); Prometheus accepts the
// composite form since 2.x.
func promDuration(d time.Duration) string {
	if d <= 0 {
		return "0s"
	}
	units := []struct {
		suffix string
		size   time.Duration
	}{{"d", 24 * time.Hour}, {"h", time.Hour}, {"m", time.Minute}, {"s", time.Second}, {"ms", time.Millisecond}}
	var b strings.Builder
	for _, u := range units {
		if n := d / u.size; n > 0 {
			b.WriteString(strconv.FormatInt(int64(n), 10) + u.suffix)
			d -= n * u.size
		}
	}
	if b.Len() == 0 {
		return "0s" // below a millisecond: Prometheus has no finer unit
	}
	return b.String()
}

// num renders a threshold as a PromQL number, without an exponent (1000000,
// not 1e+06) unless it is very large or very small.
func num(v float64) string {
	if a := math.Abs(v); a == 0 || (a >= 1e-4 && a < 1e15) {
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// percent renders a ratio as a percentage for annotations: 0.25 → "25%".
func percent(ratio float64) string {
	return strconv.FormatFloat(ratio*100, 'f', -1, 64) + "%"
}

// humanize renders a count the way Prometheus' humanize template function
// does (1000000 → "1M"), so thresholds read like the $value beside them.
func humanize(v float64) string {
	prefixes := []string{"", "k", "M", "G", "T", "P", "E", "Z", "Y"}
	i := 0
	for math.Abs(v) >= 1000 && i < len(prefixes)-1 {
		v /= 1000
		i++
	}
	return strconv.FormatFloat(v, 'g', 4, 64) + prefixes[i]
}
