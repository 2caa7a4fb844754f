package migrate

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// countAs counts a relation's rows as role, reading it directly.
func countAs(ctx context.Context, pool *pgxpool.Pool, role, rel string) (int64, error) {
	var n int64
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL ROLE "+qi(role)); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM "+rel).Scan(&n); err != nil {
			return err
		}
		return errDone
	})
	if errors.Is(err, errDone) {
		err = nil
	}
	return n, err
}

// Privileges on partitions survive the swap and the rollback: a role that
// may read one partition only reads it (and no other) by name afterwards,
// a role granted every partition reads every new one, and a grant made on
// a new partition after the swap is on the original's partition of that
// name after the rollback.
func TestPartitionGrantsCarried(t *testing.T) {
	ctx := context.Background()
	pool, _ := sigidDB(t, "referral", 16)
	for _, s := range []string{
		`DO $$ BEGIN CREATE ROLE one_partition_reader; EXCEPTION WHEN duplicate_object THEN NULL; END $$`,
		`DO $$ BEGIN CREATE ROLE every_partition_reader; EXCEPTION WHEN duplicate_object THEN NULL; END $$`,
		`DO $$ BEGIN CREATE ROLE late_partition_reader; EXCEPTION WHEN duplicate_object THEN NULL; END $$`,
		`GRANT USAGE ON SCHEMA public TO one_partition_reader, every_partition_reader, late_partition_reader`,
		`GRANT SELECT ON public.referral_p3 TO one_partition_reader`,
	} {
		mustExec(t, pool, s)
	}
	for i := 0; i < 16; i++ {
		mustExec(t, pool, fmt.Sprintf(`GRANT SELECT ON public.referral_p%d TO every_partition_reader`, i))
	}
	// check reads each partition as role: allowed ones must match the owner's count.
	check := func(when, role string, parts int, allowed func(i int) bool) {
		t.Helper()
		for i := 0; i < parts; i++ {
			rel := fmt.Sprintf("public.referral_p%d", i)
			got, err := countAs(ctx, pool, role, rel)
			switch {
			case allowed(i) && err != nil:
				t.Errorf("%s: %s reading %s: %v, want its rows", when, role, rel, err)
			case allowed(i) && got != scalar[int64](t, pool, "SELECT count(*) FROM "+rel):
				t.Errorf("%s: %s counts %d rows in %s, want %d", when, role, got, rel, scalar[int64](t, pool, "SELECT count(*) FROM "+rel))
			case !allowed(i) && sqlState(err) != "42501":
				t.Errorf("%s: %s reading %s: %v, want permission denied", when, role, rel, err)
			}
		}
	}
	only := func(k int) func(int) bool { return func(i int) bool { return i == k } }
	all := func(int) bool { return true }
	check("before", "one_partition_reader", 16, only(3))

	m := New(pool, testLogger(t))
	id := startAndValidate(t, m, "public", "referral", 32)
	if _, err := m.Swap(ctx, id, SwapOptions{NowReason: "test"}); err != nil {
		t.Fatalf("swap: %v", err)
	}
	check("after the swap", "one_partition_reader", 32, only(3))
	check("after the swap", "every_partition_reader", 32, all)
	mustExec(t, pool, `GRANT SELECT ON public.referral_p5 TO late_partition_reader`)

	if _, err := m.Rollback(ctx, id, SwapOptions{}); err != nil {
		t.Fatalf("rollback: %v", err)
	}
	if n := partitionCount(t, pool, "public.referral"); n != 16 {
		t.Fatalf("after the rollback public.referral has %d partitions, want 16", n)
	}
	check("after the rollback", "one_partition_reader", 16, only(3))
	check("after the rollback", "every_partition_reader", 16, all)
	check("after the rollback", "late_partition_reader", 16, only(5))
}
