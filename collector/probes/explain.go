package probes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sigid/pgcapacity/internal/dbpool"
)

// querier is what loading tenants and reading the catalog (with migrate's
// records) need; *pgxpool.Pool, *pgx.Conn and pgx.Tx have it.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Timing is one probe run.
type Timing struct {
	Planning  time.Duration // the plan's "Planning Time"
	Execution time.Duration // the plan's "Execution Time"
	Total     time.Duration // client-observed round trip of the EXPLAIN
	// Relations are the relations the executed plan scans: with pruning,
	// the partitions the tenant's rows live in.
	Relations []string
}

// errUnreachable marks a failure to get a connection at all: the round
// fails instead of counting a probe error.
var errUnreachable = errors.New("database unreachable")

// explainPrefix: TIMING OFF leaves the plan's total planning and execution
// times in place but skips the per-node clock reads that inflate the
// execution time of plans returning many rows.
const explainPrefix = "EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) "

// run times one probe for one tenant in a READ ONLY transaction bounded
// by statement and lock timeouts.
func run(ctx context.Context, pool *pgxpool.Pool, sql, tenant string, statementTimeout, lockTimeout time.Duration) (Timing, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return Timing{}, fmt.Errorf("%w: acquiring a connection: %w", errUnreachable, err)
	}
	defer conn.Release()
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		if pgconn.SafeToRetry(err) || conn.Conn().IsClosed() {
			return Timing{}, fmt.Errorf("%w: starting a read-only transaction: %w", errUnreachable, err)
		}
		return Timing{}, fmt.Errorf("starting a read-only transaction: %w", err)
	}
	// Read-only: ending it either way loses nothing.
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := dbpool.SetLocalTimeouts(ctx, tx, statementTimeout, lockTimeout); err != nil {
		return Timing{}, fmt.Errorf("setting the probe's timeouts: %w", err)
	}
	var out []byte
	start := time.Now()
	// QueryExecModeExec: one round trip with an unnamed statement, so the
	// total is the probe alone and $1 is planned as the value it is, the
	// way a custom plan of the service's own query is.
	err = tx.QueryRow(ctx, explainPrefix+sql, pgx.QueryExecModeExec, tenant).Scan(&out)
	total := time.Since(start)
	if err != nil {
		return Timing{}, fmt.Errorf("running the probe: %w", err)
	}
	t, err := parseExplain(out)
	if err != nil {
		return Timing{}, err
	}
	t.Total = total
	return t, nil
}

type planNode struct {
	RelationName string     `json:"Relation Name"`
	Plans        []planNode `json:"Plans"`
}

type explainResult struct {
	Plan          planNode `json:"Plan"`
	PlanningTime  *float64 `json:"Planning Time"`
	ExecutionTime *float64 `json:"Execution Time"`
}

// parseExplain reads the times (milliseconds) and the scanned relations
// from EXPLAIN (ANALYZE, FORMAT JSON) output.
func parseExplain(out []byte) (Timing, error) {
	var results []explainResult
	if err := json.Unmarshal(out, &results); err != nil {
		return Timing{}, fmt.Errorf("reading the EXPLAIN output: %w", err)
	}
	if len(results) != 1 {
		return Timing{}, fmt.Errorf("reading the EXPLAIN output: %d plans, want 1", len(results))
	}
	r := results[0]
	if r.PlanningTime == nil || r.ExecutionTime == nil {
		return Timing{}, errors.New("reading the EXPLAIN output: it has no Planning Time or Execution Time")
	}
	t := Timing{Planning: msDuration(*r.PlanningTime), Execution: msDuration(*r.ExecutionTime)}
	var walk func(n planNode)
	walk = func(n planNode) {
		if n.RelationName != "" {
			t.Relations = append(t.Relations, n.RelationName)
		}
		for _, c := range n.Plans {
			walk(c)
		}
	}
	walk(r.Plan)
	return t, nil
}

func msDuration(ms float64) time.Duration { return time.Duration(ms * float64(time.Millisecond)) }
