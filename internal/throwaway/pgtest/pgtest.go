// Package pgtest gives tests one throwaway PostgreSQL per test binary and a
// fresh database per test. A missing PostgreSQL fails the run with the
// install command; it never skips.
package pgtest

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sigid/pgcapacity/internal/throwaway"
)

// Main starts the cluster, runs the tests, stops the cluster and exits.
// Call it from TestMain: func TestMain(m *testing.M) { pgtest.Main(m, &cluster) }.
func Main(m *testing.M, cluster **throwaway.Cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	c, err := throwaway.Start(ctx, throwaway.Options{})
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: the integration tests need a real PostgreSQL: %v\n", err)
		os.Exit(1)
	}
	*cluster = c
	// An interrupted run still stops the server and removes its files.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-signals
		c.Stop()
		os.Exit(130)
	}()
	code := m.Run()
	signal.Stop(signals)
	c.Stop()
	os.Exit(code)
}

var unsafeName = regexp.MustCompile(`[^a-z0-9_]+`)

// NewDatabase creates a fresh database for t, dropped when t ends, and
// returns its connection URL.
func NewDatabase(t testing.TB, cluster *throwaway.Cluster) string {
	t.Helper()
	if cluster == nil {
		t.Fatal("pgtest: no cluster: call pgtest.Main from TestMain")
	}
	name := unsafeName.ReplaceAllString(strings.ToLower(t.Name()), "_")
	if len(name) > 40 {
		name = name[:40]
	}
	name = fmt.Sprintf("t_%s_%d", name, time.Now().UnixNano()%1e9)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	url, err := cluster.CreateDatabase(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := cluster.DropDatabase(ctx, name); err != nil {
			t.Logf("dropping test database: %v", err)
		}
	})
	return url
}
