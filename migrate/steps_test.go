package migrate

import (
	"context"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// recorder is a pgx QueryTracer that keeps the text of every statement
// sent, bound values left out.
type recorder struct {
	mu  sync.Mutex
	sql []string
}

func (r *recorder) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	r.mu.Lock()
	r.sql = append(r.sql, d.SQL)
	r.mu.Unlock()
	return ctx
}

func (r *recorder) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// take returns what was sent since the last take.
func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.sql
	r.sql = nil
	return out
}

// tracedPool opens a second pool like pool (NewPool's settings) whose
// statements r records.
func tracedPool(t *testing.T, pool *pgxpool.Pool, r *recorder) *pgxpool.Pool {
	t.Helper()
	cfg := pool.Config()
	cfg.ConnConfig.Tracer = r
	traced, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(traced.Close)
	return traced
}

var (
	// A statement that changes something, as opposed to a read.
	changing = regexp.MustCompile(`(?is)^\s*(CREATE|ALTER|DROP|LOCK|SET|GRANT|REVOKE|COMMENT|TRUNCATE|INSERT|UPDATE|DELETE|VACUUM|ANALYZE)\b|pg_catalog\.(setval|set_config\('deadlock_timeout')`)
	// The state store's own tables: what it writes is the store's business,
	// not a step's.
	stateTable = regexp.MustCompile(`pgcapacity\.(migration|migration_event|copy_progress|object_name|schema_version)\b|SCHEMA IF NOT EXISTS pgcapacity\b`)
)

// checkSent compares what a command sent with its steps in the plan: every
// step that always runs was sent, in order (steps that repeat per batch at
// least once), and every changing statement sent is one of the steps'.
func checkSent(t *testing.T, c CommandSteps, sent []string) {
	t.Helper()
	if len(c.Steps) == 0 {
		t.Fatalf("the plan lists no steps for %s", c.Command)
	}
	planned := map[string]bool{}
	at := 0
	for _, s := range c.Steps {
		for _, sql := range s.Sent() {
			planned[sql] = true
			if s.When != "" {
				continue
			}
			found := false
			for ; at < len(sent); at++ {
				if sent[at] == sql {
					found = true
					at++
					break
				}
			}
			if !found {
				t.Errorf("%s: step %q: the plan's statement was not sent (in this order):\n%s", c.Command, s.Name, sql)
				return
			}
		}
	}
	for _, sql := range sent {
		if changing.MatchString(sql) && !stateTable.MatchString(sql) && !planned[sql] {
			t.Errorf("%s sent a statement the plan does not list:\n%s", c.Command, sql)
		}
	}
}

func commandSteps(t *testing.T, p *Plan, command string) CommandSteps {
	t.Helper()
	for _, c := range p.Commands {
		if c.Command == command {
			return c
		}
	}
	t.Fatalf("the plan has no steps for %s", command)
	return CommandSteps{}
}

func planFor(t *testing.T, m *Migrator, table string, to int) *Plan {
	t.Helper()
	p, err := m.Plan(context.Background(), PlanRequest{Schema: "public", Table: table, Partitions: to, Thresholds: thresholds(), ForceDecreaseReason: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Refusals) > 0 {
		t.Fatalf("plan refused: %s", strings.Join(p.Refusals, "; "))
	}
	return p
}

// The plan is what runs: on the reference schema, the statements each
// command sends (recorded by a QueryTracer) are the steps `plan` printed
// for it before the migration started.
func TestPlanIsWhatRuns(t *testing.T) {
	ctx := context.Background()
	pool, _ := sigidDB(t, "referral", 16)
	rec := &recorder{}
	m := New(tracedPool(t, pool, rec), testLogger(t))

	plan := planFor(t, m, "referral", 32)
	rec.take()
	id, err := m.Start(ctx, StartRequest{
		PlanRequest: PlanRequest{Schema: "public", Table: "referral", Partitions: 32, Thresholds: thresholds()},
		Reason:      "test", Requester: "alice", Approver: "bob", Copy: CopyOptions{BatchSize: 200},
	})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	checkSent(t, commandSteps(t, plan, "start"), rec.take())
	if v, err := m.Validate(ctx, id, CopyOptions{}); err != nil || !v.OK {
		t.Fatalf("validate: %+v %v", v, err)
	}
	// Writes before each switch, so that the replay has work.
	write := func() {
		mustExec(t, pool, `INSERT INTO public.referral (tenant_id, code, referrer_user_id) SELECT tenant_id, md5(random()::text), gen_random_uuid() FROM public.tenant LIMIT 5`)
		mustExec(t, pool, `UPDATE public.referral SET max_redemptions = max_redemptions + 1 WHERE referral_id IN (SELECT referral_id FROM public.referral ORDER BY referral_id LIMIT 5)`)
	}
	write()
	rec.take()
	if _, err := m.Swap(ctx, id, SwapOptions{NowReason: "test"}); err != nil {
		t.Fatalf("swap: %v", err)
	}
	checkSent(t, commandSteps(t, plan, "swap"), rec.take())
	write()
	if _, err := m.Rollback(ctx, id, SwapOptions{}); err != nil {
		t.Fatalf("rollback: %v", err)
	}
	checkSent(t, commandSteps(t, plan, "rollback"), rec.take())
	if _, err := m.Swap(ctx, id, SwapOptions{NowReason: "test"}); err != nil {
		t.Fatalf("second swap: %v", err)
	}
	rec.take()
	if err := m.DropOld(ctx, id, 0, CopyOptions{}); err != nil {
		t.Fatalf("drop-old: %v", err)
	}
	checkSent(t, commandSteps(t, plan, "drop-old"), rec.take())

	plan = planFor(t, m, "referral", 16)
	id = startAndValidate(t, m, "public", "referral", 16)
	rec.take()
	if err := m.Abort(ctx, id, CopyOptions{}); err != nil {
		t.Fatalf("abort: %v", err)
	}
	checkSent(t, commandSteps(t, plan, "abort"), rec.take())
}

// A role that may read the table but not create one beside it still gets a
// plan: the renames PostgreSQL's index names would need are left out, and
// the plan says so. The savepoint leaves nothing behind either way.
func TestPlanWithoutCreatePrivilege(t *testing.T) {
	ctx := context.Background()
	pool, _ := sigidDB(t, "referral", 4)
	for _, s := range []string{
		`DO $$ BEGIN CREATE ROLE plan_reader LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$`,
		`GRANT USAGE ON SCHEMA public TO plan_reader`,
		`REVOKE CREATE ON SCHEMA public FROM PUBLIC`,
	} {
		mustExec(t, pool, s)
	}
	cfg := pool.Config()
	cfg.ConnConfig.User = "plan_reader"
	reader, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reader.Close)
	for _, tc := range []struct {
		name     string
		pool     *pgxpool.Pool
		wantNote bool
	}{
		{"owner", pool, false},
		{"reader", reader, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := planFor(t, New(tc.pool, testLogger(t)), "referral", 8)
			noted := false
			for _, n := range p.Notes {
				noted = noted || strings.Contains(n, "rolled-back savepoint")
			}
			if noted != tc.wantNote {
				t.Errorf("note about the new partitions' index names: %v, want %v (notes: %q)", noted, tc.wantNote, p.Notes)
			}
			swap := commandSteps(t, p, "swap")
			renamesPartitionIndex := false
			for _, s := range swap.Steps {
				for _, sql := range s.SQL {
					renamesPartitionIndex = renamesPartitionIndex || strings.Contains(sql, `ALTER INDEX "public"."n1_referral_p0_`)
				}
			}
			if renamesPartitionIndex == tc.wantNote {
				t.Errorf("the swap renames the new partitions' indexes: %v, want %v", renamesPartitionIndex, !tc.wantNote)
			}
			if n := scalar[int](t, pool, `SELECT count(*) FROM pg_class WHERE relname LIKE 'n1\_%'`); n != 0 {
				t.Errorf("the plan left %d relations named n1_...", n)
			}
		})
	}
}
