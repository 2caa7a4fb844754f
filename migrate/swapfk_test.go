package migrate

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// TestSwapPartitionedReferencer reproduces D5 and D6 of issue 13 on a
// partitioned table that references the migrated one. The swap used to
// re-create that foreign key as NOT VALID constraints on each leaf and
// attach them to a parent constraint after the commit: until then a
// cascade that moves a referencing row to another partition failed with
// 23514 (the cascade updates ONLY the leaf), and the attach took ACCESS
// EXCLUSIVE on the live table and all its partitions outside the swap
// transaction, unreported.
//
// Writers churn partition-moving cascades (or, for a key without actions,
// inserts that check it) through the swap and the rollback. Right after
// each commit, a session holds SHARE UPDATE EXCLUSIVE
// on the referencing table for a while, as an autovacuum of it would: the
// steps after the commit wait, which is when the application must still
// see no error. A second session holds ROW EXCLUSIVE on it, as any writer
// does, so a lock that blocks writes asked for after the commit waits and
// is seen: there must be none, except the attach of per-leaf keys before
// PostgreSQL 18 for a key that moves no row, and that one must be in the
// reported lock hold.
func TestSwapPartitionedReferencer(t *testing.T) {
	for _, tc := range []struct {
		name string
		// child is the referencing table's definition, partitioned.
		child string
		// moves: the key's actions move referencing rows between
		// partitions.
		moves bool
		// churn is one application transaction on parent row id, moving
		// it (or its referencing rows) to tenant.
		churn func(ctx context.Context, tx pgx.Tx, id int64, tenant string) error
	}{
		{
			name: "cascade on the child's partition key",
			child: `tenant_id uuid NOT NULL, parent_id bigint NOT NULL, owner bigint NOT NULL, n int NOT NULL,
				FOREIGN KEY (tenant_id, parent_id) REFERENCES public.parent ON UPDATE CASCADE ON DELETE CASCADE) PARTITION BY HASH (tenant_id`,
			moves: true,
			churn: func(ctx context.Context, tx pgx.Tx, id int64, tenant string) error {
				// The parent row moves between partitions of the migrated
				// table; the cascade moves its children between theirs.
				_, err := tx.Exec(ctx, `UPDATE public.parent SET tenant_id = $2 WHERE id = $1`, id, tenant)
				return err
			},
		},
		{
			name: "set null on the child's partition key",
			child: `tenant_id uuid, parent_id bigint, owner bigint NOT NULL, n int NOT NULL,
				FOREIGN KEY (tenant_id, parent_id) REFERENCES public.parent ON UPDATE CASCADE ON DELETE SET NULL) PARTITION BY HASH (parent_id`,
			moves: true,
			churn: func(ctx context.Context, tx pgx.Tx, id int64, tenant string) error {
				// SET NULL moves the children to the partition of NULL; the
				// application then links them to the re-created parent.
				for _, st := range []struct {
					sql  string
					args []any
				}{
					{`DELETE FROM public.parent WHERE id = $1`, []any{id}},
					{`INSERT INTO public.parent (tenant_id, id, note) VALUES ($2, $1, 'again')`, []any{id, tenant}},
					{`UPDATE public.child SET tenant_id = $2, parent_id = $1 WHERE owner = $1`, []any{id, tenant}},
				} {
					if _, err := tx.Exec(ctx, st.sql, st.args...); err != nil {
						return err
					}
				}
				return nil
			},
		},
		{
			name: "no action, as SigID's referral_redemption",
			child: `tenant_id uuid NOT NULL, parent_id bigint NOT NULL, owner bigint NOT NULL, n int NOT NULL,
				FOREIGN KEY (tenant_id, parent_id) REFERENCES public.parent) PARTITION BY HASH (tenant_id`,
			churn: func(ctx context.Context, tx pgx.Tx, id int64, _ string) error {
				// The insert checks the key: the referencing table is
				// locked first, then the migrated one.
				if _, err := tx.Exec(ctx, `DELETE FROM public.child WHERE owner = $1 AND n = 0`, id); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, `INSERT INTO public.child SELECT tenant_id, id, id, 0 FROM public.parent WHERE id = $1`, id)
				return err
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			pool, url := emptyDB(t)
			hashTable(t, pool, "parent", `tenant_id uuid NOT NULL, id bigint NOT NULL, note text, PRIMARY KEY (tenant_id, id)`, 4)
			mustExec(t, pool, `CREATE TABLE public.child (`+tc.child+`)`)
			for i := 0; i < 4; i++ {
				mustExec(t, pool, fmt.Sprintf(`CREATE TABLE public.child_p%d PARTITION OF public.child FOR VALUES WITH (MODULUS 4, REMAINDER %d)`, i, i))
			}
			mustExec(t, pool, `CREATE INDEX ON public.child (tenant_id, parent_id)`)
			mustExec(t, pool, `CREATE INDEX ON public.child (owner)`)
			var tenants []string
			for i := 1; i <= 8; i++ {
				tenants = append(tenants, fmt.Sprintf("00000000-0000-0000-0000-%012d", i))
			}
			mustExec(t, pool, `INSERT INTO public.parent SELECT ($1::uuid[])[1 + g % 8], g FROM generate_series(1, 400) g`, tenants)
			mustExec(t, pool, `INSERT INTO public.child SELECT p.tenant_id, p.id, p.id, k FROM public.parent p, generate_series(1, 2) k`)
			m := New(pool, testLogger(t))
			id := startAndValidate(t, m, "public", "parent", 8)
			before18 := scalar[int](t, pool, `SELECT current_setting('server_version_num')::int`) < 180000
			perLeaf := !tc.moves && before18
			// plan tells when the swap will check the key under its lock.
			plan, err := m.Plan(ctx, PlanRequest{Schema: "public", Table: "parent", Partitions: 16, Thresholds: thresholds()})
			if err != nil {
				t.Fatal(err)
			}
			noted := strings.Contains(strings.Join(plan.Notes, "\n"), "check it under their lock")
			if noted != (tc.moves && before18) {
				t.Errorf("plan notes %q: a note that the key is checked under the lock: %v, want %v", plan.Notes, noted, tc.moves && before18)
			}

			w := startChurn(t, url, tenants, 400, 4, tc.churn)
			for _, step := range []string{"swap", "rollback"} {
				time.Sleep(200 * time.Millisecond) // let the writers run between the steps
				live := scalar[uint32](t, pool, `SELECT 'public.parent'::regclass::oid`)
				watch := watchAfterCommit(t, url, live)
				var res *SwapResult
				var err error
				if step == "swap" {
					res, err = m.Swap(ctx, id, SwapOptions{NowReason: "test"})
				} else {
					res, err = m.Rollback(ctx, id, SwapOptions{})
				}
				if err != nil {
					t.Fatalf("%s: %v", step, err)
				}
				blocking := watch.stop(t)
				t.Logf("%s: locks that block writes held %s in %d attempt(s): %v", step, res.LockHold, res.Attempts, res.LockHolds)
				var sum time.Duration
				for _, h := range res.LockHolds {
					sum += h.Hold
				}
				if len(res.LockHolds) == 0 || res.LockHold != sum || res.LockHold <= 0 {
					t.Errorf("%s: reported lock hold %s is not the sum of %v", step, res.LockHold, res.LockHolds)
				}
				if got := loadMig(t, pool, id).LastLockHoldSeconds; got == nil || time.Duration(*got*float64(time.Second)).Round(time.Millisecond) != res.LockHold.Round(time.Millisecond) {
					t.Errorf("%s: recorded lock hold %v, reported %s", step, got, res.LockHold)
				}
				attached := false
				for _, h := range res.LockHolds {
					attached = attached || strings.HasPrefix(h.Step, "attach ")
				}
				if attached != perLeaf {
					t.Errorf("%s: holds %v, want an attach of per-leaf keys: %v", step, res.LockHolds, perLeaf)
				}
				if !attached {
					for _, l := range blocking {
						t.Errorf("%s: after its locked transaction committed, the procedure asked for a lock that blocks writes, and reported none: %s", step, l)
					}
				} else if len(blocking) == 0 {
					t.Errorf("%s: reported an attach after the commit, but the watch saw no lock asked for", step)
				}
				// The foreign key is one validated constraint on the parent
				// referencing the live table, as it was before.
				now := scalar[uint32](t, pool, `SELECT 'public.parent'::regclass::oid`)
				if now == live {
					t.Fatalf("%s: public.parent is still OID %d", step, live)
				}
				if n := scalar[int](t, pool, `SELECT count(*) FROM pg_constraint WHERE conrelid = 'public.child'::regclass AND confrelid = $1 AND convalidated AND conparentid = 0`, now); n != 1 {
					t.Errorf("%s: %d validated foreign keys on public.child reference the live table, want 1", step, n)
				}
				if n := scalar[int](t, pool, `SELECT count(*) FROM pg_constraint con JOIN pg_inherits i ON i.inhrelid = con.conrelid
					WHERE i.inhparent = 'public.child'::regclass AND con.contype = 'f' AND con.conparentid = 0`); n != 0 {
					t.Errorf("%s: %d foreign keys left on leaves of public.child, not attached to a parent constraint", step, n)
				}
			}
			time.Sleep(200 * time.Millisecond)
			w.stop(t)
			if n := scalar[int64](t, pool, `SELECT count(*) FROM public.child c WHERE c.parent_id IS NOT NULL AND NOT EXISTS (SELECT FROM public.parent p WHERE p.tenant_id = c.tenant_id AND p.id = c.parent_id)`); n != 0 {
				t.Errorf("%d rows of public.child reference no parent", n)
			}
			if err := m.Resume(ctx, id, CopyOptions{}, 0); err != nil {
				t.Fatalf("resume: %v", err)
			}
			identical(t, pool, "public.parent", shadowOf(t, pool, id))
		})
	}
}

// churn is the application: writers running transactions on parent rows,
// each writer on its own rows, counting every error.
type churn struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	txs    int
	errs   []error
}

func startChurn(t *testing.T, url string, tenants []string, rows int64, writers int, op func(context.Context, pgx.Tx, int64, string) error) *churn {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	c := &churn{cancel: cancel}
	for w := 0; w < writers; w++ {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 13))
			for ctx.Err() == nil {
				id := 1 + int64(w) + int64(writers)*rng.Int64N(rows/int64(writers))
				tenant := tenants[rng.IntN(len(tenants))]
				// Run to completion: only the loop stops on cancel.
				opCtx := context.WithoutCancel(ctx)
				err := pgx.BeginFunc(opCtx, pool, func(tx pgx.Tx) error { return op(opCtx, tx, id, tenant) })
				c.mu.Lock()
				c.txs++
				if err != nil {
					c.errs = append(c.errs, fmt.Errorf("row %d to %s: %w", id, tenant, err))
				}
				c.mu.Unlock()
			}
		}()
	}
	t.Cleanup(pool.Close)
	return c
}

// stop ends the writers and fails the test for every error they saw: a
// swap must cause none.
func (c *churn) stop(t *testing.T) {
	t.Helper()
	c.cancel()
	c.wg.Wait()
	for i, err := range c.errs {
		if i == 5 {
			t.Errorf("... %d application errors in all", len(c.errs))
			break
		}
		t.Errorf("application error: %v (SQLSTATE %s)", err, sqlState(err))
	}
	t.Logf("%d application transactions, %d errors", c.txs, len(c.errs))
}

// commitWatch waits for a swap or rollback transaction to hold its locks,
// then queues behind it on the referencing table, so its sessions are
// granted their locks at the commit, ahead of anything the procedure asks
// for next.
type commitWatch struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error
	seen   bool
	found  []string
}

func watchAfterCommit(t *testing.T, url string, live uint32) *commitWatch {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &commitWatch{cancel: cancel, done: make(chan struct{})}
	conns := make([]*pgx.Conn, 3)
	for i := range conns {
		c, err := pgx.Connect(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c
	}
	go func() {
		defer close(w.done)
		defer func() {
			for _, c := range conns {
				c.Close(context.Background())
			}
		}()
		w.err = w.run(ctx, conns[0], conns[1], conns[2], live)
	}()
	return w
}

// writeBlocking are the table lock modes that conflict with ROW EXCLUSIVE,
// the lock of every INSERT, UPDATE and DELETE.
var writeBlocking = []string{"ShareLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock"}

func (w *commitWatch) run(ctx context.Context, observer, vacuum, writer *pgx.Conn, live uint32) error {
	for ctx.Err() == nil {
		var held bool
		if err := observer.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_catalog.pg_locks WHERE locktype = 'relation' AND relation = 'public.child'::pg_catalog.regclass AND mode = 'AccessExclusiveLock' AND granted)`).Scan(&held); err != nil {
			return ignoreCancel(ctx, err)
		}
		if !held {
			time.Sleep(time.Millisecond)
			continue
		}
		// The swap transaction holds the referencing table: queue behind
		// it.
		vtx, err := vacuum.Begin(ctx)
		if err != nil {
			return ignoreCancel(ctx, err)
		}
		wtx, err := writer.Begin(ctx)
		if err != nil {
			return ignoreCancel(ctx, err)
		}
		lockErr := make(chan error, 1)
		go func() {
			_, err := wtx.Exec(ctx, `LOCK TABLE public.child IN ROW EXCLUSIVE MODE`)
			lockErr <- err
		}()
		_, err = vtx.Exec(ctx, `LOCK TABLE public.child IN SHARE UPDATE EXCLUSIVE MODE`)
		if werr := <-lockErr; err == nil {
			err = werr
		}
		if err != nil {
			return ignoreCancel(ctx, err)
		}
		var now uint32
		if err := observer.QueryRow(ctx, `SELECT 'public.parent'::regclass::oid`).Scan(&now); err != nil {
			return ignoreCancel(ctx, err)
		}
		if now == live {
			// That attempt rolled back (lock_timeout): let the next one in.
			_ = vtx.Rollback(ctx)
			_ = wtx.Rollback(ctx)
			continue
		}
		w.seen = true
		pids := []uint32{vacuum.PgConn().PID(), writer.PgConn().PID(), observer.PgConn().PID()}
		seen := map[string]bool{}
		look := func() error {
			rows, err := observer.Query(ctx, `
				SELECT l.mode || ' on ' || coalesce(l.relation::pg_catalog.regclass::text, l.relation::text) || ' (waiting)'
				FROM pg_catalog.pg_locks l
				WHERE l.locktype = 'relation' AND NOT l.granted AND l.mode = ANY ($1) AND l.pid <> ALL ($2)
				  AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())`, writeBlocking, pids)
			if err != nil {
				return err
			}
			found, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				return err
			}
			for _, f := range found {
				if !seen[f] {
					seen[f] = true
					w.found = append(w.found, f)
				}
			}
			return nil
		}
		// Hold both as an autovacuum and a writer would, then the writer's
		// lock alone for a while longer (less than the procedure's
		// lock_timeout, so what waits for it still succeeds), watching.
		start := time.Now()
		for time.Since(start) < 1500*time.Millisecond {
			if err := look(); err != nil {
				return ignoreCancel(ctx, err)
			}
			if vtx != nil && time.Since(start) > time.Second {
				if err := vtx.Commit(ctx); err != nil {
					return ignoreCancel(ctx, err)
				}
				vtx = nil
			}
			time.Sleep(2 * time.Millisecond)
		}
		if vtx != nil {
			_ = vtx.Rollback(context.Background())
		}
		_ = wtx.Rollback(context.Background())
		return nil
	}
	return nil
}

func ignoreCancel(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// stop is called when the procedure returned: it lets the watch finish
// (or ends it, if it never saw a commit) and returns the write-blocking
// locks asked for after the commit.
func (w *commitWatch) stop(t *testing.T) []string {
	t.Helper()
	select {
	case <-w.done:
	case <-time.After(10 * time.Second):
		w.cancel()
		<-w.done
	}
	w.cancel()
	if w.err != nil && !errors.Is(w.err, context.Canceled) {
		t.Fatalf("watching the commit: %v", w.err)
	}
	if !w.seen {
		t.Fatal("the watch never saw the locked transaction commit")
	}
	return w.found
}
