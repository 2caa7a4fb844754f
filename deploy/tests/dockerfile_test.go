package deploy

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// The build arguments the test passes, as `docker build --build-arg` would.
const (
	testVersion  = "v9.8.7-deploy-test"
	testRevision = "abc1234"
)

type dockerfile struct {
	stages []instructions.Stage
	args   map[string]string // global ARG defaults (before the first FROM)
}

func parseDockerfile(t *testing.T) dockerfile {
	t.Helper()
	d, err := readDockerfile()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func readDockerfile() (dockerfile, error) {
	data, err := os.ReadFile(repo("Dockerfile"))
	if err != nil {
		return dockerfile{}, err
	}
	res, err := parser.Parse(bytes.NewReader(data))
	if err != nil {
		return dockerfile{}, fmt.Errorf("Dockerfile: %w", err)
	}
	for _, w := range res.Warnings {
		return dockerfile{}, fmt.Errorf("Dockerfile: %s", w.Short)
	}
	stages, metaArgs, err := instructions.Parse(res.AST, nil)
	if err != nil {
		return dockerfile{}, fmt.Errorf("Dockerfile: %w", err)
	}
	d := dockerfile{stages: stages, args: map[string]string{}}
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			if kv.Value != nil {
				d.args[kv.Key] = *kv.Value
			}
		}
	}
	return d, nil
}

func (d dockerfile) find(name string) (instructions.Stage, bool) {
	for _, s := range d.stages {
		if s.Name == name {
			return s, true
		}
	}
	return instructions.Stage{}, false
}

func (d dockerfile) stage(t *testing.T, name string) instructions.Stage {
	t.Helper()
	s, ok := d.find(name)
	if !ok {
		t.Fatalf("Dockerfile has no stage %q", name)
	}
	return s
}

func commands[T instructions.Command](s instructions.Stage) []T {
	var out []T
	for _, c := range s.Commands {
		if v, ok := c.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

// expand replaces ${NAME} and $NAME from vars, as docker build does for ARG and ENV.
func expand(s string, vars map[string]string) string {
	return os.Expand(s, func(k string) string { return vars[k] })
}

// builtImage is what the Dockerfile's build stage produces.
type builtImage struct {
	pgcapacity, healthcheck string
	// outputs maps each -o path of the build stage (ARG defaults expanded)
	// to the file the test built.
	outputs map[string]string
}

// imageBinaries runs the build stage's RUN commands, with its ENV and ARG
// values, in a copy of the build context that .dockerignore leaves: the
// same binaries `docker build` makes, for the test to run.
func imageBinaries(t *testing.T) builtImage {
	t.Helper()
	img, err := buildImage(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func buildImage(ctxDir string) (builtImage, error) {
	d, err := readDockerfile()
	if err != nil {
		return builtImage{}, err
	}
	build, ok := d.find("build")
	if !ok {
		return builtImage{}, errors.New(`Dockerfile has no stage "build"`)
	}
	if _, err := copyBuildContext(ctxDir); err != nil {
		return builtImage{}, fmt.Errorf("copying the build context: %w", err)
	}
	outDir := filepath.Join(ctxDir, ".image-out")
	vars := map[string]string{}
	for k, v := range d.args {
		vars[k] = v
	}
	env := os.Environ()
	overrides := map[string]string{"VERSION": testVersion, "REVISION": testRevision, "OUT": outDir}
	img := builtImage{outputs: map[string]string{}}
	outFlag := regexp.MustCompile(`-o\s+(\S+)`)
	for _, c := range build.Commands {
		switch c := c.(type) {
		case *instructions.ArgCommand:
			for _, kv := range c.Args {
				val := ""
				if kv.Value != nil {
					val = expand(*kv.Value, vars)
				}
				if o, ok := overrides[kv.Key]; ok {
					// The default is what COPY --from sees in the image.
					vars["default:"+kv.Key] = val
					val = o
				}
				vars[kv.Key] = val
				env = append(env, kv.Key+"="+val)
			}
		case *instructions.EnvCommand:
			for _, kv := range c.Env {
				v := expand(kv.Value, vars)
				vars[kv.Key] = v
				env = append(env, kv.Key+"="+v)
			}
		case *instructions.RunCommand:
			if !c.PrependShell || len(c.CmdLine) != 1 {
				return builtImage{}, fmt.Errorf("Dockerfile: RUN in the build stage should be shell form: %s", c.String())
			}
			line := c.CmdLine[0]
			cmd := exec.CommandContext(context.Background(), "sh", "-c", line)
			cmd.Dir = ctxDir
			cmd.Env = append(env, "GOTOOLCHAIN=local")
			if out, err := cmd.CombinedOutput(); err != nil {
				return builtImage{}, fmt.Errorf("Dockerfile: %s: %w\n%s", line, err, out)
			}
			for _, m := range outFlag.FindAllStringSubmatch(line, -1) {
				built := expand(m[1], vars)
				inImage := os.Expand(m[1], func(k string) string {
					if v, ok := vars["default:"+k]; ok {
						return v
					}
					return vars[k]
				})
				img.outputs[inImage] = built
				switch filepath.Base(built) {
				case "pgcapacity":
					img.pgcapacity = built
				case "healthcheck":
					img.healthcheck = built
				}
			}
		}
	}
	if img.pgcapacity == "" || img.healthcheck == "" {
		return builtImage{}, errors.New("Dockerfile: the build stage does not build both pgcapacity and healthcheck (go build -o .../pgcapacity, .../healthcheck)")
	}
	return img, nil
}

// copyBuildContext copies the repository files that .dockerignore lets into
// the build context, and returns their paths.
func copyBuildContext(dst string) ([]string, error) {
	f, err := os.Open(repo(".dockerignore"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		return nil, err
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return nil, err
	}
	root := repo()
	var copied []string
	err = filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		if e.IsDir() {
			if rel == ".git" {
				return fs.SkipDir
			}
			return nil
		}
		excluded, err := pm.MatchesOrParentMatches(filepath.ToSlash(rel))
		if err != nil || excluded || !e.Type().IsRegular() {
			return err
		}
		copied = append(copied, filepath.ToSlash(rel))
		return copyFile(p, filepath.Join(dst, rel))
	})
	return copied, err
}

func copyFile(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// TestDockerignoreKeepsOnlyWhatTheBuildReads: the context holds the Go
// sources and embedded files (the build above proves enough is there) and
// none of the repository's history, binaries, tests or manifests.
func TestDockerignoreKeepsOnlyWhatTheBuildReads(t *testing.T) {
	files, err := copyBuildContext(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		ok := f == "go.mod" || f == "go.sum" || strings.HasSuffix(f, ".go") || path.Dir(f) == "collector/adminops/queries"
		if !ok || strings.HasSuffix(f, "_test.go") || strings.HasPrefix(f, "bench/") {
			t.Errorf("the build context holds %s, which go build does not read: exclude it in .dockerignore", f)
		}
	}
	for _, want := range []string{"go.mod", "go.sum", "cmd/pgcapacity/main.go", "deploy/healthcheck/main.go", "collector/adminops/queries/stale_invitations.sql"} {
		if !slices.Contains(files, want) {
			t.Errorf("the build context lacks %s", want)
		}
	}
}

// TestDockerfileBuildsStaticBinaries: the build stage's commands give
// static binaries (a distroless static image has no libc) carrying the
// version and revision build arguments.
func TestDockerfileBuildsStaticBinaries(t *testing.T) {
	img := imageBinaries(t)
	for _, bin := range []string{img.pgcapacity, img.healthcheck} {
		f, err := elf.Open(bin)
		if err != nil {
			t.Fatalf("%s: %v", bin, err)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
				t.Errorf("%s is dynamically linked (program header %v): build it with CGO_ENABLED=0", filepath.Base(bin), p.Type)
			}
		}
		if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
			t.Errorf("%s needs shared libraries %v", filepath.Base(bin), libs)
		}
		f.Close()
	}
	out, err := exec.CommandContext(context.Background(), img.pgcapacity, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("pgcapacity version: %v\n%s", err, out)
	}
	for _, want := range []string{testVersion, testRevision} {
		if !strings.Contains(string(out), want) {
			t.Errorf("pgcapacity version does not show the build argument %s:\n%s", want, out)
		}
	}
}

// TestDockerfileImage: the runtime stage is a minimal non-root image with
// no shell, runs the binaries the build stage made, checks /healthz
// without a shell and carries the OCI labels.
func TestDockerfileImage(t *testing.T) {
	d := parseDockerfile(t)
	if len(d.stages) != 2 {
		t.Fatalf("want a build stage and a runtime stage, got %d stages", len(d.stages))
	}
	build, final := d.stage(t, "build"), d.stages[len(d.stages)-1]

	// The Go toolchain of the image is go.mod's.
	goVersion := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(readFile(t, repo("go.mod")))
	if goVersion == nil {
		t.Fatal("go.mod has no go directive")
	}
	if got := expand(build.BaseName, d.args); got != "golang:"+string(goVersion[1])+"-bookworm" {
		t.Errorf("build stage FROM %s: want golang:%s-bookworm, the go directive of go.mod", got, goVersion[1])
	}
	// No shell, no package manager: distroless static or scratch, pinned.
	if !regexp.MustCompile(`^(scratch|gcr\.io/distroless/static-debian\d+:nonroot(@sha256:[0-9a-f]{64})?)$`).MatchString(final.BaseName) {
		t.Errorf("runtime stage FROM %s: want gcr.io/distroless/static-debian12:nonroot (no shell) or scratch", final.BaseName)
	}

	users := commands[*instructions.UserCommand](final)
	if len(users) != 1 {
		t.Fatalf("runtime stage: want one USER, got %d", len(users))
	}
	uid, _, _ := strings.Cut(users[0].User, ":")
	if n, err := strconv.Atoi(uid); err != nil || n == 0 {
		t.Errorf("USER %s: want a numeric non-root uid (Kubernetes runAsNonRoot checks numbers)", users[0].User)
	}

	img := imageBinaries(t)
	inImage := map[string]string{} // path in the image -> binary built
	for _, c := range commands[*instructions.CopyCommand](final) {
		if c.From != build.Name {
			t.Errorf("runtime stage: %s copies from %q, want only the build stage's output", c.String(), c.From)
			continue
		}
		for _, src := range c.SourcePaths {
			built, ok := img.outputs[src]
			if !ok {
				t.Errorf("runtime stage copies %s, which the build stage does not build (it builds %v)", src, img.outputs)
				continue
			}
			dest := c.DestPath
			if strings.HasSuffix(dest, "/") {
				dest = path.Join(dest, path.Base(src))
			}
			inImage[dest] = built
		}
	}

	entry := commands[*instructions.EntrypointCommand](final)
	if len(entry) != 1 || entry[0].PrependShell || len(entry[0].CmdLine) != 1 || inImage[entry[0].CmdLine[0]] != img.pgcapacity {
		t.Errorf("ENTRYPOINT: want the exec form of the pgcapacity binary copied from the build stage, got %v", entry)
	}
	cmds := commands[*instructions.CmdCommand](final)
	if len(cmds) != 1 || cmds[0].PrependShell || !slices.Equal(cmds[0].CmdLine, []string{"serve"}) {
		t.Errorf("CMD: want [\"serve\"], got %v", cmds)
	}

	hc := commands[*instructions.HealthCheckCommand](final)
	if len(hc) != 1 {
		t.Fatalf("runtime stage: want one HEALTHCHECK, got %d", len(hc))
	}
	h := hc[0].Health
	if len(h.Test) != 2 || h.Test[0] != "CMD" || inImage[h.Test[1]] != img.healthcheck {
		t.Errorf("HEALTHCHECK %v: want CMD (exec form: the image has no shell) of the healthcheck binary copied from the build stage", h.Test)
	}
	if h.Interval <= 0 || h.Timeout <= 0 || h.Retries <= 0 || h.Timeout >= h.Interval {
		t.Errorf("HEALTHCHECK: want interval, timeout (under the interval) and retries set, got %+v", h)
	}

	listen := configDefault(t, "ListenAddress")
	env := map[string]string{}
	for _, c := range commands[*instructions.EnvCommand](final) {
		for _, kv := range c.Env {
			env[kv.Key] = kv.Value
		}
	}
	if env["PGCAPACITY_LISTEN_ADDRESS"] != listen {
		t.Errorf("ENV PGCAPACITY_LISTEN_ADDRESS=%q: want the exporter's default %q, which the health check and EXPOSE assume", env["PGCAPACITY_LISTEN_ADDRESS"], listen)
	}
	_, port, _ := strings.Cut(listen, ":")
	// The health check asks the plain health listener, which a web config's
	// TLS and basic auth leave alone (health_test.go runs it).
	_, healthPort, _ := strings.Cut(env["PGCAPACITY_HEALTH_LISTEN_ADDRESS"], ":")
	if healthPort == "" || healthPort == port {
		t.Errorf("ENV PGCAPACITY_HEALTH_LISTEN_ADDRESS=%q: want a port of its own, such as :9843, for the health check outside the web config", env["PGCAPACITY_HEALTH_LISTEN_ADDRESS"])
	}
	var exposed []string
	for _, c := range commands[*instructions.ExposeCommand](final) {
		exposed = append(exposed, c.Ports...)
	}
	for _, p := range []string{port, healthPort} {
		if !slices.Contains(exposed, p) && !slices.Contains(exposed, p+"/tcp") {
			t.Errorf("EXPOSE %v: want %s, the listen and health ports", exposed, p)
		}
	}

	labels := map[string]string{}
	for _, c := range commands[*instructions.LabelCommand](final) {
		for _, kv := range c.Labels {
			labels[kv.Key] = strings.Trim(kv.Value, `"`)
		}
	}
	for _, k := range []string{"title", "description", "source", "version", "revision"} {
		if strings.TrimSpace(labels["org.opencontainers.image."+k]) == "" {
			t.Errorf("runtime stage: no label org.opencontainers.image.%s", k)
		}
	}
	if labels["org.opencontainers.image.version"] != "${VERSION}" || labels["org.opencontainers.image.revision"] != "${REVISION}" {
		t.Errorf("the version and revision labels should carry the build arguments the binary is built with, got %q and %q",
			labels["org.opencontainers.image.version"], labels["org.opencontainers.image.revision"])
	}
}
