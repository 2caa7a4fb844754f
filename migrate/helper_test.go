package migrate

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/sigid/pgcapacity/internal/throwaway/pgtest"
)

const helperEnv = "PGCAPACITY_MIGRATE_TEST_HELPER"

// runHelper is the child process of the crash test: it starts or resumes a
// migration and is killed with SIGKILL somewhere in the copy.
func runHelper() int {
	ctx := context.Background()
	pool, err := NewPool(ctx, os.Getenv("PGCAPACITY_DATABASE_URL"), 4)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer pool.Close()
	m := New(pool, nil)
	rate, _ := strconv.ParseFloat(os.Getenv("HELPER_RATE"), 64)
	copts := CopyOptions{BatchSize: 50, Jobs: 2, MaxRowsPerSecond: rate}
	switch os.Getenv(helperEnv) {
	case "start":
		_, err = m.Start(ctx, StartRequest{
			PlanRequest: PlanRequest{Schema: "public", Table: os.Getenv("HELPER_TABLE"), Partitions: 12, Thresholds: thresholds()},
			Reason:      "crash test", Requester: "alice", Approver: "bob", Copy: copts,
		})
	default:
		err = fmt.Errorf("unknown helper %q", os.Getenv(helperEnv))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func newDatabase(t *testing.T) string { return pgtest.NewDatabase(t, &cluster) }
