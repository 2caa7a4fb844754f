package throwaway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// StandbyOptions tune StartStandby; the zero value is the default.
type StandbyOptions struct {
	// LowLevelBackup makes the base backup by hand even where pg_basebackup
	// exists, so the fallback is tested on every build.
	LowLevelBackup bool
}

// StartStandby makes a streaming standby of the running cluster, as an
// operator would: pg_basebackup -R -X stream (from the binaries beside
// initdb, run as the cluster's user) into a directory of its own, started
// with the primary's settings, hot_standby=on and its own port and socket.
// Server builds without pg_basebackup (the relocatable ones of the version
// matrix ship initdb, pg_ctl and postgres only) get the same standby from a
// low-level base backup (baseBackup). Stop it with Stop; Promote turns it
// into a primary.
func (c *Cluster) StartStandby(ctx context.Context, opts StandbyOptions) (*Cluster, error) {
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
	if !opts.LowLevelBackup && isFile(filepath.Join(c.binDir, "pg_basebackup")) {
		// -R writes standby.signal and a primary_conninfo naming this host and port.
		out, err := s.command(ctx, "pg_basebackup", "-h", "127.0.0.1", "-p", strconv.Itoa(c.port), "-U", Superuser,
			"-D", s.dataDir, "-R", "-X", "stream", "-c", "fast", "--no-sync").CombinedOutput()
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("pg_basebackup of the cluster on port %d: %w\n%s", c.port, err, tail(out, 2000))
		}
	} else if err := c.baseBackup(ctx, s); err != nil {
		os.RemoveAll(dir)
		return nil, err
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

// baseBackup is what pg_basebackup -R does, by hand: a non-exclusive backup
// (pg_backup_start, a copy of the data directory, pg_backup_stop's
// backup_label), then standby.signal and a primary_conninfo. The standby
// streams the WAL from the backup's start on, as -X stream would.
func (c *Cluster) baseBackup(ctx context.Context, s *Cluster) error {
	conn, err := pgx.Connect(ctx, c.ConnString("postgres"))
	if err != nil {
		return fmt.Errorf("connecting for the base backup: %w", err)
	}
	defer conn.Close(ctx)
	// Renamed in PostgreSQL 15; exclusive backups are gone there.
	start, stop := "SELECT pg_catalog.pg_backup_start('pgcapacity standby', true)", "SELECT labelfile, spcmapfile FROM pg_catalog.pg_backup_stop(false)"
	if c.major < 15 {
		start, stop = "SELECT pg_catalog.pg_start_backup('pgcapacity standby', true, false)", "SELECT labelfile, spcmapfile FROM pg_catalog.pg_stop_backup(false, false)"
	}
	if _, err := conn.Exec(ctx, start); err != nil {
		return fmt.Errorf("starting the base backup: %w", err)
	}
	copyErr := copyDataDir(c.dataDir, s.dataDir)
	var label, spcmap string
	if err := conn.QueryRow(ctx, stop).Scan(&label, &spcmap); err != nil {
		return fmt.Errorf("stopping the base backup: %w", err)
	}
	if copyErr != nil {
		return fmt.Errorf("copying the data directory for the standby: %w", copyErr)
	}
	conninfo := fmt.Sprintf("host=127.0.0.1 port=%d user=%s", c.port, Superuser)
	files := map[string]string{
		"backup_label":   label,
		"standby.signal": "",
		// Appended settings win over earlier ones.
		"postgresql.auto.conf": "\nprimary_conninfo = '" + conninfo + "'\n",
	}
	if spcmap != "" {
		files["tablespace_map"] = spcmap
	}
	for name, content := range files {
		flag := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
		if name == "postgresql.auto.conf" {
			flag = os.O_CREATE | os.O_WRONLY | os.O_APPEND
		}
		f, err := os.OpenFile(filepath.Join(s.dataDir, name), flag, 0o600)
		if err == nil {
			_, err = f.WriteString(content)
			if closeErr := f.Close(); err == nil {
				err = closeErr
			}
		}
		if err != nil {
			return fmt.Errorf("writing the standby's %s: %w", name, err)
		}
	}
	if s.cred != nil {
		uid, gid := int(s.cred.Uid), int(s.cred.Gid)
		if err := filepath.WalkDir(s.dataDir, func(p string, _ fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, uid, gid)
		}); err != nil {
			return fmt.Errorf("handing the standby's data directory to uid %d: %w", uid, err)
		}
	}
	return nil
}

// copyDataDir copies a running cluster's data directory as a base backup
// does: without the postmaster's own files and without the contents of the
// directories the server rebuilds (WAL comes from streaming replication).
// Files that vanish while it copies (temporary ones) are skipped.
func copyDataDir(from, to string) error {
	skipFiles := map[string]bool{"postmaster.pid": true, "postmaster.opts": true, "backup_label": true, "tablespace_map": true}
	emptyDirs := map[string]bool{"pg_wal": true, "pg_replslot": true, "pg_stat_tmp": true, "pg_dynshmem": true,
		"pg_notify": true, "pg_serial": true, "pg_snapshots": true, "pg_subtrans": true}
	return filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(from, p)
		if err != nil {
			return err
		}
		dst := filepath.Join(to, rel)
		if d.IsDir() {
			if err := os.MkdirAll(dst, 0o700); err != nil {
				return err
			}
			if emptyDirs[rel] {
				if rel == "pg_wal" {
					return os.MkdirAll(filepath.Join(dst, "archive_status"), 0o700)
				}
				return filepath.SkipDir
			}
			return nil
		}
		if skipFiles[rel] || strings.HasPrefix(d.Name(), "pgsql_tmp") || !d.Type().IsRegular() {
			return nil
		}
		return copyFile(p, dst)
	})
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
