package collector

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// reconnectGate is the one reconnect every collector shares: while the
// database is unreachable, a single ping per backoff step tries it and the
// collectors' rounds fail with that ping's error instead of each opening
// its own connections (six collectors used to open ~18 per step).
type reconnectGate struct {
	pool       *pgxpool.Pool
	minBackoff time.Duration
	maxBackoff time.Duration

	mu      sync.Mutex // held through the ping, so callers wait for its result
	up      bool
	lastErr error
	retryAt time.Time
	backoff time.Duration
}

func newReconnectGate(pool *pgxpool.Pool, minBackoff, maxBackoff time.Duration) *reconnectGate {
	// Not known up at start: the first round's collectors share one attempt.
	return &reconnectGate{pool: pool, minBackoff: minBackoff, maxBackoff: max(minBackoff, maxBackoff), backoff: minBackoff}
}

// check returns nil when a round may go to the database, or the error of
// the latest shared attempt while the database is down.
func (g *reconnectGate) check(ctx context.Context) error {
	if g.pool == nil {
		return nil // a sampler over collectors that need no database
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.up {
		return nil
	}
	if time.Now().Before(g.retryAt) {
		return g.lastErr
	}
	if err := g.pool.Ping(ctx); err != nil {
		if ctx.Err() != nil {
			return err // shutting down or the round's own deadline: not a step
		}
		g.downLocked(fmt.Errorf("connecting to the database: %w", err))
		return g.lastErr
	}
	g.up, g.lastErr, g.backoff = true, nil, g.minBackoff
	return nil
}

// down records that a round found the database unreachable.
func (g *reconnectGate) down(err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.up {
		g.downLocked(err)
	}
}

func (g *reconnectGate) downLocked(err error) {
	g.up, g.lastErr = false, err
	g.retryAt = time.Now().Add(g.backoff)
	g.backoff = min(2*g.backoff, g.maxBackoff)
}
