package sigid

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/sigid/pgcapacity/internal/pgstat"
)

// Defaults of GenerateOptions fields left zero.
const (
	DefaultHugeTenants = 3
	DefaultHugeShare   = 0.4
)

// GenerateOptions size and seed the data. Start from DefaultGenerate.
type GenerateOptions struct {
	// Seed makes the data: the same seed and options give identical rows,
	// uuids included.
	Seed int64
	// Tenants is the number of tenants, at least 1.
	Tenants int
	// Total rows per hot table; referral_redemption follows Referrals (about
	// one redemption per referral). Every tenant gets at least one membership
	// (its owner) when Memberships >= Tenants.
	Sessions, Memberships, SubjectIdentifiers, Referrals int
	// HugeTenants are the few tenants that hold HugeShare of every hot table;
	// the other tenants share the rest along a Zipf-like long tail.
	// Zero: DefaultHugeTenants; negative: none.
	HugeTenants int
	// HugeShare is the share of every hot table held by the huge tenants
	// together, in (0, 1); zero: DefaultHugeShare.
	HugeShare float64
	// Schema is where Apply created the tables; empty: "public".
	Schema string
	// Now anchors every timestamp (ages of invitations, reviews, sessions);
	// zero: the current time. Set it for byte-identical data across runs.
	Now time.Time
	// Logger receives one line per loaded table with its rows and time;
	// nil: discarded.
	Logger *slog.Logger
}

// DefaultGenerate gives options for scale: 1 is a few thousand rows (tests),
// 1000 is millions (benchmarks). Scales below 1 count as 1.
func DefaultGenerate(scale int) GenerateOptions {
	scale = max(scale, 1)
	return GenerateOptions{
		Seed:               1,
		Tenants:            max(200, 100*scale),
		Sessions:           2000 * scale,
		Memberships:        1000 * scale,
		SubjectIdentifiers: 1000 * scale,
		Referrals:          300 * scale,
		HugeTenants:        DefaultHugeTenants,
		HugeShare:          DefaultHugeShare,
	}
}

// Counts are the rows Generate loaded per table.
type Counts struct {
	Tenants, Sessions, Memberships, SubjectIdentifiers, Referrals, Redemptions, Invitations, AccessReviews int64
}

// Total is the sum over all tables.
func (c Counts) Total() int64 {
	return c.Tenants + c.Sessions + c.Memberships + c.SubjectIdentifiers + c.Referrals + c.Redemptions + c.Invitations + c.AccessReviews
}

func (opts GenerateOptions) validate() error {
	if opts.Tenants < 1 {
		return fmt.Errorf("sigid: GenerateOptions.Tenants = %d: need at least one tenant; start from DefaultGenerate(1)", opts.Tenants)
	}
	for _, f := range []struct {
		name string
		n    int
	}{{"Sessions", opts.Sessions}, {"Memberships", opts.Memberships}, {"SubjectIdentifiers", opts.SubjectIdentifiers}, {"Referrals", opts.Referrals}} {
		if f.n < 0 {
			return fmt.Errorf("sigid: GenerateOptions.%s = %d: a row count cannot be negative; use 0 for an empty table", f.name, f.n)
		}
	}
	if opts.HugeTenants > opts.Tenants {
		return fmt.Errorf("sigid: GenerateOptions.HugeTenants = %d exceeds Tenants = %d: lower HugeTenants or raise Tenants", opts.HugeTenants, opts.Tenants)
	}
	if opts.HugeShare < 0 || opts.HugeShare >= 1 {
		return fmt.Errorf("sigid: GenerateOptions.HugeShare = %g: must be in (0, 1), or 0 for the default %g", opts.HugeShare, DefaultHugeShare)
	}
	return nil
}

// Generate loads deterministic, skewed data into the tables Apply created in
// opts.Schema: COPY per table, streamed, all in one transaction (a failure
// loads nothing), then moves the sequences past the loaded ids and ANALYZEs.
// The tables should be empty. While it loads, it holds ACCESS EXCLUSIVE locks
// on the tables with foreign keys (it drops and restores those keys). Should
// only the final ANALYZE fail, the data stays and the counts come back with
// the error.
func Generate(ctx context.Context, conn *pgx.Conn, opts GenerateOptions) (Counts, error) {
	if err := opts.validate(); err != nil {
		return Counts{}, err
	}
	g := newGenerator(opts)
	var c Counts
	tx, err := conn.Begin(ctx)
	if err != nil {
		return c, fmt.Errorf("sigid: starting the load transaction: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit

	loads := []struct {
		table   string
		columns []string
		rows    iter.Seq[[]any]
		count   *int64
	}{
		{"tenant", []string{"tenant_id", "name", "status", "created_at", "deleted_at"}, g.tenantRows, &c.Tenants},
		{"session", []string{"tenant_id", "session_id", "user_id", "created_at", "last_seen_at", "expires_at", "ip", "user_agent", "revoked_at"}, g.sessionRows, &c.Sessions},
		{"tenant_membership", []string{"tenant_id", "membership_id", "user_id", "role", "status", "mfa_enabled", "role_granted_at", "created_at", "updated_at"}, g.membershipRows, &c.Memberships},
		{"tenant_subject_identifier", []string{"tenant_id", "subject", "issuer", "user_id", "created_at"}, g.subjectRows, &c.SubjectIdentifiers},
		{"referral", []string{"tenant_id", "referral_id", "code", "referrer_user_id", "created_at", "expires_at", "max_redemptions"}, g.referralRows, &c.Referrals},
		{"referral_redemption", []string{"tenant_id", "redemption_id", "referral_id", "redeemed_by", "redeemed_at"}, g.redemptionRows, &c.Redemptions},
		{"invitation", []string{"invitation_id", "tenant_id", "email", "role", "status", "invited_at", "responded_at"}, g.invitationRows, &c.Invitations},
		{"access_review", []string{"tenant_id", "user_id", "reviewed_at", "reviewer_user_id", "outcome"}, g.accessReviewRows, &c.AccessReviews},
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	// Foreign keys are checked one row at a time during COPY (a few thousand
	// rows a second into a partitioned parent); like pg_restore, drop them
	// for the load and add them back after it, which checks every row at once.
	var deferred []foreignKey
	for _, l := range loads {
		fks, err := dropForeignKeys(ctx, tx, g.schema, l.table)
		if err != nil {
			return Counts{}, err
		}
		deferred = append(deferred, fks...)
	}
	for _, l := range loads {
		start := time.Now()
		n, err := copyRows(ctx, tx, g.schema, l.table, l.columns, l.rows)
		if err != nil {
			return Counts{}, err
		}
		*l.count = n
		logger.Info("sigid: loaded", "table", l.table, "rows", n, "duration", time.Since(start).Round(time.Millisecond))
	}
	start := time.Now()
	for _, fk := range deferred {
		if _, err := tx.Exec(ctx, "ALTER TABLE "+fk.table+" ADD CONSTRAINT "+pgx.Identifier{fk.name}.Sanitize()+" "+fk.definition); err != nil {
			return Counts{}, fmt.Errorf("sigid: restoring foreign key %s on %s after the load: %w", fk.name, fk.table, err)
		}
	}
	logger.Info("sigid: restored foreign keys", "count", len(deferred), "duration", time.Since(start).Round(time.Millisecond))

	// COPY wrote the ids; move each sequence past them so that later
	// inserts through the defaults do not collide.
	for _, s := range []struct {
		table, column string
		last          int64
	}{
		{"tenant_membership", "membership_id", c.Memberships},
		{"referral", "referral_id", c.Referrals},
		{"referral_redemption", "redemption_id", c.Redemptions},
	} {
		if _, err := tx.Exec(ctx, "SELECT setval(pg_get_serial_sequence($1, $2), $3, $4)",
			pgx.Identifier{g.schema, s.table}.Sanitize(), s.column, max(s.last, 1), s.last > 0); err != nil {
			return Counts{}, fmt.Errorf("sigid: moving the sequence of %s.%s past the loaded ids: %w", s.table, s.column, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return Counts{}, fmt.Errorf("sigid: committing the generated data: %w", err)
	}

	// ANALYZE of a partitioned table also analyzes each partition, so the
	// live-row statistics the collectors read are current.
	analyze := "ANALYZE "
	for i, table := range append(PlainTables(), hashTables...) {
		if i > 0 {
			analyze += ", "
		}
		analyze += pgx.Identifier{g.schema, table}.Sanitize()
	}
	start = time.Now()
	// The load's row counts must reach the statistics before ANALYZE sets
	// n_live_tup, or they are added again afterwards.
	if err := pgstat.Flush(ctx, conn); err != nil {
		return c, fmt.Errorf("sigid: %w", err)
	}
	if _, err := conn.Exec(ctx, analyze); err != nil {
		return c, fmt.Errorf("sigid: analyzing the generated tables: %w", err)
	}
	logger.Info("sigid: analyzed", "duration", time.Since(start).Round(time.Millisecond))
	return c, nil
}

// foreignKey is a constraint dropped for the load: its quoted table, its
// name and its definition as pg_get_constraintdef gives it.
type foreignKey struct{ table, name, definition string }

// dropForeignKeys drops the foreign keys of schema.table and returns them.
// Only top-level constraints: their partitions' copies go with them.
func dropForeignKeys(ctx context.Context, tx pgx.Tx, schema, table string) ([]foreignKey, error) {
	qualified := pgx.Identifier{schema, table}.Sanitize()
	rows, err := tx.Query(ctx, `
SELECT conname::text, pg_get_constraintdef(oid)
FROM pg_constraint
WHERE conrelid = to_regclass($1) AND contype = 'f' AND conparentid = 0
ORDER BY conname`, qualified)
	if err != nil {
		return nil, fmt.Errorf("sigid: reading the foreign keys of %s: %w", qualified, err)
	}
	fks, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (foreignKey, error) {
		fk := foreignKey{table: qualified}
		return fk, row.Scan(&fk.name, &fk.definition)
	})
	if err != nil {
		return nil, fmt.Errorf("sigid: reading the foreign keys of %s: %w", qualified, err)
	}
	for _, fk := range fks {
		if _, err := tx.Exec(ctx, "ALTER TABLE "+qualified+" DROP CONSTRAINT "+pgx.Identifier{fk.name}.Sanitize()); err != nil {
			return nil, fmt.Errorf("sigid: dropping foreign key %s of %s for the load: %w", fk.name, qualified, err)
		}
	}
	return fks, nil
}

// copyRows streams rows into schema.table with COPY.
func copyRows(ctx context.Context, tx pgx.Tx, schema, table string, columns []string, rows iter.Seq[[]any]) (int64, error) {
	next, stop := iter.Pull(rows)
	defer stop()
	n, err := tx.CopyFrom(ctx, pgx.Identifier{schema, table}, columns, &pullSource{next: next})
	if err != nil {
		if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.Code == "42P01" {
			return 0, fmt.Errorf("sigid: loading %s: %w; create the schema first with sigid.Apply using the same Schema", pgx.Identifier{schema, table}.Sanitize(), err)
		}
		return 0, fmt.Errorf("sigid: loading %s: %w", pgx.Identifier{schema, table}.Sanitize(), err)
	}
	return n, nil
}

// pullSource adapts a pulled iterator to pgx.CopyFromSource. The generators
// reuse one row slice; CopyFrom encodes each row before asking for the next.
type pullSource struct {
	next func() ([]any, bool)
	row  []any
}

func (s *pullSource) Next() bool {
	var ok bool
	s.row, ok = s.next()
	return ok
}

func (s *pullSource) Values() ([]any, error) { return s.row, nil }

func (s *pullSource) Err() error { return nil }

// Stream kinds: each table (and each purpose) draws from its own stream, and
// every row from its own seed within it, so a row depends only on (seed,
// kind, tenant, index): the tables can be generated in any order, and
// generating one table again to find, say, the administrators is exact.
const (
	kindTenant uint64 = iota + 1
	kindTenantID
	kindUserID
	kindSession
	kindMembership
	kindSubject
	kindReferral
	kindRedemption
	kindInvitation
	kindReview
)

type tenantInfo struct {
	id      pgtype.UUID
	created time.Time
	status  string
}

type generator struct {
	seed   uint64
	schema string
	now    time.Time
	pcg    *rand.PCG
	rng    *rand.Rand

	tenants []tenantInfo
	// Rows per tenant of each hot table.
	sessions, members, subjects, referrals []int32
	// referralBase[t] is the referral_id before tenant t's first referral.
	referralBase []int64
}

func newGenerator(opts GenerateOptions) *generator {
	now := opts.Now
	if now.IsZero() {
		now = time.Now().Truncate(time.Second)
	}
	huge := opts.HugeTenants
	switch {
	case huge == 0:
		huge = DefaultHugeTenants
	case huge < 0:
		huge = 0
	}
	huge = min(huge, opts.Tenants)
	share := opts.HugeShare
	if share == 0 {
		share = DefaultHugeShare
	}
	pcg := rand.NewPCG(0, 0)
	g := &generator{
		seed:   uint64(opts.Seed),
		schema: SchemaOptions{Schema: opts.Schema}.SchemaName(),
		now:    now.UTC().Truncate(time.Microsecond),
		pcg:    pcg,
		rng:    rand.New(pcg),
	}
	weights := tenantWeights(opts.Tenants, huge, share)
	g.sessions = allocate(opts.Sessions, weights, 0)
	g.members = allocate(opts.Memberships, weights, 1)
	g.subjects = allocate(opts.SubjectIdentifiers, weights, 0)
	g.referrals = allocate(opts.Referrals, weights, 0)
	g.referralBase = make([]int64, opts.Tenants)
	var base int64
	for t, n := range g.referrals {
		g.referralBase[t] = base
		base += int64(n)
	}

	g.tenants = make([]tenantInfo, opts.Tenants)
	for t := range g.tenants {
		r := g.reseed(kindTenant, t, 0)
		info := tenantInfo{
			id:      g.uuid(kindTenantID, t, 0),
			created: g.now.Add(-g.between(r, 30*day, 1500*day)),
			status:  "active",
		}
		if t >= huge {
			switch p := r.Float64(); {
			case p < 0.03:
				info.status = "deleted"
			case p < 0.07:
				info.status = "suspended"
			}
		}
		g.tenants[t] = info
	}
	// The admin-ops checks are tested against a known mix: make sure the
	// smallest tail tenants include a deleted and a suspended one.
	if n := opts.Tenants; n-huge >= 3 {
		g.tenants[n-1].status = "deleted"
		g.tenants[n-2].status = "suspended"
	}
	return g
}

const day = 24 * time.Hour

// tenantWeights gives each tenant its share of every hot table: the huge
// tenants split share as 1 : 1/2 : 1/3 …, the tail splits the rest along a
// Zipf-Mandelbrot curve 1/(rank+3), so even the tail is uneven.
func tenantWeights(tenants, huge int, share float64) []float64 {
	w := make([]float64, tenants)
	tail := tenants - huge
	if tail == 0 {
		share = 1
	}
	if huge == 0 {
		share = 0
	}
	var hugeSum, tailSum float64
	for i := range huge {
		hugeSum += 1 / float64(i+1)
	}
	for r := range tail {
		tailSum += 1 / float64(r+3)
	}
	for i := range huge {
		w[i] = share * (1 / float64(i+1)) / hugeSum
	}
	for r := range tail {
		w[huge+r] = (1 - share) * (1 / float64(r+3)) / tailSum
	}
	return w
}

// allocate splits total rows across tenants by weight, each tenant getting at
// least floor rows when there are enough; the sum is exactly total.
func allocate(total int, weights []float64, floor int) []int32 {
	n := len(weights)
	out := make([]int32, n)
	if total < floor*n {
		floor = 0
	}
	rest := total - floor*n
	given := 0
	for i, w := range weights {
		k := int(float64(rest) * w)
		out[i] = int32(floor + k)
		given += floor + k
	}
	// Rounding leftovers go to the largest tenants first.
	for i := 0; given < total; i = (i + 1) % n {
		out[i]++
		given++
	}
	return out
}

// reseed points the shared generator at the stream for (kind, tenant, row).
func (g *generator) reseed(kind uint64, tenant, row int) *rand.Rand {
	g.pcg.Seed(g.seed^kind*0x9e3779b97f4a7c15, mix(uint64(tenant)<<32^uint64(row)^kind<<58))
	return g.rng
}

// uuid derives a version-4-shaped uuid from (seed, kind, a, b).
func (g *generator) uuid(kind uint64, a, b int) pgtype.UUID {
	var p rand.PCG
	p.Seed(g.seed^kind*0xbf58476d1ce4e5b9, mix(uint64(a)<<32^uint64(b)^kind<<58))
	return randomUUID(&p)
}

func randomUUID(src rand.Source) pgtype.UUID {
	var u pgtype.UUID
	hi, lo := src.Uint64(), src.Uint64()
	for i := range 8 {
		u.Bytes[i] = byte(hi >> (56 - 8*i))
		u.Bytes[8+i] = byte(lo >> (56 - 8*i))
	}
	u.Bytes[6] = u.Bytes[6]&0x0f | 0x40
	u.Bytes[8] = u.Bytes[8]&0x3f | 0x80
	u.Valid = true
	return u
}

// mix is SplitMix64's finalizer: nearby inputs give unrelated seeds.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// between draws a duration in [lo, hi) at microsecond precision, the
// precision of timestamptz, so that what is loaded is what was generated.
func (g *generator) between(r *rand.Rand, lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(r.Int64N(int64((hi-lo)/time.Microsecond)))*time.Microsecond
}

// userID is the user behind membership i of tenant t; sessions, subject
// identifiers and referrals point at the same users.
func (g *generator) userID(t, i int) pgtype.UUID { return g.uuid(kindUserID, t, i) }

// someUser picks a member of tenant t, or a stranger when it has none.
func (g *generator) someUser(r *rand.Rand, t int) pgtype.UUID {
	if n := g.members[t]; n > 0 {
		return g.userID(t, r.IntN(int(n)))
	}
	return randomUUID(r)
}

func (g *generator) tenantRows(yield func([]any) bool) {
	row := make([]any, 5)
	for t, info := range g.tenants {
		var deleted any
		if info.status == "deleted" {
			r := g.reseed(kindTenant, t, 1)
			deleted = info.created.Add(g.between(r, 0, g.now.Sub(info.created)))
		}
		row[0], row[1], row[2], row[3], row[4] = info.id, tenantName(t), info.status, info.created, deleted
		if !yield(row) {
			return
		}
	}
}

var namePrefixes = []string{"acme", "globex", "initech", "umbrella", "stark", "wayne", "hooli", "vandelay", "tyrell", "wonka", "soylent", "cyberdyne"}

func tenantName(t int) string {
	return namePrefixes[t%len(namePrefixes)] + "-" + strconv.Itoa(t)
}

var userAgents = []string{
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
	"Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
	"SigID-Android/4.12.0 (Pixel 8; Android 14)",
	"sigid-cli/1.8.2",
}

func (g *generator) sessionRows(yield func([]any) bool) {
	row := make([]any, 9)
	for t, n := range g.sessions {
		for i := range int(n) {
			r := g.reseed(kindSession, t, i)
			created := g.now.Add(-g.between(r, 0, 30*day))
			lastSeen := created.Add(g.between(r, 0, min(g.now.Sub(created), 12*time.Hour)))
			var revoked any
			if r.Float64() < 0.05 {
				revoked = lastSeen.Add(g.between(r, 0, g.now.Sub(lastSeen)))
			}
			ip := netip.AddrFrom4([4]byte{byte(10 + r.IntN(180)), byte(r.IntN(256)), byte(r.IntN(256)), byte(1 + r.IntN(254))})
			row[0] = g.tenants[t].id
			row[1] = randomUUID(r)
			row[2] = g.someUser(r, t)
			row[3], row[4], row[5] = created, lastSeen, created.Add(14*day)
			row[6] = ip
			row[7] = userAgents[r.IntN(len(userAgents))]
			row[8] = revoked
			if !yield(row) {
				return
			}
		}
	}
}

// membership is one generated tenant_membership row.
type membership struct {
	userID                      pgtype.UUID
	role, status                string
	mfa                         bool
	created, granted, updatedAt time.Time
}

// membership generates row i of tenant t. Row 0 is the tenant's owner; rows
// 1 and 2 are often admins, later rows rarely. Administrators are mostly
// active and mostly enrolled in MFA, but not all: the admin-ops checks need
// offenders.
func (g *generator) membership(t, i int) membership {
	r := g.reseed(kindMembership, t, i)
	m := membership{userID: g.userID(t, i), role: "member", status: "active"}
	p := r.Float64()
	switch {
	case i == 0:
		m.role = "owner"
	case i == 1 && p < 0.7, i == 2 && p < 0.3, i > 2 && p < 0.01:
		m.role = "admin"
	}
	p = r.Float64()
	if m.role == "member" {
		switch {
		case p < 0.05:
			m.status = "removed"
		case p < 0.15:
			m.status = "suspended"
		}
		m.mfa = r.Float64() < 0.35
	} else {
		switch {
		case p < 0.02:
			m.status = "removed"
		case p < 0.08:
			m.status = "suspended"
		}
		m.mfa = r.Float64() < 0.8
	}
	tenantCreated := g.tenants[t].created
	m.created = tenantCreated.Add(g.between(r, 0, g.now.Sub(tenantCreated)))
	m.granted = m.created.Add(g.between(r, 0, g.now.Sub(m.created)))
	m.updatedAt = m.granted.Add(g.between(r, 0, g.now.Sub(m.granted)))
	return m
}

func (g *generator) membershipRows(yield func([]any) bool) {
	row := make([]any, 9)
	var id int64
	for t, n := range g.members {
		for i := range int(n) {
			m := g.membership(t, i)
			id++
			row[0], row[1], row[2] = g.tenants[t].id, id, m.userID
			row[3], row[4], row[5] = m.role, m.status, m.mfa
			row[6], row[7], row[8] = m.granted, m.created, m.updatedAt
			if !yield(row) {
				return
			}
		}
	}
}

var issuers = []string{"https://sigid.example/local", "https://accounts.google.com", "https://login.microsoftonline.com/common/v2.0", "https://okta.example.com/oauth2/default", "urn:saml:adfs.example.org"}

func (g *generator) subjectRows(yield func([]any) bool) {
	row := make([]any, 5)
	for t, n := range g.subjects {
		for i := range int(n) {
			r := g.reseed(kindSubject, t, i)
			issuer := issuers[r.IntN(len(issuers))]
			// The row index keeps (issuer, subject) unique within the tenant.
			var subject string
			if issuer == issuers[0] {
				subject = "user" + strconv.Itoa(i) + "@" + tenantName(t) + ".example"
			} else {
				subject = strconv.FormatUint(r.Uint64()>>16, 36) + "." + strconv.Itoa(i)
			}
			// Spread identifiers over the tenant's users, one or more each.
			var user pgtype.UUID
			if m := int(g.members[t]); m > 0 {
				user = g.userID(t, i%m)
			} else {
				user = randomUUID(r)
			}
			row[0], row[1], row[2], row[3] = g.tenants[t].id, subject, issuer, user
			row[4] = g.now.Add(-g.between(r, 0, g.now.Sub(g.tenants[t].created)))
			if !yield(row) {
				return
			}
		}
	}
}

// referral is one generated referral row.
type referral struct {
	id       int64
	code     string
	referrer pgtype.UUID
	created  time.Time
	expires  any
	max      int32
}

var maxRedemptions = []int32{1, 1, 1, 5, 10, 100}

const codeAlphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"

func (g *generator) referral(t, j int) referral {
	r := g.reseed(kindReferral, t, j)
	ref := referral{id: g.referralBase[t] + int64(j) + 1}
	// The index in base 36 keeps codes unique within the tenant.
	code := make([]byte, 0, 16)
	code = strconv.AppendInt(code, int64(j), 36)
	code = append(code, '-')
	for range 6 {
		code = append(code, codeAlphabet[r.IntN(len(codeAlphabet))])
	}
	ref.code = string(code)
	ref.referrer = g.someUser(r, t)
	ref.created = g.now.Add(-g.between(r, 0, 180*day))
	if r.Float64() < 0.8 {
		ref.expires = ref.created.Add(30 * day)
	}
	ref.max = maxRedemptions[r.IntN(len(maxRedemptions))]
	return ref
}

func (g *generator) referralRows(yield func([]any) bool) {
	row := make([]any, 7)
	for t, n := range g.referrals {
		for j := range int(n) {
			ref := g.referral(t, j)
			row[0], row[1], row[2], row[3] = g.tenants[t].id, ref.id, ref.code, ref.referrer
			row[4], row[5], row[6] = ref.created, ref.expires, ref.max
			if !yield(row) {
				return
			}
		}
	}
}

// redemptionRows gives each referral up to two redemptions (never more than
// it allows), within 30 days of its creation.
func (g *generator) redemptionRows(yield func([]any) bool) {
	row := make([]any, 5)
	var id int64
	for t, n := range g.referrals {
		for j := range int(n) {
			ref := g.referral(t, j)
			r := g.reseed(kindRedemption, t, j)
			k := min(r.IntN(3), int(ref.max))
			for range k {
				id++
				row[0], row[1], row[2] = g.tenants[t].id, id, ref.id
				row[3] = randomUUID(r)
				row[4] = ref.created.Add(g.between(r, 0, min(30*day, g.now.Sub(ref.created))))
				if !yield(row) {
					return
				}
			}
		}
	}
}

// invitationRows gives each tenant a few invitations (huge tenants more),
// aged up to 120 days: some pending for longer than the monthly review.
func (g *generator) invitationRows(yield func([]any) bool) {
	row := make([]any, 7)
	for t, info := range g.tenants {
		r := g.reseed(kindInvitation, t, 0)
		n := r.IntN(4)
		if g.members[t] > 100 {
			n += 20
		}
		for i := range n {
			r := g.reseed(kindInvitation, t, i+1)
			invited := g.now.Add(-g.between(r, time.Hour, 120*day))
			role := "member"
			if r.Float64() < 0.15 {
				role = "admin"
			}
			var status string
			switch p := r.Float64(); {
			case p < 0.35:
				status = "pending"
			case p < 0.80:
				status = "accepted"
			case p < 0.90:
				status = "revoked"
			default:
				status = "expired"
			}
			var responded any
			if status != "pending" {
				responded = invited.Add(g.between(r, 0, min(14*day, g.now.Sub(invited))))
			}
			row[0] = randomUUID(r)
			row[1] = info.id
			row[2] = "invitee" + strconv.Itoa(i) + "." + strconv.FormatUint(r.Uint64()>>40, 36) + "@example.net"
			row[3], row[4], row[5], row[6] = role, status, invited, responded
			if !yield(row) {
				return
			}
		}
	}
}

// accessReviewRows reviews each administrator (owner or admin): half within
// the last quarter, a quarter only longer ago than 90 days, a quarter never.
func (g *generator) accessReviewRows(yield func([]any) bool) {
	row := make([]any, 5)
	for t, n := range g.members {
		for i := range int(n) {
			m := g.membership(t, i)
			if m.role == "member" {
				continue
			}
			r := g.reseed(kindReview, t, i)
			var last time.Time
			switch p := r.Float64(); {
			case p < 0.5:
				last = g.now.Add(-g.between(r, day, 89*day))
			case p < 0.75:
				last = g.now.Add(-g.between(r, 91*day, 400*day))
			default:
				continue
			}
			reviewer := g.userID(t, 0)
			if i == 0 && n > 1 {
				reviewer = g.userID(t, 1)
			}
			// One to three quarterly reviews, the latest at last.
			for k := r.IntN(3); k >= 0; k-- {
				outcome := "approved"
				if r.Float64() < 0.05 {
					outcome = "role_reduced"
				}
				row[0], row[1], row[2], row[3], row[4] = g.tenants[t].id, m.userID, last.Add(-time.Duration(k)*91*day), reviewer, outcome
				if !yield(row) {
					return
				}
			}
		}
	}
}
