package migrate

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// A migration killed with SIGKILL at a random batch resumes from its last
// checkpoint and ends with no lost and no duplicated rows, while writers
// keep writing throughout.
func TestKillDuringCopyAndResume(t *testing.T) {
	ctx := context.Background()
	pool, url := sigidDB(t, "session", 4)
	w := startWriters(t, url, workloads["session"], 2)
	total := scalar[int64](t, pool, `SELECT count(*) FROM public.session`)
	killAt := total/10 + rand.Int64N(total*6/10)

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=start", "PGCAPACITY_DATABASE_URL="+url, "HELPER_TABLE=session", "HELPER_RATE=1500")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	var copied int64
	for {
		_ = pool.QueryRow(ctx, `SELECT coalesce(sum(copied_rows), 0) FROM pgcapacity.copy_progress`).Scan(&copied)
		if copied >= killAt {
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("the copy reached only %d rows", copied)
		}
		time.Sleep(time.Duration(rand.IntN(20)) * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	t.Logf("killed after %d of about %d rows", copied, total)
	mig := loadMig(t, pool, 1)
	if mig.Phase != PhaseCopying {
		t.Fatalf("phase after the kill: %s, want copying (kill earlier)", mig.Phase)
	}
	// The killed process's sessions end when the server notices; resume
	// waits for its advisory lock.
	m := New(pool, testLogger(t))
	copts := CopyOptions{BatchSize: 50, Jobs: 2}
	var err error
	for i := 0; i < 100; i++ {
		if err = m.Resume(ctx, 1, copts, 0); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	if mig := loadMig(t, pool, 1); mig.Phase != PhaseReady {
		t.Fatalf("phase after resume: %s, want ready", mig.Phase)
	}
	v, err := m.Validate(ctx, 1, copts)
	if err != nil || !v.OK {
		t.Fatalf("validation after the crash: %+v %v", v, err)
	}
	// No duplicates: the primary key of the new table guarantees it; check
	// the copy counted each original row once.
	var copiedRows, progressRows int64
	_ = pool.QueryRow(ctx, `SELECT sum(copied_rows), count(*) FROM pgcapacity.copy_progress WHERE done`).Scan(&copiedRows, &progressRows)
	if progressRows != 4 {
		t.Errorf("%d of 4 source partitions marked done", progressRows)
	}
	if _, err := m.Swap(ctx, 1, SwapOptions{NowReason: "test"}); err != nil {
		t.Fatalf("swap: %v", err)
	}
	time.Sleep(200 * time.Millisecond)
	w.stop(t)
	if err := m.Resume(ctx, 1, copts, 0); err != nil {
		t.Fatal(err)
	}
	retained, _ := relName(ctx, pool, loadMig(t, pool, 1).OriginalOID)
	identical(t, pool, "public.session", retained)
}

// A row that reappears in a later block range (a new version written by an
// update during the copy) makes the fast batch collide; the batch reruns
// skipping rows already copied, and counts what it read.
func TestCopyBatchConflictFallsBack(t *testing.T) {
	ctx := context.Background()
	pool, _ := sigidDB(t, "session", 2)
	m := New(pool, testLogger(t))
	startStopped(t, m, "session", 4)
	var source string
	var next int64
	if err := pool.QueryRow(ctx, `SELECT source_name, next_block FROM pgcapacity.copy_progress WHERE NOT done AND next_block > 0 LIMIT 1`).Scan(&source, &next); err != nil {
		t.Fatalf("finding a partly copied partition: %v", err)
	}
	tag, err := pool.Exec(ctx, fmt.Sprintf(`INSERT INTO public.n1_session SELECT * FROM ONLY public.%s WHERE ctid >= '(%d,0)'::tid LIMIT 1`, source, next))
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("planting a copied row ahead of the copy: %v", err)
	}
	if err := m.Resume(ctx, 1, CopyOptions{BatchSize: 50}, 0); err != nil {
		t.Fatalf("resume: %v", err)
	}
	v, err := m.Validate(ctx, 1, CopyOptions{})
	if err != nil || !v.OK {
		t.Fatalf("validation: %+v %v", v, err)
	}
	if copied, rows := scalar[int64](t, pool, `SELECT sum(copied_rows) FROM pgcapacity.copy_progress`), scalar[int64](t, pool, `SELECT count(*) FROM public.session`); copied != rows {
		t.Errorf("the copy counted %d rows read, the table has %d", copied, rows)
	}
}
