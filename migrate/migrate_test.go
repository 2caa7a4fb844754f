package migrate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/sigid/pgcapacity/internal/config"
	"github.com/sigid/pgcapacity/internal/sigid"
	"github.com/sigid/pgcapacity/internal/throwaway/pgtest"
	"github.com/sigid/pgcapacity/migrate/state"
)

var cluster pgtest.Cluster

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(runHelper())
	}
	pgtest.Main(m, &cluster)
}

func testLogger(t testing.TB) *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("MIGRATE_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: level}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func thresholds() config.Thresholds {
	return config.Thresholds{PlanningShare: 0.1, WriteRetentionTarget: config.Duration(time.Hour), DecreaseIndexShare: 0.25}
}

// startStopped starts a migration of public.<table> to parts partitions and
// stops it at the copy's first batch boundary, as Ctrl-C would: the
// migration is then copying, part of it copied. m's Progress is reset.
func startStopped(t *testing.T, m *Migrator, table string, parts int) {
	t.Helper()
	stopCtx, stop := context.WithCancel(context.Background())
	defer stop()
	m.Progress = func(p Progress) {
		if p.DoneBlocks > 0 {
			stop()
		}
	}
	defer func() { m.Progress = nil }()
	_, err := m.Start(stopCtx, StartRequest{
		PlanRequest: PlanRequest{Schema: "public", Table: table, Partitions: parts, Thresholds: thresholds()},
		Reason:      "test", Requester: "alice", Approver: "bob", Copy: CopyOptions{BatchSize: 50},
	})
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("start stopped after the first batch: %v", err)
	}
}

// sigidDB creates a database with the reference schema, table at parts
// partitions, and a small generated data set.
func sigidDB(t *testing.T, table string, parts int) (*pgxpool.Pool, string) {
	t.Helper()
	ctx := context.Background()
	url := pgtest.NewDatabase(t, &cluster)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := sigid.Apply(ctx, conn, sigid.SchemaOptions{Partitions: map[string]int{table: parts}}); err != nil {
		t.Fatal(err)
	}
	if _, err := sigid.Generate(ctx, conn, sigid.DefaultGenerate(1)); err != nil {
		t.Fatal(err)
	}
	pool, err := NewPool(ctx, url, 8)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool, url
}

// workload writes to one table through its original name; each writer
// owns the rows it inserts and keeps a ledger of what each must hold.
type workload struct {
	table  string
	insert string // $1 tenant; RETURNING the id as text
	update string // $1 tenant, $2 id text, $3 value
	delete string // $1 tenant, $2 id text
	read   string // $1 tenant, $2 id text; the value as int
}

var workloads = map[string]workload{
	"session": {
		table:  "session",
		insert: `INSERT INTO public.session (tenant_id, session_id, user_id, expires_at, user_agent) VALUES ($1, gen_random_uuid(), gen_random_uuid(), now() + interval '1 day', 'v0') RETURNING session_id::text`,
		update: `UPDATE public.session SET user_agent = 'v' || $3::int, last_seen_at = now() WHERE tenant_id = $1 AND session_id = $2::uuid`,
		delete: `DELETE FROM public.session WHERE tenant_id = $1 AND session_id = $2::uuid`,
		read:   `SELECT substr(user_agent, 2)::int FROM public.session WHERE tenant_id = $1 AND session_id = $2::uuid`,
	},
	"tenant_membership": {
		table:  "tenant_membership",
		insert: `INSERT INTO public.tenant_membership (tenant_id, user_id, updated_at) VALUES ($1, gen_random_uuid(), to_timestamp(0)) RETURNING membership_id::text`,
		update: `UPDATE public.tenant_membership SET updated_at = to_timestamp($3::int), mfa_enabled = NOT mfa_enabled WHERE tenant_id = $1 AND membership_id = $2::bigint`,
		delete: `DELETE FROM public.tenant_membership WHERE tenant_id = $1 AND membership_id = $2::bigint`,
		read:   `SELECT extract(epoch FROM updated_at)::int FROM public.tenant_membership WHERE tenant_id = $1 AND membership_id = $2::bigint`,
	},
	"referral": {
		table:  "referral",
		insert: `INSERT INTO public.referral (tenant_id, code, referrer_user_id, max_redemptions) VALUES ($1, md5(random()::text), gen_random_uuid(), 1) RETURNING referral_id::text`,
		update: `UPDATE public.referral SET max_redemptions = $3::int + 1 WHERE tenant_id = $1 AND referral_id = $2::bigint`,
		delete: `DELETE FROM public.referral WHERE tenant_id = $1 AND referral_id = $2::bigint`,
		read:   `SELECT max_redemptions - 1 FROM public.referral WHERE tenant_id = $1 AND referral_id = $2::bigint`,
	},
}

type rowKey struct{ tenant, id string }

type writers struct {
	wl      workload
	pool    *pgxpool.Pool
	tenants []string
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex
	ledger  map[rowKey]int // -1: deleted
	errs    []error
	ops     int
}

func startWriters(t *testing.T, url string, wl workload, n int) *writers {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	w := &writers{wl: wl, pool: pool, cancel: cancel, ledger: map[rowKey]int{}}
	rows, _ := pool.Query(ctx, `SELECT tenant_id::text FROM public.tenant ORDER BY tenant_id LIMIT 50`)
	if w.tenants, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil || len(w.tenants) == 0 {
		t.Fatalf("reading tenants: %v", err)
	}
	for i := 0; i < n; i++ {
		w.wg.Add(1)
		go w.run(ctx, int64(i))
	}
	return w
}

func (w *writers) run(ctx context.Context, seed int64) {
	defer w.wg.Done()
	rng := rand.New(rand.NewPCG(uint64(seed), 7))
	var own []rowKey
	value := 0
	// Operations run to completion: a cancelled statement may still have
	// committed, and the ledger must know every committed write.
	op := context.WithoutCancel(ctx)
	for ctx.Err() == nil {
		value++
		var err error
		switch choice := rng.IntN(10); {
		case choice < 5 || len(own) == 0:
			k := rowKey{tenant: w.tenants[rng.IntN(len(w.tenants))]}
			err = w.pool.QueryRow(op, w.wl.insert, k.tenant).Scan(&k.id)
			if err == nil {
				own = append(own, k)
				w.record(k, 0)
			}
		case choice < 8:
			k := own[rng.IntN(len(own))]
			var tag interface{ RowsAffected() int64 }
			tag, err = w.pool.Exec(op, w.wl.update, k.tenant, k.id, value)
			if err == nil && tag.RowsAffected() == 1 {
				w.record(k, value)
			}
		default:
			i := rng.IntN(len(own))
			k := own[i]
			_, err = w.pool.Exec(op, w.wl.delete, k.tenant, k.id)
			if err == nil {
				w.record(k, -1)
				own = append(own[:i], own[i+1:]...)
			}
		}
		if errors.Is(err, pgx.ErrNoRows) {
			err = nil // an insert that found nothing to refer to
		}
		if err != nil {
			w.mu.Lock()
			w.errs = append(w.errs, err)
			w.mu.Unlock()
		}
		time.Sleep(time.Duration(rng.IntN(3)) * time.Millisecond)
	}
}

func (w *writers) record(k rowKey, v int) {
	w.mu.Lock()
	w.ledger[k] = v
	w.ops++
	w.mu.Unlock()
}

// stop ends the writers and checks that the live table holds exactly what
// every committed write left: nothing lost, nothing resurrected.
func (w *writers) stop(t *testing.T) {
	t.Helper()
	w.cancel()
	w.wg.Wait()
	defer w.pool.Close()
	for _, err := range w.errs {
		t.Errorf("writer: %v", err)
	}
	ctx := context.Background()
	for k, want := range w.ledger {
		var got int
		err := w.pool.QueryRow(ctx, w.wl.read, k.tenant, k.id).Scan(&got)
		switch {
		case want == -1 && errors.Is(err, pgx.ErrNoRows):
		case want == -1:
			t.Errorf("%s %v: deleted, but found (%v)", w.wl.table, k, err)
		case err != nil:
			t.Errorf("%s %v: want value %d, read error %v", w.wl.table, k, want, err)
			w.diagnose(t, k)
		case got != want:
			t.Errorf("%s %v: want value %d, got %d (lost update)", w.wl.table, k, want, got)
		}
	}
	t.Logf("%d writes checked on %d keys", w.ops, len(w.ledger))
}

// diagnose shows where a lost key is and what the migration did.
func (w *writers) diagnose(t *testing.T, k rowKey) {
	ctx := context.Background()
	rows, err := w.pool.Query(ctx, `SELECT c.oid::regclass::text FROM pg_class c WHERE c.relkind = 'p' AND c.relname LIKE '%' || $1`, w.wl.table)
	if err != nil {
		t.Log(err)
		return
	}
	tables, _ := pgx.CollectRows(rows, pgx.RowTo[string])
	for _, tb := range tables {
		var n int
		read := strings.Replace(w.wl.read, "public."+w.wl.table, tb, 1)
		err := w.pool.QueryRow(ctx, "SELECT count(*) FROM ("+read+") x", k.tenant, k.id).Scan(&n)
		t.Logf("  %s holds %d row(s) for the key (%v)", tb, n, err)
	}
	rows, _ = w.pool.Query(ctx, `SELECT at::text || ' ' || event || ' ' || detail FROM pgcapacity.migration_event ORDER BY id`)
	events, _ := pgx.CollectRows(rows, pgx.RowTo[string])
	for _, e := range events {
		t.Logf("  event %s", e)
	}
}

// identical asserts that two tables hold the same rows (EXCEPT both ways).
func identical(t *testing.T, pool *pgxpool.Pool, a, b string) {
	t.Helper()
	var n int64
	q := fmt.Sprintf(`SELECT (SELECT count(*) FROM (SELECT * FROM %[1]s EXCEPT ALL SELECT * FROM %[2]s) x) + (SELECT count(*) FROM (SELECT * FROM %[2]s EXCEPT ALL SELECT * FROM %[1]s) y)`, a, b)
	if err := pool.QueryRow(context.Background(), q).Scan(&n); err != nil {
		t.Fatalf("comparing %s and %s: %v", a, b, err)
	}
	if n != 0 {
		t.Errorf("%s and %s differ in %d rows", a, b, n)
	}
}

func partitionCount(t *testing.T, pool *pgxpool.Pool, table string) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_inherits WHERE inhparent = $1::regclass`, table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func loadMig(t *testing.T, pool *pgxpool.Pool, id int64) *Migration {
	t.Helper()
	mig, err := state.Load(context.Background(), pool, id)
	if err != nil {
		t.Fatal(err)
	}
	return mig
}

func TestRepartitionUnderWrites(t *testing.T) {
	cases := []struct {
		table    string
		from, to int
		force    string
	}{
		{"session", 8, 32, ""},
		{"tenant_membership", 16, 24, ""},
		{"referral", 32, 8, "test: merge the referral partitions"},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s_%d_to_%d", tc.table, tc.from, tc.to), func(t *testing.T) {
			ctx := context.Background()
			pool, url := sigidDB(t, tc.table, tc.from)
			m := New(pool, testLogger(t))
			w := startWriters(t, url, workloads[tc.table], 3)
			var redemptions *writers
			if tc.table == "referral" {
				redemptions = startRedemptions(t, url)
			}
			copts := CopyOptions{BatchSize: 100, Jobs: 2}
			id, err := m.Start(ctx, StartRequest{
				PlanRequest: PlanRequest{Schema: "public", Table: tc.table, Partitions: tc.to, ForceDecreaseReason: tc.force, Thresholds: thresholds()},
				Reason:      "test", Requester: "alice", Approver: "bob", Copy: copts,
			})
			if err != nil {
				t.Fatalf("start: %v", err)
			}
			if mig := loadMig(t, pool, id); mig.Phase != PhaseReady {
				t.Fatalf("after start the phase is %s, want ready", mig.Phase)
			}
			v, err := m.Validate(ctx, id, copts)
			if err != nil {
				t.Fatalf("validate: %v", err)
			}
			if !v.OK {
				t.Fatalf("validation failed: %+v", v)
			}
			sw := SwapOptions{NowReason: "test", BatchSize: 100}
			for i, step := range []string{"swap", "rollback", "swap"} {
				time.Sleep(300 * time.Millisecond) // let writes land between the steps
				var res *SwapResult
				if step == "swap" {
					res, err = m.Swap(ctx, id, sw)
				} else {
					res, err = m.Rollback(ctx, id, sw)
				}
				if err != nil {
					t.Fatalf("step %d (%s): %v", i, step, err)
				}
				want := tc.to
				if step == "rollback" {
					want = tc.from
				}
				if got := partitionCount(t, pool, "public."+tc.table); got != want {
					t.Fatalf("after %s public.%s has %d partitions, want %d", step, tc.table, got, want)
				}
				t.Logf("%s: lock held %s, %d attempt(s), final replay %d", step, res.LockHold, res.Attempts, res.FinalReplayed)
			}
			time.Sleep(300 * time.Millisecond)
			w.stop(t)
			if redemptions != nil {
				redemptions.stop(t)
			}
			// Reverse capture kept the original current: after a last
			// replay the two tables are identical.
			if err := m.Resume(ctx, id, copts, 0); err != nil {
				t.Fatalf("resume: %v", err)
			}
			mig := loadMig(t, pool, id)
			retained, err := relName(ctx, pool, mig.OriginalOID)
			if err != nil {
				t.Fatal(err)
			}
			identical(t, pool, "public."+pgx.Identifier{tc.table}.Sanitize(), retained)
			if v, err := m.Validate(ctx, id, copts); err != nil || !v.OK || v.Pending != 0 {
				t.Errorf("validation after the swaps: %+v, %v", v, err)
			}
			if mig.Swaps != 2 || mig.Phase != PhaseSwapped || mig.PostSwapPending {
				t.Errorf("migration state: swaps %d, phase %s, post-swap pending %v", mig.Swaps, mig.Phase, mig.PostSwapPending)
			}
		})
	}
}

// startRedemptions inserts redemptions of existing referrals throughout,
// so the foreign key is exercised against whichever referral table is live.
func startRedemptions(t *testing.T, url string) *writers {
	wl := workload{
		table:  "referral_redemption",
		insert: `INSERT INTO public.referral_redemption (tenant_id, referral_id, redeemed_by, redeemed_at) SELECT tenant_id, referral_id, gen_random_uuid(), to_timestamp(0) FROM public.referral WHERE tenant_id = $1 AND referral_id <= 300 ORDER BY random() LIMIT 1 RETURNING redemption_id::text`,
		update: `UPDATE public.referral_redemption SET redeemed_at = to_timestamp($3::int) WHERE tenant_id = $1 AND redemption_id = $2::bigint`,
		delete: `DELETE FROM public.referral_redemption WHERE tenant_id = $1 AND redemption_id = $2::bigint`,
		read:   `SELECT extract(epoch FROM redeemed_at)::int FROM public.referral_redemption WHERE tenant_id = $1 AND redemption_id = $2::bigint`,
	}
	w := startWriters(t, url, wl, 1)
	return w
}
