package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sigid/pgcapacity/internal/sigid"
	"github.com/sigid/pgcapacity/internal/throwaway/pgtest"
)

// The migrate subcommands end to end through the command line, on the
// reference schema: exit codes, refusals and what an operator reads.
func TestMigrateCommand(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t, &cluster)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if err := sigid.Apply(ctx, conn, sigid.SchemaOptions{Partitions: map[string]int{"session": 4}}); err != nil {
		t.Fatal(err)
	}
	if _, err := sigid.Generate(ctx, conn, sigid.DefaultGenerate(1)); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	t.Setenv("PGCAPACITY_DATABASE_URL", url)
	t.Setenv("PGCAPACITY_LOG_LEVEL", "warn")
	if cluster.Get(t).Major() < 14 {
		// migrate needs TID range scans (14+): on 13 the plan refuses.
		var stdout, stderr bytes.Buffer
		code := run([]string{"migrate", "plan", "--table", "session", "--partitions", "8"}, &stdout, &stderr)
		if code != exitFinding || !strings.Contains(stdout.String()+stderr.String(), "PostgreSQL 14 or newer is needed") {
			t.Errorf("on PostgreSQL %d: exit %d\n%s%s", cluster.Get(t).Major(), code, stdout.String(), stderr.String())
		}
		return
	}
	// A window three days from now never contains now.
	away := time.Now().UTC().Add(72 * time.Hour).Weekday().String()[:3]
	steps := []struct {
		args []string
		code int
		out  string // in stdout (or stderr when the code is 2)
	}{
		{[]string{"migrate"}, exitOK, "usage: pgcapacity migrate COMMAND"},
		{[]string{"migrate", "nosuch"}, exitError, `unknown migrate command "nosuch"`},
		{[]string{"migrate", "status"}, exitOK, "no migrations"},
		{[]string{"migrate", "plan", "--table", "session", "--partitions", "8"}, exitOK, "ALTER TABLE \"public\".\"n1_session\" RENAME TO \"session\""},
		{[]string{"migrate", "plan", "--table", "session", "--partitions", "8", "--lock-timeout", "5s"}, exitOK, "== pgcapacity migrate drop-old\n-- after the rollback period\n\n1. drop the reverse capture, the retained original and the change log\n   -- one transaction, after the post-swap steps if they are still pending\nSET LOCAL lock_timeout = 5000;"},
		{[]string{"migrate", "plan", "--table", "public.session", "--partitions", "2"}, exitFinding, "REFUSED"},
		{[]string{"migrate", "plan", "--table", "tenant", "--partitions", "2"}, exitFinding, "is not partitioned"},
		{[]string{"migrate", "start", "--table", "session", "--partitions", "8", "--reason", "r", "--requester", "alice", "--approver", "alice"}, exitError, "is the requester"},
		{[]string{"migrate", "start", "--table", "session", "--partitions", "8", "--requester", "alice", "--approver", "bob"}, exitError, "--reason is required"},
		{[]string{"migrate", "start", "--table", "session", "--partitions", "8", "--reason", "rule 1 held for a week", "--requester", "alice", "--approver", "bob", "--batch-size", "300", "--jobs", "2"}, exitOK, "migration 1"},
		{[]string{"migrate", "status", "1"}, exitOK, "phase ready"},
		{[]string{"migrate", "status", "1", "--json"}, exitOK, `"phase": "ready"`},
		{[]string{"migrate", "swap", "1", "--now", "x"}, exitError, "has not been validated"},
		{[]string{"migrate", "validate", "1"}, exitOK, "validation passed"},
		{[]string{"migrate", "validate", "1", "--json"}, exitOK, `"new_rows": `},
		{[]string{"migrate", "swap", "1", "--window", away + " 01:00-01:01 UTC"}, exitError, "outside the maintenance window"},
		{[]string{"migrate", "swap", "1"}, exitError, "--window is required"},
		{[]string{"migrate", "swap", "x"}, exitError, "is not a migration ID"},
		{[]string{"migrate", "swap", "1", "--now", "cli test"}, exitOK, "migration 1 swapped"},
		{[]string{"migrate", "status", "1"}, exitOK, "phase swapped"},
		{[]string{"migrate", "drop-old", "1"}, exitError, "rollback period"},
		{[]string{"migrate", "abort", "1"}, exitError, "roll it back first"},
		{[]string{"migrate", "rollback", "1"}, exitOK, "migration 1 rolled back"},
		{[]string{"migrate", "resume", "1"}, exitOK, "migration 1"},
		{[]string{"migrate", "abort", "1"}, exitOK, "migration 1 aborted"},
		{[]string{"migrate", "status", "1"}, exitOK, "phase aborted"},
	}
	for _, s := range steps {
		var stdout, stderr bytes.Buffer
		code := run(s.args, &stdout, &stderr)
		where := stdout.String()
		if s.code == exitError {
			where = stderr.String()
		}
		if code != s.code || !strings.Contains(where, s.out) || (slices.Contains(s.args, "--json") && !json.Valid(stdout.Bytes())) {
			t.Fatalf("pgcapacity %s: exit %d, want %d with %q\nstdout: %s\nstderr: %s", strings.Join(s.args, " "), code, s.code, s.out, stdout.String(), stderr.String())
		}
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"migrate", "status", "--json"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("status --json: exit %d: %s", code, stderr.String())
	}
	var list []map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &list); err != nil || len(list) != 1 || fmt.Sprint(list[0]["phase"]) != "aborted" {
		t.Errorf("status --json: %v %s", err, stdout.String())
	}
}
