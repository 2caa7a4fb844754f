// Package deploy's tests check the files that run pgcapacity where SREs run
// it: every YAML and JSON file under deploy/ parses, the Kubernetes
// variants render with kustomize into objects whose fields matter
// (images, ports, probes, security, references to the rules and
// dashboards), the compose stack loads and mounts files that exist, the
// systemd unit verifies, the Dockerfile builds a static binary from the
// context .dockerignore leaves, and the least-privilege roles of deploy/sql
// are enough for serve and too little to write, against a real PostgreSQL,
// and the health checks of every deployment (the image's HEALTHCHECK, the
// compose healthcheck, kubelet's probes, the ServiceMonitor's scrape) pass
// against a real serve behind a real web configuration (TLS, basic auth).
package deploy

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/sigid/pgcapacity/internal/config"
	"github.com/sigid/pgcapacity/internal/throwaway/pgtest"
)

var cluster pgtest.Cluster

// TestMain runs the tests in deploy/, the directory whose files they
// check: the tests live in deploy/tests only to keep the deployment
// libraries (kustomize, compose-go, the Kubernetes API) in a module of
// their own, out of the product's go.mod.
func TestMain(m *testing.M) {
	if err := os.Chdir(".."); err != nil {
		fmt.Fprintln(os.Stderr, "deploy tests: entering deploy/:", err)
		os.Exit(1)
	}
	pgtest.Main(m, &cluster)
}

var update = flag.Bool("update", false, "rewrite the generated deployment files (dashboards ConfigMaps, compose schema) instead of comparing them")

// repo is a path from the repository root; TestMain runs the tests in deploy/.
func repo(parts ...string) string {
	return filepath.Join(append([]string{".."}, parts...)...)
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// configDefault is the default of a config.Config field, from its tag.
func configDefault(t *testing.T, field string) string {
	t.Helper()
	f, ok := reflect.TypeOf(config.Config{}).FieldByName(field)
	if !ok {
		t.Fatalf("config.Config has no field %s", field)
	}
	return f.Tag.Get("default")
}

// knownVariables are the PGCAPACITY_* variables `pgcapacity help` lists:
// a manifest that sets any other is a typo pgcapacity would ignore.
func knownVariables(t *testing.T) map[string]bool {
	t.Helper()
	var out bytes.Buffer
	if err := config.Usage(&out); err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) > 0 && strings.HasPrefix(f[0], config.Prefix+"_") {
			known[f[0]] = true
		}
	}
	if !known[config.Prefix+"_DATABASE_URL"] || len(known) < 20 {
		t.Fatalf("config.Usage lists %d variables, not the configuration:\n%s", len(known), out.String())
	}
	return known
}

// checkVariables fails for every PGCAPACITY_* name that pgcapacity does not
// know; others (GOMEMLIMIT) pass.
func checkVariables(t *testing.T, where string, names []string) {
	t.Helper()
	known := knownVariables(t)
	for _, n := range names {
		if strings.HasPrefix(n, config.Prefix+"_") && !known[n] && n != "PGCAPACITY_HEALTHCHECK_URL" {
			t.Errorf("%s sets %s, which pgcapacity does not read (see `pgcapacity help`)", where, n)
		}
	}
}
