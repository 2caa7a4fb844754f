package sigid_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sigid/pgcapacity/internal/sigid"
	"github.com/sigid/pgcapacity/internal/throwaway/pgtest"
)

// fixedNow anchors generated timestamps so that runs compare byte for byte.
var fixedNow = time.Date(2025, 3, 14, 9, 26, 53, 589793000, time.UTC)

var allTables = append(sigid.PlainTables(), sigid.HashTables()...)

// load creates the schema and generates opts into it.
func load(t testing.TB, ctx context.Context, conn *pgx.Conn, schema sigid.SchemaOptions, opts sigid.GenerateOptions) sigid.Counts {
	t.Helper()
	if err := sigid.Apply(ctx, conn, schema); err != nil {
		t.Fatal(err)
	}
	opts.Schema = schema.Schema
	counts, err := sigid.Generate(ctx, conn, opts)
	if err != nil {
		t.Fatal(err)
	}
	return counts
}

// checksums is an md5 of every table's rows in primary key order.
func checksums(t *testing.T, ctx context.Context, conn *pgx.Conn, schema string) map[string]string {
	t.Helper()
	sums := map[string]string{}
	for _, table := range allTables {
		var sum string
		// ORDER BY the row itself: a total order whatever the primary key.
		q := fmt.Sprintf("SELECT md5(coalesce(string_agg(r::text, E'\\n' ORDER BY r::text), '')) FROM %s AS r",
			pgx.Identifier{schema, table}.Sanitize())
		if err := conn.QueryRow(ctx, q).Scan(&sum); err != nil {
			t.Fatalf("checksum of %s: %v", table, err)
		}
		sums[table] = sum
	}
	return sums
}

func TestGenerateIsDeterministic(t *testing.T) {
	ctx, conn := connect(t)
	opts := sigid.DefaultGenerate(1)
	opts.Seed = 7
	opts.Now = fixedNow
	schemas := []string{"first", `Sig ID "Second"`, "other_seed"}
	// Different partition counts must not change the data.
	load(t, ctx, conn, sigid.SchemaOptions{Schema: schemas[0], Partitions: map[string]int{"session": 4}}, opts)
	load(t, ctx, conn, sigid.SchemaOptions{Schema: schemas[1]}, opts)
	other := opts
	other.Seed = 8
	load(t, ctx, conn, sigid.SchemaOptions{Schema: schemas[2]}, other)

	first, second, third := checksums(t, ctx, conn, schemas[0]), checksums(t, ctx, conn, schemas[1]), checksums(t, ctx, conn, schemas[2])
	for _, table := range allTables {
		if first[table] != second[table] {
			t.Errorf("%s: seed 7 twice gave different rows (%s vs %s)", table, first[table], second[table])
		}
		if first[table] == third[table] {
			t.Errorf("%s: seeds 7 and 8 gave identical rows", table)
		}
	}
}

func TestGenerateCountsMatchTables(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts sigid.GenerateOptions
	}{
		{"default scale 1", sigid.DefaultGenerate(1)},
		{"one tenant", sigid.GenerateOptions{Seed: 3, Tenants: 1, Sessions: 50, Memberships: 20, SubjectIdentifiers: 10, Referrals: 5}},
		{"no huge tenants", sigid.GenerateOptions{Seed: 4, Tenants: 30, HugeTenants: -1, Sessions: 100, Memberships: 10, Referrals: 40}},
		{"empty hot tables", sigid.GenerateOptions{Seed: 5, Tenants: 10}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, conn := connect(t)
			schema := sigid.SchemaOptions{Schema: "Counts", Partitions: map[string]int{"session": 4, "tenant_membership": 4, "tenant_subject_identifier": 2, "referral": 2, "referral_redemption": 2}}
			got := load(t, ctx, conn, schema, tc.opts)
			want := map[string]int64{
				"tenant": got.Tenants, "session": got.Sessions, "tenant_membership": got.Memberships,
				"tenant_subject_identifier": got.SubjectIdentifiers, "referral": got.Referrals,
				"referral_redemption": got.Redemptions, "invitation": got.Invitations, "access_review": got.AccessReviews,
			}
			for _, table := range allTables {
				var n int64
				if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{"Counts", table}.Sanitize()).Scan(&n); err != nil {
					t.Fatal(err)
				}
				if n != want[table] {
					t.Errorf("%s: Generate reported %d rows, the table holds %d", table, want[table], n)
				}
			}
			requested := []struct {
				name      string
				got, want int64
			}{
				{"tenants", got.Tenants, int64(tc.opts.Tenants)},
				{"sessions", got.Sessions, int64(tc.opts.Sessions)},
				{"memberships", got.Memberships, int64(tc.opts.Memberships)},
				{"subject identifiers", got.SubjectIdentifiers, int64(tc.opts.SubjectIdentifiers)},
				{"referrals", got.Referrals, int64(tc.opts.Referrals)},
			}
			for _, r := range requested {
				if r.got != r.want {
					t.Errorf("%s: %d generated, %d requested", r.name, r.got, r.want)
				}
			}
			if got.Redemptions > 2*got.Referrals {
				t.Errorf("%d redemptions for %d referrals: at most two each", got.Redemptions, got.Referrals)
			}

			// The sequences are past the loaded ids: inserts through the
			// defaults work.
			tenant := "5b3c0f6e-8d6a-4d5c-9c59-5f1e3f7c2a10"
			var membershipID, referralID int64
			if err := conn.QueryRow(ctx, `INSERT INTO "Counts".tenant_membership (tenant_id, user_id) VALUES ($1, $1) RETURNING membership_id`, tenant).Scan(&membershipID); err != nil {
				t.Fatal(err)
			}
			if membershipID != got.Memberships+1 {
				t.Errorf("next membership_id %d, want %d", membershipID, got.Memberships+1)
			}
			if err := conn.QueryRow(ctx, `INSERT INTO "Counts".referral (tenant_id, code, referrer_user_id) VALUES ($1, 'NEW', $1) RETURNING referral_id`, tenant).Scan(&referralID); err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Exec(ctx, `INSERT INTO "Counts".referral_redemption (tenant_id, referral_id, redeemed_by) VALUES ($1, $2, $1)`, tenant, referralID); err != nil {
				t.Fatal(err)
			}
			// Before PostgreSQL 15 the statistics collector receives the
			// ANALYZE reports a moment later: poll.
			var analyzed int
			for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
				if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_user_tables WHERE schemaname = 'Counts' AND last_analyze IS NULL`).Scan(&analyzed); err != nil {
					t.Fatal(err)
				}
				if analyzed == 0 || time.Now().After(deadline) {
					break
				}
			}
			if analyzed != 0 {
				t.Errorf("%d tables or partitions were not analyzed", analyzed)
			}
		})
	}
}

// partitionRows counts the rows of each partition of table.
func partitionRows(t *testing.T, ctx context.Context, conn *pgx.Conn, schema, table string) []int64 {
	t.Helper()
	rows, err := conn.Query(ctx, fmt.Sprintf("SELECT count(*) FROM %s GROUP BY tableoid", pgx.Identifier{schema, table}.Sanitize()))
	if err != nil {
		t.Fatal(err)
	}
	counts, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatal(err)
	}
	return counts
}

// skew is max / median over all partitions, empty ones included.
func skew(counts []int64, partitions int) float64 {
	all := make([]int64, partitions)
	copy(all, counts)
	slices.Sort(all)
	median := float64(all[(partitions-1)/2]+all[partitions/2]) / 2
	return float64(all[partitions-1]) / median
}

// The demo must trip the skew rule: at DefaultGenerate(1) the largest
// session partition holds more than 4x the median, whatever the seed.
func TestGenerateSkewsSessions(t *testing.T) {
	ctx, conn := connect(t)
	for _, seed := range []int64{1, 2, 3, 42, 1000} {
		t.Run(strconv.FormatInt(seed, 10), func(t *testing.T) {
			schema := fmt.Sprintf("seed_%d", seed)
			opts := sigid.DefaultGenerate(1)
			opts.Seed = seed
			load(t, ctx, conn, sigid.SchemaOptions{Schema: schema}, opts)
			for _, table := range sigid.HashTables() {
				ratio := skew(partitionRows(t, ctx, conn, schema, table), sigid.DefaultPartitions)
				t.Logf("%s: max/median partition rows %.1f", table, ratio)
				if table == "session" && !(ratio > 4) {
					t.Errorf("session: max/median partition rows %.2f, want > 4", ratio)
				}
			}
		})
	}
}

// The admin-ops checks have something to find, and something to pass.
func TestGenerateAdminOpsMix(t *testing.T) {
	ctx, conn := connect(t)
	opts := sigid.DefaultGenerate(1)
	opts.Now = fixedNow
	load(t, ctx, conn, sigid.SchemaOptions{Schema: "ops"}, opts)
	if _, err := conn.Exec(ctx, "SET search_path = ops"); err != nil {
		t.Fatal(err)
	}
	now := fixedNow
	for _, tc := range []struct{ name, query string }{
		{"pending invitations older than 30 days", `SELECT count(*) FROM invitation WHERE status = 'pending' AND invited_at < $1::timestamptz - interval '30 days'`},
		{"recent pending invitations", `SELECT count(*) FROM invitation WHERE status = 'pending' AND invited_at >= $1::timestamptz - interval '30 days'`},
		{"answered invitations", `SELECT count(*) FROM invitation WHERE status <> 'pending' AND responded_at >= invited_at AND responded_at <= $1::timestamptz`},
		{"active admins never reviewed", `SELECT count(*) FROM tenant_membership m WHERE m.role IN ('owner', 'admin') AND m.status = 'active'
			AND NOT EXISTS (SELECT 1 FROM access_review r WHERE r.tenant_id = m.tenant_id AND r.user_id = m.user_id) AND $1::timestamptz IS NOT NULL`},
		{"active admins last reviewed over 90 days ago", `SELECT count(*) FROM tenant_membership m WHERE m.role IN ('owner', 'admin') AND m.status = 'active'
			AND (SELECT max(reviewed_at) FROM access_review r WHERE r.tenant_id = m.tenant_id AND r.user_id = m.user_id) < $1::timestamptz - interval '90 days'`},
		{"active admins reviewed this quarter", `SELECT count(*) FROM tenant_membership m WHERE m.role IN ('owner', 'admin') AND m.status = 'active'
			AND (SELECT max(reviewed_at) FROM access_review r WHERE r.tenant_id = m.tenant_id AND r.user_id = m.user_id) >= $1::timestamptz - interval '90 days'`},
		{"active admins without MFA", `SELECT count(*) FROM tenant_membership WHERE role IN ('owner', 'admin') AND status = 'active' AND NOT mfa_enabled AND $1::timestamptz IS NOT NULL`},
		{"active admins with MFA", `SELECT count(*) FROM tenant_membership WHERE role IN ('owner', 'admin') AND status = 'active' AND mfa_enabled AND $1::timestamptz IS NOT NULL`},
		{"tenants with exactly one active admin", `SELECT count(*) FROM (SELECT tenant_id FROM tenant_membership WHERE role IN ('owner', 'admin') AND status = 'active'
			GROUP BY tenant_id HAVING count(*) = 1) x WHERE $1::timestamptz IS NOT NULL`},
		{"tenants with at least two active admins", `SELECT count(*) FROM (SELECT tenant_id FROM tenant_membership WHERE role IN ('owner', 'admin') AND status = 'active'
			GROUP BY tenant_id HAVING count(*) >= 2) x WHERE $1::timestamptz IS NOT NULL`},
		{"suspended members", `SELECT count(*) FROM tenant_membership WHERE status = 'suspended' AND $1::timestamptz IS NOT NULL`},
		{"removed members", `SELECT count(*) FROM tenant_membership WHERE status = 'removed' AND $1::timestamptz IS NOT NULL`},
		{"deleted tenants", `SELECT count(*) FROM tenant WHERE status = 'deleted' AND deleted_at <= $1::timestamptz`},
		{"suspended tenants", `SELECT count(*) FROM tenant WHERE status = 'suspended' AND $1::timestamptz IS NOT NULL`},
		{"expired sessions", `SELECT count(*) FROM session WHERE expires_at < $1::timestamptz`},
		{"revoked sessions", `SELECT count(*) FROM session WHERE revoked_at <= $1::timestamptz`},
		{"redeemed referrals", `SELECT count(DISTINCT (tenant_id, referral_id)) FROM referral_redemption WHERE redeemed_at <= $1::timestamptz`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var n int
			if err := conn.QueryRow(ctx, tc.query, now).Scan(&n); err != nil {
				t.Fatal(err)
			}
			t.Logf("%d", n)
			if n == 0 {
				t.Errorf("none generated")
			}
		})
	}

	// Every tenant has its owner, and no row points at a tenant that does not exist.
	var ownerless, orphans int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM tenant t WHERE NOT EXISTS (SELECT 1 FROM tenant_membership m WHERE m.tenant_id = t.tenant_id AND m.role = 'owner')`).Scan(&ownerless); err != nil {
		t.Fatal(err)
	}
	if ownerless != 0 {
		t.Errorf("%d tenants without an owner", ownerless)
	}
	if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM session s WHERE NOT EXISTS (SELECT 1 FROM tenant t WHERE t.tenant_id = s.tenant_id))
		+ (SELECT count(*) FROM session s WHERE NOT EXISTS (SELECT 1 FROM tenant_membership m WHERE m.tenant_id = s.tenant_id AND m.user_id = s.user_id))`).Scan(&orphans); err != nil {
		t.Fatal(err)
	}
	if orphans != 0 {
		t.Errorf("%d sessions of unknown tenants or users", orphans)
	}
}

func TestGenerateRejectsBadOptions(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*sigid.GenerateOptions)
		want   string
	}{
		{"no tenants", func(o *sigid.GenerateOptions) { o.Tenants = 0 }, "Tenants = 0: need at least one tenant"},
		{"negative sessions", func(o *sigid.GenerateOptions) { o.Sessions = -1 }, "Sessions = -1: a row count cannot be negative"},
		{"negative referrals", func(o *sigid.GenerateOptions) { o.Referrals = -5 }, "Referrals = -5"},
		{"more huge tenants than tenants", func(o *sigid.GenerateOptions) { o.Tenants = 2; o.HugeTenants = 3 }, "HugeTenants = 3 exceeds Tenants = 2"},
		{"huge share of 1", func(o *sigid.GenerateOptions) { o.HugeShare = 1 }, "HugeShare = 1: must be in (0, 1)"},
		{"no schema", func(o *sigid.GenerateOptions) { o.Schema = "missing" }, `loading "missing"."tenant"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, conn := connect(t)
			opts := sigid.DefaultGenerate(1)
			tc.mutate(&opts)
			_, err := sigid.Generate(ctx, conn, opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Generate: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// A load that fails half way leaves the tables as they were.
func TestGenerateFailureLoadsNothing(t *testing.T) {
	ctx, conn := connect(t)
	if err := sigid.Apply(ctx, conn, sigid.SchemaOptions{}); err != nil {
		t.Fatal(err)
	}
	// Break a late table so that the earlier COPYs have already run.
	if _, err := conn.Exec(ctx, "ALTER TABLE access_review ADD CONSTRAINT no_reviews CHECK (false) NOT VALID"); err != nil {
		t.Fatal(err)
	}
	_, err := sigid.Generate(ctx, conn, sigid.DefaultGenerate(1))
	if err == nil || !strings.Contains(err.Error(), `loading "public"."access_review"`) {
		t.Fatalf("Generate into a broken access_review: %v", err)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT (SELECT count(*) FROM tenant) + (SELECT count(*) FROM session)").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("a failed Generate left %d rows behind", n)
	}
}

// BenchmarkGenerate prints the generator's throughput at a larger scale:
//
//	go test ./internal/sigid -run '^$' -bench Generate -benchtime 1x
//
// PGCAPACITY_BENCH_SCALE sets the DefaultGenerate scale (default 100: about
// 500,000 rows); PGCAPACITY_BENCH_TENANTS and PGCAPACITY_BENCH_MEMBERSHIPS
// override those two sizes (the capacity benchmarks of other packages use
// 100,000 tenants and 5,000,000 memberships).
func BenchmarkGenerate(b *testing.B) {
	env := func(name string, def int) int {
		s := os.Getenv(name)
		if s == "" {
			return def
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("%s=%q: want a positive integer", name, s)
		}
		return n
	}
	scale := env("PGCAPACITY_BENCH_SCALE", 100)
	opts := sigid.DefaultGenerate(scale)
	opts.Tenants = env("PGCAPACITY_BENCH_TENANTS", opts.Tenants)
	opts.Memberships = env("PGCAPACITY_BENCH_MEMBERSHIPS", opts.Memberships)
	opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	var rows int64
	var elapsed time.Duration
	for b.Loop() {
		b.StopTimer()
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, pgtest.NewDatabase(b, &cluster))
		if err != nil {
			b.Fatal(err)
		}
		if err := sigid.Apply(ctx, conn, sigid.SchemaOptions{}); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		counts, err := sigid.Generate(ctx, conn, opts)
		if err != nil {
			b.Fatal(err)
		}
		elapsed += time.Since(start)
		rows += counts.Total()
		b.StopTimer()
		conn.Close(ctx)
		b.Logf("scale %d: %+v in %s", scale, counts, time.Since(start).Round(time.Millisecond))
		b.StartTimer()
	}
	b.ReportMetric(float64(rows)/elapsed.Seconds(), "rows/s")
	b.ReportMetric(float64(rows)/float64(b.N), "rows/op")
}

// Generate drops the foreign keys for the load and adds them back: after it
// every constraint is there again, on the parents and on every partition.
func TestGenerateKeepsConstraints(t *testing.T) {
	ctx, conn := connect(t)
	schema := sigid.SchemaOptions{Schema: "Keep Me", Partitions: map[string]int{"referral": 3, "referral_redemption": 5}}
	if err := sigid.Apply(ctx, conn, schema); err != nil {
		t.Fatal(err)
	}
	constraints := func() []string {
		rows, err := conn.Query(ctx, `
SELECT c.relname || ' ' || con.conname || ' ' || con.contype::text || ' ' || pg_get_constraintdef(con.oid) || ' ' || con.convalidated
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1
ORDER BY 1`, schema.Schema)
		if err != nil {
			t.Fatal(err)
		}
		defs, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return defs
	}
	before := constraints()
	opts := sigid.DefaultGenerate(1)
	opts.Schema = schema.Schema
	if _, err := sigid.Generate(ctx, conn, opts); err != nil {
		t.Fatal(err)
	}
	after := constraints()
	if !slices.Equal(before, after) {
		t.Fatalf("Generate changed the constraints: %d before, %d after", len(before), len(after))
	}
	// The foreign key is back, validated, on the parent and each partition.
	for _, rel := range []string{"referral_redemption", "referral_redemption_p0", "referral_redemption_p4"} {
		want := rel + ` referral_redemption_referral_fkey f FOREIGN KEY (tenant_id, referral_id) REFERENCES "Keep Me".referral(tenant_id, referral_id) true`
		if !slices.Contains(after, want) {
			t.Errorf("missing after Generate: %s", want)
		}
	}
	for _, rel := range []string{"invitation", "access_review"} {
		want := rel + " " + rel + `_tenant_id_fkey f FOREIGN KEY (tenant_id) REFERENCES "Keep Me".tenant(tenant_id) true`
		if !slices.Contains(after, want) {
			t.Errorf("missing after Generate: %s", want)
		}
	}
}
