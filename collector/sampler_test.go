package collector

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// fakeCollector answers each round with what its round function returns;
// the sampler's own behaviour is under test, not a database's.
type fakeCollector struct {
	name     string
	interval time.Duration
	rounds   atomic.Int64
	round    func(n int64) ([]prometheus.Metric, error)
}

func (f *fakeCollector) Name() string            { return f.name }
func (f *fakeCollector) Interval() time.Duration { return f.interval }
func (f *fakeCollector) Collect(context.Context, *pgxpool.Pool) ([]prometheus.Metric, error) {
	return f.round(f.rounds.Add(1))
}

func gauge(name string, v float64) prometheus.Metric {
	return prometheus.MustNewConstMetric(prometheus.NewDesc(name, "a test gauge", nil, nil), prometheus.GaugeValue, v)
}

// steady is a collector that always returns one gauge, family.
func steady(name, family string) *fakeCollector {
	return &fakeCollector{name: name, interval: time.Hour, round: func(int64) ([]prometheus.Metric, error) {
		return []prometheus.Metric{gauge(family, 1)}, nil
	}}
}

func newTestSampler(t *testing.T, cs ...Collector) *Sampler {
	t.Helper()
	s, err := NewSampler(nil, cs, SamplerOptions{RoundTimeout: time.Second, MinBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func exposition(t *testing.T, s *Sampler) string {
	t.Helper()
	text, err := s.Snapshot().Text()
	if err != nil {
		t.Fatal(err)
	}
	return string(text)
}

// requireLines fails for every line of want missing from the exposition
// and every sample line of absent (a family, or a family and value) in it.
func requireLines(t *testing.T, text string, want, absent []string) {
	t.Helper()
	lines := map[string]bool{}
	for _, l := range strings.Split(text, "\n") {
		lines[l] = true
	}
	for _, w := range want {
		if !lines[w] {
			t.Errorf("the snapshot lacks %q", w)
		}
	}
	for _, a := range absent {
		for l := range lines {
			if l == a || strings.HasPrefix(l, a+" ") || strings.HasPrefix(l, a+"{") {
				t.Errorf("the snapshot holds %q", l)
			}
		}
	}
}

func TestSamplerRejectsTwoCollectorsOfOneName(t *testing.T) {
	_, err := NewSampler(nil, []Collector{steady("a", "x_one"), steady("a", "x_two")}, SamplerOptions{})
	if err == nil || !strings.Contains(err.Error(), `"a"`) {
		t.Fatalf("want an error naming the collector, got %v", err)
	}
}

func TestSamplerServesEveryCollectorsLatestRound(t *testing.T) {
	s := newTestSampler(t, steady("a", "x_a"), steady("b", "x_b"))
	if s.Ready() {
		t.Fatal("ready before any round")
	}
	requireLines(t, exposition(t, s), []string{`pgcapacity_collector_success{collector="a"} 0`}, []string{"x_a", "x_b"})
	if err := s.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !s.Ready() {
		t.Fatal("not ready after every collector's first round")
	}
	requireLines(t, exposition(t, s), []string{
		"x_a 1", "x_b 1", "pgcapacity_up 1",
		`pgcapacity_collector_success{collector="a"} 1`,
		`pgcapacity_collector_success{collector="b"} 1`,
	}, nil)
}

// TestSamplerRoundOutcomes: what one failed round after a good one leaves
// in the snapshot, by kind of failure.
func TestSamplerRoundOutcomes(t *testing.T) {
	cases := []struct {
		name   string
		second func() ([]prometheus.Metric, error)
		wantUp string
		errHas string
	}{
		{"the database answered with an error", func() ([]prometheus.Metric, error) {
			return nil, &pgconn.PgError{Code: "42P01", Message: "relation does not exist"}
		}, "pgcapacity_up 1", "relation does not exist"},
		{"the database is unreachable", func() ([]prometheus.Metric, error) {
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
		}, "pgcapacity_up 0", "connection refused"},
		{"the collector panicked", func() ([]prometheus.Metric, error) {
			panic("index out of range")
		}, "pgcapacity_up 1", "collector panicked: index out of range"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := &fakeCollector{name: "a", interval: time.Hour, round: func(n int64) ([]prometheus.Metric, error) {
				if n == 1 {
					return []prometheus.Metric{gauge("x_a", 7)}, nil
				}
				return tc.second()
			}}
			s := newTestSampler(t, c)
			if err := s.RunOnce(context.Background()); err != nil {
				t.Fatal(err)
			}
			err := s.RunOnce(context.Background())
			if err == nil || !strings.Contains(err.Error(), "collector a: ") || !strings.Contains(err.Error(), tc.errHas) {
				t.Fatalf("want the error of collector a with %q, got %v", tc.errHas, err)
			}
			// The last good round stays until it is stale.
			requireLines(t, exposition(t, s), []string{"x_a 7", tc.wantUp, `pgcapacity_collector_success{collector="a"} 0`}, nil)
		})
	}
}

func TestSamplerDropsARoundOnceStale(t *testing.T) {
	c := &fakeCollector{name: "a", interval: time.Millisecond, round: func(n int64) ([]prometheus.Metric, error) {
		if n == 1 {
			return []prometheus.Metric{gauge("x_a", 7)}, nil
		}
		return nil, errors.New("failing")
	}}
	s, err := NewSampler(nil, []Collector{c}, SamplerOptions{RoundTimeout: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Longer than staleAfter(1 ms, 1 ms): the good round is stale whatever
	// the machine's speed.
	time.Sleep(10 * staleAfter(c.interval, time.Millisecond))
	if err := s.RunOnce(context.Background()); err == nil {
		t.Fatal("the failing round reported no error")
	}
	requireLines(t, exposition(t, s), []string{`pgcapacity_collector_success{collector="a"} 0`}, []string{"x_a"})
}

// TestSamplerLeavesOutASecondOwnerOfAFamily: two collectors emitting one
// family would make the exposition invalid; the first (by name) keeps it.
func TestSamplerLeavesOutASecondOwnerOfAFamily(t *testing.T) {
	b := &fakeCollector{name: "b", interval: time.Hour, round: func(int64) ([]prometheus.Metric, error) {
		return []prometheus.Metric{gauge("x_shared", 2), gauge("x_b", 1)}, nil
	}}
	s := newTestSampler(t, steady("a", "x_shared"), b)
	if err := s.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	requireLines(t, exposition(t, s), []string{"x_shared 1"}, []string{"x_shared 2", "x_b"})
}

// TestSamplerRunRoundsUntilCancelled: Run gives each collector its own
// loop, retries a failing one and returns once ctx ends.
func TestSamplerRunRoundsUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	failing := &fakeCollector{name: "failing", interval: time.Hour, round: func(n int64) ([]prometheus.Metric, error) {
		return nil, fmt.Errorf("round %d failed", n)
	}}
	good := steady("good", "x_good")
	done := make(chan struct{})
	s := newTestSampler(t, failing, good)
	go func() {
		s.Run(ctx)
		close(done)
	}()
	// The failing collector retries after MinBackoff (1 ms), not Interval (1 h).
	for failing.rounds.Load() < 3 || good.rounds.Load() < 1 {
		select {
		case <-done:
			t.Fatal("Run returned before ctx ended")
		case <-time.After(time.Millisecond):
		}
	}
	cancel()
	<-done
	if got := good.rounds.Load(); got != 1 {
		t.Errorf("the good collector ran %d rounds within its 1 h interval, want 1", got)
	}
	if !s.Ready() {
		t.Error("not ready after every collector's first round")
	}
}

func TestUnreachable(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, true},
		{"round timeout", fmt.Errorf("reading: %w", context.DeadlineExceeded), true},
		{"admin shutdown", &pgconn.PgError{Code: "57P01"}, true},
		{"connection failure", &pgconn.PgError{Code: "08006"}, true},
		{"wrong password", &pgconn.PgError{Code: "28P01"}, true},
		{"unknown database", &pgconn.PgError{Code: "3D000"}, true},
		{"query cancelled", &pgconn.PgError{Code: "57014"}, false},
		{"undefined table", &pgconn.PgError{Code: "42P01"}, false},
		{"closed connection", errors.New("conn closed"), true},
		{"a bug", errors.New("index out of range"), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := unreachable(tc.err); got != tc.want {
				t.Errorf("unreachable(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}
