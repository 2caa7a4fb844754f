// Package harness runs the real programs the end-to-end tests need: the
// pgcapacity binary, Debian's Prometheus and Alertmanager, each as a child
// process stopped when the test ends. Only tests import it.
package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sigid/pgcapacity/internal/sigid"
	"go.yaml.in/yaml/v3"
)

const (
	installHint   = "install with apt-get install prometheus prometheus-alertmanager"
	processWaitUp = 30 * time.Second
)

// RepoRoot is the module's directory, found through the go command so a
// test in any package reads the shipped files.
func RepoRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// Binary finds a Prometheus or Alertmanager binary; missing fails the test.
func Binary(t *testing.T, names ...string) string {
	t.Helper()
	for _, name := range names {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	t.Fatalf("none of %v is on PATH: %s", names, installHint)
	return ""
}

// FreeAddr returns a loopback address nothing listens on right now.
func FreeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// WithoutPgcapacity is env without any PGCAPACITY_ setting of the caller.
func WithoutPgcapacity(env []string) []string {
	return slices.DeleteFunc(slices.Clone(env), func(kv string) bool { return strings.HasPrefix(kv, "PGCAPACITY_") })
}

// Process is a child process whose output goes to a log file that the
// test prints when it fails.
type Process struct {
	name string
	cmd  *exec.Cmd
	log  string
}

// Start runs a child that dies with the test binary and is stopped when the
// test ends. env is added to the caller's environment without PGCAPACITY_*.
func Start(t *testing.T, name string, env []string, bin string, args ...string) *Process {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(WithoutPgcapacity(os.Environ()), env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	p := &Process{name: name, cmd: cmd, log: logPath}
	exited := make(chan struct{})
	go func() { cmd.Wait(); logFile.Close(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			p.Dump(t)
		}
	})
	return p
}

// Dump logs the tail of the process's output.
func (p *Process) Dump(t *testing.T) {
	b, _ := os.ReadFile(p.log)
	if len(b) > 6000 {
		b = b[len(b)-6000:]
	}
	t.Logf("--- %s log (tail) ---\n%s", p.name, b)
}

// WaitHTTP polls url until it answers 200.
func WaitHTTP(t *testing.T, url string, p *Process) {
	t.Helper()
	deadline := time.Now().Add(processWaitUp)
	for time.Now().Before(deadline) {
		if p.cmd.ProcessState != nil {
			t.Fatalf("%s exited: %v", p.name, p.cmd.ProcessState)
		}
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s did not answer %s within %v", p.name, url, processWaitUp)
}

// GetJSON decodes the JSON answer of a GET that must succeed.
func GetJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: decoding %s: %v", url, b, err)
	}
}

// WriteYAML writes v to a file of the test's temporary directory.
func WriteYAML(t *testing.T, name string, v any) string {
	t.Helper()
	var buf bytes.Buffer
	if err := yaml.NewEncoder(&buf).Encode(v); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// BuildPgcapacity builds the command the way users get it, once per call,
// into a temporary directory.
func BuildPgcapacity(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "pgcapacity")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "github.com/sigid/pgcapacity/cmd/pgcapacity")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/pgcapacity: %v\n%s", err, b)
	}
	return out
}

// Rules runs `pgcapacity rules` with settings and returns the file.
func Rules(t *testing.T, bin string, settings []string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pgcapacity.rules.yml")
	cmd := exec.Command(bin, "rules", "-o", path)
	cmd.Env = append(WithoutPgcapacity(os.Environ()), settings...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pgcapacity rules: %v\n%s", err, out)
	}
	return path
}

// StartPrometheus runs Debian's Prometheus with the shipped configuration
// (deploy/prometheus/prometheus.yml), its target, rule file and timers
// replaced for the test: it scrapes and evaluates every second. An empty
// alertmanager leaves alerting out. It returns the base URL.
func StartPrometheus(t *testing.T, exporter, alertmanager, rules string) string {
	t.Helper()
	shipped := filepath.Join(RepoRoot(t), "deploy", "prometheus", "prometheus.yml")
	b, err := os.ReadFile(shipped)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Global        map[string]any `yaml:"global"`
		RuleFiles     []string       `yaml:"rule_files"`
		Alerting      map[string]any `yaml:"alerting,omitempty"`
		ScrapeConfigs []struct {
			JobName       string           `yaml:"job_name"`
			StaticConfigs []map[string]any `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("%s: %v", shipped, err)
	}
	if len(cfg.ScrapeConfigs) != 1 || cfg.ScrapeConfigs[0].JobName != "pgcapacity" || len(cfg.ScrapeConfigs[0].StaticConfigs) != 1 || len(cfg.RuleFiles) != 1 {
		t.Fatalf("%s: want one pgcapacity scrape job with one static target and one rule file", shipped)
	}
	cfg.Global["scrape_interval"] = "1s"
	cfg.Global["evaluation_interval"] = "1s"
	cfg.RuleFiles = []string{rules}
	cfg.ScrapeConfigs[0].StaticConfigs[0]["targets"] = []string{exporter}
	cfg.Alerting = nil
	if alertmanager != "" {
		cfg.Alerting = map[string]any{"alertmanagers": []any{map[string]any{"static_configs": []any{map[string]any{"targets": []string{strings.TrimPrefix(alertmanager, "http://")}}}}}}
	}
	// The shipped file passes promtool once its rule file exists.
	path := WriteYAML(t, "prometheus.yml", cfg)
	if out, err := exec.Command(Binary(t, "promtool"), "check", "config", path).CombinedOutput(); err != nil {
		t.Fatalf("promtool check config: %v\n%s", err, out)
	}
	addr := FreeAddr(t)
	p := Start(t, "prometheus", nil, Binary(t, "prometheus"),
		"--config.file="+path,
		"--storage.tsdb.path="+t.TempDir(),
		"--web.listen-address="+addr)
	base := "http://" + addr
	WaitHTTP(t, base+"/-/ready", p)
	return base
}

// SeedSigID creates the SigID reference schema with its generated data
// set (scale 1) in the database at dbURL.
func SeedSigID(ctx context.Context, t *testing.T, dbURL string) {
	t.Helper()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := sigid.Apply(ctx, conn, sigid.SchemaOptions{}); err != nil {
		t.Fatalf("creating the SigID schema: %v", err)
	}
	if _, err := sigid.Generate(ctx, conn, sigid.DefaultGenerate(1)); err != nil {
		t.Fatalf("loading SigID data: %v", err)
	}
}

// Run runs one pgcapacity command against dbURL, without the caller's
// PGCAPACITY_ settings, and fails the test when it fails.
func Run(ctx context.Context, t *testing.T, bin, dbURL string, args ...string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(WithoutPgcapacity(os.Environ()), "PGCAPACITY_DATABASE_URL="+dbURL)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pgcapacity %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}
