package deploy

import (
	"bytes"
	"context"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"go.yaml.in/yaml/v3"

	"github.com/sigid/pgcapacity/internal/sigid"
)

const (
	composeFile   = "compose/compose.yaml"
	composeSchema = "compose/initdb/10-sigid-schema.sql"
)

// loadCompose loads the stack as `docker compose` would, validated against
// the compose specification, with no variables set (every default applies).
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{composeFile}, cli.WithEnv(nil), cli.WithResolvedPaths(true))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("%s: %v", composeFile, err)
	}
	return p
}

func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, ok := p.Services[name]
	if !ok {
		t.Fatalf("%s has no service %s", composeFile, name)
	}
	return s
}

// mount is the bind mount of s at target; its source must exist.
func mount(t *testing.T, s types.ServiceConfig, target string) string {
	t.Helper()
	for _, v := range s.Volumes {
		if v.Target == target {
			if v.Type != types.VolumeTypeBind {
				t.Errorf("service %s: %s is a %s, want a bind mount of a repository file", s.Name, target, v.Type)
			}
			if !v.ReadOnly {
				t.Errorf("service %s: mount %s it with :ro", s.Name, target)
			}
			return v.Source
		}
	}
	t.Fatalf("service %s mounts nothing at %s", s.Name, target)
	return ""
}

func flagValue(cmd []string, name string) string {
	for _, a := range cmd {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}

func env(s types.ServiceConfig, name string) string {
	if v := s.Environment[name]; v != nil {
		return *v
	}
	return ""
}

func abs(t *testing.T, parts ...string) string {
	t.Helper()
	p, err := filepath.Abs(repo(parts...))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func targetPorts(s types.ServiceConfig) []string {
	var ports []string
	for _, p := range s.Ports {
		ports = append(ports, strconv.Itoa(int(p.Target)))
	}
	return ports
}

// TestComposeStack: the stack is valid compose, every file it mounts
// exists and is the one the tests use, and the services reach each other
// by the names and ports their configuration files give.
func TestComposeStack(t *testing.T) {
	p := loadCompose(t)
	var names []string
	for n := range p.Services {
		names = append(names, n)
	}
	slices.Sort(names)
	if want := []string{"alertmanager", "grafana", "pgcapacity", "postgres", "prometheus"}; !slices.Equal(names, want) {
		t.Errorf("services %v, want %v", names, want)
	}
	for _, s := range p.Services {
		_, tag, _ := strings.Cut(s.Image, ":")
		if tag == "" || tag == "latest" {
			t.Errorf("service %s: image %q: pin a version", s.Name, s.Image)
		}
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeBind {
				if _, err := os.Stat(v.Source); err != nil {
					t.Errorf("service %s mounts %s, which does not exist: %v", s.Name, v.Source, err)
				}
			}
		}
	}

	// PostgreSQL: the SigID schema and seed, the roles from deploy/sql,
	// pg_stat_statements loaded.
	pg := service(t, p, "postgres")
	if src := mount(t, pg, "/docker-entrypoint-initdb.d"); src != abs(t, "deploy", "compose", "initdb") {
		t.Errorf("postgres initializes from %s, want deploy/compose/initdb", src)
	}
	if src := mount(t, pg, env(pg, "PGCAPACITY_SQL_DIR")); src != abs(t, "deploy", "sql") {
		t.Errorf("postgres reads the roles from %s, want deploy/sql", src)
	}
	if !slices.Contains(pg.Command, "shared_preload_libraries=pg_stat_statements") {
		t.Errorf("postgres command %v does not preload pg_stat_statements", pg.Command)
	}
	if pg.HealthCheck == nil || len(pg.HealthCheck.Test) == 0 {
		t.Error("postgres has no healthcheck for pgcapacity to wait on")
	}
	for _, v := range []string{"POSTGRES_DB", "PGCAPACITY_PASSWORD", "PGCAPACITY_MIGRATE_PASSWORD"} {
		if env(pg, v) == "" {
			t.Errorf("postgres: %s is empty (30-roles.sh needs it)", v)
		}
	}

	// pgcapacity: the image of this repository's Dockerfile, as the
	// monitoring role, read-only and unprivileged.
	pc := service(t, p, "pgcapacity")
	if pc.Build == nil || pc.Build.Context != abs(t) || pc.Build.Dockerfile != "Dockerfile" {
		t.Errorf("pgcapacity: want build from the repository's Dockerfile, got %+v", pc.Build)
	}
	var vars []string
	for k := range pc.Environment {
		vars = append(vars, k)
	}
	checkVariables(t, "compose service pgcapacity", vars)
	dbURL, err := url.Parse(env(pc, "PGCAPACITY_DATABASE_URL"))
	if err != nil {
		t.Fatalf("PGCAPACITY_DATABASE_URL: %v", err)
	}
	host, port, _ := net.SplitHostPort(dbURL.Host)
	if dbURL.User.Username() != "pgcapacity" || host != "postgres" || port != "5432" || !slices.Contains(targetPorts(pg), port) ||
		strings.TrimPrefix(dbURL.Path, "/") != env(pg, "POSTGRES_DB") {
		t.Errorf("PGCAPACITY_DATABASE_URL %s: want the monitoring role pgcapacity at postgres:5432/%s", dbURL.Redacted(), env(pg, "POSTGRES_DB"))
	}
	if pw, _ := dbURL.User.Password(); pw != env(pg, "PGCAPACITY_PASSWORD") {
		t.Error("pgcapacity's password differs from the one postgres gives the role (PGCAPACITY_PASSWORD)")
	}
	if dep, ok := pc.DependsOn["postgres"]; !ok || dep.Condition != types.ServiceConditionHealthy {
		t.Errorf("pgcapacity should wait for a healthy postgres, got %+v", pc.DependsOn)
	}
	_, listenPort, _ := strings.Cut(configDefault(t, "ListenAddress"), ":")
	if got := env(pc, "PGCAPACITY_LISTEN_ADDRESS"); got != ":"+listenPort || !slices.Contains(targetPorts(pc), listenPort) {
		t.Errorf("pgcapacity listens on %q and publishes %v, want :%s", got, targetPorts(pc), listenPort)
	}
	// Health: the image's check binary on the plain health listener, which
	// a web configuration's TLS and basic auth leave alone.
	_, healthPort, _ := strings.Cut(env(pc, "PGCAPACITY_HEALTH_LISTEN_ADDRESS"), ":")
	if healthPort == "" || healthPort == listenPort {
		t.Errorf("pgcapacity: PGCAPACITY_HEALTH_LISTEN_ADDRESS %q: want a port of its own, such as :9843", env(pc, "PGCAPACITY_HEALTH_LISTEN_ADDRESS"))
	}
	stages := parseDockerfile(t).stages
	imageCheck := commands[*instructions.HealthCheckCommand](stages[len(stages)-1])
	if hc := pc.HealthCheck; hc == nil || len(imageCheck) != 1 || !slices.Equal([]string(hc.Test), imageCheck[0].Health.Test) {
		t.Errorf("pgcapacity healthcheck %+v: want the Dockerfile's HEALTHCHECK command %v", pc.HealthCheck, imageCheck)
	} else if hc.Interval == nil || hc.Timeout == nil || *hc.Timeout >= *hc.Interval {
		t.Errorf("pgcapacity healthcheck: want an interval and a timeout under it, got %+v", hc)
	}
	uid, _, _ := strings.Cut(pc.User, ":")
	if n, err := strconv.Atoi(uid); err != nil || n == 0 {
		t.Errorf("pgcapacity user %q: want a numeric non-root uid", pc.User)
	}
	if !pc.ReadOnly || !slices.Equal(pc.CapDrop, []string{"ALL"}) || !slices.Contains(pc.SecurityOpt, "no-new-privileges:true") {
		t.Errorf("pgcapacity: want read_only, cap_drop [ALL] and no-new-privileges, got %v %v %v", pc.ReadOnly, pc.CapDrop, pc.SecurityOpt)
	}

	// Prometheus: the configuration and rules the tests use; its targets
	// are this stack's services.
	prom := service(t, p, "prometheus")
	promConfig := flagValue(prom.Command, "--config.file")
	if src := mount(t, prom, promConfig); src != abs(t, "deploy", "prometheus", "prometheus.yml") {
		t.Errorf("prometheus reads %s, want deploy/prometheus/prometheus.yml", src)
	}
	var pcfg struct {
		RuleFiles []string `yaml:"rule_files"`
		Alerting  struct {
			Alertmanagers []struct {
				StaticConfigs []struct {
					Targets []string `yaml:"targets"`
				} `yaml:"static_configs"`
			} `yaml:"alertmanagers"`
		} `yaml:"alerting"`
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(readFile(t, repo("deploy", "prometheus", "prometheus.yml")), &pcfg); err != nil {
		t.Fatal(err)
	}
	if len(pcfg.RuleFiles) == 0 {
		t.Error("prometheus.yml loads no rule files")
	}
	for _, rf := range pcfg.RuleFiles {
		if src := mount(t, prom, rf); src != abs(t, "rules", "pgcapacity.rules.yml") {
			t.Errorf("prometheus rule file %s comes from %s, want rules/pgcapacity.rules.yml", rf, src)
		}
	}
	reaches := func(what, target string) {
		t.Helper()
		h, port, err := net.SplitHostPort(target)
		s, ok := p.Services[h]
		if err != nil || !ok {
			t.Errorf("prometheus.yml: %s target %s is not a service of the stack", what, target)
			return
		}
		if !slices.Contains(targetPorts(s), port) {
			t.Errorf("prometheus.yml: %s target %s: service %s publishes %v", what, target, h, targetPorts(s))
		}
	}
	for _, am := range pcfg.Alerting.Alertmanagers {
		for _, sc := range am.StaticConfigs {
			for _, tg := range sc.Targets {
				reaches("alertmanager", tg)
			}
		}
	}
	rulesJob := configDefault(t, "RulesJob")
	scraped := false
	for _, sc := range pcfg.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, tg := range st.Targets {
				reaches("scrape", tg)
				if sc.JobName == rulesJob && strings.HasPrefix(tg, "pgcapacity:") {
					scraped = true
				}
			}
		}
	}
	if !scraped {
		t.Errorf("prometheus.yml does not scrape pgcapacity as job %q", rulesJob)
	}

	am := service(t, p, "alertmanager")
	if src := mount(t, am, flagValue(am.Command, "--config.file")); src != abs(t, "deploy", "alertmanager", "alertmanager.yml") {
		t.Errorf("alertmanager reads %s, want deploy/alertmanager/alertmanager.yml", src)
	}

	// Grafana: the provisioning of deploy/grafana, the dashboards where
	// its provider looks, Prometheus where its data source points.
	gf := service(t, p, "grafana")
	if src := mount(t, gf, "/etc/grafana/provisioning"); src != abs(t, "deploy", "grafana", "provisioning") {
		t.Errorf("grafana provisioning from %s, want deploy/grafana/provisioning", src)
	}
	var provider struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	if err := yaml.Unmarshal(readFile(t, repo("deploy", "grafana", "provisioning", "dashboards", "pgcapacity.yml")), &provider); err != nil {
		t.Fatal(err)
	}
	if len(provider.Providers) != 1 {
		t.Fatalf("want one dashboards provider, got %d", len(provider.Providers))
	}
	if src := mount(t, gf, provider.Providers[0].Options.Path); src != abs(t, "dashboards", "json") {
		t.Errorf("grafana dashboards at %s come from %s, want dashboards/json", provider.Providers[0].Options.Path, src)
	}
	var ds struct {
		Datasources []struct {
			URL string `yaml:"url"`
		} `yaml:"datasources"`
	}
	if err := yaml.Unmarshal(readFile(t, repo("deploy", "grafana", "provisioning", "datasources", "prometheus.yml")), &ds); err != nil {
		t.Fatal(err)
	}
	for _, d := range ds.Datasources {
		u, err := url.Parse(d.URL)
		if err != nil {
			t.Fatal(err)
		}
		h, port, _ := net.SplitHostPort(u.Host)
		if s, ok := p.Services[h]; !ok || !slices.Contains(targetPorts(s), port) {
			t.Errorf("grafana data source %s is not a service port of the stack", d.URL)
		}
	}
}

// recorder captures the DDL sigid.Apply runs.
type recorder struct{ sql []string }

func (r *recorder) Exec(_ context.Context, sql string, _ ...any) (pgconn.CommandTag, error) {
	r.sql = append(r.sql, sql)
	return pgconn.CommandTag{}, nil
}

// composeSchemaSQL is the reference schema as the compose stack loads it:
// internal/sigid's DDL, created as the owner role.
func composeSchemaSQL(t *testing.T) []byte {
	t.Helper()
	var r recorder
	if err := sigid.Apply(context.Background(), &r, sigid.SchemaOptions{}); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	b.WriteString("-- Generated from internal/sigid, the SigID reference schema (" + strconv.Itoa(sigid.DefaultPartitions) + " hash partitions per\n")
	b.WriteString("-- table), by `cd deploy/tests && go test -run TestComposeSchemaIsCurrent -update`; do not edit.\n")
	b.WriteString("-- Created by the owner role of 00-extensions.sql, as in a real deployment.\n")
	b.WriteString("SET ROLE sigid_owner;\n\n")
	for _, s := range r.sql {
		b.WriteString(strings.TrimSpace(s) + "\n")
	}
	b.WriteString("\nRESET ROLE;\n")
	return b.Bytes()
}

// TestComposeSchemaIsCurrent: the stack's schema is the reference schema.
func TestComposeSchemaIsCurrent(t *testing.T) {
	want := composeSchemaSQL(t)
	if *update {
		if err := os.WriteFile(composeSchema, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got := readFile(t, composeSchema); !bytes.Equal(got, want) {
		t.Errorf("%s is not internal/sigid's schema: run (cd deploy/tests && go test -run TestComposeSchemaIsCurrent -update)", composeSchema)
	}
}
