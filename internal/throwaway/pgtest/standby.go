package pgtest

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sigid/pgcapacity/internal/throwaway"
)

// Standby is a streaming standby of a test binary's cluster, stopped and
// removed when the test that made it ends.
type Standby struct {
	*throwaway.Cluster
	primary *throwaway.Cluster
}

// NewStandby starts a streaming standby of cluster (pg_basebackup -R, its
// own port, hot_standby=on). Make it after the test's databases: its
// cleanup then runs before theirs, so no standby session holds up the
// replayed DROP DATABASE.
func NewStandby(t testing.TB, cluster *Cluster) *Standby {
	t.Helper()
	return NewStandbyWith(t, cluster, throwaway.StandbyOptions{})
}

// NewStandbyWith is NewStandby with options.
func NewStandbyWith(t testing.TB, cluster *Cluster, opts throwaway.StandbyOptions) *Standby {
	t.Helper()
	primary := cluster.Get(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := primary.StartStandby(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Logf("stopping the standby: %v", err)
		}
	})
	return &Standby{Cluster: s, primary: primary}
}

// URL is the URL of the primary's database dbURL on the standby.
func (s *Standby) URL(t testing.TB, dbURL string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatalf("parsing the database URL: %v", err)
	}
	return s.ConnString(strings.TrimPrefix(u.Path, "/"))
}

// CatchUp waits until the standby has replayed everything the primary has
// written so far.
func (s *Standby) CatchUp(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Cluster.CatchUp(ctx, s.primary); err != nil {
		t.Fatal(err)
	}
}

// Promote makes the standby a primary and waits until it accepts writes.
func (s *Standby) Promote(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := s.Cluster.Promote(ctx); err != nil {
		t.Fatal(err)
	}
}
