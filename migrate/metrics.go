package migrate

import (
	"context"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sigid/pgcapacity/migrate/state"
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
	descLockHold      = newDesc("last_lock_hold_seconds", "Write-blocking lock hold of the last swap or rollback, all its holds summed (the swap transaction and any foreign-key attach after it), each from its first lock request.", "id")
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

// Collect implements collector.Collector.
func (c *Collector) Collect(ctx context.Context, pool *pgxpool.Pool) ([]prometheus.Metric, error) {
	ms, err := state.Summaries(ctx, pool)
	if err != nil {
		return nil, err
	}
	var out []prometheus.Metric
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		out = append(out, prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...))
	}
	for _, m := range ms {
		ids := strconv.FormatInt(m.ID, 10)
		gauge(descInfo, 1, ids, m.Schema, m.Table, strconv.Itoa(m.From), strconv.Itoa(m.To), m.Phase)
		gauge(descCopied, float64(m.Copied), ids)
		gauge(descEstimated, float64(m.Estimated), ids)
		gauge(descCopyRatio, min(max(m.CopyRatio, 0), 1), ids)
		gauge(descBacklog, float64(m.Backlog), ids)
		gauge(descStarted, m.Started, ids)
		if m.Swapped != nil {
			gauge(descSwapped, *m.Swapped, ids)
		}
		if m.Deadline != nil {
			gauge(descRetainedSince, *m.Swapped, ids)
			gauge(descDeadline, *m.Deadline, ids)
		}
		if m.LockHold != nil {
			gauge(descLockHold, *m.LockHold, ids)
		}
		f := 0.0
		if m.Failing {
			f = 1
		}
		gauge(descFailing, f, ids)
	}
	return out, nil
}
