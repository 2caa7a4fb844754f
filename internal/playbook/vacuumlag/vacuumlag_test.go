package vacuumlag

import (
	"testing"
	"time"
)

func TestSince(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	hourAgo := now.Add(-time.Hour)
	tests := []struct {
		name string
		o    Observation
		prev time.Time
		lag  time.Duration
	}{
		{"below the trigger", Observation{DeadRows: 10, Trigger: 50, LastVacuum: hourAgo, Now: now}, hourAgo, 0},
		{"never vacuumed, not observed", Observation{DeadRows: 100, Trigger: 50, Now: now}, time.Time{}, 0},
		{"never vacuumed, counting since server start", Observation{DeadRows: 100, Trigger: 50, CountingSince: hourAgo, Now: now}, time.Time{}, 30 * time.Minute},
		{"estimate from last vacuum", Observation{DeadRows: 100, Trigger: 25, LastVacuum: hourAgo, Now: now}, time.Time{}, 45 * time.Minute},
		{"observed crossing takes over", Observation{DeadRows: 100, Trigger: 25, LastVacuum: hourAgo, Now: now}, now.Add(-50 * time.Minute), 50 * time.Minute},
		{"vacuum after the crossing re-estimates", Observation{DeadRows: 100, Trigger: 50, LastVacuum: now.Add(-10 * time.Minute), Now: now}, hourAgo, 5 * time.Minute},
		{"last vacuum in the future", Observation{DeadRows: 100, Trigger: 50, LastVacuum: now.Add(time.Minute), Now: now}, time.Time{}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, lag := Since(tt.o, tt.prev); lag != tt.lag {
				t.Fatalf("lag %s, want %s", lag, tt.lag)
			}
		})
	}
}
