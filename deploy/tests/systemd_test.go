package deploy

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/coreos/go-systemd/v22/unit"
	"k8s.io/apimachinery/pkg/api/resource"
)

const (
	unitFile   = "systemd/pgcapacity.service"
	unitEnv    = "systemd/pgcapacity.env"
	execBinary = "/usr/local/bin/pgcapacity"
)

// unitOptions maps "Section.Name" to every value given, in order.
func unitOptions(t *testing.T, data []byte) map[string][]string {
	t.Helper()
	opts, err := unit.DeserializeOptions(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s: %v", unitFile, err)
	}
	m := map[string][]string{}
	for _, o := range opts {
		m[o.Section+"."+o.Name] = append(m[o.Section+"."+o.Name], o.Value)
	}
	return m
}

// TestSystemdUnit: the unit runs serve with the shipped environment file
// under the hardening the issue asks for, and the environment file sets
// only variables pgcapacity reads.
func TestSystemdUnit(t *testing.T) {
	opts := unitOptions(t, readFile(t, unitFile))
	want := map[string]string{
		"Service.ExecStart":               execBinary + " serve",
		"Service.EnvironmentFile":         "/etc/pgcapacity/pgcapacity.env",
		"Service.DynamicUser":             "yes",
		"Service.ProtectSystem":           "strict",
		"Service.NoNewPrivileges":         "yes",
		"Service.RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
		"Service.CapabilityBoundingSet":   "",
		"Service.ProtectHome":             "yes",
		"Service.PrivateTmp":              "yes",
		"Service.PrivateDevices":          "yes",
		// A configuration error exits 2: restarting cannot fix it.
		"Service.RestartPreventExitStatus": "2",
		"Install.WantedBy":                 "multi-user.target",
	}
	for k, v := range want {
		got, ok := opts[k]
		if !ok || len(got) != 1 || got[0] != v {
			t.Errorf("%s: %s=%q, want %q", unitFile, k, got, v)
		}
	}
	filters := opts["Service.SystemCallFilter"]
	if !slices.Contains(filters, "@system-service") {
		t.Errorf("%s: SystemCallFilter %v: want @system-service", unitFile, filters)
	}

	// Memory: the Go runtime's soft limit under the hard one.
	var memMax, goMem resource.Quantity
	var err error
	if v := opts["Service.MemoryMax"]; len(v) == 1 {
		memMax, err = resource.ParseQuantity(strings.TrimSuffix(v[0], "M") + "Mi")
	}
	for _, e := range opts["Service.Environment"] {
		if v, ok := strings.CutPrefix(e, "GOMEMLIMIT="); ok {
			goMem, err = resource.ParseQuantity(strings.TrimSuffix(v, "B"))
		}
	}
	if err != nil || memMax.IsZero() || goMem.IsZero() || goMem.Cmp(memMax) >= 0 {
		t.Errorf("%s: want MemoryMax and a GOMEMLIMIT under it, got %s and %s (%v)", unitFile, memMax.String(), goMem.String(), err)
	}

	// The environment file: KEY=VALUE lines of known variables, the
	// connection string among them.
	var keys []string
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, unitEnv)))
	assignment := regexp.MustCompile(`^([A-Z_][A-Z0-9_]*)=(.*)$`)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m := assignment.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("%s:%d: %q is not KEY=VALUE", unitEnv, n, line)
			continue
		}
		keys = append(keys, m[1])
	}
	if !slices.Contains(keys, "PGCAPACITY_DATABASE_URL") {
		t.Errorf("%s does not set PGCAPACITY_DATABASE_URL", unitEnv)
	}
	checkVariables(t, unitEnv, keys)
}

// systemdAnalyze runs systemd-analyze, which ships with systemd.
func systemdAnalyze(t *testing.T, args ...string) (string, error) {
	t.Helper()
	bin, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal("checking the systemd unit needs systemd-analyze: install it with `apt-get install systemd` (or `make deps`)")
	}
	out, err := exec.CommandContext(context.Background(), bin, args...).CombinedOutput()
	return string(out), err
}

// unitCopy writes the unit with ExecStart pointing at a real executable
// (verify checks that it exists) into a temporary directory.
func unitCopy(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.ReplaceAll(readFile(t, unitFile), []byte("ExecStart="+execBinary), []byte("ExecStart="+self))
	path := filepath.Join(t.TempDir(), filepath.Base(unitFile))
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSystemdAnalyzeVerify: systemd itself accepts the unit, without a
// warning (an unknown or misspelt key is only a warning to systemd).
func TestSystemdAnalyzeVerify(t *testing.T) {
	out, err := systemdAnalyze(t, "verify", "--man=no", unitCopy(t))
	if err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify %s: %v\n%s", unitFile, err, out)
	}
}

// TestSystemdSecurityExposure: systemd's own hardening score for the unit
// stays "OK" (at most 2.0 of 10).
func TestSystemdSecurityExposure(t *testing.T) {
	out, err := systemdAnalyze(t, "security", "--offline=yes", "--threshold=20", "--no-pager", unitCopy(t))
	score := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindStringSubmatch(out)
	if err != nil || score == nil {
		t.Fatalf("systemd-analyze security %s: exposure above 2.0 or unreadable: %v\n%s", unitFile, err, out)
	}
	t.Logf("systemd exposure level of %s: %s", unitFile, score[1])
}
