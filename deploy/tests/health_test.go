package deploy

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/bcrypt"
	corev1 "k8s.io/api/core/v1"

	"github.com/sigid/pgcapacity/internal/testutil"
	"github.com/sigid/pgcapacity/internal/throwaway/pgtest"
)

// The password the tests give Prometheus; the web configurations get its
// bcrypt hash.
const scrapePassword = "scrape s3cret:pass word"

// exporter is a `pgcapacity serve` the test started from the image's binary.
type exporter struct {
	env map[string]string
	// addrs maps a port the deployment names (9842, 9843) to the loopback
	// address the test gave it instead.
	addrs map[string]string
	logs  *testutil.LockedBuffer
	// exited is closed when serve has exited.
	exited chan struct{}
}

// startExporter runs serve with env (the listen addresses moved to free
// loopback ports, the rest as given) until t ends, and waits for its
// listeners.
func startExporter(t *testing.T, bin string, env map[string]string) *exporter {
	t.Helper()
	e := &exporter{env: map[string]string{}, addrs: map[string]string{}, logs: &testutil.LockedBuffer{}, exited: make(chan struct{})}
	var vars []string
	for k, v := range env {
		if k == "PGCAPACITY_LISTEN_ADDRESS" || k == "PGCAPACITY_HEALTH_LISTEN_ADDRESS" {
			_, port, err := net.SplitHostPort(v)
			if err != nil {
				t.Fatalf("%s=%q: %v", k, v, err)
			}
			e.addrs[port] = testutil.FreeAddress(t)
			v = e.addrs[port]
		}
		e.env[k] = v
		vars = append(vars, k+"="+v)
	}
	cmd := exec.CommandContext(context.Background(), bin, "serve")
	cmd.Env = pgcapacityEnv(vars...)
	cmd.Stdout, cmd.Stderr = e.logs, e.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(e.exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-e.exited:
			if waitErr != nil {
				t.Errorf("serve after SIGTERM: %v\n%s", waitErr, e.logs.String())
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-e.exited
			t.Error("serve did not stop within 30s of SIGTERM")
		}
	})
	for _, addr := range e.addrs {
		waitFor(t, e, "serve listening on "+addr, func() bool {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
			}
			return err == nil
		})
	}
	return e
}

// waitFor polls cond for up to 90 s (the first round of every collector,
// on a shared machine).
func waitFor(t *testing.T, e *exporter, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(90 * time.Second); !cond(); time.Sleep(200 * time.Millisecond) {
		select {
		case <-e.exited:
			t.Fatalf("serve exited before %s; its log:\n%s", what, e.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s in 90s; serve's log:\n%s", what, e.logs.String())
		}
	}
}

// healthcheck runs the image's HEALTHCHECK binary with the exporter's
// environment (changed by set), as Docker runs it in the container.
func (e *exporter) healthcheck(t *testing.T, bin string, set map[string]string) (int, string) {
	t.Helper()
	var vars []string
	for k, v := range e.env {
		if _, ok := set[k]; !ok {
			vars = append(vars, k+"="+v)
		}
	}
	for k, v := range set {
		vars = append(vars, k+"="+v)
	}
	cmd := exec.CommandContext(context.Background(), bin)
	cmd.Env = pgcapacityEnv(vars...)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &exit):
		return exit.ExitCode(), string(out)
	}
	t.Fatalf("running healthcheck: %v", err)
	return 0, ""
}

func httpGet(client *http.Client, url, user, password string) (int, string, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// httpClient trusts cert under serverName for https when verify is set,
// and verifies nothing otherwise, as kubelet's HTTPS probes.
func httpClient(t *testing.T, cert testutil.Certificate, serverName string, verify bool) *http.Client {
	tlsConfig := &tls.Config{RootCAs: cert.Pool, ServerName: serverName, InsecureSkipVerify: !verify}
	tr := &http.Transport{TLSClientConfig: tlsConfig}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Timeout: 10 * time.Second, Transport: tr}
}

// checkMainListenerLocked: the web configuration is on the main listener
// (so what passes below passes despite it): plain HTTP is refused by TLS,
// HTTPS without the password by basic auth.
func checkMainListenerLocked(t *testing.T, e *exporter, cert testutil.Certificate) {
	t.Helper()
	_, port, _ := strings.Cut(configDefault(t, "ListenAddress"), ":")
	main, ok := e.addrs[port]
	if !ok {
		t.Fatalf("the exporter does not listen on the default port %s (%v)", port, e.addrs)
	}
	if code, _, err := httpGet(httpClient(t, cert, "", false), "http://"+main+"/healthz", "", ""); err != nil || code != http.StatusBadRequest {
		t.Errorf("GET http://%s/healthz: %d (%v), want 400: the main listener should be TLS", main, code, err)
	}
	if code, _, err := httpGet(httpClient(t, cert, "", false), "https://"+main+"/healthz", "", ""); err != nil || code != http.StatusUnauthorized {
		t.Errorf("GET https://%s/healthz without a password: %d (%v), want 401: the main listener should ask for basic auth", main, code, err)
	}
}

// checkImageHealthcheck: the image's HEALTHCHECK passes against e, and,
// with the web configuration on, fails naming the variable when it asks
// the main listener instead.
func checkImageHealthcheck(t *testing.T, e *exporter, bin string, webOn bool) {
	t.Helper()
	if code, out := e.healthcheck(t, bin, nil); code != 0 {
		t.Errorf("healthcheck: exit %d, want 0\n%s\nserve's log:\n%s", code, out, e.logs.String())
	}
	if !webOn {
		return
	}
	code, out := e.healthcheck(t, bin, map[string]string{"PGCAPACITY_HEALTH_LISTEN_ADDRESS": ""})
	if code != 1 || !strings.Contains(out, "set PGCAPACITY_HEALTH_LISTEN_ADDRESS") {
		t.Errorf("healthcheck asking the main listener behind the web config: exit %d, want 1 naming PGCAPACITY_HEALTH_LISTEN_ADDRESS\n%s", code, out)
	}
}

// TestHealthChecksBehindAWebConfig runs serve from the image's binary with
// a real web configuration (TLS with a self-signed certificate, basic auth
// with a bcrypt hash) the way each deployment runs it, on a real
// PostgreSQL, and asks it what the orchestrator asks: the image's
// HEALTHCHECK (Docker, compose), and kubelet's liveness and readiness
// probes and the ServiceMonitor's scrape of each Kubernetes variant, with
// the variant's own environment and, for the https variants, its own web
// configuration.
func TestHealthChecksBehindAWebConfig(t *testing.T) {
	img := imageBinaries(t)
	dbURL := pgtest.NewDatabase(t, &cluster)
	dir := t.TempDir()
	cert := testutil.SelfSignedCertificate(t, dir, "server", "127.0.0.1", "pgcapacity")
	webConfig := testutil.WebConfigFile(t, dir, cert, "prometheus", scrapePassword, "")

	t.Run("image", func(t *testing.T) {
		d := parseDockerfile(t)
		env := map[string]string{}
		for _, c := range commands[*instructions.EnvCommand](d.stages[len(d.stages)-1]) {
			for _, kv := range c.Env {
				env[kv.Key] = kv.Value
			}
		}
		env["PGCAPACITY_DATABASE_URL"] = dbURL
		env["PGCAPACITY_WEB_CONFIG_FILE"] = webConfig
		e := startExporter(t, img.pgcapacity, env)
		checkMainListenerLocked(t, e, cert)
		checkImageHealthcheck(t, e, img.healthcheck, true)
	})

	t.Run("compose", func(t *testing.T) {
		pc := service(t, loadCompose(t), "pgcapacity")
		env := map[string]string{}
		for k, v := range pc.Environment {
			if v != nil {
				env[k] = *v
			}
		}
		env["PGCAPACITY_DATABASE_URL"] = dbURL
		// The stack ships without one; the health check must pass with one.
		env["PGCAPACITY_WEB_CONFIG_FILE"] = webConfig
		e := startExporter(t, img.pgcapacity, env)
		checkMainListenerLocked(t, e, cert)
		checkImageHealthcheck(t, e, img.healthcheck, true)
	})

	for _, v := range kubeVariants {
		t.Run(filepath.Base(v.dir), func(t *testing.T) {
			objs := renderKustomization(t, v.dir)
			_, pod := objs.pod(t, v.workload)
			c := container(t, pod, "pgcapacity")
			env := map[string]string{}
			for _, ev := range c.Env {
				if ev.ValueFrom == nil {
					env[ev.Name] = ev.Value
				}
			}
			env["PGCAPACITY_DATABASE_URL"] = dbURL
			if path, ok := env["PGCAPACITY_WEB_CONFIG_FILE"]; ok {
				env["PGCAPACITY_WEB_CONFIG_FILE"] = podFiles(t, objs, pod, c, cert).webConfig(t, path)
			}
			e := startExporter(t, img.pgcapacity, env)
			if v.https {
				checkMainListenerLocked(t, e, cert)
			}
			checkImageHealthcheck(t, e, img.healthcheck, v.https)

			// kubelet: GET on the pod's port, over the probe's scheme,
			// without verifying a certificate and without credentials.
			for _, p := range []struct {
				name  string
				probe *corev1.Probe
			}{{"liveness", c.LivenessProbe}, {"readiness", c.ReadinessProbe}} {
				get := p.probe.HTTPGet
				scheme := strings.ToLower(string(get.Scheme))
				if scheme == "" {
					scheme = "http"
				}
				url := scheme + "://" + e.podAddr(t, c, get.Port.String()) + get.Path
				client := httpClient(t, cert, "", false)
				waitFor(t, e, p.name+" probe "+url+" answering 200", func() bool {
					code, _, err := httpGet(client, url, "", "")
					return err == nil && code == http.StatusOK
				})
			}

			// Prometheus: the ServiceMonitor's endpoint, through the
			// Service's target port, with its scheme, CA, server name and
			// basic auth.
			ep := objs.serviceMonitors[0].Spec.Endpoints[0]
			var target string
			for _, sp := range objs.services[0].Spec.Ports {
				if sp.Name == ep.Port {
					target = sp.TargetPort.String()
				}
			}
			scheme := ep.Scheme.String()
			if scheme == "" {
				scheme = "http"
			}
			url := scheme + "://" + e.podAddr(t, c, target) + ep.Path
			serverName, user := "", ""
			if ep.TLSConfig != nil && ep.TLSConfig.ServerName != nil {
				serverName = *ep.TLSConfig.ServerName
			}
			if ep.BasicAuth != nil {
				user, _ = objs.secretValue(ep.BasicAuth.Username.Name, ep.BasicAuth.Username.Key)
			}
			client := httpClient(t, cert, serverName, true)
			waitFor(t, e, "a scrape of "+url+" with pgcapacity_up 1", func() bool {
				code, body, err := httpGet(client, url, user, scrapePassword)
				return err == nil && code == http.StatusOK && strings.Contains(body, "\npgcapacity_up 1\n")
			})
			if v.https {
				if code, _, err := httpGet(client, url, "", ""); err != nil || code != http.StatusUnauthorized {
					t.Errorf("scrape of %s without the password: %d (%v), want 401", url, code, err)
				}
			}
		})
	}
}

// podAddr is the loopback address the test gave the container port port
// (a name of c's ports or a number).
func (e *exporter) podAddr(t *testing.T, c corev1.Container, port string) string {
	t.Helper()
	if n, ok := containerPort(c, port); ok {
		port = strconv.Itoa(int(n))
	}
	addr, ok := e.addrs[port]
	if !ok {
		t.Fatalf("port %s is none the exporter listens on (%v)", port, e.addrs)
	}
	return addr
}

// pod holds the files of the pgcapacity container's Secret volumes in a
// directory: the Secrets the variant ships as they are, the operator's
// TLS Secret from the test's certificate.
type pod struct {
	root   string
	mounts map[string]string // mount path in the container -> directory
}

func podFiles(t *testing.T, objs kubeObjects, spec corev1.PodSpec, c corev1.Container, cert testutil.Certificate) pod {
	t.Helper()
	p := pod{root: t.TempDir(), mounts: map[string]string{}}
	for _, m := range c.VolumeMounts {
		for _, vol := range spec.Volumes {
			if vol.Name != m.Name || vol.Secret == nil {
				continue
			}
			dir := filepath.Join(p.root, vol.Name)
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			p.mounts[strings.TrimSuffix(m.MountPath, "/")] = dir
			files := map[string][]byte{}
			if externalSecrets[vol.Secret.SecretName] {
				files["tls.crt"], files["tls.key"], files["ca.crt"] = readFile(t, cert.CertFile), readFile(t, cert.KeyFile), readFile(t, cert.CertFile)
			}
			for _, s := range objs.secrets {
				if s.Name == vol.Secret.SecretName {
					for k, v := range s.StringData {
						files[k] = []byte(v)
					}
					for k, v := range s.Data {
						files[k] = v
					}
				}
			}
			if len(files) == 0 {
				t.Fatalf("volume %s: Secret %s is neither shipped nor the operator's TLS Secret", vol.Name, vol.Secret.SecretName)
			}
			for k, v := range files {
				if err := os.WriteFile(filepath.Join(dir, k), v, 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	return p
}

// path is where the file at the container path inContainer is.
func (p pod) path(t *testing.T, inContainer string) string {
	t.Helper()
	for mount, dir := range p.mounts {
		if rel, ok := strings.CutPrefix(inContainer, mount+"/"); ok {
			return filepath.Join(dir, rel)
		}
	}
	t.Fatalf("%s is on no Secret volume of the container", inContainer)
	return ""
}

// webConfig rewrites the shipped web configuration at the container path
// inContainer for this machine: its file paths to where the pod's files
// are, each basic-auth user's hash (the shipped one is a placeholder) to
// the test password's. Everything else stays as shipped.
func (p pod) webConfig(t *testing.T, inContainer string) string {
	t.Helper()
	path := p.path(t, inContainer)
	var cfg map[string]any
	if err := yaml.Unmarshal(readFile(t, path), &cfg); err != nil {
		t.Fatalf("%s: %v", inContainer, err)
	}
	tlsCfg, _ := cfg["tls_server_config"].(map[string]any)
	for _, k := range []string{"cert_file", "key_file", "client_ca_file"} {
		if f, ok := tlsCfg[k].(string); ok {
			tlsCfg[k] = p.path(t, f)
		}
	}
	users, _ := cfg["basic_auth_users"].(map[string]any)
	hash, err := bcrypt.GenerateFromPassword([]byte(scrapePassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	for u := range users {
		users[u] = string(hash)
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
