package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestMigratePgbenchAccounts: migrate on a schema we did not design, made
// by the real `pgbench -i --partitions --partition-method=hash`, while
// pgbench runs its TPC-B transactions: pgbench_accounts goes from 4 to 8
// hash partitions through start, validate, swap, rollback, a second swap and
// drop-old, and TPC-B's invariant proves nothing was lost or doubled: the
// accounts' balances sum to the history's deltas, as the tellers' and the
// branches' do.
func TestMigratePgbenchAccounts(t *testing.T) {
	pgbench := pgbenchBinary(t)
	dbURL := newDatabase(t)
	if out, err := exec.Command(pgbench, "-i", "-q", "-s", "2", "--partitions", "4", "--partition-method=hash", dbURL).CombinedOutput(); err != nil {
		t.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	t.Setenv("PGCAPACITY_DATABASE_URL", dbURL)
	migrate := func(args ...string) string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		if code := run(append([]string{"migrate"}, args...), &stdout, &stderr); code != exitOK {
			t.Fatalf("migrate %s: exit %d\n%s%s", strings.Join(args, " "), code, stdout.String(), stderr.String())
		}
		return stdout.String()
	}
	start := []string{"start", "--table", "pgbench_accounts", "--partitions", "8", "--reason", "pgbench test", "--requester", "alice", "--approver", "bob", "--batch-size", "5000"}
	if cluster.Get(t).Major() < 14 {
		var stdout, stderr bytes.Buffer
		if code := run(append([]string{"migrate"}, start...), &stdout, &stderr); code == exitOK || !strings.Contains(stdout.String()+stderr.String(), "PostgreSQL 14 or newer") {
			t.Fatalf("PostgreSQL %d: want start refused (needs 14), got exit %d\n%s%s", cluster.Get(t).Major(), code, stdout.String(), stderr.String())
		}
		return
	}

	// A steady TPC-B load (50 transactions a second) through every step.
	load := exec.Command(pgbench, "-n", "-c", "2", "-j", "1", "-R", "50", "-T", "600", dbURL)
	var loadOut bytes.Buffer
	load.Stdout, load.Stderr = &loadOut, &loadOut
	if err := load.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = load.Process.Kill(); _ = load.Wait() })
	var before int
	if err := pgxConnQueryInt(dbURL, "SELECT count(*) FROM pgbench_history", &before); err != nil {
		t.Fatal(err)
	}

	var id int64
	if _, err := fmt.Sscanf(migrate(start...), "migration %d", &id); err != nil {
		t.Fatalf("no migration id in start's output: %v", err)
	}
	ids := fmt.Sprint(id)
	migrate("validate", ids)
	migrate("swap", ids, "--now", "pgbench test")
	migrate("rollback", ids)
	migrate("swap", ids, "--now", "pgbench test")
	migrate("drop-old", ids, "--rollback-period", "0s")

	if err := load.Process.Signal(os.Interrupt); err == nil {
		_ = load.Wait()
	}
	if out := loadOut.String(); strings.Contains(out, "ERROR") || strings.Contains(out, "aborted") {
		t.Errorf("pgbench met errors during the migration:\n%s", lastLines(out, 20))
	}

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var accounts, parts, history int64
	var abalance, delta, tbalance, bbalance int64
	if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM pgbench_accounts),
		(SELECT count(*) FROM pg_inherits WHERE inhparent = 'pgbench_accounts'::regclass),
		(SELECT count(*) FROM pgbench_history),
		(SELECT coalesce(sum(abalance), 0) FROM pgbench_accounts),
		(SELECT coalesce(sum(delta), 0) FROM pgbench_history),
		(SELECT coalesce(sum(tbalance), 0) FROM pgbench_tellers),
		(SELECT coalesce(sum(bbalance), 0) FROM pgbench_branches)`).Scan(&accounts, &parts, &history, &abalance, &delta, &tbalance, &bbalance); err != nil {
		t.Fatal(err)
	}
	t.Logf("pgbench committed %d transactions during the migration", history-int64(before))
	if accounts != 200000 || parts != 8 {
		t.Errorf("pgbench_accounts has %d rows in %d partitions, want 200000 in 8", accounts, parts)
	}
	if history <= int64(before) {
		t.Errorf("pgbench committed no transaction during the migration (%d before, %d after)", before, history)
	}
	if abalance != delta || tbalance != delta || bbalance != delta {
		t.Errorf("TPC-B invariant broken: accounts %d, tellers %d, branches %d, history %d", abalance, tbalance, bbalance, delta)
	}
}
