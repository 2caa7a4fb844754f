package sigid_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sigid/pgcapacity/internal/sigid"
	"github.com/sigid/pgcapacity/internal/throwaway/pgtest"
)

var cluster pgtest.Cluster

func TestMain(m *testing.M) { pgtest.Main(m, &cluster) }

// connect opens a connection to a fresh database, closed when t ends.
func connect(t *testing.T) (context.Context, *pgx.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	conn, err := pgx.Connect(ctx, pgtest.NewDatabase(t, &cluster))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return ctx, conn
}

func TestApplySchemaShape(t *testing.T) {
	partitions := map[string]int{"session": 8, "tenant_membership": 3, "referral": 1, "referral_redemption": 5}
	for _, schema := range []string{"", "public", "sigid", `Sig ID "prod"; DROP`} {
		t.Run(fmt.Sprintf("schema=%q", schema), func(t *testing.T) {
			ctx, conn := connect(t)
			opts := sigid.SchemaOptions{Schema: schema, Partitions: partitions}
			if err := sigid.Apply(ctx, conn, opts); err != nil {
				t.Fatal(err)
			}
			ns := opts.SchemaName()

			for _, table := range sigid.HashTables() {
				want := opts.PartitionCount(table)
				if _, set := partitions[table]; !set && want != sigid.DefaultPartitions {
					t.Fatalf("%s: unset partition count gives %d, want %d", table, want, sigid.DefaultPartitions)
				}
				var strategy, key string
				err := conn.QueryRow(ctx, `
SELECT p.partstrat::text, a.attname
FROM pg_partitioned_table p
JOIN pg_class c ON c.oid = p.partrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = p.partattrs[0]
WHERE n.nspname = $1 AND c.relname = $2 AND p.partnatts = 1`, ns, table).Scan(&strategy, &key)
				if err != nil {
					t.Fatalf("%s: reading partition key: %v", table, err)
				}
				if strategy != "h" || key != "tenant_id" {
					t.Errorf("%s: partitioned by %s(%s), want hash(tenant_id)", table, strategy, key)
				}

				rows, err := conn.Query(ctx, `
SELECT c.relname, pg_get_expr(c.relpartbound, c.oid)
FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = to_regclass($1)
ORDER BY c.relname`, pgx.Identifier{ns, table}.Sanitize())
				if err != nil {
					t.Fatal(err)
				}
				bounds := map[string]string{}
				for rows.Next() {
					var name, bound string
					if err := rows.Scan(&name, &bound); err != nil {
						t.Fatal(err)
					}
					bounds[name] = bound
				}
				if err := rows.Err(); err != nil {
					t.Fatal(err)
				}
				if len(bounds) != want {
					t.Errorf("%s: %d partitions, want %d", table, len(bounds), want)
				}
				for i := range want {
					name := fmt.Sprintf("%s_p%d", table, i)
					wantBound := fmt.Sprintf("FOR VALUES WITH (modulus %d, remainder %d)", want, i)
					if bounds[name] != wantBound {
						t.Errorf("partition %s: bound %q, want %q", name, bounds[name], wantBound)
					}
				}

				var pk []string
				err = conn.QueryRow(ctx, `
SELECT array_agg(a.attname::text ORDER BY k.ord)
FROM pg_constraint con
CROSS JOIN unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
WHERE con.conrelid = to_regclass($1) AND con.contype = 'p'`, pgx.Identifier{ns, table}.Sanitize()).Scan(&pk)
				if err != nil {
					t.Fatalf("%s: reading primary key: %v", table, err)
				}
				if len(pk) == 0 || pk[0] != "tenant_id" {
					t.Errorf("%s: primary key %v does not lead with tenant_id", table, pk)
				}

				var tenantLeading int
				err = conn.QueryRow(ctx, `
SELECT count(*) FILTER (WHERE a.attname = 'tenant_id')
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_am am ON am.oid = i.relam
JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = x.indkey[0]
WHERE x.indrelid = to_regclass($1) AND am.amname = 'btree'`, pgx.Identifier{ns, table}.Sanitize()).Scan(&tenantLeading)
				if err != nil {
					t.Fatal(err)
				}
				if tenantLeading < 2 {
					t.Errorf("%s: %d tenant-leading btree indexes (with the primary key), want at least 2", table, tenantLeading)
				}
			}

			var notLeading []string
			rows, err := conn.Query(ctx, `
SELECT i.relname::text
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = x.indkey[0]
WHERE n.nspname = $1 AND t.relkind = 'p' AND a.attname <> 'tenant_id'
ORDER BY 1`, ns)
			if err != nil {
				t.Fatal(err)
			}
			notLeading, err = pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(notLeading, ",") != "session_expires_idx,tenant_membership_user_idx" {
				t.Errorf("indexes of partitioned tables not led by tenant_id: %v", notLeading)
			}

			var fk string
			err = conn.QueryRow(ctx, `
SELECT pg_get_constraintdef(oid) FROM pg_constraint
WHERE conrelid = to_regclass($1) AND confrelid = to_regclass($2) AND contype = 'f' AND conparentid = 0`,
				pgx.Identifier{ns, "referral_redemption"}.Sanitize(), pgx.Identifier{ns, "referral"}.Sanitize()).Scan(&fk)
			if err != nil {
				t.Fatalf("reading the foreign key from referral_redemption into referral: %v", err)
			}
			if !strings.Contains(fk, "FOREIGN KEY (tenant_id, referral_id)") {
				t.Errorf("foreign key %q", fk)
			}

			for _, tc := range []struct{ table, column string }{
				{"tenant_membership", "membership_id"},
				{"referral", "referral_id"},
				{"referral_redemption", "redemption_id"},
				{"access_review", "review_id"},
			} {
				var seq *string
				if err := conn.QueryRow(ctx, "SELECT pg_get_serial_sequence($1, $2)", pgx.Identifier{ns, tc.table}.Sanitize(), tc.column).Scan(&seq); err != nil {
					t.Fatal(err)
				}
				if seq == nil {
					t.Errorf("%s.%s: no sequence behind it", tc.table, tc.column)
				}
			}
			var identity string
			if err := conn.QueryRow(ctx, "SELECT attidentity::text FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = 'review_id'",
				pgx.Identifier{ns, "access_review"}.Sanitize()).Scan(&identity); err != nil {
				t.Fatal(err)
			}
			if identity != "a" {
				t.Errorf("access_review.review_id: attidentity %q, want a (always)", identity)
			}

			// The view works, and so do the sequence defaults through the parent.
			tenant := "5b3c0f6e-8d6a-4d5c-9c59-5f1e3f7c2a10"
			if _, err := conn.Exec(ctx, fmt.Sprintf(
				"INSERT INTO %s (tenant_id, session_id, user_id, expires_at) VALUES ($1, $1, $1, now() + interval '1 hour')",
				pgx.Identifier{ns, "session"}.Sanitize()), tenant); err != nil {
				t.Fatal(err)
			}
			var active int
			if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{ns, "active_session"}.Sanitize()).Scan(&active); err != nil {
				t.Fatal(err)
			}
			if active != 1 {
				t.Errorf("active_session: %d rows, want 1", active)
			}
			var membershipID int64
			if err := conn.QueryRow(ctx, fmt.Sprintf(
				"INSERT INTO %s (tenant_id, user_id) VALUES ($1, $1) RETURNING membership_id",
				pgx.Identifier{ns, "tenant_membership"}.Sanitize()), tenant).Scan(&membershipID); err != nil {
				t.Fatal(err)
			}
			if membershipID != 1 {
				t.Errorf("first membership_id %d, want 1", membershipID)
			}
			_, err = conn.Exec(ctx, fmt.Sprintf(
				"INSERT INTO %s (tenant_id, referral_id, redeemed_by) VALUES ($1, 42, $1)",
				pgx.Identifier{ns, "referral_redemption"}.Sanitize()), tenant)
			if err == nil || !strings.Contains(err.Error(), "foreign key") {
				t.Errorf("redemption of a missing referral: %v, want a foreign key violation", err)
			}

			var comment *string
			if err := conn.QueryRow(ctx, "SELECT obj_description(to_regclass($1), 'pg_class')", pgx.Identifier{ns, "session"}.Sanitize()).Scan(&comment); err != nil {
				t.Fatal(err)
			}
			if comment == nil || *comment == "" {
				t.Error("session has no comment")
			}
		})
	}
}

func TestApplyRejectsBadOptions(t *testing.T) {
	for _, tc := range []struct {
		name  string
		parts map[string]int
		want  string
	}{
		{"unknown table", map[string]int{"sesion": 4}, `Partitions["sesion"]: no such hash-partitioned table; use one of session`},
		{"zero", map[string]int{"session": 0}, `Partitions["session"] = 0: a partition count must be between 1 and`},
		{"negative", map[string]int{"referral": -3}, `Partitions["referral"] = -3`},
		{"too many", map[string]int{"referral": sigid.MaxPartitions + 1}, "between 1 and 8192"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := sigid.SchemaOptions{Partitions: tc.parts}.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// A failing Apply leaves nothing behind, and a second Apply does not touch
// the first one's objects.
func TestApplyIsAllOrNothing(t *testing.T) {
	ctx, conn := connect(t)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA clash; CREATE TABLE clash.access_review (x int)"); err != nil {
		t.Fatal(err)
	}
	err := sigid.Apply(ctx, conn, sigid.SchemaOptions{Schema: "clash"})
	if err == nil || !strings.Contains(err.Error(), `creating the SigID schema in "clash"`) || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("Apply over an existing access_review: %v", err)
	}
	var tables int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'clash'").Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables != 1 {
		t.Fatalf("a failed Apply left %d relations in the schema, want only the one that was there", tables)
	}

	if err := sigid.Apply(ctx, conn, sigid.SchemaOptions{Schema: "twice", Partitions: map[string]int{"session": 2}}); err != nil {
		t.Fatal(err)
	}
	if err := sigid.Apply(ctx, conn, sigid.SchemaOptions{Schema: "twice"}); err == nil {
		t.Fatal("a second Apply into the same schema succeeded")
	}
	var parts int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_inherits WHERE inhparent = 'twice.session'::regclass").Scan(&parts); err != nil {
		t.Fatal(err)
	}
	if parts != 2 {
		t.Fatalf("after a failed second Apply session has %d partitions, want 2", parts)
	}
}
