package migrate

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

func newDesc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("pgcapacity_migration_"+name, help, labels, nil)
}

var (
	descInfo          = newDesc("info", "An active migration (not dropped or aborted); value 1.", "id", "schema", "table", "from_partitions", "to_partitions", "phase")
	descCopied        = newDesc("copied_rows", "Rows the copy has read from the original so far.", "id")
	descEstimated     = newDesc("estimated_rows", "Rows the copy expects to read: the planner's estimate at start, raised to the rows copied, exact once the copy is done.", "id")
	descCopyRatio     = newDesc("copy_progress_ratio", "Share of the original's blocks copied, 0 to 1 (never above 1).", "id")
	descBacklog       = newDesc("backlog_rows", "Captured changes not yet replayed (statistics estimate of the change log's rows).", "id")
	descStarted       = newDesc("started_timestamp_seconds", "When the migration started.", "id")
	descSwapped       = newDesc("swapped_timestamp_seconds", "When the new table was last swapped in; absent before the first swap.", "id")
	descRetainedSince = newDesc("old_table_retained_since_timestamp_seconds", "While swapped: since when the original has been kept under its retained name.", "id")
	descDeadline      = newDesc("rollback_deadline_timestamp_seconds", "While swapped: the end of the rollback period, after which drop-old should remove the original.", "id")
	descLockHold      = newDesc("last_lock_hold_seconds", "Exclusive lock hold of the last swap or rollback.", "id")
	descFailing       = newDesc("failing", "1 when the last step of the migration failed (see pgcapacity migrate status), else 0.", "id")
)

// Collector publishes the state of every active migration. It needs one
// query per round whatever the number of migrations, and publishes nothing
// when no migration was ever started (no pgcapacity schema).
type Collector struct {
	interval time.Duration
}

// NewCollector returns the "migrations" collector.
func NewCollector(interval time.Duration) *Collector { return &Collector{interval: interval} }

// Name implements collector.Collector.
func (c *Collector) Name() string { return "migrations" }

// Interval implements collector.Collector.
func (c *Collector) Interval() time.Duration { return c.interval }

const collectSQL = `
SELECT m.id, m.schema_name, m.table_name, m.from_partitions, m.to_partitions, m.phase,
       coalesce(p.copied, 0)::bigint, greatest(m.estimated_rows, coalesce(p.copied, 0))::bigint,
       CASE WHEN m.phase = 'copying' THEN coalesce(p.done::float8 / nullif(p.total, 0), 0) ELSE 1 END,
       coalesce(s.n_live_tup, 0)::bigint,
       extract(epoch FROM m.created_at)::float8, extract(epoch FROM m.swapped_at)::float8,
       CASE WHEN m.phase = 'swapped' THEN extract(epoch FROM m.rollback_deadline)::float8 END,
       m.last_lock_hold_seconds, m.last_error IS NOT NULL
FROM pgcapacity.migration m
LEFT JOIN LATERAL (SELECT sum(copied_rows) AS copied, sum(least(next_block, total_blocks)) AS done, sum(total_blocks) AS total
                   FROM pgcapacity.copy_progress WHERE migration_id = m.id) p ON true
LEFT JOIN pg_catalog.pg_stat_user_tables s ON s.schemaname = 'pgcapacity' AND s.relname = 'm' || m.id || '_log'
WHERE to_regclass('pgcapacity.migration') IS NOT NULL AND m.phase NOT IN ('dropped', 'aborted')
ORDER BY m.id`

// Collect implements collector.Collector.
func (c *Collector) Collect(ctx context.Context, pool *pgxpool.Pool) ([]prometheus.Metric, error) {
	var exists bool
	if err := pool.QueryRow(ctx, `SELECT to_regclass('pgcapacity.migration') IS NOT NULL AND to_regclass('pgcapacity.copy_progress') IS NOT NULL`).Scan(&exists); err != nil {
		return nil, fmt.Errorf("looking for the pgcapacity schema: %w", err)
	}
	if !exists {
		return nil, nil
	}
	rows, err := pool.Query(ctx, collectSQL)
	if err != nil {
		return nil, fmt.Errorf("reading migration state: %w", err)
	}
	defer rows.Close()
	var out []prometheus.Metric
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		out = append(out, prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...))
	}
	for rows.Next() {
		var (
			id                   int64
			schema, table, phase string
			from, to             int
			copied, estimated    int64
			ratio                float64
			backlog              int64
			started              float64
			swapped, deadline    *float64
			lockHold             *float64
			failing              bool
		)
		if err := rows.Scan(&id, &schema, &table, &from, &to, &phase, &copied, &estimated, &ratio, &backlog, &started, &swapped, &deadline, &lockHold, &failing); err != nil {
			return nil, fmt.Errorf("reading migration state: %w", err)
		}
		ids := strconv.FormatInt(id, 10)
		gauge(descInfo, 1, ids, schema, table, strconv.Itoa(from), strconv.Itoa(to), phase)
		gauge(descCopied, float64(copied), ids)
		gauge(descEstimated, float64(estimated), ids)
		gauge(descCopyRatio, min(max(ratio, 0), 1), ids)
		gauge(descBacklog, float64(backlog), ids)
		gauge(descStarted, started, ids)
		if swapped != nil {
			gauge(descSwapped, *swapped, ids)
		}
		if deadline != nil {
			gauge(descRetainedSince, *swapped, ids)
			gauge(descDeadline, *deadline, ids)
		}
		if lockHold != nil {
			gauge(descLockHold, *lockHold, ids)
		}
		f := 0.0
		if failing {
			f = 1
		}
		gauge(descFailing, f, ids)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading migration state: %w", err)
	}
	return out, nil
}
