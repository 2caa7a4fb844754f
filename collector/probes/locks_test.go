package probes_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sigid/pgcapacity/collector/probes"
	"github.com/sigid/pgcapacity/internal/testutil"
	"github.com/sigid/pgcapacity/internal/throwaway/pgtest"
)

// TestTenantRefreshIgnoresPartitionLocks: the tenant refresh reads only
// catalogs, so an ACCESS EXCLUSIVE lock held on a partition by another
// session (a swap, a DDL, VACUUM FULL) does not fail it. With a short
// lock_timeout, a refresh that locked partitions would fail with 55P03.
func TestTenantRefreshIgnoresPartitionLocks(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	url := pgtest.NewDatabase(t, &cluster)
	owner, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(owner.Close)
	loadSigid(t, ctx, owner, map[string]int{"session": 4}, 20, 3)

	pool := testutil.PoolWithLockTimeout(ctx, t, url, "200ms")
	testutil.HoldLocks(ctx, t, owner, "LOCK TABLE session_p1 IN ACCESS EXCLUSIVE MODE")
	got, err := probes.SampledTenants(ctx, pool, "public", "session")
	if err != nil {
		t.Fatalf("tenant refresh with a partition locked: %v", err)
	}
	if len(got) != 4 || got["session_p1"] == 0 {
		t.Fatalf("tenants per partition = %v, want 4 partitions with tenants, session_p1 included", got)
	}
}
