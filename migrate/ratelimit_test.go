package migrate

import (
	"testing"
	"time"
)

// TestChargeRowsKeepsTheRate reproduces issue 14 item 10: batches larger
// than the limiter's burst were charged one burst each, and the limiter
// started full, so the copy ran faster than --max-rows-per-second. The
// clock is simulated: each batch (the copy's batch size, as the copy
// builds its limiter) starts when the previous wait ends, and rows/elapsed
// must stay within 10 % of the limit, for long copies and for copies of a
// few batches. TestCopyKeepsTheRowRate runs a real copy.
func TestChargeRowsKeepsTheRate(t *testing.T) {
	cases := []struct {
		name    string
		limit   float64
		batch   int
		batches int
	}{
		{name: "batch ten times the limit", limit: 1000, batch: 10000, batches: 200},
		{name: "batch equal to the limit", limit: 500, batch: 500, batches: 200},
		{name: "batch smaller than the limit", limit: 2000, batch: 300, batches: 200},
		{name: "three batches of the default size at 5 rows/s", limit: 5, batch: 10000, batches: 3},
		{name: "four batches under the limit", limit: 200, batch: 50, batches: 4},
		{name: "one batch", limit: 10, batch: 1000, batches: 1},
		{name: "under one row per second", limit: 0.5, batch: 10, batches: 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Unix(0, 0)
			limiter := newRowLimiter(tc.limit, tc.batch, start)
			now, copied := start, int64(0)
			for range tc.batches {
				copied += int64(tc.batch)
				now = now.Add(chargeRows(limiter, now, int64(tc.batch)))
			}
			got := float64(copied) / now.Sub(start).Seconds()
			if got > 1.1*tc.limit || got < 0.9*tc.limit {
				t.Errorf("copied %d rows in %s: %.2f rows/s, want within 10 %% of the limit %.2f", copied, now.Sub(start), got, tc.limit)
			}
		})
	}
}
