package sigid

import (
	"math"
	"testing"
)

func TestAllocate(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		total, tenants, huge  int
		share                 float64
		floor                 int
		wantHugeShareAtLeast  float64
		wantFloorForEveryone  bool
		wantFirstTailAboveEnd bool
	}{
		{"default scale 1 sessions", 2000, 200, 3, 0.4, 0, 0.39, false, true},
		{"memberships with an owner each", 1000, 200, 3, 0.4, 1, 0.3, true, true},
		{"fewer rows than tenants drops the floor", 50, 200, 3, 0.4, 1, 0.3, false, false},
		{"no huge tenants", 1000, 50, 0, 0.4, 0, 0, false, true},
		{"only huge tenants", 90, 3, 3, 0.4, 0, 1, false, false},
		{"one tenant", 7, 1, 1, 0.4, 1, 1, true, false},
		{"nothing to allocate", 0, 10, 3, 0.4, 1, 0, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := tenantWeights(tc.tenants, tc.huge, tc.share)
			var sum float64
			for _, x := range w {
				sum += x
			}
			if math.Abs(sum-1) > 1e-9 {
				t.Errorf("weights sum to %v, want 1", sum)
			}
			got := allocate(tc.total, w, tc.floor)
			var total, huge int
			for i, n := range got {
				total += int(n)
				if i < tc.huge {
					huge += int(n)
				}
				if tc.wantFloorForEveryone && int(n) < tc.floor {
					t.Errorf("tenant %d got %d rows, below the floor %d", i, n, tc.floor)
				}
			}
			if total != tc.total {
				t.Errorf("allocated %d rows, want %d", total, tc.total)
			}
			if tc.total > 0 && float64(huge)/float64(tc.total) < tc.wantHugeShareAtLeast {
				t.Errorf("huge tenants hold %d of %d rows, want at least %.0f%%", huge, tc.total, 100*tc.wantHugeShareAtLeast)
			}
			if tc.wantFirstTailAboveEnd && got[tc.huge] <= got[len(got)-1] {
				t.Errorf("tail is flat: first %d, last %d", got[tc.huge], got[len(got)-1])
			}
		})
	}
}
