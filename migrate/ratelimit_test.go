package migrate

import (
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// TestChargeRowsKeepsTheRate reproduces issue 14 item 10: batches larger
// than the limiter's burst were charged one burst each, so the copy ran
// faster than --max-rows-per-second. The clock is simulated: each batch
// starts when the previous wait ends, and rows/elapsed must stay within
// 10 % of the limit.
func TestChargeRowsKeepsTheRate(t *testing.T) {
	cases := []struct {
		name         string
		limit        float64
		burst, batch int64
	}{
		{name: "batch ten times the burst", limit: 1000, burst: 1000, batch: 10000},
		{name: "batch equal to the burst", limit: 500, burst: 500, batch: 500},
		{name: "batch smaller than the burst", limit: 2000, burst: 2000, batch: 300},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Unix(0, 0)
			limiter := rate.NewLimiter(rate.Limit(tc.limit), int(tc.burst))
			limiter.SetBurstAt(start, int(tc.burst))
			now, copied := start, int64(0)
			for range 200 {
				copied += tc.batch
				now = now.Add(chargeRows(limiter, now, tc.batch))
			}
			got := float64(copied) / now.Sub(start).Seconds()
			if got > 1.1*tc.limit {
				t.Errorf("copied %d rows in %s: %.0f rows/s, limit %.0f", copied, now.Sub(start), got, tc.limit)
			}
		})
	}
}
