package collector_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sigid/pgcapacity/collector"
	"github.com/sigid/pgcapacity/internal/dbpool"
)

// selectOne is a collector whose round is one query.
type selectOne struct{ name string }

func (c selectOne) Name() string            { return c.name }
func (c selectOne) Interval() time.Duration { return time.Hour }
func (c selectOne) Collect(ctx context.Context, pool *pgxpool.Pool) ([]prometheus.Metric, error) {
	_, err := pool.Exec(ctx, "SELECT 1")
	return nil, err
}

// With the database down, the collectors share one reconnect: the first
// rounds of six collectors make as many TCP connections as one collector's
// round does (one attempt; pgx may open more than one connection for it).
func TestCollectorsShareOneReconnectAttempt(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var attempts atomic.Int64
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			attempts.Add(1)
			conn.Close() // a database that drops every connection
		}
	}()
	firstRounds := func(collectors int) int64 {
		cfg, err := dbpool.Config(fmt.Sprintf("postgres://pgcapacity@%s/none?sslmode=disable&connect_timeout=5", ln.Addr()),
			dbpool.Options{StatementTimeout: 5 * time.Second, LockTimeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer pool.Close()
		var cs []collector.Collector
		for i := range collectors {
			cs = append(cs, selectOne{fmt.Sprintf("c%d", i)})
		}
		// A backoff longer than the test: every round after the first
		// attempt falls in its first step.
		s, err := collector.NewSampler(pool, cs, collector.SamplerOptions{RoundTimeout: 10 * time.Second, MinBackoff: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { s.Run(ctx); close(done) }()
		defer func() { cancel(); <-done }()
		for !s.Ready() {
			time.Sleep(10 * time.Millisecond)
		}
		text, err := s.Snapshot().Text()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains("\n"+string(text), "\npgcapacity_up 0\n") {
			t.Errorf("pgcapacity_up is not 0 with the database down:\n%s", text)
		}
		return attempts.Swap(0)
	}
	one := firstRounds(1)
	if one == 0 {
		t.Fatal("no connection reached the listener")
	}
	if six := firstRounds(6); six != one {
		t.Errorf("the first rounds of 6 collectors opened %d TCP connections, one collector's %d: want the same (one shared attempt)", six, one)
	}
}
