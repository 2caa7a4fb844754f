package main

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigid/pgcapacity/internal/config"
	"github.com/sigid/pgcapacity/internal/testutil"
)

type response struct {
	status int
	body   string
	err    error
}

func request(client *http.Client, url, user, password string) response {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return response{err: err}
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := client.Do(req)
	if err != nil {
		return response{err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return response{resp.StatusCode, string(body), err}
}

// With a web configuration that turns on TLS and basic auth (and client
// certificates), everything on the main listener needs them, /metrics
// answers 401 without the password, and the plain health listener answers
// kubelet and Docker without any: /healthz 200 while the process serves,
// /readyz 200 once the first round is done and 503 while the database
// keeps it from finishing.
func TestServeBehindTLSAndBasicAuth(t *testing.T) {
	const user, password = "prometheus", "s3cret:pass word"
	dir := t.TempDir()
	server := testutil.SelfSignedCertificate(t, dir, "server", "127.0.0.1", "localhost")
	client := testutil.SelfSignedCertificate(t, dir, "client")
	live := newDatabase(t, balancedTable...)
	silent, accepted := silentDatabase(t)

	tests := []struct {
		name       string
		dbURL      string
		clientCert bool
		wantUp     string
		wantReady  int
	}{
		{"TLS and basic auth, database answering", live, false, "1", http.StatusOK},
		{"TLS and basic auth, database never answering", silent, false, "0", http.StatusServiceUnavailable},
		{"client certificates and basic auth, database answering", live, true, "1", http.StatusOK},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			caseDir := filepath.Join(dir, fmt.Sprint(i))
			if err := os.Mkdir(caseDir, 0o755); err != nil {
				t.Fatal(err)
			}
			clientCA := ""
			tlsClient := &tls.Config{RootCAs: server.Pool}
			if tc.clientCert {
				clientCA = client.CertFile
				tlsClient.Certificates = []tls.Certificate{client.TLS}
			}
			cfg := testConfig(t, tc.dbURL)
			cfg.WebConfigFile = testutil.WebConfigFile(t, caseDir, server, user, password, clientCA)
			if tc.dbURL == silent {
				// No round can finish while the test runs.
				cfg.QueryTimeout = config.Duration(10 * time.Minute)
			}
			health, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr, stop := serveListening(t, cfg, health, io.Discard)
			defer stop()
			if tc.dbURL == silent {
				<-accepted // the exporter is waiting on the silent database now
			}
			main := "https://" + addr
			healthURL := "http://" + health.Addr().String()
			tlsHTTP := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsClient}}
			defer tlsHTTP.CloseIdleConnections()
			plainHTTP := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{}}
			defer plainHTTP.CloseIdleConnections()

			// The main listener: the web configuration applies to every path.
			for _, c := range []struct {
				name, url, user, password string
				want                      int
			}{
				{"metrics without a password", main + "/metrics", "", "", http.StatusUnauthorized},
				{"metrics with a wrong password", main + "/metrics", user, "wrong", http.StatusUnauthorized},
				{"metrics as an unknown user", main + "/metrics", "nobody", password, http.StatusUnauthorized},
				{"healthz without a password", main + "/healthz", "", "", http.StatusUnauthorized},
				{"metrics with the password", main + "/metrics", user, password, http.StatusOK},
				{"healthz with the password", main + "/healthz", user, password, http.StatusOK},
				// Go answers plain HTTP on a TLS port with 400.
				{"metrics over plain HTTP", "http://" + addr + "/metrics", user, password, http.StatusBadRequest},
			} {
				cl := tlsHTTP
				if strings.HasPrefix(c.url, "http:") {
					cl = plainHTTP
				}
				if r := request(cl, c.url, c.user, c.password); r.err != nil || r.status != c.want {
					t.Errorf("main listener, %s: status %d (%v), want %d", c.name, r.status, r.err, c.want)
				}
			}
			if tc.clientCert {
				noCert := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: server.Pool}}}
				if r := request(noCert, main+"/metrics", user, password); r.err == nil {
					t.Errorf("main listener without a client certificate: status %d, want the TLS handshake refused", r.status)
				}
			}

			// The health listener: plain HTTP, no credentials, health only.
			if r := request(plainHTTP, healthURL+"/healthz", "", ""); r.err != nil || r.status != http.StatusOK || r.body != "ok\n" {
				t.Errorf("health listener /healthz: status %d %q (%v), want 200 ok", r.status, r.body, r.err)
			}
			for _, path := range []string{"/metrics", "/", "/debug/pprof/"} {
				if r := request(plainHTTP, healthURL+path, "", ""); r.err != nil || r.status != http.StatusNotFound {
					t.Errorf("health listener %s: status %d (%v), want 404: it serves health only", path, r.status, r.err)
				}
			}
			ready := func() bool {
				r := request(plainHTTP, healthURL+"/readyz", "", "")
				return r.err == nil && r.status == tc.wantReady
			}
			if tc.wantReady == http.StatusOK {
				eventually(t, "/readyz 200 on the health listener", 30*time.Second, ready)
			} else if !ready() {
				t.Errorf("health listener /readyz: want %d", tc.wantReady)
			}

			// The database is what pgcapacity_up reports, behind the password.
			eventually(t, "pgcapacity_up "+tc.wantUp, 30*time.Second, func() bool {
				r := request(tlsHTTP, main+"/metrics", user, password)
				up, _ := metricValue(r.body, "pgcapacity_up")
				return r.status == http.StatusOK && up == tc.wantUp
			})
			// Readiness holds once reached (a failed round later leaves it).
			if tc.wantReady == http.StatusOK && !ready() {
				t.Error("/readyz left 200")
			}
		})
	}
}

// Without a health listener the web configuration covers the health
// endpoints too; serve says so at start, naming the variable to set.
func TestServeWarnsWhenTheWebConfigCoversTheHealthEndpoints(t *testing.T) {
	dir := t.TempDir()
	server := testutil.SelfSignedCertificate(t, dir, "server", "127.0.0.1")
	cfg := testConfig(t, "postgres://nobody@127.0.0.1:1/none?connect_timeout=1")
	cfg.WebConfigFile = testutil.WebConfigFile(t, dir, server, "prometheus", "pw", "")
	var logs testutil.LockedBuffer
	_, stop := serveListening(t, cfg, nil, &logs)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "PGCAPACITY_HEALTH_LISTEN_ADDRESS") {
		t.Errorf("no warning naming PGCAPACITY_HEALTH_LISTEN_ADDRESS:\n%s", logs.String())
	}
}

// A health address that cannot be listened on is a configuration error:
// exit 2 with one line naming the variable.
func TestServeRefusesAHealthAddressInUse(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	t.Setenv("PGCAPACITY_DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
	t.Setenv("PGCAPACITY_LISTEN_ADDRESS", testutil.FreeAddress(t))
	t.Setenv("PGCAPACITY_HEALTH_LISTEN_ADDRESS", busy.Addr().String())
	var stdout, stderr bytes.Buffer
	code := run([]string{"serve"}, &stdout, &stderr)
	msg := strings.TrimSpace(stderr.String())
	if code != exitError || !strings.Contains(msg, "PGCAPACITY_HEALTH_LISTEN_ADDRESS") || strings.Contains(msg, "\n") {
		t.Errorf("exit %d, stderr %q", code, msg)
	}
}

// A web configuration the toolkit would refuse exits 2 at start, naming the
// variable and the file, before anything listens.
func TestServeRefusesABadWebConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	tests := []struct{ name, file, want string }{
		{"no such file", filepath.Join(dir, "missing.yml"), "no such file"},
		{"not YAML", write("bad.yml", "tls_server_config: [\n"), "yaml"},
		{"unknown field", write("unknown.yml", "basic_auth: {}\n"), "field basic_auth not found"},
		{"password not hashed", write("plain.yml", "basic_auth_users:\n  prometheus: secret\n"), "hashedSecret too short"},
		{"certificate missing", write("nocert.yml", "tls_server_config:\n  cert_file: /nonexistent/tls.crt\n  key_file: /nonexistent/tls.key\n"), "/nonexistent/tls.crt"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("PGCAPACITY_DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
			t.Setenv("PGCAPACITY_LISTEN_ADDRESS", testutil.FreeAddress(t))
			t.Setenv("PGCAPACITY_WEB_CONFIG_FILE", tc.file)
			var stdout, stderr bytes.Buffer
			code := run([]string{"serve"}, &stdout, &stderr)
			msg := strings.TrimSpace(stderr.String())
			if code != exitError || !strings.Contains(msg, "PGCAPACITY_WEB_CONFIG_FILE") || !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") {
				t.Errorf("exit %d, stderr %q; want exit 2 and one line naming PGCAPACITY_WEB_CONFIG_FILE and %q", code, msg, tc.want)
			}
		})
	}
}
