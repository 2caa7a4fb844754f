package migrate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The tests of this file reproduce the defects D1-D7 of issue 13, each on
// a small table of its own.

func emptyDB(t *testing.T) (*pgxpool.Pool, string) {
	t.Helper()
	url := newDatabase(t)
	pool, err := NewPool(context.Background(), url, 8)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool, url
}

// hashTable creates schema.name partitioned by HASH (tenant_id) into parts
// partitions, with the given column definitions.
func hashTable(t *testing.T, pool *pgxpool.Pool, name, columns string, parts int) {
	t.Helper()
	mustExec(t, pool, fmt.Sprintf(`CREATE TABLE public.%s (%s) PARTITION BY HASH (tenant_id)`, name, columns))
	for i := 0; i < parts; i++ {
		mustExec(t, pool, fmt.Sprintf(`CREATE TABLE public.%s_p%d PARTITION OF public.%s FOR VALUES WITH (MODULUS %d, REMAINDER %d)`, name, i, name, parts, i))
	}
}

func startOnly(t *testing.T, m *Migrator, table string, to int, copts CopyOptions) int64 {
	t.Helper()
	id, err := m.Start(context.Background(), StartRequest{
		PlanRequest: PlanRequest{Schema: "public", Table: table, Partitions: to, Thresholds: thresholds(), ForceDecreaseReason: "test"},
		Reason:      "test", Requester: "alice", Approver: "bob", Copy: copts,
	})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	return id
}

// shadowOf names the table that does not carry the original name now.
func shadowOf(t *testing.T, pool *pgxpool.Pool, id int64) string {
	t.Helper()
	name, err := relName(context.Background(), pool, loadMig(t, pool, id).ShadowOID())
	if err != nil {
		t.Fatal(err)
	}
	return name
}

// TestReplayMovesUniqueValues reproduces D1: a unique value moving between
// rows inside one transaction (A x→tmp, B y→x, A tmp→y), with the change
// log cut by a replay batch between A's first and last change, or all of
// it inside one batch. The replay used to fail with 23505 on every rerun.
func TestReplayMovesUniqueValues(t *testing.T) {
	for _, tc := range []struct {
		name  string
		other int // changes logged before the swap of values
		batch int
	}{
		{name: "across a batch boundary", other: 99, batch: 100},
		{name: "within one batch", other: 10, batch: 1000},
		{name: "boundary after the first value move", other: 98, batch: 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			pool, _ := emptyDB(t)
			hashTable(t, pool, "identity", `tenant_id uuid NOT NULL, id bigint NOT NULL, email text NOT NULL, note text,
				PRIMARY KEY (tenant_id, id), UNIQUE (tenant_id, email)`, 4)
			mustExec(t, pool, `INSERT INTO public.identity SELECT '00000000-0000-0000-0000-000000000001', g, 'user' || g || '@example.org' FROM generate_series(1, 500) g`)
			m := New(pool, testLogger(t))
			id := startOnly(t, m, "identity", 8, CopyOptions{BatchSize: tc.batch})
			mustExec(t, pool, `UPDATE public.identity SET note = 'other' WHERE id BETWEEN 101 AND 100 + $1`, tc.other)
			swapEmails(t, pool, 1, 2)
			for attempt := 0; attempt < 2; attempt++ {
				if err := m.Resume(ctx, id, CopyOptions{BatchSize: tc.batch}, 0); err != nil {
					t.Fatalf("resume %d: %v", attempt, err)
				}
			}
			identical(t, pool, "public.identity", shadowOf(t, pool, id))
			if v, err := m.Validate(ctx, id, CopyOptions{}); err != nil || !v.OK {
				t.Fatalf("validate: %+v %v", v, err)
			}
			if _, err := m.Swap(ctx, id, SwapOptions{NowReason: "test", BatchSize: tc.batch}); err != nil {
				t.Fatalf("swap: %v", err)
			}
			// The same moves after the swap go through the reverse capture.
			mustExec(t, pool, `UPDATE public.identity SET note = 'again' WHERE id BETWEEN 101 AND 100 + $1`, tc.other)
			swapEmails(t, pool, 1, 2)
			if err := m.Resume(ctx, id, CopyOptions{BatchSize: tc.batch}, 0); err != nil {
				t.Fatalf("resume after the swap: %v", err)
			}
			identical(t, pool, "public.identity", shadowOf(t, pool, id))
		})
	}
}

// swapEmails exchanges the emails of rows a and b in one transaction,
// through a temporary value, as an identity service does.
func swapEmails(t *testing.T, pool *pgxpool.Pool, a, b int) {
	t.Helper()
	ctx := context.Background()
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var ea, eb string
		if err := tx.QueryRow(ctx, `SELECT (SELECT email FROM public.identity WHERE id = $1), (SELECT email FROM public.identity WHERE id = $2)`, a, b).Scan(&ea, &eb); err != nil {
			return err
		}
		for _, st := range []struct {
			id    int
			email string
		}{{a, "tmp"}, {b, ea}, {a, eb}} {
			if _, err := tx.Exec(ctx, `UPDATE public.identity SET email = $2 WHERE id = $1`, st.id, st.email); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("exchanging emails: %v", err)
	}
}

// TestReplayIdentityAlways reproduces D2: an identity GENERATED ALWAYS
// column outside the replay key made the first replay fail with 428C9.
func TestReplayIdentityAlways(t *testing.T) {
	ctx := context.Background()
	pool, _ := emptyDB(t)
	hashTable(t, pool, "account", `tenant_id uuid NOT NULL, account_id uuid NOT NULL DEFAULT gen_random_uuid(),
		n bigint GENERATED ALWAYS AS IDENTITY, note text, PRIMARY KEY (tenant_id, account_id)`, 4)
	mustExec(t, pool, `INSERT INTO public.account (tenant_id, note) SELECT gen_random_uuid(), 'v0' FROM generate_series(1, 300)`)
	m := New(pool, testLogger(t))
	id := startOnly(t, m, "account", 8, CopyOptions{BatchSize: 100})
	mustExec(t, pool, `UPDATE public.account SET note = 'v1' WHERE n % 3 = 0`)
	mustExec(t, pool, `DELETE FROM public.account WHERE n % 7 = 0`)
	mustExec(t, pool, `INSERT INTO public.account (tenant_id, note) SELECT gen_random_uuid(), 'new' FROM generate_series(1, 20)`)
	// The same key deleted and inserted again gets a new identity value.
	mustExec(t, pool, `WITH d AS (DELETE FROM public.account WHERE n = 1 RETURNING tenant_id, account_id)
		INSERT INTO public.account (tenant_id, account_id, note) SELECT tenant_id, account_id, 'again' FROM d`)
	if err := m.Resume(ctx, id, CopyOptions{BatchSize: 100}, 0); err != nil {
		t.Fatalf("resume: %v", err)
	}
	identical(t, pool, "public.account", shadowOf(t, pool, id))
	if v, err := m.Validate(ctx, id, CopyOptions{}); err != nil || !v.OK {
		t.Fatalf("validate: %+v %v", v, err)
	}
	if _, err := m.Swap(ctx, id, SwapOptions{NowReason: "test"}); err != nil {
		t.Fatalf("swap: %v", err)
	}
	mustExec(t, pool, `UPDATE public.account SET note = 'v2' WHERE n % 5 = 0`)
	if _, err := m.Rollback(ctx, id, SwapOptions{}); err != nil {
		t.Fatalf("rollback: %v", err)
	}
	identical(t, pool, "public.account", shadowOf(t, pool, id))
}

// TestCopyFailedBatchReturns reproduces D3: a copy batch whose backend is
// killed used to stop its worker while the feeder waited for ever to hand
// out the next partition; the process kept the per-table lock.
func TestCopyFailedBatchReturns(t *testing.T) {
	ctx := context.Background()
	pool, _ := emptyDB(t)
	hashTable(t, pool, "grant_log", `tenant_id uuid NOT NULL, id bigint NOT NULL, note text, PRIMARY KEY (tenant_id, id)`, 8)
	mustExec(t, pool, `INSERT INTO public.grant_log SELECT gen_random_uuid(), g, repeat('x', 50) FROM generate_series(1, 2000) g`)
	mustExec(t, pool, `CREATE FUNCTION public.kill_self() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); RETURN NEW; END $$`)
	m := New(pool, testLogger(t))
	// After the first batch, kill the backend of the next one.
	var armed atomic.Bool
	m.Progress = func(p Progress) {
		if p.CopiedRows == 0 || armed.Swap(true) {
			return
		}
		newName := scalar[string](t, pool, `SELECT new_name FROM pgcapacity.migration WHERE id = $1`, p.ID)
		mustExec(t, pool, fmt.Sprintf(`CREATE TRIGGER kill_copy BEFORE INSERT ON public.%s FOR EACH ROW EXECUTE FUNCTION public.kill_self()`, qi(newName)))
	}
	// With the defect, start returns only when this context ends.
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	id, err := m.Start(sctx, StartRequest{
		PlanRequest: PlanRequest{Schema: "public", Table: "grant_log", Partitions: 16, Thresholds: thresholds()},
		Reason:      "test", Requester: "alice", Approver: "bob", Copy: CopyOptions{BatchSize: 50, Jobs: 2},
	})
	if err == nil {
		t.Fatal("start succeeded with a killed copy backend")
	}
	if errors.Is(err, ErrInterrupted) || sctx.Err() != nil {
		t.Fatalf("start did not return after the failed batch: %v", err)
	}
	t.Logf("start failed as expected: %v", err)
	m.Progress = nil
	mig := loadMig(t, pool, id)
	mustExec(t, pool, fmt.Sprintf(`DROP TRIGGER kill_copy ON public.%s`, qi(mig.NewName)))
	// The lock was released: resume runs and finishes the copy.
	if err := m.Resume(ctx, id, CopyOptions{BatchSize: 50, Jobs: 2}, 0); err != nil {
		t.Fatalf("resume: %v", err)
	}
	identical(t, pool, "public.grant_log", shadowOf(t, pool, id))
}

// TestPartitionCountBounds reproduces D7: --partitions had no upper bound
// (plan --partitions 2147483647 ran out of memory, start --partitions
// 100000 created partitions for minutes), and nothing checked that the
// swap could lock every partition within the server's lock table.
func TestPartitionCountBounds(t *testing.T) {
	ctx := context.Background()
	pool, _ := emptyDB(t)
	// Many indexes make the swap's lock count pass the lock table of the
	// test server (max_locks_per_transaction 1024 × 200 connections)
	// below MaxPartitions.
	var cols, idx []string
	for i := 0; i < 60; i++ {
		cols = append(cols, fmt.Sprintf("c%d int", i))
		idx = append(idx, fmt.Sprintf("CREATE INDEX ON public.wide (c%d)", i))
	}
	hashTable(t, pool, "wide", "tenant_id uuid NOT NULL, id bigint NOT NULL, "+strings.Join(cols, ", ")+", PRIMARY KEY (tenant_id, id)", 4)
	for _, s := range idx {
		mustExec(t, pool, s)
	}
	capacity := scalar[int](t, pool, `SELECT current_setting('max_locks_per_transaction')::int * (current_setting('max_connections')::int + current_setting('max_prepared_transactions')::int)`)
	m := New(pool, testLogger(t))
	for _, tc := range []struct {
		partitions int
		err        string // from Plan
		refusal    string // in Plan.Refusals
	}{
		{partitions: 2147483647, err: "above the limit of 4096"},
		{partitions: 100000, err: "above the limit of 4096"},
		{partitions: MaxPartitions, refusal: "raise max_locks_per_transaction"},
		{partitions: 64},
	} {
		t.Run(fmt.Sprint(tc.partitions), func(t *testing.T) {
			req := PlanRequest{Schema: "public", Table: "wide", Partitions: tc.partitions, Thresholds: thresholds()}
			p, err := m.Plan(ctx, req)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("plan: %v, want an error saying %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("plan: %v", err)
			}
			refusals := strings.Join(p.Refusals, "; ")
			if tc.refusal == "" {
				if refusals != "" {
					t.Fatalf("refused: %s", refusals)
				}
				if need := swapLocks(p.Table, tc.partitions); need > capacity {
					t.Fatalf("the accepted case needs %d locks, more than the %d the server has", need, capacity)
				}
				return
			}
			if !strings.Contains(refusals, tc.refusal) || !strings.Contains(refusals, fmt.Sprint(capacity)) {
				t.Fatalf("refusals %q, want one saying %q and naming the lock table size %d", refusals, tc.refusal, capacity)
			}
			_, err = m.Start(ctx, StartRequest{PlanRequest: req, Reason: "r", Requester: "a", Approver: "b"})
			var refused *RefusedError
			if !errors.As(err, &refused) {
				t.Fatalf("start: %v, want the refusal", err)
			}
			if n := scalar[int](t, pool, `SELECT count(*) FROM pg_catalog.pg_namespace WHERE nspname = 'pgcapacity'`); n != 0 {
				t.Error("the refused start created the pgcapacity schema")
			}
		})
	}
}

// lockHolder is the backend holding a per-table migration lock, 0 if none.
func lockHolder(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	return scalar[int](t, pool, `SELECT coalesce((SELECT pid FROM pg_catalog.pg_locks WHERE locktype = 'advisory' AND classid = $1::bigint::oid AND objsubid = 2 AND granted LIMIT 1), 0)`, advisoryNamespace)
}

// TestLostTableLock reproduces D4: the per-table lock was held on an idle
// connection nobody checked, so a terminated lock session or
// idle_session_timeout dropped it while the copy went on without it (and a
// second resume could run alongside).
func TestLostTableLock(t *testing.T) {
	for _, tc := range []struct {
		name string
		// afterFirstBatch runs once, after the first copy batch.
		afterFirstBatch func(t *testing.T, pool *pgxpool.Pool)
		idleTimeout     bool // the database sets idle_session_timeout = 300ms
		wantLost        bool
	}{
		{name: "lock session terminated", wantLost: true, afterFirstBatch: func(t *testing.T, pool *pgxpool.Pool) {
			pid := lockHolder(t, pool)
			if pid == 0 {
				t.Error("no session holds the per-table lock during the copy")
				return
			}
			mustExec(t, pool, `SELECT pg_terminate_backend($1, 10000)`, pid)
		}},
		{name: "idle_session_timeout", idleTimeout: true, afterFirstBatch: func(t *testing.T, pool *pgxpool.Pool) {
			// Longer than the database's idle_session_timeout: the lock's
			// session must survive it.
			time.Sleep(time.Second)
			if lockHolder(t, pool) == 0 {
				t.Error("the per-table lock was dropped by idle_session_timeout")
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			admin, url := emptyDB(t)
			hashTable(t, admin, "grant_log", `tenant_id uuid NOT NULL, id bigint NOT NULL, note text, PRIMARY KEY (tenant_id, id)`, 8)
			mustExec(t, admin, `INSERT INTO public.grant_log SELECT gen_random_uuid(), g, repeat('x', 50) FROM generate_series(1, 2000) g`)
			if tc.idleTimeout {
				mustExec(t, admin, `DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET idle_session_timeout = %L', current_database(), '300ms'); END $$`)
			}
			pool, err := NewPool(ctx, url, 8)
			if err != nil {
				t.Fatal(err)
			}
			defer pool.Close()
			m := New(pool, testLogger(t))
			var once atomic.Bool
			m.Progress = func(p Progress) {
				if p.Phase == PhaseCopying && p.CopiedRows > 0 && !once.Swap(true) {
					tc.afterFirstBatch(t, admin)
				}
			}
			copts := CopyOptions{BatchSize: 50, Jobs: 1}
			id, err := m.Start(ctx, StartRequest{
				PlanRequest: PlanRequest{Schema: "public", Table: "grant_log", Partitions: 16, Thresholds: thresholds()},
				Reason:      "test", Requester: "alice", Approver: "bob", Copy: copts,
			})
			if tc.wantLost {
				if !errors.Is(err, ErrLockLost) {
					t.Fatalf("start after its lock session was terminated: %v, want %v", err, ErrLockLost)
				}
				t.Logf("start stopped: %v", err)
				m.Progress = nil
				if err := m.Resume(ctx, id, copts, 0); err != nil {
					t.Fatalf("resume: %v", err)
				}
			} else if err != nil {
				t.Fatalf("start: %v", err)
			}
			identical(t, admin, "public.grant_log", shadowOf(t, admin, id))
		})
	}
}
