package migrate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/sigid/pgcapacity/internal/config"
)

var errDone = errors.New("done: roll back")

func mustExec(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func scalar[T any](t *testing.T, pool *pgxpool.Pool, sql string, args ...any) T {
	t.Helper()
	var v T
	if err := pool.QueryRow(context.Background(), sql, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

func startAndValidate(t *testing.T, m *Migrator, schema, table string, to int) int64 {
	t.Helper()
	ctx := context.Background()
	id, err := m.Start(ctx, StartRequest{
		PlanRequest: PlanRequest{Schema: schema, Table: table, Partitions: to, Thresholds: thresholds(), ForceDecreaseReason: "test"},
		Reason:      "test", Requester: "alice", Approver: "bob", Copy: CopyOptions{BatchSize: 200},
	})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	v, err := m.Validate(ctx, id, CopyOptions{})
	if err != nil || !v.OK {
		t.Fatalf("validate: %+v %v", v, err)
	}
	return id
}

// After a swap the new table serves everything the original did: the
// referencing foreign key, the view, privileges, row security, the user
// trigger, the comment, the publication; and ids continue without reuse.
func TestSwapCarriesDependents(t *testing.T) {
	ctx := context.Background()
	pool, _ := sigidDB(t, "referral", 16)
	for _, s := range []string{
		`DO $$ BEGIN CREATE ROLE app_reader; EXCEPTION WHEN duplicate_object THEN NULL; END $$`,
		`GRANT USAGE ON SCHEMA public TO app_reader`,
		`GRANT SELECT ON public.referral TO app_reader`,
		`GRANT SELECT, INSERT ON public.referral_redemption TO app_reader`,
		`GRANT UPDATE (max_redemptions) ON public.referral TO app_reader`,
		`ALTER TABLE public.referral ENABLE ROW LEVEL SECURITY`,
		`CREATE POLICY tenant_isolation ON public.referral USING (tenant_id = current_setting('app.tenant', true)::uuid)`,
		`CREATE TABLE public.referral_audit (n bigint)`,
		`CREATE FUNCTION public.audit_referral() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO public.referral_audit VALUES (NEW.referral_id); RETURN NULL; END $$`,
		`CREATE TRIGGER referral_audit AFTER INSERT ON public.referral FOR EACH ROW EXECUTE FUNCTION public.audit_referral()`,
		`CREATE VIEW public.referral_codes AS SELECT tenant_id, code FROM public.referral`,
		`GRANT SELECT ON public.referral_codes TO app_reader`,
		`CREATE PUBLICATION referral_pub FOR TABLE public.referral`,
	} {
		mustExec(t, pool, s)
	}
	m := New(pool, testLogger(t))
	maxBefore := scalar[int64](t, pool, `SELECT max(referral_id) FROM public.referral`)
	id := startAndValidate(t, m, "public", "referral", 32)
	if _, err := m.Swap(ctx, id, SwapOptions{NowReason: "test"}); err != nil {
		t.Fatalf("swap: %v", err)
	}
	mig := loadMig(t, pool, id)
	newOID := *mig.NewOID
	if got := scalar[uint32](t, pool, `SELECT 'public.referral'::regclass::oid`); got != newOID {
		t.Fatalf("public.referral is OID %d, want the new table %d", got, newOID)
	}
	if n := scalar[int](t, pool, `SELECT count(*) FROM pg_inherits WHERE inhparent = 'public.referral'::regclass`); n != 32 {
		t.Errorf("public.referral has %d partitions, want 32", n)
	}
	// The foreign key points at the new table, is validated and enforced.
	if n := scalar[int](t, pool, `SELECT count(*) FROM pg_constraint WHERE conrelid = 'public.referral_redemption'::regclass AND confrelid = $1 AND convalidated AND conname = 'referral_redemption_referral_fkey'`, newOID); n != 1 {
		t.Errorf("referral_redemption_referral_fkey on the parent referencing the new table: %d, want 1", n)
	}
	_, err := pool.Exec(ctx, `INSERT INTO public.referral_redemption (tenant_id, referral_id, redeemed_by) SELECT tenant_id, 999999999, gen_random_uuid() FROM public.tenant LIMIT 1`)
	if sqlState(err) != "23503" {
		t.Errorf("a redemption of a missing referral: %v, want a foreign key violation", err)
	}
	mustExec(t, pool, `INSERT INTO public.referral_redemption (tenant_id, referral_id, redeemed_by) SELECT tenant_id, referral_id, gen_random_uuid() FROM public.referral LIMIT 1`)
	// The view reads the new table.
	if n := scalar[int](t, pool, `SELECT count(*) FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid WHERE r.ev_class = 'public.referral_codes'::regclass AND d.refobjid = $1`, newOID); n == 0 {
		t.Error("the view referral_codes does not depend on the new table")
	}
	if a, b := scalar[int64](t, pool, `SELECT count(*) FROM public.referral_codes`), scalar[int64](t, pool, `SELECT count(*) FROM public.referral`); a != b {
		t.Errorf("the view answers %d rows, the table has %d", a, b)
	}
	// Ids continue past every id in use: the serial sequence now belongs to the new table.
	next := scalar[int64](t, pool, `INSERT INTO public.referral (tenant_id, code, referrer_user_id) SELECT tenant_id, 'after-swap', gen_random_uuid() FROM public.tenant LIMIT 1 RETURNING referral_id`)
	if next <= maxBefore {
		t.Errorf("new referral id %d reuses the range up to %d", next, maxBefore)
	}
	if seq := scalar[string](t, pool, `SELECT pg_get_serial_sequence('public.referral', 'referral_id')`); seq == "" {
		t.Error("the new table does not own the referral_id sequence")
	}
	// The user trigger fires on the new table, and only once per insert.
	if n := scalar[int](t, pool, `SELECT count(*) FROM public.referral_audit WHERE n = $1`, next); n != 1 {
		t.Errorf("audit trigger rows for the insert after the swap: %d, want 1", n)
	}
	// Privileges and row security hold for the application role.
	tenant := scalar[string](t, pool, `SELECT tenant_id::text FROM public.referral GROUP BY tenant_id ORDER BY count(*) DESC LIMIT 1`)
	want := scalar[int64](t, pool, `SELECT count(*) FROM public.referral WHERE tenant_id = $1::uuid`, tenant)
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		for _, s := range []string{`SET LOCAL ROLE app_reader`, `SET LOCAL row_security = on`, fmt.Sprintf(`SET LOCAL app.tenant = %s`, ql(tenant))} {
			if _, err := tx.Exec(ctx, s); err != nil {
				return err
			}
		}
		var got int64
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM public.referral`).Scan(&got); err != nil {
			return fmt.Errorf("app_reader reading referral: %w", err)
		}
		if got != want {
			t.Errorf("under row security app_reader sees %d rows, want the tenant's %d", got, want)
		}
		_, err := tx.Exec(ctx, `DELETE FROM public.referral`)
		if sqlState(err) != "42501" {
			t.Errorf("app_reader deleting from referral: %v, want permission denied", err)
		}
		return errDone
	})
	if err != nil && !errors.Is(err, errDone) {
		t.Fatal(err)
	}
	// Comment and publication membership moved.
	if c := scalar[string](t, pool, `SELECT coalesce(obj_description('public.referral'::regclass, 'pg_class'), '')`); c != scalar[string](t, pool, `SELECT coalesce(obj_description($1::oid, 'pg_class'), '')`, mig.OriginalOID) {
		t.Errorf("comment not carried: %q", c)
	}
	if n := scalar[int](t, pool, `SELECT count(*) FROM pg_publication_rel WHERE prrelid = $1`, newOID); n != 1 {
		t.Error("the new table is not in referral_pub")
	}
	if n := scalar[int](t, pool, `SELECT count(*) FROM pg_publication_rel WHERE prrelid = $1`, mig.OriginalOID); n != 0 {
		t.Error("the retained original is still in referral_pub")
	}
	// Reverse capture keeps the original current, and the audit trigger
	// does not fire on it while it is retained.
	auditBefore := scalar[int64](t, pool, `SELECT count(*) FROM public.referral_audit`)
	if err := m.Resume(ctx, id, CopyOptions{}, 0); err != nil {
		t.Fatal(err)
	}
	retained, _ := relName(ctx, pool, mig.OriginalOID)
	identical(t, pool, "public.referral", retained)
	if n := scalar[int64](t, pool, `SELECT count(*) FROM public.referral_audit`); n != auditBefore {
		t.Errorf("the audit trigger fired %d times during reverse replay", n-auditBefore)
	}
	// Roll back: everything returns to the original.
	if _, err := m.Rollback(ctx, id, SwapOptions{}); err != nil {
		t.Fatalf("rollback: %v", err)
	}
	if got := scalar[uint32](t, pool, `SELECT 'public.referral'::regclass::oid`); got != mig.OriginalOID {
		t.Fatalf("after rollback public.referral is OID %d, want the original %d", got, mig.OriginalOID)
	}
	if n := scalar[int](t, pool, `SELECT count(*) FROM pg_constraint WHERE conrelid = 'public.referral_redemption'::regclass AND confrelid = $1 AND convalidated`, mig.OriginalOID); n != 1 {
		t.Error("after rollback the foreign key does not reference the original")
	}
	next2 := scalar[int64](t, pool, `INSERT INTO public.referral (tenant_id, code, referrer_user_id) SELECT tenant_id, 'after-rollback', gen_random_uuid() FROM public.tenant LIMIT 1 RETURNING referral_id`)
	if next2 <= next {
		t.Errorf("id after rollback %d is not past %d", next2, next)
	}
	if n := scalar[int](t, pool, `SELECT count(*) FROM public.referral_audit WHERE n = $1`, next2); n != 1 {
		t.Errorf("audit trigger after rollback: %d rows, want 1", n)
	}
}

// A table whose schema and name need quoting, with a real identity column
// and a generated column.
func TestQuotedNamesAndIdentity(t *testing.T) {
	ctx := context.Background()
	url := pgtestDatabase(t)
	pool, err := NewPool(ctx, url, 8)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	mustExec(t, pool, `CREATE SCHEMA "Odd ""Schema"""`)
	mustExec(t, pool, `CREATE TABLE "Odd ""Schema"""."Audit""Log" (
		"Tenant Id" uuid NOT NULL,
		"ID" bigint GENERATED ALWAYS AS IDENTITY,
		"it's" text,
		len int GENERATED ALWAYS AS (length("it's")) STORED,
		PRIMARY KEY ("Tenant Id", "ID")) PARTITION BY HASH ("Tenant Id")`)
	for i := 0; i < 4; i++ {
		mustExec(t, pool, fmt.Sprintf(`CREATE TABLE "Odd ""Schema"""."Audit""Log_p%d" PARTITION OF "Odd ""Schema"""."Audit""Log" FOR VALUES WITH (MODULUS 4, REMAINDER %d)`, i, i))
	}
	mustExec(t, pool, `INSERT INTO "Odd ""Schema"""."Audit""Log" ("Tenant Id", "it's") SELECT gen_random_uuid(), repeat('x', g % 7) || '''$pgc$' FROM generate_series(1, 1500) g`)
	m := New(pool, testLogger(t))
	id := startAndValidate(t, m, `Odd "Schema"`, `Audit"Log`, 8)
	table := `"Odd ""Schema"""."Audit""Log"`
	maxID := scalar[int64](t, pool, `SELECT max("ID") FROM `+table)
	if _, err := m.Swap(ctx, id, SwapOptions{NowReason: "test"}); err != nil {
		t.Fatalf("swap: %v", err)
	}
	if n := scalar[int](t, pool, `SELECT count(*) FROM pg_inherits WHERE inhparent = $1::regclass`, table); n != 8 {
		t.Fatalf("%s has %d partitions after the swap, want 8", table, n)
	}
	next := scalar[int64](t, pool, `INSERT INTO `+table+` ("Tenant Id", "it's") VALUES (gen_random_uuid(), 'new') RETURNING "ID"`)
	if next <= maxID {
		t.Errorf("identity after the swap gave %d, reusing the range up to %d", next, maxID)
	}
	if l := scalar[int](t, pool, `SELECT len FROM `+table+` WHERE "ID" = $1`, next); l != 3 {
		t.Errorf("generated column: %d, want 3", l)
	}
	res, err := m.Rollback(ctx, id, SwapOptions{FullCountCheck: true})
	if err != nil {
		t.Fatalf("rollback: %v", err)
	}
	if want := scalar[int64](t, pool, `SELECT count(*) FROM `+table); res.Rows != want {
		t.Errorf("full count check reported %d rows, the table has %d", res.Rows, want)
	}
	next2 := scalar[int64](t, pool, `INSERT INTO `+table+` ("Tenant Id", "it's") VALUES (gen_random_uuid(), 'back') RETURNING "ID"`)
	if next2 <= next {
		t.Errorf("identity after the rollback gave %d, reusing the range up to %d", next2, next)
	}
	if err := m.Resume(ctx, id, CopyOptions{}, 0); err != nil {
		t.Fatal(err)
	}
	mig := loadMig(t, pool, id)
	shadow, _ := relName(ctx, pool, *mig.NewOID)
	identical(t, pool, table, shadow)
	if err := m.Abort(ctx, id, CopyOptions{}); err != nil {
		t.Fatalf("abort after rollback: %v", err)
	}
}

func pgtestDatabase(t *testing.T) string {
	t.Helper()
	return newDatabase(t)
}

// snapshotTable captures a table's content and physical identity: data,
// relfilenodes (no rewrite), indexes, constraints and triggers.
func snapshotTable(t *testing.T, pool *pgxpool.Pool, table string) string {
	t.Helper()
	return scalar[string](t, pool, `
		SELECT (SELECT md5(string_agg(x::text, ',' ORDER BY x::text)) FROM `+table+` x) || '|' ||
		       (SELECT string_agg(c.relname || ':' || c.relfilenode || ':' || coalesce(pg_get_indexdef(c.oid), ''), ',' ORDER BY c.relname)
		          FROM pg_partition_tree($1::regclass) pt JOIN pg_class c ON c.oid = pt.relid
		          LEFT JOIN pg_index i ON i.indrelid = c.oid) || '|' ||
		       (SELECT string_agg(ic.relname || ':' || ic.relfilenode, ',' ORDER BY ic.relname) FROM pg_partition_tree($1::regclass) pt
		          JOIN pg_index i ON i.indrelid = pt.relid JOIN pg_class ic ON ic.oid = i.indexrelid) || '|' ||
		       (SELECT string_agg(conname || ':' || pg_get_constraintdef(oid), ',' ORDER BY conname) FROM pg_constraint WHERE conrelid = $1::regclass) || '|' ||
		       (SELECT coalesce(string_agg(tgname, ',' ORDER BY tgname), '') FROM pg_trigger WHERE tgrelid IN (SELECT relid FROM pg_partition_tree($1::regclass)))`, table)
}

func TestAbortLeavesOriginalIntact(t *testing.T) {
	ctx := context.Background()
	pool, _ := sigidDB(t, "session", 8)
	before := snapshotTable(t, pool, "public.session")
	m := New(pool, testLogger(t))
	id := startAndValidate(t, m, "public", "session", 16)
	if err := m.Abort(ctx, id, CopyOptions{}); err != nil {
		t.Fatalf("abort: %v", err)
	}
	if after := snapshotTable(t, pool, "public.session"); after != before {
		t.Errorf("the original changed:\nbefore %s\nafter  %s", before, after)
	}
	if n := scalar[int](t, pool, `SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname LIKE 'n1\_%' OR (n.nspname = 'pgcapacity' AND c.relname LIKE 'm1\_%')`); n != 0 {
		t.Errorf("%d relations of the aborted migration remain", n)
	}
	if n := scalar[int](t, pool, `SELECT count(*) FROM pg_proc WHERE proname LIKE 'm1\_%'`); n != 0 {
		t.Errorf("%d functions of the aborted migration remain", n)
	}
	if mig := loadMig(t, pool, id); mig.Phase != PhaseAborted {
		t.Errorf("phase %s, want aborted", mig.Phase)
	}
	// Aborting twice is harmless; a new migration of the table may start.
	if err := m.Abort(ctx, id, CopyOptions{}); err != nil {
		t.Errorf("second abort: %v", err)
	}
	startAndValidate(t, m, "public", "session", 16)
}

func TestSwapWindowAndRollbackPeriod(t *testing.T) {
	ctx := context.Background()
	pool, _ := sigidDB(t, "tenant_subject_identifier", 4)
	m := New(pool, testLogger(t))
	id := startAndValidate(t, m, "public", "tenant_subject_identifier", 8)
	berlin, _ := time.LoadLocation("Europe/Berlin")
	// Friday 10:00 in Berlin: outside "Sat 02:00-04:00".
	m.SetClock(func() time.Time { return time.Date(2026, 11, 27, 10, 0, 0, 0, berlin) })
	_, err := m.Swap(ctx, id, SwapOptions{Window: "Sat 02:00-04:00 Europe/Berlin"})
	if !errors.Is(err, ErrOutsideWindow) {
		t.Fatalf("swap outside the window: %v, want refusal", err)
	}
	if mig := loadMig(t, pool, id); mig.Phase != PhaseReady {
		t.Fatalf("a refused swap changed the phase to %s", mig.Phase)
	}
	// Saturday 03:00 in Berlin is inside.
	m.SetClock(func() time.Time { return time.Date(2026, 11, 28, 3, 0, 0, 0, berlin) })
	if _, err := m.Swap(ctx, id, SwapOptions{Window: "Sat 02:00-04:00 Europe/Berlin", RollbackPeriod: 7 * 24 * time.Hour}); err != nil {
		t.Fatalf("swap inside the window: %v", err)
	}
	mig := loadMig(t, pool, id)
	m.SetClock(func() time.Time { return mig.SwappedAt.Add(6 * 24 * time.Hour) })
	if err := m.DropOld(ctx, id, 7*24*time.Hour, CopyOptions{}); err == nil || !strings.Contains(err.Error(), "rollback period") {
		t.Fatalf("drop-old before the rollback period: %v, want refusal", err)
	}
	if _, err := relName(ctx, pool, mig.OriginalOID); err != nil {
		t.Fatalf("the refused drop-old removed the original: %v", err)
	}
	m.SetClock(func() time.Time { return mig.SwappedAt.Add(7*24*time.Hour + time.Minute) })
	if err := m.DropOld(ctx, id, 7*24*time.Hour, CopyOptions{}); err != nil {
		t.Fatalf("drop-old after the rollback period: %v", err)
	}
	if n := scalar[int](t, pool, `SELECT count(*) FROM pg_class WHERE oid = $1`, mig.OriginalOID); n != 0 {
		t.Error("drop-old left the original")
	}
	if n := scalar[int](t, pool, `SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'pgcapacity\_m%'`); n != 0 {
		t.Errorf("drop-old left %d capture triggers", n)
	}
	if n := scalar[int](t, pool, `SELECT count(*) FROM pg_inherits WHERE inhparent = 'public.tenant_subject_identifier'::regclass`); n != 8 {
		t.Errorf("the table has %d partitions, want 8", n)
	}
	if _, err := m.Rollback(ctx, id, SwapOptions{}); err == nil {
		t.Error("rollback after drop-old was accepted")
	}
}

func TestPlanRefusals(t *testing.T) {
	ctx := context.Background()
	pool, _ := sigidDB(t, "session", 8)
	mustExec(t, pool, `CREATE TABLE public.by_range (id int PRIMARY KEY) PARTITION BY RANGE (id)`)
	mustExec(t, pool, `CREATE TABLE public.no_key (tenant_id uuid, v int) PARTITION BY HASH (tenant_id)`)
	mustExec(t, pool, `CREATE TABLE public.no_key_p0 PARTITION OF public.no_key FOR VALUES WITH (MODULUS 1, REMAINDER 0)`)
	m := New(pool, testLogger(t))
	// Before any migration the pgcapacity schema does not exist: plan works.
	if p, err := m.Plan(ctx, PlanRequest{Table: "session", Partitions: 16, Thresholds: thresholds()}); err != nil || len(p.Refusals) != 0 || p.AssumedID != 1 {
		t.Fatalf("plan on a database without migrations: %+v %v", p, err)
	}
	cases := []struct {
		name  string
		req   PlanRequest
		want  string
		start *StartRequest
	}{
		{name: "plain table", req: PlanRequest{Table: "tenant", Partitions: 8}, want: "is not partitioned"},
		{name: "range partitioned", req: PlanRequest{Table: "by_range", Partitions: 8}, want: "not by hash"},
		{name: "no key", req: PlanRequest{Table: "no_key", Partitions: 2}, want: "no primary key or unique key"},
		{name: "same count", req: PlanRequest{Table: "session", Partitions: 8}, want: "already has 8 partitions"},
		{name: "decrease without the rule", req: PlanRequest{Table: "session", Partitions: 4}, want: "pass --force-decrease"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.Thresholds = thresholds()
			p, err := m.Plan(ctx, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(strings.Join(p.Refusals, "\n"), tc.want) {
				t.Errorf("refusals %q, want one containing %q", p.Refusals, tc.want)
			}
			_, err = m.Start(ctx, StartRequest{PlanRequest: tc.req, Reason: "r", Requester: "a", Approver: "b"})
			var refused *RefusedError
			if !errors.As(err, &refused) {
				t.Errorf("start: %v, want a refusal", err)
			}
		})
	}
	p, err := m.Plan(ctx, PlanRequest{Table: "session", Partitions: 4, ForceDecreaseReason: "planning overhead measured by hand", Thresholds: thresholds()})
	if err != nil || len(p.Refusals) != 0 || p.Decrease == nil || p.Decrease.Forced == "" {
		t.Errorf("forced decrease: %+v %v", p, err)
	}
	p, err = m.Plan(ctx, PlanRequest{Table: "session", Partitions: 12, Thresholds: thresholds()})
	if err != nil || !strings.Contains(p.Relation, "neither a multiple nor a divisor") || !strings.Contains(p.Relation, "16 would be cheaper") {
		t.Errorf("8 -> 12 relation: %q %v", p.Relation, err)
	}
	var out strings.Builder
	p.Print(&out)
	for _, want := range []string{"CREATE TABLE \"public\".\"n1_session\" (LIKE \"public\".\"session\"", "CREATE TRIGGER \"pgcapacity_m1_capture\"", "ALTER TABLE \"public\".\"session\" RENAME TO \"o1_session\"", "CREATE OR REPLACE VIEW \"public\".\"active_session\""} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("plan output lacks %q", want)
		}
	}
	_, err = m.Start(ctx, StartRequest{PlanRequest: PlanRequest{Table: "session", Partitions: 16, Thresholds: thresholds()}, Reason: "r", Requester: "Alice", Approver: "alice "})
	if err == nil || !strings.Contains(err.Error(), "is the requester") {
		t.Errorf("approver equal to requester: %v", err)
	}
	_, err = m.Start(ctx, StartRequest{PlanRequest: PlanRequest{Table: "session", Partitions: 16, Thresholds: thresholds()}, Requester: "a", Approver: "b"})
	if err == nil || !strings.Contains(err.Error(), "--reason") {
		t.Errorf("missing reason: %v", err)
	}

	// Once the autovacuum-lag rule holds (dead rows above the trigger and no
	// vacuum for longer than the retention target), a decrease needs no force.
	for i := 0; i < 8; i++ {
		mustExec(t, pool, fmt.Sprintf(`ALTER TABLE public.session_p%d SET (autovacuum_enabled = false)`, i))
	}
	mustExec(t, pool, `UPDATE public.session SET user_agent = 'dead rows'`)
	th := thresholds()
	th.WriteRetentionTarget = config.Duration(time.Millisecond)
	deadline := time.Now().Add(30 * time.Second)
	for {
		p, err = m.Plan(ctx, PlanRequest{Table: "session", Partitions: 4, Thresholds: th})
		if err != nil {
			t.Fatal(err)
		}
		if p.Decrease != nil && p.Decrease.VacuumLagHolds {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the autovacuum-lag rule never held: %+v", p.Decrease)
		}
		time.Sleep(500 * time.Millisecond) // statistics reach pg_stat_user_tables within a second or so
	}
	if len(p.Refusals) != 0 {
		t.Errorf("a decrease while the autovacuum-lag rule holds was refused: %v", p.Refusals)
	}
}

func TestCollector(t *testing.T) {
	ctx := context.Background()
	pool, _ := sigidDB(t, "session", 4)
	c := NewCollector(time.Second)
	ms, err := c.Collect(ctx, pool)
	if err != nil || len(ms) != 0 {
		t.Fatalf("without the pgcapacity schema: %d metrics, %v; want none and no error", len(ms), err)
	}
	m := New(pool, testLogger(t))
	id := startAndValidate(t, m, "public", "session", 8)
	if _, err := m.Swap(ctx, id, SwapOptions{NowReason: "test", RollbackPeriod: time.Hour}); err != nil {
		t.Fatal(err)
	}
	ms, err = c.Collect(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*dto.Metric{}
	for _, metric := range ms {
		var d dto.Metric
		if err := metric.Write(&d); err != nil {
			t.Fatal(err)
		}
		name := metric.Desc().String()
		name = name[strings.Index(name, `"`)+1:]
		name = name[:strings.Index(name, `"`)]
		got[name] = &d
	}
	info := got["pgcapacity_migration_info"]
	if info == nil {
		t.Fatalf("no pgcapacity_migration_info among %v", keys(got))
	}
	labels := map[string]string{}
	for _, l := range info.GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	if labels["phase"] != "swapped" || labels["from_partitions"] != "4" || labels["to_partitions"] != "8" || labels["table"] != "session" {
		t.Errorf("info labels %v", labels)
	}
	rows := scalar[float64](t, pool, `SELECT count(*) FROM public.session`)
	if v := got["pgcapacity_migration_copied_rows"].GetGauge().GetValue(); v <= 0 || v > rows {
		t.Errorf("copied rows %v, table has %v", v, rows)
	}
	if v := got["pgcapacity_migration_estimated_rows"].GetGauge().GetValue(); v < got["pgcapacity_migration_copied_rows"].GetGauge().GetValue() {
		t.Errorf("estimated rows %v below copied", v)
	}
	for _, name := range []string{"pgcapacity_migration_swapped_timestamp_seconds", "pgcapacity_migration_rollback_deadline_timestamp_seconds", "pgcapacity_migration_old_table_retained_since_timestamp_seconds", "pgcapacity_migration_last_lock_hold_seconds"} {
		if got[name] == nil || got[name].GetGauge().GetValue() <= 0 {
			t.Errorf("%s missing or zero", name)
		}
	}
	if d := got["pgcapacity_migration_rollback_deadline_timestamp_seconds"].GetGauge().GetValue() - got["pgcapacity_migration_swapped_timestamp_seconds"].GetGauge().GetValue(); d < 3599 || d > 3601 {
		t.Errorf("rollback deadline %v s after the swap, want 3600", d)
	}
	if v := got["pgcapacity_migration_copy_progress_ratio"].GetGauge().GetValue(); v != 1 {
		t.Errorf("copy progress %v after the copy, want 1", v)
	}
	_ = prometheus.Labels{}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestStartBadInputLeavesNoSchema reproduces D8: start on a table that does
// not exist, or one that is refused, used to create the pgcapacity schema
// before refusing.
func TestStartBadInputLeavesNoSchema(t *testing.T) {
	ctx := context.Background()
	pool, _ := sigidDB(t, "session", 8)
	m := New(pool, testLogger(t))
	cases := []struct {
		name string
		req  PlanRequest
	}{
		{name: "missing table", req: PlanRequest{Table: "no_such_table", Partitions: 16}},
		{name: "refused", req: PlanRequest{Table: "session", Partitions: 8}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.Thresholds = thresholds()
			if _, err := m.Start(ctx, StartRequest{PlanRequest: tc.req, Reason: "r", Requester: "a", Approver: "b"}); err == nil {
				t.Fatal("start was accepted")
			}
			var exists bool
			if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_catalog.pg_namespace WHERE nspname = 'pgcapacity')`).Scan(&exists); err != nil {
				t.Fatal(err)
			}
			if exists {
				t.Error("the refused start created the pgcapacity schema")
			}
		})
	}
}
