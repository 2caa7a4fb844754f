package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

const (
	installHint   = "install with apt-get install prometheus prometheus-alertmanager"
	repoRoot      = "../.."
	shippedAM     = repoRoot + "/deploy/alertmanager/alertmanager.yml"
	shippedProm   = repoRoot + "/deploy/prometheus/prometheus.yml"
	processWaitUp = 30 * time.Second
)

// binary finds a Prometheus or Alertmanager binary; missing fails the test.
func binary(t *testing.T, names ...string) string {
	t.Helper()
	for _, name := range names {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	t.Fatalf("none of %v is on PATH: %s", names, installHint)
	return ""
}

// freeAddr returns a loopback address nothing listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// process is a child process whose output goes to a log file that the
// test prints when it fails.
type process struct {
	name string
	cmd  *exec.Cmd
	log  string
}

// start runs a child that dies with the test binary and is stopped when the
// test ends.
func start(t *testing.T, name string, env []string, bin string, args ...string) *process {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(withoutPgcapacity(os.Environ()), env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	p := &process{name: name, cmd: cmd, log: logPath}
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
			p.dump(t)
		}
	})
	return p
}

func (p *process) dump(t *testing.T) {
	b, _ := os.ReadFile(p.log)
	if len(b) > 6000 {
		b = b[len(b)-6000:]
	}
	t.Logf("--- %s log (tail) ---\n%s", p.name, b)
}

// waitHTTP polls url until it answers 200.
func waitHTTP(t *testing.T, url string, p *process) {
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

func getJSON(t *testing.T, url string, v any) {
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

// notification is one alert as Alertmanager's webhook delivers it.
type notification struct {
	Receiver    string // from the payload
	Path        string // the receiver the URL was rewritten for
	Status      string
	Labels      map[string]string
	Annotations map[string]string
}

// webhook receives Alertmanager's notifications for every receiver.
type webhook struct {
	url string
	mu  sync.Mutex
	got []notification
}

func newWebhook(t *testing.T) *webhook {
	t.Helper()
	w := &webhook{}
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		var payload struct {
			Receiver string `json:"receiver"`
			Alerts   []struct {
				Status      string            `json:"status"`
				Labels      map[string]string `json:"labels"`
				Annotations map[string]string `json:"annotations"`
			} `json:"alerts"`
		}
		if err := json.NewDecoder(r.Body).Decode(&payload); err != nil {
			http.Error(rw, err.Error(), http.StatusBadRequest)
			return
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, a := range payload.Alerts {
			w.got = append(w.got, notification{Receiver: payload.Receiver, Path: strings.TrimPrefix(r.URL.Path, "/"),
				Status: a.Status, Labels: a.Labels, Annotations: a.Annotations})
		}
	}))
	t.Cleanup(srv.Close)
	w.url = srv.URL
	return w
}

func (w *webhook) notifications() []notification {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]notification(nil), w.got...)
}

// waitFor polls the webhook until every wanted alertname has arrived.
func (w *webhook) waitFor(t *testing.T, timeout time.Duration, alertnames ...string) []notification {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := w.notifications()
		missing := []string{}
		for _, name := range alertnames {
			found := false
			for _, n := range got {
				found = found || (n.Labels["alertname"] == name && n.Status == "firing")
			}
			if !found {
				missing = append(missing, name)
			}
		}
		if len(missing) == 0 {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v the webhook has not received %v; it received %+v", timeout, missing, got)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// alertmanagerConfig is the shipped configuration with every receiver's
// webhook pointed at hook/<receiver> and the notification timers shortened
// for the test; the routing tree, grouping and inhibitions are untouched.
func alertmanagerConfig(t *testing.T, hook string) string {
	t.Helper()
	b, err := os.ReadFile(shippedAM)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("%s: %v", shippedAM, err)
	}
	receivers, _ := cfg["receivers"].([]any)
	if len(receivers) == 0 {
		t.Fatalf("%s has no receivers", shippedAM)
	}
	for _, r := range receivers {
		rm := r.(map[string]any)
		hooks, _ := rm["webhook_configs"].([]any)
		if len(hooks) == 0 {
			t.Fatalf("receiver %v has no webhook_configs for the test to point at its webhook", rm["name"])
		}
		for _, h := range hooks {
			h.(map[string]any)["url"] = hook + "/" + rm["name"].(string)
		}
	}
	var shorten func(route map[string]any, root bool)
	shorten = func(route map[string]any, root bool) {
		for _, key := range []string{"group_wait", "group_interval"} {
			if _, ok := route[key]; ok || root {
				route[key] = "1s"
			}
		}
		children, _ := route["routes"].([]any)
		for _, c := range children {
			shorten(c.(map[string]any), false)
		}
	}
	shorten(cfg["route"].(map[string]any), true)
	return writeYAML(t, "alertmanager.yml", cfg)
}

func writeYAML(t *testing.T, name string, v any) string {
	t.Helper()
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// startAlertmanager runs Debian's Alertmanager with the shipped
// configuration, clustering off, and returns its base URL.
func startAlertmanager(t *testing.T, hook string) string {
	t.Helper()
	bin := binary(t, "prometheus-alertmanager", "alertmanager")
	addr := freeAddr(t)
	p := start(t, "alertmanager", nil, bin,
		"--config.file="+alertmanagerConfig(t, hook),
		"--storage.path="+t.TempDir(),
		"--web.listen-address="+addr,
		"--cluster.listen-address=")
	base := "http://" + addr
	waitHTTP(t, base+"/-/ready", p)
	return base
}

// postAlerts sends alerts to Alertmanager's v2 API as Prometheus would.
func postAlerts(t *testing.T, base string, alerts ...map[string]string) {
	t.Helper()
	type alert struct {
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
		StartsAt    time.Time         `json:"startsAt"`
	}
	var body []alert
	for _, l := range alerts {
		body = append(body, alert{Labels: l, Annotations: map[string]string{"summary": "test."}, StartsAt: time.Now()})
	}
	b, _ := json.Marshal(body)
	resp, err := http.Post(base+"/api/v2/alerts", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(resp.Body)
		t.Fatalf("posting alerts: %s: %s", resp.Status, msg)
	}
}

// buildPgcapacity builds the command once per test into a temporary directory.
func buildPgcapacity(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "pgcapacity")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/pgcapacity")
	cmd.Dir = repoRoot
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/pgcapacity: %v\n%s", err, b)
	}
	return out
}

func fmtLabels(l map[string]string) string {
	var parts []string
	for k, v := range l {
		parts = append(parts, fmt.Sprintf("%s=%q", k, v))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}
