package pgtest

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestClusterStartsOnFirstUse: a zero Cluster runs no server until a test
// asks for a database, then one server serves every later request, and
// stop leaves none behind.
func TestClusterStartsOnFirstUse(t *testing.T) {
	var c Cluster
	if c.c != nil {
		t.Fatal("a zero Cluster already has a server")
	}
	// Registered first, so it runs after the database is dropped.
	t.Cleanup(c.stop)
	url := NewDatabase(t, &c)
	first := c.c
	if first == nil {
		t.Fatal("NewDatabase returned a URL without starting the cluster")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connecting to the new database: %v", err)
	}
	var one int
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("SELECT 1: %d, %v", one, err)
	}
	conn.Close(ctx)
	if got := c.Get(t); got != first {
		t.Fatal("a second Get started another cluster")
	}
}

// TestStoppedUnusedClusterStartsNothing: stop on a cluster no test used
// starts nothing, and a Get after it fails rather than start one.
func TestStoppedUnusedClusterStartsNothing(t *testing.T) {
	var c Cluster
	c.stop()
	if c.c != nil {
		t.Fatal("stop started a cluster")
	}
	c.once.Do(func() { t.Fatal("the cluster could still start after stop") })
	if c.err == nil {
		t.Fatal("no error for a Get after stop")
	}
}
