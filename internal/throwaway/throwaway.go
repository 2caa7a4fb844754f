// Package throwaway runs a disposable PostgreSQL cluster for tests and the
// demo: initdb into a temporary directory, a unix socket there and a free
// loopback port, durability off, pg_stat_statements preloaded, and run as an
// unprivileged user when the caller is root, since PostgreSQL refuses root.
package throwaway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// BinDirVariable names the environment variable that selects the server binaries.
const BinDirVariable = "PGCAPACITY_PG_BINDIR"

// Superuser is the bootstrap superuser of every throwaway cluster.
const Superuser = "postgres"

// Options tune a throwaway cluster; the zero value is the default.
type Options struct {
	// BinDir holds initdb and postgres; empty: FindBinDir.
	BinDir string
	// Settings are extra server settings (name → value) passed with -c.
	Settings map[string]string
	// Logger receives start and stop events; nil: discarded.
	Logger *slog.Logger
}

// Cluster is a running throwaway PostgreSQL.
type Cluster struct {
	binDir  string
	dir     string
	dataDir string
	port    int
	major   int
	args    []string
	cred    *syscall.Credential
	logger  *slog.Logger

	mu     sync.Mutex
	server *serverProcess
}

type serverProcess struct {
	cmd  *exec.Cmd
	done chan error
}

// FindBinDir locates PostgreSQL server binaries: PGCAPACITY_PG_BINDIR, then
// pg_config --bindir, then the newest /usr/lib/postgresql/*/bin.
func FindBinDir() (string, error) {
	if dir := os.Getenv(BinDirVariable); dir != "" {
		if !isFile(filepath.Join(dir, "initdb")) {
			return "", fmt.Errorf("%s=%s has no initdb: point it at the bin directory of a PostgreSQL server", BinDirVariable, dir)
		}
		return dir, nil
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		dir := strings.TrimSpace(string(out))
		if isFile(filepath.Join(dir, "initdb")) {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, dir := range dirs {
		if isFile(filepath.Join(dir, "initdb")) {
			return dir, nil
		}
	}
	return "", errors.New("no PostgreSQL server binaries found: install them with `apt-get install postgresql postgresql-contrib` " +
		"(or `make deps`), or set " + BinDirVariable + " to a directory holding initdb, pg_ctl and postgres")
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// Start creates and starts a cluster. Stop it with Stop.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	binDir := opts.BinDir
	if binDir == "" {
		var err error
		if binDir, err = FindBinDir(); err != nil {
			return nil, err
		}
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	major, err := serverMajor(binDir)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pgcapacity-pg-")
	if err != nil {
		return nil, fmt.Errorf("creating the cluster directory: %w", err)
	}
	c := &Cluster{binDir: binDir, dir: dir, dataDir: filepath.Join(dir, "data"), major: major, logger: logger}
	if c.cred, err = unprivilegedCredential(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if c.cred != nil {
		// The server user must own its directory; the binaries must be readable by it too.
		if err := os.Chown(dir, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("handing the cluster directory to uid %d: %w", c.cred.Uid, err)
		}
	}
	if err := c.initdb(ctx); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	settings := map[string]string{
		"listen_addresses":          "127.0.0.1",
		"unix_socket_directories":   dir,
		"fsync":                     "off",
		"synchronous_commit":        "off",
		"full_page_writes":          "off",
		"max_connections":           "200",
		"max_locks_per_transaction": "1024",
		"log_min_messages":          "warning",
		"track_io_timing":           "on",
	}
	if lib := findLibrary(binDir, "pg_stat_statements"); lib {
		settings["shared_preload_libraries"] = "pg_stat_statements"
		settings["pg_stat_statements.track_planning"] = "on"
	} else {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pg_stat_statements is not installed beside %s: install postgresql-contrib (Debian) or use a build with contrib modules", binDir)
	}
	for k, v := range opts.Settings {
		settings[k] = v
	}
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		c.args = append(c.args, "-c", k+"="+settings[k])
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		if c.port, err = freePort(); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		if lastErr = c.StartServer(ctx); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		os.RemoveAll(dir)
		return nil, lastErr
	}
	if err := c.prepareTemplate(ctx); err != nil {
		c.Stop()
		return nil, err
	}
	logger.Info("throwaway PostgreSQL started", "version", major, "port", c.port, "dir", dir)
	return c, nil
}

func serverMajor(binDir string) (int, error) {
	out, err := exec.Command(filepath.Join(binDir, "postgres"), "--version").Output()
	if err != nil {
		return 0, fmt.Errorf("running %s/postgres --version: %w", binDir, err)
	}
	m := regexp.MustCompile(`(\d+)(?:\.\d+)?`).FindStringSubmatch(string(out))
	if m == nil {
		return 0, fmt.Errorf("reading the server version from %q", out)
	}
	return strconv.Atoi(m[1])
}

// findLibrary looks for a loadable module beside the binaries, in the
// layouts of Debian's packages and of relocatable builds.
func findLibrary(binDir, name string) bool {
	root := filepath.Dir(binDir)
	for _, p := range []string{"lib", "lib/postgresql", "lib64", "lib64/postgresql"} {
		if isFile(filepath.Join(root, p, name+".so")) {
			return true
		}
	}
	if out, err := exec.Command(filepath.Join(binDir, "pg_config"), "--pkglibdir").Output(); err == nil {
		return isFile(filepath.Join(strings.TrimSpace(string(out)), name+".so"))
	}
	return false
}

// unprivilegedCredential picks the user the server runs as when we are root:
// the postgres user Debian's package creates, else nobody.
func unprivilegedCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
	}
	return nil, errors.New("running as root and no unprivileged user (postgres or nobody) exists to run PostgreSQL: create one with `useradd postgres`")
}

func (c *Cluster) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(c.binDir, name), args...)
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred, Setpgid: true}
	return cmd
}

func (c *Cluster) initdb(ctx context.Context) error {
	cmd := c.command(ctx, "initdb", "-D", c.dataDir, "-U", Superuser, "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("initdb in %s failed: %w\n%s", c.dataDir, err, tail(out, 2000))
	}
	return nil
}

// StartServer starts the postmaster of a stopped cluster (Start does it
// once; tests use it to bring a database back after StopServer).
func (c *Cluster) StartServer(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.server != nil {
		return nil
	}
	logFile, err := os.OpenFile(filepath.Join(c.dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("opening the server log: %w", err)
	}
	args := append([]string{"-D", c.dataDir, "-p", strconv.Itoa(c.port)}, c.args...)
	cmd := exec.Command(filepath.Join(c.binDir, "postgres"), args...)
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Pdeathsig stops the postmaster when this process dies, even by
	// SIGKILL, so no server outlives a crashed or interrupted test run.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred, Setpgid: true, Pdeathsig: syscall.SIGQUIT}
	started := make(chan error, 1)
	done := make(chan error, 1)
	go func() {
		// The parent-death signal follows the thread that forked the
		// child; keep this goroutine on its own thread until the server exits.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		done <- cmd.Wait()
		logFile.Close()
	}()
	if err := <-started; err != nil {
		logFile.Close()
		return fmt.Errorf("starting postgres: %w", err)
	}
	server := &serverProcess{cmd: cmd, done: done}
	if err := c.waitReady(ctx, server); err != nil {
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		<-done
		log, _ := os.ReadFile(filepath.Join(c.dir, "server.log"))
		return fmt.Errorf("%w\nserver log:\n%s", err, tail(log, 3000))
	}
	c.server = server
	return nil
}

func (c *Cluster) waitReady(ctx context.Context, server *serverProcess) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-server.done:
			server.done <- err
			return fmt.Errorf("postgres exited during start-up: %v", err)
		default:
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.Connect(cctx, c.ConnString("postgres"))
		cancel()
		if err == nil {
			conn.Close(ctx)
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("postgres did not accept connections on port %d: %w", c.port, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// StopServer stops the postmaster (fast shutdown) and keeps the data directory.
func (c *Cluster) StopServer() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.server == nil {
		return nil
	}
	_ = c.server.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-c.server.done:
	case <-time.After(30 * time.Second):
		_ = c.server.cmd.Process.Signal(syscall.SIGQUIT)
		<-c.server.done
	}
	c.server = nil
	return nil
}

// Stop stops the server and removes every file of the cluster.
func (c *Cluster) Stop() error {
	err := c.StopServer()
	if rmErr := os.RemoveAll(c.dir); rmErr != nil && err == nil {
		err = fmt.Errorf("removing %s: %w", c.dir, rmErr)
	}
	c.logger.Info("throwaway PostgreSQL stopped", "dir", c.dir)
	return err
}

// prepareTemplate installs pg_stat_statements into template1, so every
// database created afterwards has it.
func (c *Cluster) prepareTemplate(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, c.ConnString("template1"))
	if err != nil {
		return fmt.Errorf("connecting to template1: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"); err != nil {
		return fmt.Errorf("creating pg_stat_statements in template1: %w", err)
	}
	return nil
}

// Port is the loopback TCP port of the server.
func (c *Cluster) Port() int { return c.port }

// Major is the server's major version, such as 15.
func (c *Cluster) Major() int { return c.major }

// SocketDir is the directory of the server's unix socket.
func (c *Cluster) SocketDir() string { return c.dir }

// BinDir is the directory of the server binaries.
func (c *Cluster) BinDir() string { return c.binDir }

// ConnString is a URL for database db as the superuser over loopback TCP.
func (c *Cluster) ConnString(db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User(Superuser),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// CreateDatabase creates database name (from template1) and returns its URL.
func (c *Cluster) CreateDatabase(ctx context.Context, name string) (string, error) {
	conn, err := pgx.Connect(ctx, c.ConnString("postgres"))
	if err != nil {
		return "", fmt.Errorf("connecting to create database %s: %w", name, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("creating database %s: %w", name, err)
	}
	return c.ConnString(name), nil
}

// DropDatabase drops database name, ending its sessions.
func (c *Cluster) DropDatabase(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, c.ConnString("postgres"))
	if err != nil {
		return fmt.Errorf("connecting to drop database %s: %w", name, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", name); err != nil {
		return fmt.Errorf("ending sessions of database %s: %w", name, err)
	}
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("dropping database %s: %w", name, err)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free loopback port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(b []byte, n int) string {
	b = bytes.TrimSpace(b)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
