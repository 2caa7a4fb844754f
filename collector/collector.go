// Package collector samples PostgreSQL in the background and publishes the
// latest samples as Prometheus metrics. Scrapes read an immutable snapshot
// and never touch the database.
package collector

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// Collector samples one aspect of PostgreSQL on its own interval.
//
// Collect runs one round: a fixed number of queries whatever the number of
// partitions, each bounded by ctx. It returns every metric of the round;
// the sampler publishes them as one unit, replacing the previous round's.
// A collector owns its metric families: no two collectors emit the same name.
type Collector interface {
	Name() string
	Interval() time.Duration
	Collect(ctx context.Context, pool *pgxpool.Pool) ([]prometheus.Metric, error)
}
