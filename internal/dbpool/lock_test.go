package dbpool_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sigid/pgcapacity/internal/dbpool"
	"github.com/sigid/pgcapacity/internal/throwaway/pgtest"
)

var cluster pgtest.Cluster

func TestMain(m *testing.M) { pgtest.Main(m, &cluster) }

// A sub-millisecond lock timeout once became lock_timeout=0 (no timeout), so
// a sampling query waited behind any lock. It must give up with 55P03.
func TestSubMillisecondLockTimeoutStillTimesOut(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	url := pgtest.NewDatabase(t, &cluster)

	holder, err := pgconn.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(context.Background())
	for _, sql := range []string{"CREATE TABLE locked (id int)", "BEGIN; LOCK TABLE locked IN ACCESS EXCLUSIVE MODE"} {
		if _, err := holder.Exec(ctx, sql).ReadAll(); err != nil {
			t.Fatal(err)
		}
	}

	cfg, err := dbpool.Config(url, dbpool.Options{StatementTimeout: 30 * time.Second, LockTimeout: 500 * time.Microsecond})
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	// The test's own deadline stands far below the statement timeout: only
	// lock_timeout can end this query with 55P03 before it.
	queryCtx, cancelQuery := context.WithTimeout(ctx, 10*time.Second)
	defer cancelQuery()
	var n int
	err = pool.QueryRow(queryCtx, "SELECT count(*) FROM locked").Scan(&n)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "55P03" {
		t.Fatalf("query behind an ACCESS EXCLUSIVE lock with a 500µs lock timeout: got %v, want SQLSTATE 55P03 (lock_not_available)", err)
	}
}
