package migrate

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-openapi/strfmt"
	"github.com/prometheus/alertmanager/api/v2/client/silence"

	"github.com/sigid/pgcapacity/internal/testutil"
)

// alertmanagerBinary is Debian's prometheus-alertmanager package.
const alertmanagerBinary = "/usr/bin/prometheus-alertmanager"

// startAlertmanager runs a real Alertmanager on a free loopback port.
func startAlertmanager(t *testing.T) string {
	t.Helper()
	bin := alertmanagerBinary
	if p := os.Getenv("PGCAPACITY_ALERTMANAGER_BIN"); p != "" {
		bin = p
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("this test needs a real Alertmanager: install it with `apt-get install prometheus-alertmanager` or set PGCAPACITY_ALERTMANAGER_BIN (%v)", err)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfg, []byte("route:\n  receiver: none\nreceivers:\n  - name: none\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := testutil.FreeAddress(t)
	cmd := exec.Command(bin, "--config.file="+cfg, "--storage.path="+dir, "--web.listen-address="+addr, "--cluster.listen-address=")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("Alertmanager at %s did not become ready: %v", base, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestSilenceInRealAlertmanager(t *testing.T) {
	base := startAlertmanager(t)
	s, err := NewSilencer(base, "pgcapacity test")
	if err != nil {
		t.Fatal(err)
	}
	until := time.Now().Add(2 * time.Hour).Truncate(time.Second)
	id, err := s.Silence(context.Background(), "public", `Audit"Log`, until)
	if err != nil {
		t.Fatalf("creating the silence: %v", err)
	}
	got, err := s.client.Silence.GetSilence(silence.NewGetSilenceParams().WithSilenceID(strfmtUUID(t, id)))
	if err != nil {
		t.Fatalf("reading silence %s back: %v", id, err)
	}
	sil := got.GetPayload()
	if *sil.Status.State != "active" {
		t.Errorf("silence state %s, want active", *sil.Status.State)
	}
	matchers := map[string]string{}
	for _, m := range sil.Matchers {
		matchers[*m.Name] = *m.Value
	}
	if matchers["schema"] != "public" || matchers["table"] != `Audit"Log` || len(matchers) != 2 {
		t.Errorf("matchers %v", matchers)
	}
	if end := time.Time(*sil.EndsAt); !end.Equal(until) {
		t.Errorf("silence ends %v, want %v", end, until)
	}
	if _, err := NewSilencer("alertmanager:9093", "x"); err == nil {
		t.Error("a URL without a scheme was accepted")
	}
}

func strfmtUUID(t *testing.T, id string) strfmt.UUID {
	t.Helper()
	if !strfmt.IsUUID(id) {
		t.Fatal(fmt.Errorf("silence id %q is not a UUID", id))
	}
	return strfmt.UUID(id)
}
