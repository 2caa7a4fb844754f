// Command adminops times the four admin-operations checks at scale: it loads
// the reference SigID schema with 100,000 tenants and 5 million memberships
// (and the invitations and access reviews the generator gives them) into a
// throwaway PostgreSQL, vacuums, and runs every check several times, as
// serve would (one READ ONLY transaction per check, statement timeout).
// The target: all four together under 2 s.
//
//	go run ./bench/adminops                       # the full size, about 2 minutes of loading
//	go run ./bench/adminops -tenants 1000 -memberships 50000   # a quick look
//	go run ./bench/adminops -database-url postgres://...       # an existing, loaded database
//	go run ./bench/adminops -hold              # load, print the URL, keep the server until Ctrl-C
//
// PGCAPACITY_* variables apply (for example PGCAPACITY_ADMINOPS_QUERIES_FILE).
// It exits 1 when the median round misses the target.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sigid/pgcapacity/collector/adminops"
	"github.com/sigid/pgcapacity/internal/config"
	"github.com/sigid/pgcapacity/internal/dbpool"
	"github.com/sigid/pgcapacity/internal/sigid"
	"github.com/sigid/pgcapacity/internal/throwaway"
)

type options struct {
	tenants, memberships, rounds, partitions int
	seed                                     int64
	target                                   time.Duration
	databaseURL                              string
	explain, hold                            bool
}

func main() {
	var o options
	flag.IntVar(&o.tenants, "tenants", 100_000, "tenants to load")
	flag.IntVar(&o.memberships, "memberships", 5_000_000, "tenant_membership rows to load")
	flag.IntVar(&o.partitions, "partitions", sigid.DefaultPartitions, "hash partitions of tenant_membership")
	flag.IntVar(&o.rounds, "rounds", 5, "measured rounds, after one warm-up round")
	flag.Int64Var(&o.seed, "seed", 1, "generator seed")
	flag.DurationVar(&o.target, "target", 2*time.Second, "the most the median round may take")
	flag.StringVar(&o.databaseURL, "database-url", "", "use this already loaded database instead of a throwaway one")
	flag.BoolVar(&o.explain, "explain", false, "print each check's EXPLAIN (ANALYZE, BUFFERS) after the rounds")
	flag.BoolVar(&o.hold, "hold", false, "after loading, print the database URL and keep the throwaway server until interrupted (for -database-url runs)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ok, err := run(ctx, o, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/adminops:", err)
		os.Exit(2)
	}
	if !ok {
		os.Exit(1)
	}
}

func run(ctx context.Context, o options, w io.Writer) (bool, error) {
	if o.rounds < 1 {
		return false, errors.New("-rounds must be at least 1")
	}
	url := o.databaseURL
	if url == "" {
		var cleanup func()
		var err error
		if url, cleanup, err = load(ctx, o, w); err != nil {
			return false, err
		}
		defer cleanup()
		if o.hold {
			fmt.Fprintf(w, "holding: run with -database-url '%s'; Ctrl-C stops the server\n", url)
			<-ctx.Done()
			return true, nil
		}
	}
	cfg, err := config.Load()
	if err != nil {
		return false, fmt.Errorf("configuration: %w", err)
	}
	c, err := adminops.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return false, err
	}
	poolCfg, err := dbpool.Config(url, dbpool.Options{StatementTimeout: cfg.QueryTimeout.D(), LockTimeout: cfg.LockTimeout.D()})
	if err != nil {
		return false, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, poolCfg)
	if err != nil {
		return false, fmt.Errorf("connecting: %w", err)
	}
	defer pool.Close()
	if err := c.Validate(ctx, pool); err != nil {
		return false, err
	}

	perCheck := map[string][]time.Duration{}
	var totals []time.Duration
	var last adminops.Result
	for round := 0; round <= o.rounds; round++ {
		start := time.Now()
		res, err := c.Run(ctx, pool)
		total := time.Since(start)
		if err != nil {
			return false, fmt.Errorf("round %d: %w", round, err)
		}
		if round == 0 {
			continue // warm-up: plans and caches
		}
		totals = append(totals, total)
		for _, cr := range res.Checks {
			perCheck[cr.Check] = append(perCheck[cr.Check], cr.Duration)
		}
		last = res
	}

	fmt.Fprintf(w, "\n%d measured rounds (after one warm-up):\n", o.rounds)
	tw := tabwriter.NewWriter(w, 1, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tMEDIAN\tMAX\tFINDINGS\tTENANTS")
	for _, cr := range last.Checks {
		d := perCheck[cr.Check]
		fmt.Fprintf(tw, "%s\t%v\t%v\t%d\t%d\n", cr.Check, ms(median(d)), ms(slices.Max(d)), cr.Findings, cr.TenantsAffected)
	}
	fmt.Fprintf(tw, "all four\t%v\t%v\t\t\n", ms(median(totals)), ms(slices.Max(totals)))
	if err := tw.Flush(); err != nil {
		return false, err
	}
	ok := median(totals) < o.target
	verdict := "PASS"
	if !ok {
		verdict = "FAIL"
	}
	fmt.Fprintf(w, "target: all four under %v (median round): %s\n", o.target, verdict)
	if o.explain {
		if err := explain(ctx, pool, c, w); err != nil {
			return ok, err
		}
	}
	return ok, nil
}

// load starts a throwaway PostgreSQL, creates and fills the schema, and
// vacuums so the visibility map is as autovacuum would leave it.
func load(ctx context.Context, o options, w io.Writer) (string, func(), error) {
	fmt.Fprintln(w, "starting a throwaway PostgreSQL ...")
	cluster, err := throwaway.Start(ctx, throwaway.Options{})
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { _ = cluster.Stop() }
	url, err := cluster.CreateDatabase(ctx, "bench_adminops")
	if err != nil {
		cleanup()
		return "", nil, err
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		cleanup()
		return "", nil, fmt.Errorf("connecting to load: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := sigid.Apply(ctx, conn, sigid.SchemaOptions{Partitions: map[string]int{"tenant_membership": o.partitions}}); err != nil {
		cleanup()
		return "", nil, err
	}
	gen := sigid.DefaultGenerate(1)
	gen.Seed, gen.Tenants, gen.Memberships = o.seed, o.tenants, o.memberships
	// Only the admin-ops tables matter here.
	gen.Sessions, gen.SubjectIdentifiers, gen.Referrals = 0, 0, 0
	fmt.Fprintf(w, "loading %d tenants and %d memberships (PostgreSQL %d) ...\n", o.tenants, o.memberships, cluster.Major())
	start := time.Now()
	counts, err := sigid.Generate(ctx, conn, gen)
	if err != nil {
		cleanup()
		return "", nil, err
	}
	if _, err := conn.Exec(ctx, "VACUUM (ANALYZE) tenant, tenant_membership, invitation, access_review"); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("vacuuming: %w", err)
	}
	fmt.Fprintf(w, "loaded and vacuumed in %v: %d tenants, %d memberships, %d invitations, %d access reviews\n",
		time.Since(start).Round(time.Second), counts.Tenants, counts.Memberships, counts.Invitations, counts.AccessReviews)
	return url, cleanup, nil
}

// explain prints each check's plan with the parameters of a round.
func explain(ctx context.Context, pool *pgxpool.Pool, c *adminops.Collector, w io.Writer) error {
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	params := adminops.Parameters{
		Now:                time.Now(),
		StaleInvitationAge: cfg.AdminopsStaleInvitationAge.D(),
		ReviewInterval:     cfg.AdminopsReviewInterval.D(),
		MinAdmins:          cfg.AdminopsMinAdmins,
	}.NamedArgs()
	for _, chk := range c.Checks() {
		if chk.Disabled {
			continue
		}
		// The query is the embedded default or the operator's own file, never request input.
		rows, err := pool.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS) "+chk.Query, params)
		if err != nil {
			return fmt.Errorf("explaining %s: %w", chk.Name, err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("explaining %s: %w", chk.Name, err)
		}
		fmt.Fprintf(w, "\n-- %s\n", chk.Name)
		for _, l := range lines {
			fmt.Fprintln(w, l)
		}
	}
	return nil
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) time.Duration { return d.Round(100 * time.Microsecond) }
