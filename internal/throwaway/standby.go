package throwaway

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// StartStandby makes a streaming standby of the running cluster, as an
// operator would: pg_basebackup -R -X stream (from the binaries beside
// initdb, run as the cluster's user) into a directory of its own, started
// with the primary's settings, hot_standby=on and its own port and socket.
// Stop it with Stop; Promote turns it into a primary.
func (c *Cluster) StartStandby(ctx context.Context) (*Cluster, error) {
	if !isFile(filepath.Join(c.binDir, "pg_basebackup")) {
		return nil, fmt.Errorf("no pg_basebackup beside initdb in %s: a standby needs the client binaries of the same PostgreSQL build (Debian: postgresql-client)", c.binDir)
	}
	dir, err := os.MkdirTemp("", "pgcapacity-standby-")
	if err != nil {
		return nil, fmt.Errorf("creating the standby directory: %w", err)
	}
	s := &Cluster{binDir: c.binDir, dir: dir, dataDir: filepath.Join(dir, "data"), major: c.major, cred: c.cred, logger: c.logger}
	if s.cred != nil {
		if err := os.Chown(dir, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("handing the standby directory to uid %d: %w", s.cred.Uid, err)
		}
	}
	// -R writes standby.signal and a primary_conninfo naming this host and port.
	out, err := s.command(ctx, "pg_basebackup", "-h", "127.0.0.1", "-p", strconv.Itoa(c.port), "-U", Superuser,
		"-D", s.dataDir, "-R", "-X", "stream", "-c", "fast", "--no-sync").CombinedOutput()
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pg_basebackup of the cluster on port %d: %w\n%s", c.port, err, tail(out, 2000))
	}
	// The primary's settings (a standby needs at least its max_connections
	// and max_locks_per_transaction); later -c options win.
	s.args = append(append([]string{}, c.args...), "-c", "unix_socket_directories="+dir, "-c", "hot_standby=on")
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		if s.port, err = freePort(); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		if lastErr = s.StartServer(ctx); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("starting the standby: %w", lastErr)
	}
	c.logger.Info("throwaway standby started", "primary_port", c.port, "port", s.port, "dir", dir)
	return s, nil
}

// Promote ends recovery on a standby (pg_ctl promote, waiting until it
// accepts writes).
func (c *Cluster) Promote(ctx context.Context) error {
	out, err := c.command(ctx, "pg_ctl", "promote", "-w", "-t", "60", "-D", c.dataDir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl promote of the standby on port %d: %w\n%s", c.port, err, tail(out, 2000))
	}
	return nil
}

// CatchUp waits until this standby has replayed all the WAL primary had
// inserted when CatchUp was called (the insert position: with
// synchronous_commit off a commit's WAL may not be written yet).
func (c *Cluster) CatchUp(ctx context.Context, primary *Cluster) error {
	target, err := queryLSN(ctx, primary.ConnString("postgres"), "SELECT pg_catalog.pg_current_wal_insert_lsn()::text")
	if err != nil {
		return fmt.Errorf("reading the primary's WAL position: %w", err)
	}
	conn, err := pgx.Connect(ctx, c.ConnString("postgres"))
	if err != nil {
		return fmt.Errorf("connecting to the standby: %w", err)
	}
	defer conn.Close(ctx)
	for {
		var caughtUp *bool
		if err := conn.QueryRow(ctx, "SELECT pg_catalog.pg_last_wal_replay_lsn() >= $1::text::pg_lsn", target).Scan(&caughtUp); err != nil {
			return fmt.Errorf("reading the standby's replay position: %w", err)
		}
		if caughtUp != nil && *caughtUp {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the standby on port %d did not replay up to %s: %w", c.port, target, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func queryLSN(ctx context.Context, url, sql string) (string, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	var lsn *string
	if err := conn.QueryRow(ctx, sql).Scan(&lsn); err != nil {
		return "", err
	}
	if lsn == nil {
		return "", errors.New("no WAL position (is it a standby?)")
	}
	return *lsn, nil
}
