package throwaway_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sigid/pgcapacity/internal/throwaway"
	"github.com/sigid/pgcapacity/internal/throwaway/pgtest"
)

var cluster pgtest.Cluster

func TestMain(m *testing.M) { pgtest.Main(m, &cluster) }

func TestClusterServesFreshDatabases(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	url := pgtest.NewDatabase(t, &cluster)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var fsync, preload string
	var hasPSS bool
	if err := conn.QueryRow(ctx, "SELECT current_setting('fsync'), current_setting('shared_preload_libraries'), EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements')").Scan(&fsync, &preload, &hasPSS); err != nil {
		t.Fatal(err)
	}
	if fsync != "off" || preload != "pg_stat_statements" || !hasPSS {
		t.Fatalf("fsync=%s shared_preload_libraries=%s pg_stat_statements installed=%v", fsync, preload, hasPSS)
	}
	if cluster.Get(t).Major() < 13 {
		t.Fatalf("major version %d", cluster.Get(t).Major())
	}
}

func TestStopAndStartServerKeepsData(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	url := pgtest.NewDatabase(t, &cluster)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	if err := cluster.Get(t).StopServer(); err != nil {
		t.Fatal(err)
	}
	if _, err := pgx.Connect(ctx, url); err == nil {
		t.Fatal("connected to a stopped server")
	}
	if err := cluster.Get(t).StartServer(ctx); err != nil {
		t.Fatal(err)
	}
	conn, err = pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var x int
	if err := conn.QueryRow(ctx, "SELECT x FROM kept").Scan(&x); err != nil || x != 42 {
		t.Fatalf("x=%d err=%v", x, err)
	}
}

func TestFindBinDirRejectsDirectoryWithoutInitdb(t *testing.T) {
	t.Setenv(throwaway.BinDirVariable, t.TempDir())
	_, err := throwaway.FindBinDir()
	if err == nil {
		t.Fatal("expected an error")
	}
	if want := throwaway.BinDirVariable; !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not name %s", err, want)
	}
}
