package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sigid/pgcapacity/migrate/state"
)

// lockRefusal is what a command says when another process holds the
// table's migration lock.
const lockRefusal = "another pgcapacity process is working on this table's migration"

// raceDB is a database with a small table under migration, driven through
// the built binary, with one application writer inserting into the table
// by name and a ledger of every insert that committed.
type raceDB struct {
	t    *testing.T
	bin  string
	url  string
	pool *pgxpool.Pool
	id   int64 // the migration being raced

	mu      sync.Mutex
	ledger  []int64
	errs    int
	next    int64 // the id the writer inserts next
	stopW   func()
	writers sync.WaitGroup
}

type result struct {
	args           []string
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("pgcapacity %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

func newRaceDB(t *testing.T, bin string) *raceDB {
	url := newDatabase(t, balancedTable...)
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return &raceDB{t: t, bin: bin, url: url, pool: pool, next: 1_000_000}
}

// command prepares one pgcapacity process.
func (d *raceDB) command(args ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	cmd := exec.Command(d.bin, args...)
	cmd.Env = append(os.Environ(), "PGCAPACITY_DATABASE_URL="+d.url, "PGCAPACITY_LOG_LEVEL=warn")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	return cmd, &stdout, &stderr
}

func wait(cmd *exec.Cmd, args []string, stdout, stderr *bytes.Buffer) result {
	err := cmd.Wait()
	r := result{args: args, stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		r.code, r.stderr = -1, err.Error()
	}
	return r
}

// must runs one process that has to succeed.
func (d *raceDB) must(args ...string) result {
	d.t.Helper()
	cmd, stdout, stderr := d.command(args...)
	if err := cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	r := wait(cmd, args, stdout, stderr)
	if r.code != 0 {
		d.t.Fatalf("%s", r)
	}
	return r
}

// race starts two processes, the second delay after the first, and waits
// for both.
func (d *raceDB) race(a, b []string, delay time.Duration) [2]result {
	d.t.Helper()
	var res [2]result
	cmds := make([]*exec.Cmd, 2)
	outs := make([][2]*bytes.Buffer, 2)
	for i, args := range [][]string{a, b} {
		cmd, stdout, stderr := d.command(args...)
		cmds[i], outs[i] = cmd, [2]*bytes.Buffer{stdout, stderr}
	}
	for i, cmd := range cmds {
		if i == 1 {
			time.Sleep(delay)
		}
		if err := cmd.Start(); err != nil {
			d.t.Fatal(err)
		}
	}
	for i, args := range [][]string{a, b} {
		res[i] = wait(cmds[i], args, outs[i][0], outs[i][1])
	}
	return res
}

func (d *raceDB) phase() string {
	d.t.Helper()
	var p string
	if err := d.pool.QueryRow(context.Background(), `SELECT phase FROM pgcapacity.migration WHERE id = $1`, d.id).Scan(&p); err != nil {
		d.t.Fatal(err)
	}
	return p
}

// start starts a migration of public.session to twice its partitions and
// validates it: the migration is then ready.
func (d *raceDB) start(extra ...string) {
	d.t.Helper()
	var parts int
	if err := d.pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_inherits WHERE inhparent = 'public.session'::regclass`).Scan(&parts); err != nil {
		d.t.Fatal(err)
	}
	args := append([]string{"migrate", "start", "--table", "session", "--partitions", strconv.Itoa(2 * parts), "--reason", "race test", "--requester", "alice", "--approver", "bob", "--batch-size", "200"}, extra...)
	out := d.must(args...)
	if _, err := fmt.Sscanf(out.stdout, "migration %d", &d.id); err != nil {
		d.t.Fatalf("no migration id in %s", out)
	}
	d.must("migrate", "validate", strconv.FormatInt(d.id, 10))
}

// write inserts rows through the table's name until stopped, keeping the
// ids that committed. An insert once sent is never cancelled, so that the
// ledger knows the fate of every one.
func (d *raceDB) write() {
	stop := make(chan struct{})
	d.stopW = func() { close(stop) }
	d.writers.Add(1)
	go func() {
		defer d.writers.Done()
		for {
			d.next++
			next := d.next
			_, err := d.pool.Exec(context.Background(), `INSERT INTO public.session (tenant_id, id) VALUES (gen_random_uuid(), $1)`, next)
			d.mu.Lock()
			if err != nil {
				d.errs++
			} else {
				d.ledger = append(d.ledger, next)
			}
			d.mu.Unlock()
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
}

func (d *raceDB) stopWriting() {
	d.stopW()
	d.writers.Wait()
}

// intact checks that nothing was lost: every row that committed is in the
// live table, which holds nothing else, and while the migration is active
// its shadow table equals the live one (validate compares row counts and
// checksums per partition after a resume has replayed the backlog).
func (d *raceDB) intact() {
	d.t.Helper()
	ctx := context.Background()
	// The writer pauses, so that the ledger and the table are compared at
	// one moment.
	d.stopWriting()
	defer d.write()
	var rows, found int64
	d.mu.Lock()
	ledger := append([]int64(nil), d.ledger...)
	errs := d.errs
	d.mu.Unlock()
	if err := d.pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE id = ANY($1)) FROM public.session`, ledger).Scan(&rows, &found); err != nil {
		d.t.Fatal(err)
	}
	if found != int64(len(ledger)) || rows != 2000+int64(len(ledger)) {
		var extra string
		_ = d.pool.QueryRow(ctx, `SELECT coalesce(string_agg(tenant_id || '/' || id, ' '), '') FROM public.session WHERE id > 2000 AND id <> ALL($1)`, ledger).Scan(&extra)
		d.t.Errorf("public.session has %d rows, %d of the %d committed inserts; want %d rows, all of them (rows not in the ledger: %s; %d inserts failed)", rows, found, len(ledger), 2000+len(ledger), extra, errs)
	}
	if errs > 0 {
		d.t.Logf("%d inserts failed (not committed, not in the ledger)", errs)
	}
	switch p := d.phase(); p {
	case "dropped", "aborted":
		var left int
		if err := d.pool.QueryRow(ctx, `SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'pgcapacity' AND c.relname LIKE 'm' || $1::bigint::text || '\_%'`, d.id).Scan(&left); err != nil || left != 0 {
			d.t.Errorf("migration %d is %s but %d of its objects are left (%v)", d.id, p, left, err)
		}
	default:
		id := strconv.FormatInt(d.id, 10)
		d.must("migrate", "resume", id)
		d.must("migrate", "validate", id)
	}
}

// Two operators running commands on one migration at the same moment: one
// wins, the other exits non-zero saying why, nothing is lost. Each pair
// races several times, with an application writing throughout.
func TestMigrateRaces(t *testing.T) {
	if cluster.Get(t).Major() < 14 {
		// migrate needs PostgreSQL 14 (TestMigrateCommand checks the refusal).
		t.Setenv("PGCAPACITY_DATABASE_URL", newDatabase(t, balancedTable...))
		var stdout, stderr bytes.Buffer
		code := run([]string{"migrate", "plan", "--table", "session", "--partitions", "4"}, &stdout, &stderr)
		if code != exitFinding || !strings.Contains(stdout.String()+stderr.String(), "PostgreSQL 14 or newer is needed") {
			t.Errorf("plan on PostgreSQL %d: exit %d, want the refusal\n%s%s", cluster.Get(t).Major(), code, stdout.String(), stderr.String())
		}
		return
	}
	bin := buildBinary(t)
	const rounds = 4
	delays := []time.Duration{0, 0, 30 * time.Millisecond, 150 * time.Millisecond}
	swap := func(d *raceDB) []string {
		return []string{"migrate", "swap", strconv.FormatInt(d.id, 10), "--now", "race test"}
	}
	abort := func(d *raceDB) []string { return []string{"migrate", "abort", strconv.FormatInt(d.id, 10)} }
	rollback := func(d *raceDB) []string { return []string{"migrate", "rollback", strconv.FormatInt(d.id, 10)} }
	dropOld := func(d *raceDB) []string {
		return []string{"migrate", "drop-old", strconv.FormatInt(d.id, 10), "--rollback-period", "0s"}
	}
	for _, tc := range []struct {
		name string
		a, b func(*raceDB) []string
		// prepare brings the migration to the phase the race starts
		// from, starting a new one when the last race finished it.
		prepare func(*raceDB)
		// outcome is the phase each side leaves when it wins.
		outcome [2]string
		// refusals are what each side may say when it loses.
		refusals [2][]string
	}{
		{
			name: "swap/abort", a: swap, b: abort,
			prepare: func(d *raceDB) {
				switch d.phase() {
				case "swapped":
					d.must(rollback(d)...)
				case "aborted":
					d.start()
				}
			},
			outcome:  [2]string{"swapped", "aborted"},
			refusals: [2][]string{{lockRefusal, "is aborted: swap applies only to a migration that is ready or rolled_back"}, {lockRefusal, "is swapped: roll it back first"}},
		},
		{
			name: "swap/swap", a: swap, b: swap,
			prepare: func(d *raceDB) {
				if d.phase() == "swapped" {
					d.must(rollback(d)...)
				}
			},
			outcome:  [2]string{"swapped", "swapped"},
			refusals: [2][]string{{lockRefusal, "is already swapped"}, {lockRefusal, "is already swapped"}},
		},
		{
			name: "rollback/drop-old", a: rollback, b: dropOld,
			prepare: func(d *raceDB) {
				if d.phase() == "dropped" {
					d.start()
				}
				d.must(swap(d)...)
			},
			outcome:  [2]string{"rolled_back", "dropped"},
			refusals: [2][]string{{lockRefusal, "is dropped: rollback applies only to a migration that is swapped"}, {lockRefusal, "is rolled_back: drop-old applies only to a migration that is swapped"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newRaceDB(t, bin)
			d.start()
			d.write()
			defer d.stopWriting()
			for round := 1; round <= rounds; round++ {
				tc.prepare(d)
				// Both orders, at once and staggered: the loser then
				// meets the winner's lock or the phase it left.
				delay := delays[(round-1)%len(delays)]
				var res [2]result
				if round%2 == 1 {
					res = d.race(tc.a(d), tc.b(d), delay)
				} else {
					r := d.race(tc.b(d), tc.a(d), delay)
					res = [2]result{r[1], r[0]}
				}
				winner := -1
				for i, r := range res {
					if r.code == 0 {
						if winner >= 0 {
							t.Fatalf("round %d: both won:\n%s\n%s", round, res[0], res[1])
						}
						winner = i
					}
				}
				if winner < 0 {
					t.Fatalf("round %d: neither won:\n%s\n%s", round, res[0], res[1])
				}
				loser := res[1-winner]
				clear := false
				for _, want := range tc.refusals[1-winner] {
					clear = clear || strings.Contains(loser.stderr, want)
				}
				if loser.code != exitError || !clear {
					t.Errorf("round %d: the loser's exit or message, want exit %d with one of %q:\n%s", round, exitError, tc.refusals[1-winner], loser)
				}
				if got := d.phase(); got != tc.outcome[winner] {
					t.Errorf("round %d: %s won but the migration is %s, want %s", round, strings.Join(res[winner].args, " "), got, tc.outcome[winner])
				}
				t.Logf("round %d (second process %v later): %q won; the other: %s", round, delay, strings.Join(res[winner].args[1:], " "), strings.TrimSpace(loser.stderr))
				d.intact()
			}
		})
	}

	t.Run("resume/resume", func(t *testing.T) {
		d := newRaceDB(t, bin)
		d.write()
		defer d.stopWriting()
		for round := 1; round <= rounds; round++ {
			// A copy interrupted mid-way (SIGINT, as Ctrl-C), resumed by two
			// processes at once; each copy takes seconds (rate-limited), so
			// the two overlap.
			var parts int
			if err := d.pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_inherits WHERE inhparent = 'public.session'::regclass`).Scan(&parts); err != nil {
				t.Fatal(err)
			}
			args := []string{"migrate", "start", "--table", "session", "--partitions", strconv.Itoa(2 * parts), "--reason", "race test", "--requester", "alice", "--approver", "bob",
				"--batch-size", "50", "--max-rows-per-second", "1000"}
			cmd, stdout, stderr := d.command(args...)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(30 * time.Second)
			for {
				var copied int64
				_ = d.pool.QueryRow(context.Background(), `SELECT coalesce(sum(copied_rows), 0) FROM pgcapacity.copy_progress p JOIN pgcapacity.migration m ON m.id = p.migration_id WHERE m.phase = 'copying'`).Scan(&copied)
				if copied > 0 {
					break
				}
				if time.Now().After(deadline) {
					_ = cmd.Process.Kill()
					t.Fatalf("the copy did not start: %s", stderr.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
			if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
			r := wait(cmd, args, stdout, stderr)
			if r.code != 130 {
				t.Fatalf("start interrupted by SIGINT: %s", r)
			}
			if _, err := fmt.Sscanf(r.stdout, "migration %d", &d.id); err != nil {
				t.Fatalf("no migration id: %s", r)
			}
			if p := d.phase(); p != "copying" {
				t.Fatalf("round %d: phase %s after the interrupted start, want copying", round, p)
			}
			if round%2 == 0 {
				// As a release before the version row left it: both
				// processes upgrade the state at once, one resumes.
				if _, err := d.pool.Exec(context.Background(), `DROP TABLE pgcapacity.schema_version`); err != nil {
					t.Fatal(err)
				}
			}
			resume := []string{"migrate", "resume", strconv.FormatInt(d.id, 10), "--batch-size", "50", "--max-rows-per-second", "1000"}
			res := d.race(resume, resume, delays[(round-1)%len(delays)])
			won := 0
			for _, r := range res {
				switch {
				case r.code == 0:
					won++
				case r.code != exitError || !strings.Contains(r.stderr, lockRefusal):
					t.Errorf("round %d: the loser's exit or message, want exit %d with %q:\n%s", round, exitError, lockRefusal, r)
				}
			}
			if won != 1 {
				t.Fatalf("round %d: %d resumes won, want 1:\n%s\n%s", round, won, res[0], res[1])
			}
			if p := d.phase(); p != "ready" {
				t.Errorf("round %d: phase %s after the resume, want ready", round, p)
			}
			var version int
			if err := d.pool.QueryRow(context.Background(), `SELECT version FROM pgcapacity.schema_version`).Scan(&version); err != nil || version != state.SchemaVersion {
				t.Errorf("round %d: state schema version %d (%v), want %d", round, version, err, state.SchemaVersion)
			}
			d.must("migrate", "validate", strconv.FormatInt(d.id, 10))
			d.must("migrate", "swap", strconv.FormatInt(d.id, 10), "--now", "race test")
			d.must("migrate", "drop-old", strconv.FormatInt(d.id, 10), "--rollback-period", "0s")
			d.intact()
		}
	})
}
