package throwaway_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sigid/pgcapacity/internal/throwaway"
	"github.com/sigid/pgcapacity/internal/throwaway/pgtest"
)

// A standby replays the primary's writes, refuses its own, and accepts
// them once promoted; made with pg_basebackup where the build has it, and
// with the low-level backup that stands in where it does not.
func TestStandbyReplaysAndPromotes(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts throwaway.StandbyOptions
	}{
		{"pg_basebackup where present", throwaway.StandbyOptions{}},
		{"low-level base backup", throwaway.StandbyOptions{LowLevelBackup: true}},
	} {
		t.Run(tc.name, func(t *testing.T) { standbyReplaysAndPromotes(t, tc.opts) })
	}
}

func standbyReplaysAndPromotes(t *testing.T, opts throwaway.StandbyOptions) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	url := pgtest.NewDatabase(t, &cluster)
	standby := pgtest.NewStandbyWith(t, &cluster, opts)
	primary, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer primary.Close(ctx)
	if _, err := primary.Exec(ctx, "CREATE TABLE replayed (x int); INSERT INTO replayed SELECT generate_series(1, 10)"); err != nil {
		t.Fatal(err)
	}
	standby.CatchUp(t)
	if standby.Port() == cluster.Get(t).Port() {
		t.Fatalf("the standby shares the primary's port %d", standby.Port())
	}
	conn, err := pgx.Connect(ctx, standby.URL(t, url))
	if err != nil {
		t.Fatal(err)
	}
	var inRecovery bool
	var rows int
	if err := conn.QueryRow(ctx, "SELECT pg_is_in_recovery(), (SELECT count(*) FROM replayed)").Scan(&inRecovery, &rows); err != nil {
		t.Fatal(err)
	}
	if !inRecovery || rows != 10 {
		t.Fatalf("standby: in recovery %v, %d replayed rows (want true, 10)", inRecovery, rows)
	}
	if _, err := conn.Exec(ctx, "INSERT INTO replayed VALUES (11)"); err == nil {
		t.Fatal("the standby accepted a write")
	}
	conn.Close(ctx)

	standby.Promote(t)
	conn, err = pgx.Connect(ctx, standby.URL(t, url))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil || inRecovery {
		t.Fatalf("promoted standby: in recovery %v, %v", inRecovery, err)
	}
	if _, err := conn.Exec(ctx, "INSERT INTO replayed VALUES (11)"); err != nil {
		t.Fatalf("the promoted standby refused a write: %v", err)
	}
}
