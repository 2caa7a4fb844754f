// Command migrate-bench measures `pgcapacity migrate` on a throwaway
// PostgreSQL: the copy rate of `migrate start` (capture active, a
// checkpoint per batch) against one INSERT INTO new SELECT * FROM old into
// an identical table on the same data in the same run, and the longest
// lock hold of swap (and rollback) under concurrent writers: what the
// procedure reports (every lock that blocks writes, including any taken
// after the swap's transaction) beside the longest write the writers saw,
// which counts every lock they waited for, whoever reported it.
//
//	go run ./bench/migrate                       # 5 million session rows, 16 -> 32 partitions, 8 writers at 100 writes/s each
//	go run ./bench/migrate -writer-rate 0        # writers as fast as they can
//	go run ./bench/migrate -rows 500000 -swaps 2 # a quicker look
//	go run ./bench/migrate -table referral       # referral, which the partitioned referral_redemption references;
//	                                             # writers also redeem referrals across the foreign key
//	go run ./bench/migrate -table referral -cascade # that key ON UPDATE CASCADE: before PostgreSQL 18 it is
//	                                             # checked under the swap's lock (the cost of that form)
//
// It prints a Markdown table for the README.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/time/rate"

	"github.com/sigid/pgcapacity/internal/sigid"
	"github.com/sigid/pgcapacity/internal/throwaway"
	"github.com/sigid/pgcapacity/migrate"
)

func main() {
	table := flag.String("table", "session", "the table to migrate: session, or referral (referenced by the partitioned referral_redemption)")
	rows := flag.Int("rows", 5_000_000, "rows of the table")
	from := flag.Int("from", 16, "partitions before")
	to := flag.Int("to", 32, "partitions after")
	batch := flag.Int("batch-size", 10000, "migrate copy batch (rows)")
	jobs := flag.Int("jobs", 1, "migrate copy jobs")
	writers := flag.Int("writers", 8, "concurrent writers during the swaps")
	writerRate := flag.Float64("writer-rate", 100, "writes per second of each writer; 0: as fast as they can (saturates a small machine)")
	swaps := flag.Int("swaps", 3, "swap, rollback, swap, ... steps under the writers")
	sharedBuffers := flag.String("shared-buffers", "1GB", "shared_buffers of the throwaway server")
	cascade := flag.Bool("cascade", false, "with -table referral: make referral_redemption's foreign key ON UPDATE CASCADE (it then moves rows between partitions)")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if *table != "session" && *table != "referral" {
		fmt.Fprintf(os.Stderr, "migrate-bench: -table %q: use session or referral\n", *table)
		os.Exit(2)
	}
	if err := run(context.Background(), logger, *table, *rows, *from, *to, *batch, *jobs, *writers, *writerRate, *swaps, *sharedBuffers, *cascade); err != nil {
		fmt.Fprintln(os.Stderr, "migrate-bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, logger *slog.Logger, table string, rows, from, to, batch, jobs, writers int, writerRate float64, swaps int, sharedBuffers string, cascade bool) error {
	cluster, err := throwaway.Start(ctx, throwaway.Options{Logger: logger, Settings: map[string]string{
		"shared_buffers": sharedBuffers, "max_wal_size": "4GB", "checkpoint_timeout": "30min",
	}})
	if err != nil {
		return err
	}
	defer cluster.Stop()
	url, err := cluster.CreateDatabase(ctx, "bench")
	if err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if err := sigid.Apply(ctx, conn, sigid.SchemaOptions{Partitions: map[string]int{table: from}}); err != nil {
		return err
	}
	gen := sigid.DefaultGenerate(1)
	gen.Tenants, gen.Logger = 10000, logger
	if table == "session" {
		gen.Sessions = rows
	} else {
		gen.Referrals = rows
	}
	start := time.Now()
	if _, err := sigid.Generate(ctx, conn, gen); err != nil {
		return err
	}
	logger.Info("loaded", "rows", rows, "elapsed", time.Since(start).Round(time.Second))
	if cascade {
		if _, err := conn.Exec(ctx, `ALTER TABLE public.referral_redemption DROP CONSTRAINT referral_redemption_referral_fkey,
			ADD CONSTRAINT referral_redemption_referral_fkey FOREIGN KEY (tenant_id, referral_id) REFERENCES public.referral ON UPDATE CASCADE`); err != nil {
			return fmt.Errorf("making the foreign key cascade: %w", err)
		}
	}
	for _, s := range []string{"VACUUM (ANALYZE)", "CHECKPOINT"} {
		if _, err := conn.Exec(ctx, s); err != nil {
			return err
		}
	}

	// Baseline: one INSERT ... SELECT into a table shaped as migrate shapes it.
	if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE TABLE public.baseline (LIKE public.%s INCLUDING ALL) PARTITION BY HASH (tenant_id)", table)); err != nil {
		return err
	}
	for i := 0; i < to; i++ {
		if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE TABLE public.baseline_p%d PARTITION OF public.baseline FOR VALUES WITH (MODULUS %d, REMAINDER %d)", i, to, i)); err != nil {
			return err
		}
	}
	start = time.Now()
	tag, err := conn.Exec(ctx, fmt.Sprintf("INSERT INTO public.baseline SELECT * FROM public.%s", table))
	if err != nil {
		return err
	}
	baseSecs := time.Since(start).Seconds()
	baseRate := float64(tag.RowsAffected()) / baseSecs
	logger.Info("baseline INSERT ... SELECT", "rows", tag.RowsAffected(), "seconds", baseSecs, "rows_per_second", int64(baseRate))
	if _, err := conn.Exec(ctx, "DROP TABLE public.baseline; CHECKPOINT"); err != nil {
		return err
	}

	pool, err := migrate.NewPool(ctx, url, int32(jobs+writers+4))
	if err != nil {
		return err
	}
	defer pool.Close()
	m := migrate.New(pool, logger)
	id, err := m.Start(ctx, migrate.StartRequest{
		PlanRequest: migrate.PlanRequest{Schema: "public", Table: table, Partitions: to},
		Reason:      "benchmark", Requester: "bench", Approver: "reviewer",
		Copy: migrate.CopyOptions{BatchSize: batch, Jobs: jobs},
	})
	if err != nil {
		return err
	}
	st, err := m.Status(ctx, id)
	if err != nil {
		return err
	}
	copySecs := st.CopyFinishedAt.Sub(*st.CopyStartedAt).Seconds()
	copyRate := float64(st.CopiedRows) / copySecs
	logger.Info("migrate copy", "rows", st.CopiedRows, "seconds", copySecs, "rows_per_second", int64(copyRate))

	start = time.Now()
	v, err := m.Validate(ctx, id, migrate.CopyOptions{})
	if err != nil || !v.OK {
		return fmt.Errorf("validation: %+v %v", v, err)
	}
	validateSecs := time.Since(start).Seconds()

	w := startWriters(ctx, pool, table, writers, writerRate)
	writeStart := time.Now()
	var holds []time.Duration
	var steps []string
	for i := 0; i < swaps; i++ {
		time.Sleep(2 * time.Second)
		var res *migrate.SwapResult
		if i%2 == 0 {
			res, err = m.Swap(ctx, id, migrate.SwapOptions{NowReason: "benchmark"})
		} else {
			res, err = m.Rollback(ctx, id, migrate.SwapOptions{})
		}
		if err != nil {
			w.stop()
			return err
		}
		holds = append(holds, res.LockHold)
		var parts []string
		for _, h := range res.LockHolds {
			parts = append(parts, fmt.Sprintf("%s %s", h.Step, h.Hold.Round(time.Millisecond)))
		}
		steps = append(steps, fmt.Sprintf("%s (%s)", res.LockHold.Round(time.Millisecond), strings.Join(parts, " + ")))
		logger.Info("switch", "step", i, "lock_hold", res.LockHold, "holds", res.LockHolds, "attempts", res.Attempts, "final_replay", res.FinalReplayed)
	}
	writes, failures, slowest := w.stop()
	writeSecs := time.Since(writeStart).Seconds()
	var longest time.Duration
	for _, h := range holds {
		longest = max(longest, h)
	}
	var version string
	if err := conn.QueryRow(ctx, "SHOW server_version").Scan(&version); err != nil {
		return err
	}
	fmt.Printf("\n| measure (PostgreSQL %s, %d %s rows, %d -> %d partitions, batch %d, jobs %d) | value |\n|---|---|\n", version, rows, table, from, to, batch, jobs)
	fmt.Printf("| INSERT INTO new SELECT * FROM old | %.0f rows/s (%.1f s) |\n", baseRate, baseSecs)
	fmt.Printf("| migrate start copy (capture on, checkpoint per batch) | %.0f rows/s (%.1f s) |\n", copyRate, copySecs)
	fmt.Printf("| copy rate / INSERT ... SELECT (target >= 0.7) | %.2f |\n", copyRate/baseRate)
	fmt.Printf("| migrate validate (counts and checksums, all partitions) | %.1f s |\n", validateSecs)
	fmt.Printf("| longest lock hold reported by %d swap/rollback steps under %d writers, %.0f writes/s in all (target < 500 ms) | %s |\n", swaps, writers, float64(writes)/writeSecs, longest.Round(time.Millisecond))
	fmt.Printf("| lock holds reported | %s |\n", strings.Join(steps, ", "))
	fmt.Printf("| longest application write during the steps (every lock it waited for) | %s |\n", slowest.Round(time.Millisecond))
	fmt.Printf("| writes during the swaps (failed) | %d (%d) |\n", writes, failures)
	return nil
}

type writerSet struct {
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	writes   atomic.Int64
	failures atomic.Int64
	slowest  atomic.Int64 // nanoseconds
}

// writeSQL are the writers' statements per table, $1 a tenant, chosen in
// turn: inserts and updates of the table, and for referral a redemption,
// whose foreign key check locks referral_redemption before referral.
var writeSQL = map[string][]string{
	"session": {
		`INSERT INTO public.session (tenant_id, session_id, user_id, expires_at) VALUES ($1, gen_random_uuid(), gen_random_uuid(), now() + interval '1 day')`,
		`UPDATE public.session SET last_seen_at = now() WHERE tenant_id = $1 AND session_id = (SELECT session_id FROM public.session WHERE tenant_id = $1 LIMIT 1)`,
	},
	"referral": {
		`INSERT INTO public.referral (tenant_id, code, referrer_user_id) VALUES ($1, md5(random()::text), gen_random_uuid())`,
		`UPDATE public.referral SET max_redemptions = max_redemptions + 1 WHERE tenant_id = $1 AND referral_id = (SELECT referral_id FROM public.referral WHERE tenant_id = $1 LIMIT 1)`,
		`INSERT INTO public.referral_redemption (tenant_id, referral_id, redeemed_by) SELECT tenant_id, referral_id, gen_random_uuid() FROM public.referral WHERE tenant_id = $1 LIMIT 1`,
	},
}

// startWriters runs n sessions writing rows of random tenants, each at
// perSecond (0: as fast as they can).
func startWriters(ctx context.Context, pool *pgxpool.Pool, table string, n int, perSecond float64) *writerSet {
	ctx, cancel := context.WithCancel(ctx)
	w := &writerSet{cancel: cancel}
	var tenants []string
	rows, err := pool.Query(ctx, `SELECT tenant_id::text FROM public.tenant LIMIT 1000`)
	if err == nil {
		tenants, _ = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	for i := 0; i < n; i++ {
		w.wg.Add(1)
		go func(seed uint64) {
			defer w.wg.Done()
			rng := rand.New(rand.NewPCG(seed, 1))
			limit := rate.NewLimiter(rate.Inf, 1)
			if perSecond > 0 {
				limit = rate.NewLimiter(rate.Limit(perSecond), 1)
			}
			for limit.Wait(ctx) == nil {
				t := tenants[rng.IntN(len(tenants))]
				stmts := writeSQL[table]
				began := time.Now()
				_, err := pool.Exec(context.WithoutCancel(ctx), stmts[rng.IntN(len(stmts))], t)
				took := int64(time.Since(began))
				for {
					old := w.slowest.Load()
					if took <= old || w.slowest.CompareAndSwap(old, took) {
						break
					}
				}
				if err != nil {
					w.failures.Add(1)
				} else {
					w.writes.Add(1)
				}
			}
		}(uint64(i))
	}
	return w
}

func (w *writerSet) stop() (writes, failures int64, slowest time.Duration) {
	w.cancel()
	w.wg.Wait()
	return w.writes.Load(), w.failures.Load(), time.Duration(w.slowest.Load())
}
