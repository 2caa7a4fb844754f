// Package sigid holds the reference schema of SigID, the multi-tenant identity
// service pgcapacity watches, and a deterministic generator of skewed data for
// it. Tests, benchmarks and the demo load it into a throwaway PostgreSQL.
package sigid

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DefaultPartitions is the hash partition count of a table that
// SchemaOptions.Partitions does not mention.
const DefaultPartitions = 16

// MaxPartitions bounds a partition count so that a typo (160000 for 16) is an
// error instead of an hour of DDL.
const MaxPartitions = 8192

// Execer runs a statement; *pgx.Conn, pgx.Tx and *pgxpool.Pool satisfy it.
type Execer interface {
	Exec(ctx context.Context, sql string, arguments ...any) (pgconn.CommandTag, error)
}

// SchemaOptions place and size the schema; the zero value is the default.
type SchemaOptions struct {
	// Schema is where every object goes; empty: "public". Created when missing.
	Schema string
	// Partitions is the hash partition count per table name (see HashTables);
	// a table not mentioned gets DefaultPartitions.
	Partitions map[string]int
}

// The hash-partitioned tables, in load order (referral before its redemptions).
var hashTables = []string{"session", "tenant_membership", "tenant_subject_identifier", "referral", "referral_redemption"}

// HashTables lists the tables partitioned BY HASH (tenant_id).
func HashTables() []string { return slices.Clone(hashTables) }

// PlainTables lists the admin-ops tables that are not partitioned.
func PlainTables() []string { return []string{"tenant", "invitation", "access_review"} }

// SchemaName is the schema opts place objects in: opts.Schema or "public".
func (opts SchemaOptions) SchemaName() string {
	if opts.Schema == "" {
		return "public"
	}
	return opts.Schema
}

// PartitionCount is the partition count opts give table.
func (opts SchemaOptions) PartitionCount(table string) int {
	if n, ok := opts.Partitions[table]; ok {
		return n
	}
	return DefaultPartitions
}

// Validate reports the first option that cannot work, naming the fix.
func (opts SchemaOptions) Validate() error {
	for table, n := range opts.Partitions {
		if !slices.Contains(hashTables, table) {
			return fmt.Errorf("sigid: Partitions[%q]: no such hash-partitioned table; use one of %s", table, strings.Join(hashTables, ", "))
		}
		if n < 1 || n > MaxPartitions {
			return fmt.Errorf("sigid: Partitions[%q] = %d: a partition count must be between 1 and %d", table, n, MaxPartitions)
		}
	}
	return nil
}

// Apply creates the SigID schema: the schema itself when missing, the
// admin-ops tables, the hash-partitioned hot tables with their partitions
// (<table>_p<i>), indexes, the foreign key into referral, and the
// active_session view. It runs as one statement batch, so it either creates
// everything or nothing. It fails when the objects already exist.
func Apply(ctx context.Context, db Execer, opts SchemaOptions) error {
	if err := opts.Validate(); err != nil {
		return err
	}
	schema := opts.SchemaName()
	// A multi-statement Exec without arguments goes over the simple protocol
	// as one implicit transaction: all or nothing.
	if _, err := db.Exec(ctx, schemaSQL(opts)); err != nil {
		return fmt.Errorf("creating the SigID schema in %s: %w", pgx.Identifier{schema}.Sanitize(), err)
	}
	return nil
}

// schemaSQL renders the DDL. Every identifier is quoted; the only other
// inputs are partition counts, which are integers.
func schemaSQL(opts SchemaOptions) string {
	schema := opts.SchemaName()
	q := func(name string) string { return pgx.Identifier{schema, name}.Sanitize() }
	id := func(name string) string { return pgx.Identifier{name}.Sanitize() }
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }

	w("CREATE SCHEMA IF NOT EXISTS %s;\n", pgx.Identifier{schema}.Sanitize())

	// Admin-ops: tenants.
	w(`CREATE TABLE %s (
	tenant_id  uuid PRIMARY KEY,
	name       text NOT NULL,
	status     text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended', 'deleted')),
	created_at timestamptz NOT NULL DEFAULT now(),
	deleted_at timestamptz,
	CHECK ((status = 'deleted') = (deleted_at IS NOT NULL))
);
`, q("tenant"))
	// The admin-ops checks leave deleted tenants out with an anti-join on this.
	w("CREATE INDEX %s ON %s (tenant_id) WHERE status = 'deleted';\n", id("tenant_deleted_idx"), q("tenant"))

	// Sessions: the hottest table, one row per login.
	w(`CREATE TABLE %s (
	tenant_id    uuid NOT NULL,
	session_id   uuid NOT NULL,
	user_id      uuid NOT NULL,
	created_at   timestamptz NOT NULL DEFAULT now(),
	last_seen_at timestamptz NOT NULL DEFAULT now(),
	expires_at   timestamptz NOT NULL,
	ip           inet,
	user_agent   text,
	revoked_at   timestamptz,
	PRIMARY KEY (tenant_id, session_id)
) PARTITION BY HASH (tenant_id);
`, q("session"))
	w("COMMENT ON TABLE %s IS 'Login sessions of SigID users, hash-partitioned by tenant.';\n", q("session"))
	w("CREATE INDEX %s ON %s (tenant_id, user_id);\n", id("session_tenant_user_idx"), q("session"))
	w("CREATE INDEX %s ON %s (tenant_id, expires_at);\n", id("session_tenant_expires_idx"), q("session"))
	// Not tenant-leading on purpose: the expiry sweeper scans across tenants.
	w("CREATE INDEX %s ON %s (expires_at);\n", id("session_expires_idx"), q("session"))

	// Memberships: users in tenants with their role, status and MFA; the
	// admin-ops checks read it too. membership_id is sequence-backed
	// (bigserial) because identity columns on partitioned tables only work
	// from PostgreSQL 17 on, and this schema must load on 13 to 18.
	w(`CREATE TABLE %s (
	tenant_id       uuid NOT NULL,
	membership_id   bigserial NOT NULL,
	user_id         uuid NOT NULL,
	role            text NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'admin', 'member')),
	status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended', 'removed')),
	mfa_enabled     boolean NOT NULL DEFAULT false,
	role_granted_at timestamptz NOT NULL DEFAULT now(),
	created_at      timestamptz NOT NULL DEFAULT now(),
	updated_at      timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (tenant_id, membership_id),
	UNIQUE (tenant_id, user_id)
) PARTITION BY HASH (tenant_id);
`, q("tenant_membership"))
	// Covers the admin-ops checks (unreviewed administrators, MFA, the
	// two-admin minimum) with index-only scans of the active administrators.
	w("CREATE INDEX %s ON %s (tenant_id, role) INCLUDE (user_id, mfa_enabled, role_granted_at) WHERE status = 'active' AND role IN ('owner', 'admin');\n",
		id("tenant_membership_active_admin_idx"), q("tenant_membership"))
	// Not tenant-leading: "which tenants is this user in" at login.
	w("CREATE INDEX %s ON %s (user_id);\n", id("tenant_membership_user_idx"), q("tenant_membership"))

	// Subject identifiers: (issuer, subject) pairs that resolve to a user.
	w(`CREATE TABLE %s (
	tenant_id  uuid NOT NULL,
	subject    text NOT NULL,
	issuer     text NOT NULL,
	user_id    uuid NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (tenant_id, issuer, subject)
) PARTITION BY HASH (tenant_id);
`, q("tenant_subject_identifier"))
	w("CREATE INDEX %s ON %s (tenant_id, user_id);\n", id("tenant_subject_identifier_tenant_user_idx"), q("tenant_subject_identifier"))

	// Referrals and their redemptions.
	w(`CREATE TABLE %s (
	tenant_id        uuid NOT NULL,
	referral_id      bigserial NOT NULL,
	code             text NOT NULL,
	referrer_user_id uuid NOT NULL,
	created_at       timestamptz NOT NULL DEFAULT now(),
	expires_at       timestamptz,
	max_redemptions  integer NOT NULL DEFAULT 1 CHECK (max_redemptions > 0),
	PRIMARY KEY (tenant_id, referral_id),
	UNIQUE (tenant_id, code)
) PARTITION BY HASH (tenant_id);
`, q("referral"))
	w("CREATE INDEX %s ON %s (tenant_id, referrer_user_id);\n", id("referral_tenant_referrer_idx"), q("referral"))

	w(`CREATE TABLE %s (
	tenant_id     uuid NOT NULL,
	redemption_id bigserial NOT NULL,
	referral_id   bigint NOT NULL,
	redeemed_by   uuid NOT NULL,
	redeemed_at   timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (tenant_id, redemption_id),
	CONSTRAINT %s FOREIGN KEY (tenant_id, referral_id) REFERENCES %s (tenant_id, referral_id)
) PARTITION BY HASH (tenant_id);
`, q("referral_redemption"), id("referral_redemption_referral_fkey"), q("referral"))
	// Serves the foreign key's checks and "who redeemed this referral".
	w("CREATE INDEX %s ON %s (tenant_id, referral_id);\n", id("referral_redemption_tenant_referral_idx"), q("referral_redemption"))

	for _, table := range hashTables {
		n := opts.PartitionCount(table)
		for i := range n {
			w("CREATE TABLE %s PARTITION OF %s FOR VALUES WITH (MODULUS %d, REMAINDER %d);\n",
				q(fmt.Sprintf("%s_p%d", table, i)), q(table), n, i)
		}
	}

	w(`CREATE VIEW %s AS
SELECT tenant_id, session_id, user_id, created_at, last_seen_at, expires_at, ip, user_agent
FROM %s
WHERE revoked_at IS NULL AND expires_at > now();
`, q("active_session"), q("session"))

	// Admin-ops: invitations (plain: small, and read across tenants by age).
	w(`CREATE TABLE %s (
	invitation_id uuid PRIMARY KEY,
	tenant_id     uuid NOT NULL REFERENCES %s (tenant_id),
	email         text NOT NULL,
	role          text NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'admin', 'member')),
	status        text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'accepted', 'revoked', 'expired')),
	invited_at    timestamptz NOT NULL DEFAULT now(),
	responded_at  timestamptz
);
`, q("invitation"), q("tenant"))
	// INCLUDE: the stale-invitations check reads it index-only.
	w("CREATE INDEX %s ON %s (invited_at) INCLUDE (tenant_id) WHERE status = 'pending';\n", id("invitation_pending_invited_at_idx"), q("invitation"))
	w("CREATE INDEX %s ON %s (tenant_id);\n", id("invitation_tenant_idx"), q("invitation"))

	// Admin-ops: access reviews; a plain table, so a real identity column.
	w(`CREATE TABLE %s (
	review_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	tenant_id        uuid NOT NULL REFERENCES %s (tenant_id),
	user_id          uuid NOT NULL,
	reviewed_at      timestamptz NOT NULL DEFAULT now(),
	reviewer_user_id uuid NOT NULL,
	outcome          text NOT NULL CHECK (outcome IN ('approved', 'role_reduced', 'access_removed'))
);
`, q("access_review"), q("tenant"))
	w("CREATE INDEX %s ON %s (tenant_id, user_id, reviewed_at DESC);\n", id("access_review_tenant_user_reviewed_idx"), q("access_review"))
	// The unreviewed-administrators check reads the recent reviews index-only.
	w("CREATE INDEX %s ON %s (reviewed_at) INCLUDE (tenant_id, user_id);\n", id("access_review_reviewed_idx"), q("access_review"))

	return b.String()
}
