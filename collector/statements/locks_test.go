package statements_test

import (
	"testing"

	"github.com/sigid/pgcapacity/collector/statements"
	"github.com/sigid/pgcapacity/internal/testutil"
)

// TestRoundIgnoresPartitionLocks: the partition tree comes from the catalog
// without relation locks, so an ACCESS EXCLUSIVE lock held on a partition
// by another session does not fail the round. With a short lock_timeout, a
// round that locked partitions would fail with 55P03.
func TestRoundIgnoresPartitionLocks(t *testing.T) {
	ctx, url, owner := setup(t)
	pool := testutil.PoolWithLockTimeout(ctx, t, url, "200ms")
	testutil.HoldLocks(ctx, t, owner, "LOCK TABLE session_p1 IN ACCESS EXCLUSIVE MODE", "LOCK TABLE ONLY referral IN ACCESS EXCLUSIVE MODE")
	c := statements.New(statements.Options{})
	s, err := c.Sample(ctx, pool)
	if err != nil {
		t.Fatalf("round with a partition and a parent locked: %v", err)
	}
	if got := totals(t, s); len(got) != 5 {
		t.Fatalf("watching %v, want the 5 hash-partitioned tables", s.Tables)
	}
}
