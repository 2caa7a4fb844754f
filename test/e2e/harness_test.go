package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sigid/pgcapacity/test/harness"
	"go.yaml.in/yaml/v3"
)

const shippedAM = "../../deploy/alertmanager/alertmanager.yml"

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
	return harness.WriteYAML(t, "alertmanager.yml", cfg)
}

// startAlertmanager runs Debian's Alertmanager with the shipped
// configuration, clustering off, and returns its base URL.
func startAlertmanager(t *testing.T, hook string) string {
	t.Helper()
	bin := harness.Binary(t, "prometheus-alertmanager", "alertmanager")
	addr := harness.FreeAddr(t)
	p := harness.Start(t, "alertmanager", nil, bin,
		"--config.file="+alertmanagerConfig(t, hook),
		"--storage.path="+t.TempDir(),
		"--web.listen-address="+addr,
		"--cluster.listen-address=")
	base := "http://" + addr
	harness.WaitHTTP(t, base+"/-/ready", p)
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

func fmtLabels(l map[string]string) string {
	var parts []string
	for k, v := range l {
		parts = append(parts, fmt.Sprintf("%s=%q", k, v))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}
