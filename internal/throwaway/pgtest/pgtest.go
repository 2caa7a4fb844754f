// Package pgtest gives tests one throwaway PostgreSQL per test binary,
// started by the first test that needs it, and a fresh database per test. A
// missing PostgreSQL fails the tests that need it with the install command;
// it never skips, and tests that need no database run without one.
package pgtest

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sigid/pgcapacity/internal/throwaway"
)

// Cluster is a test binary's throwaway PostgreSQL. The zero value is ready:
// the server starts on the first Get, so `go test -run` of pure tests does
// not pay for (or need) PostgreSQL.
type Cluster struct {
	once    sync.Once
	c       *throwaway.Cluster
	err     error
	signals chan os.Signal
}

// Get returns the running cluster, starting it on the first call; t fails
// when PostgreSQL cannot start.
func (l *Cluster) Get(t testing.TB) *throwaway.Cluster {
	t.Helper()
	l.once.Do(l.start)
	if l.err != nil {
		t.Fatalf("the integration tests need a real PostgreSQL: %v", l.err)
	}
	return l.c
}

func (l *Cluster) start() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := throwaway.Start(ctx, throwaway.Options{})
	if err != nil {
		l.err = err
		return
	}
	l.c = c
	// An interrupted run still stops the server and removes its files.
	l.signals = make(chan os.Signal, 1)
	signal.Notify(l.signals, os.Interrupt, syscall.SIGTERM)
	go func() {
		if _, ok := <-l.signals; ok {
			c.Stop()
			os.Exit(130)
		}
	}()
}

// stop stops the cluster if a test started it.
func (l *Cluster) stop() {
	// Marks the cluster used, so a Get after the tests cannot start one.
	l.once.Do(func() { l.err = fmt.Errorf("pgtest: the tests have ended") })
	if l.c == nil {
		return
	}
	signal.Stop(l.signals)
	close(l.signals)
	l.c.Stop()
}

// Main runs the tests, stops the cluster if one was started, and exits.
// Call it from TestMain: func TestMain(m *testing.M) { pgtest.Main(m, &cluster) }
// with var cluster pgtest.Cluster.
func Main(m *testing.M, cluster *Cluster) {
	code := m.Run()
	cluster.stop()
	os.Exit(code)
}

var unsafeName = regexp.MustCompile(`[^a-z0-9_]+`)

// NewDatabase creates a fresh database for t on the cluster (starting it if
// need be), dropped when t ends, and returns its connection URL.
func NewDatabase(t testing.TB, cluster *Cluster) string {
	t.Helper()
	c := cluster.Get(t)
	name := unsafeName.ReplaceAllString(strings.ToLower(t.Name()), "_")
	if len(name) > 40 {
		name = name[:40]
	}
	name = fmt.Sprintf("t_%s_%d", name, time.Now().UnixNano()%1e9)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	url, err := c.CreateDatabase(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.DropDatabase(ctx, name); err != nil {
			t.Logf("dropping test database: %v", err)
		}
	})
	return url
}
