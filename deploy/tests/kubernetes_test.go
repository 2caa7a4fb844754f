package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/kylelemons/godebug/pretty"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

const (
	kubeDir              = "kubernetes"
	dashboardsConfigMaps = "kubernetes/dashboards-configmaps.yaml"
	exporterLabel        = "pgcapacity.sigid.io/exporter"
	imageRepository      = "ghcr.io/sigid/pgcapacity"
)

// The variants a user applies: kubectl apply -k deploy/kubernetes/<variant>.
var kubeVariants = []struct {
	dir      string
	workload string // the kind that runs pgcapacity
	https    bool   // the https component: TLS and basic auth on /metrics
}{
	{"kubernetes/sidecar", "StatefulSet", false},
	{"kubernetes/standalone", "Deployment", false},
	{"kubernetes/sidecar-https", "StatefulSet", true},
	{"kubernetes/standalone-https", "Deployment", true},
}

// externalSecrets are the Secrets a variant uses and does not ship: the
// operator makes them (the https component says how).
var externalSecrets = map[string]bool{"pgcapacity-tls": true}

// webConfigFile is the web configuration a variant mounts in the pgcapacity
// container: its path in the container and its content, from the Secret
// behind the volume mounted there. ok is false when the container sets no
// PGCAPACITY_WEB_CONFIG_FILE.
func webConfigFile(t *testing.T, objs kubeObjects, pod corev1.PodSpec, c corev1.Container) (path, content string, ok bool) {
	t.Helper()
	for _, e := range c.Env {
		if e.Name == "PGCAPACITY_WEB_CONFIG_FILE" {
			path = e.Value
		}
	}
	if path == "" {
		return "", "", false
	}
	secret, key, found := mountedSecretKey(pod, c, path)
	if !found {
		t.Fatalf("PGCAPACITY_WEB_CONFIG_FILE=%s is not a file of a Secret volume the container mounts", path)
	}
	for _, s := range objs.secrets {
		if s.Name == secret {
			if v, ok := s.StringData[key]; ok {
				return path, v, true
			}
			if v, ok := s.Data[key]; ok {
				return path, string(v), true
			}
		}
	}
	t.Fatalf("PGCAPACITY_WEB_CONFIG_FILE=%s: the variant ships no Secret %s with key %s", path, secret, key)
	return "", "", false
}

// mountedSecretKey is the Secret and key behind the file at path in
// container c, when a Secret volume is mounted over its directory.
func mountedSecretKey(pod corev1.PodSpec, c corev1.Container, path string) (secret, key string, ok bool) {
	for _, m := range c.VolumeMounts {
		rel, inside := strings.CutPrefix(path, strings.TrimSuffix(m.MountPath, "/")+"/")
		if !inside || m.SubPath != "" {
			continue
		}
		for _, v := range pod.Volumes {
			if v.Name == m.Name && v.Secret != nil {
				return v.Secret.SecretName, rel, true
			}
		}
	}
	return "", "", false
}

// webConfig is the part of an exporter-toolkit web configuration the
// manifests wire to other objects.
type webConfig struct {
	TLSServerConfig struct {
		CertFile string `yaml:"cert_file"`
		KeyFile  string `yaml:"key_file"`
	} `yaml:"tls_server_config"`
	BasicAuthUsers map[string]string `yaml:"basic_auth_users"`
}

// secretValue is key of the shipped Secret name, and whether it is there.
func (o kubeObjects) secretValue(name, key string) (string, bool) {
	for _, s := range o.secrets {
		if s.Name != name {
			continue
		}
		if v, ok := s.StringData[key]; ok {
			return v, true
		}
		if v, ok := s.Data[key]; ok {
			return string(v), true
		}
	}
	return "", false
}

// kubeObjects is one rendered variant, every object decoded strictly into
// its Kubernetes or Prometheus Operator type (an unknown field fails).
type kubeObjects struct {
	services        []corev1.Service
	secrets         []corev1.Secret
	configMaps      []corev1.ConfigMap
	statefulSets    []appsv1.StatefulSet
	deployments     []appsv1.Deployment
	serviceMonitors []monitoringv1.ServiceMonitor
	prometheusRules []monitoringv1.PrometheusRule
}

func strictJSON(data []byte, into any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	return dec.Decode(into)
}

// renderKustomization runs kustomize (the library behind kubectl apply -k).
func renderKustomization(t *testing.T, dir string) kubeObjects {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	res, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var objs kubeObjects
	for _, r := range res.Resources() {
		data, err := r.MarshalJSON()
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		var into any
		switch r.GetKind() {
		case "Service":
			objs.services = append(objs.services, corev1.Service{})
			into = &objs.services[len(objs.services)-1]
		case "Secret":
			objs.secrets = append(objs.secrets, corev1.Secret{})
			into = &objs.secrets[len(objs.secrets)-1]
		case "ConfigMap":
			objs.configMaps = append(objs.configMaps, corev1.ConfigMap{})
			into = &objs.configMaps[len(objs.configMaps)-1]
		case "StatefulSet":
			objs.statefulSets = append(objs.statefulSets, appsv1.StatefulSet{})
			into = &objs.statefulSets[len(objs.statefulSets)-1]
		case "Deployment":
			objs.deployments = append(objs.deployments, appsv1.Deployment{})
			into = &objs.deployments[len(objs.deployments)-1]
		case "ServiceMonitor":
			objs.serviceMonitors = append(objs.serviceMonitors, monitoringv1.ServiceMonitor{})
			into = &objs.serviceMonitors[len(objs.serviceMonitors)-1]
		case "PrometheusRule":
			objs.prometheusRules = append(objs.prometheusRules, monitoringv1.PrometheusRule{})
			into = &objs.prometheusRules[len(objs.prometheusRules)-1]
		default:
			t.Fatalf("%s renders a %s (%s), which this test does not know: add its type here", dir, r.GetKind(), r.GetName())
		}
		if err := strictJSON(data, into); err != nil {
			t.Errorf("%s: %s %s: %v", dir, r.GetKind(), r.GetName(), err)
		}
	}
	return objs
}

// podSpec is the pod template of the variant's workload.
func (o kubeObjects) pod(t *testing.T, kind string) (metav1.ObjectMeta, corev1.PodSpec) {
	t.Helper()
	switch {
	case kind == "StatefulSet" && len(o.statefulSets) == 1 && len(o.deployments) == 0:
		return o.statefulSets[0].Spec.Template.ObjectMeta, o.statefulSets[0].Spec.Template.Spec
	case kind == "Deployment" && len(o.deployments) == 1 && len(o.statefulSets) == 0:
		return o.deployments[0].Spec.Template.ObjectMeta, o.deployments[0].Spec.Template.Spec
	}
	t.Fatalf("want exactly one %s running pgcapacity, got %d StatefulSets and %d Deployments", kind, len(o.statefulSets), len(o.deployments))
	return metav1.ObjectMeta{}, corev1.PodSpec{}
}

func container(t *testing.T, pod corev1.PodSpec, name string) corev1.Container {
	t.Helper()
	for _, c := range pod.Containers {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("the pod has no container %q", name)
	return corev1.Container{}
}

func containerPort(c corev1.Container, name string) (int32, bool) {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort, true
		}
	}
	return 0, false
}

// TestKubernetesVariants renders each variant and checks what makes it
// run: the image, the Secret it reads, ports and probes, security,
// resources, and that the Service, ServiceMonitor, rules and dashboards
// find each other.
func TestKubernetesVariants(t *testing.T) {
	listen := configDefault(t, "ListenAddress")
	_, listenPort, _ := strings.Cut(listen, ":")
	rulesJob := configDefault(t, "RulesJob")
	var exporters []corev1.Container
	for _, v := range kubeVariants {
		t.Run(filepath.Base(v.dir), func(t *testing.T) {
			objs := renderKustomization(t, v.dir)
			meta, pod := objs.pod(t, v.workload)
			c := container(t, pod, "pgcapacity")
			exporters = append(exporters, c)

			// Image: this project's, pinned to a release tag.
			repoName, tag, _ := strings.Cut(c.Image, ":")
			if repoName != imageRepository || tag == "" || tag == "latest" {
				t.Errorf("image %q: want %s:<release tag>", c.Image, imageRepository)
			}
			if !slices.Equal(c.Args, []string{"serve"}) || len(c.Command) > 0 {
				t.Errorf("command %v args %v: want the image's entrypoint with args [serve]", c.Command, c.Args)
			}

			// Configuration: known variables; the connection string from a
			// Secret that the variant ships with that key.
			env := map[string]corev1.EnvVar{}
			var names []string
			for _, e := range c.Env {
				env[e.Name] = e
				names = append(names, e.Name)
			}
			checkVariables(t, v.dir, names)
			db := env["PGCAPACITY_DATABASE_URL"]
			if db.Value != "" || db.ValueFrom == nil || db.ValueFrom.SecretKeyRef == nil {
				t.Fatalf("PGCAPACITY_DATABASE_URL must come from a Secret (secretKeyRef), got %+v", db)
			}
			ref := db.ValueFrom.SecretKeyRef
			found := false
			for _, s := range objs.secrets {
				if s.Name == ref.Name {
					_, inString := s.StringData[ref.Key]
					_, inData := s.Data[ref.Key]
					found = inString || inData
				}
			}
			if !found {
				t.Errorf("no Secret %s with key %s in %s", ref.Name, ref.Key, v.dir)
			}
			for _, e := range pod.Containers {
				for _, ev := range e.Env {
					if ev.ValueFrom != nil && ev.ValueFrom.SecretKeyRef != nil && !slices.ContainsFunc(objs.secrets, func(s corev1.Secret) bool {
						_, ok := s.StringData[ev.ValueFrom.SecretKeyRef.Key]
						return s.Name == ev.ValueFrom.SecretKeyRef.Name && ok
					}) {
						t.Errorf("container %s reads %s from Secret %s key %s, which %s does not ship", e.Name, ev.Name, ev.ValueFrom.SecretKeyRef.Name, ev.ValueFrom.SecretKeyRef.Key, v.dir)
					}
				}
			}

			// Ports and probes.
			if got := env["PGCAPACITY_LISTEN_ADDRESS"].Value; got != "" && got != listen {
				t.Errorf("PGCAPACITY_LISTEN_ADDRESS %q: the probes and Service assume %q", got, listen)
			}
			port, ok := containerPort(c, "metrics")
			if !ok || strconv.Itoa(int(port)) != listenPort {
				t.Errorf("want container port \"metrics\" %s, got %v", listenPort, c.Ports)
			}
			// The probes ask the plain health listener, outside the web
			// configuration's TLS and basic auth: kubelet has no password.
			health := env["PGCAPACITY_HEALTH_LISTEN_ADDRESS"].Value
			_, healthPort, _ := strings.Cut(health, ":")
			hp, ok := containerPort(c, "health")
			if !ok || strconv.Itoa(int(hp)) != healthPort || healthPort == listenPort {
				t.Errorf("want PGCAPACITY_HEALTH_LISTEN_ADDRESS (%q) on a port of its own, as container port \"health\", got %v", health, c.Ports)
			}
			for _, p := range []struct {
				name  string
				probe *corev1.Probe
				path  string
			}{{"liveness", c.LivenessProbe, "/healthz"}, {"readiness", c.ReadinessProbe, "/readyz"}} {
				if p.probe == nil || p.probe.HTTPGet == nil || p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Port.String() != "health" ||
					(p.probe.HTTPGet.Scheme != "" && p.probe.HTTPGet.Scheme != corev1.URISchemeHTTP) {
					t.Errorf("%s probe: want GET %s over HTTP on port \"health\", got %+v", p.name, p.path, p.probe)
				}
			}
			for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
				if p != nil && p.HTTPGet != nil && p.HTTPGet.Port.String() == "metrics" && v.https && p.HTTPGet.Scheme != corev1.URISchemeHTTPS {
					t.Errorf("a probe on port \"metrics\" with TLS on it needs scheme: HTTPS (and basic auth there fails it: use port \"health\"), got %+v", p.HTTPGet)
				}
			}

			// The web configuration: on in the https variants, its files
			// from Secret volumes the container can read.
			webPath, webContent, webOn := webConfigFile(t, objs, pod, c)
			var web webConfig
			if webOn != v.https {
				t.Errorf("PGCAPACITY_WEB_CONFIG_FILE %q: want it set exactly in the https variants", webPath)
			} else if webOn {
				if err := yaml.Unmarshal([]byte(webContent), &web); err != nil {
					t.Fatalf("%s: %v", webPath, err)
				}
				for _, f := range []string{web.TLSServerConfig.CertFile, web.TLSServerConfig.KeyFile} {
					if secret, _, ok := mountedSecretKey(pod, c, f); !ok || (!externalSecrets[secret] && !slices.ContainsFunc(objs.secrets, func(s corev1.Secret) bool { return s.Name == secret })) {
						t.Errorf("web configuration file %s is on no Secret volume of the container", f)
					}
				}
				if len(web.BasicAuthUsers) != 1 {
					t.Errorf("web configuration: want one basic auth user, the scrape's, got %v", web.BasicAuthUsers)
				}
			}
			if c.SecurityContext == nil || pod.SecurityContext == nil || c.SecurityContext.RunAsUser == nil {
				t.Fatal("want a pod and a container securityContext, runAsUser in the container's")
			}
			runUID, gids := *c.SecurityContext.RunAsUser, []int64{}
			if g := c.SecurityContext.RunAsGroup; g != nil {
				gids = append(gids, *g)
			} else if g := pod.SecurityContext.RunAsGroup; g != nil {
				gids = append(gids, *g)
			}
			if g := pod.SecurityContext.FSGroup; g != nil {
				gids = append(gids, *g) // a supplemental group of every container
			}
			for _, m := range c.VolumeMounts {
				for _, vol := range pod.Volumes {
					if vol.Name != m.Name || vol.Secret == nil {
						continue
					}
					mode := int32(0o644) // Kubernetes' default
					if vol.Secret.DefaultMode != nil {
						mode = *vol.Secret.DefaultMode
					}
					// Files of a Secret volume are root's, and fsGroup's when set.
					readable := mode&0o004 != 0 || (runUID == 0 && mode&0o400 != 0) ||
						(pod.SecurityContext.FSGroup != nil && slices.Contains(gids, *pod.SecurityContext.FSGroup) && mode&0o040 != 0)
					if !readable {
						t.Errorf("volume %s (mode %#o) is unreadable by uid %d with groups %v: set fsGroup or the mode", vol.Name, mode, runUID, gids)
					}
					if mode&0o007 != 0 {
						t.Errorf("volume %s (Secret %s) has mode %#o: others should not read a Secret", vol.Name, vol.Secret.SecretName, mode)
					}
					if !m.ReadOnly {
						t.Errorf("volume %s: mount it readOnly", vol.Name)
					}
				}
			}

			// Least privilege in the pod.
			sc := c.SecurityContext
			psc := pod.SecurityContext
			if sc == nil || psc == nil {
				t.Fatal("want a pod and a container securityContext")
			}
			nonRoot := (sc.RunAsNonRoot != nil && *sc.RunAsNonRoot) || (sc.RunAsNonRoot == nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot)
			uid := sc.RunAsUser
			if uid == nil {
				uid = psc.RunAsUser
			}
			if !nonRoot || uid == nil || *uid == 0 {
				t.Errorf("pgcapacity must run as a non-root uid (runAsNonRoot, runAsUser 65532)")
			}
			if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				t.Error("want readOnlyRootFilesystem: true")
			}
			if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				t.Error("want allowPrivilegeEscalation: false")
			}
			if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
				t.Error("want capabilities: drop [ALL], add none")
			}
			if sc.Privileged != nil && *sc.Privileged {
				t.Error("pgcapacity must not be privileged")
			}
			seccomp := psc.SeccompProfile
			if sc.SeccompProfile != nil {
				seccomp = sc.SeccompProfile
			}
			if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Error("want seccompProfile RuntimeDefault")
			}
			if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
				t.Error("pgcapacity needs no Kubernetes API: want automountServiceAccountToken: false")
			}

			// Resources: requests and limits, GOMEMLIMIT under the memory limit.
			res := c.Resources
			for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				req, okReq := res.Requests[name]
				lim, okLim := res.Limits[name]
				if !okReq || !okLim || req.Cmp(lim) > 0 {
					t.Errorf("resources: want a %s request no larger than its limit, got %v / %v", name, res.Requests, res.Limits)
				}
			}
			if gm := env["GOMEMLIMIT"].Value; gm != "" {
				q, err := resource.ParseQuantity(strings.TrimSuffix(gm, "B"))
				lim := res.Limits[corev1.ResourceMemory]
				if err != nil || q.Cmp(lim) >= 0 {
					t.Errorf("GOMEMLIMIT %s: want a size under the memory limit %s", gm, lim.String())
				}
			}

			// The Service selects this pod and names the metrics port.
			if len(objs.services) != 1 {
				t.Fatalf("want one Service, got %d", len(objs.services))
			}
			svc := objs.services[0]
			if meta.Labels[exporterLabel] != "true" {
				t.Errorf("the pod lacks the label %s: \"true\" the Service selects", exporterLabel)
			}
			if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(meta.Labels)) || len(svc.Spec.Selector) == 0 {
				t.Errorf("Service %s selector %v does not select the pod (labels %v)", svc.Name, svc.Spec.Selector, meta.Labels)
			}
			var svcPort *corev1.ServicePort
			for i, p := range svc.Spec.Ports {
				if p.Name == "metrics" {
					svcPort = &svc.Spec.Ports[i]
				}
			}
			if svcPort == nil || svcPort.TargetPort.String() != "metrics" || strconv.Itoa(int(svcPort.Port)) != listenPort {
				t.Errorf("Service %s: want port \"metrics\" %s to targetPort \"metrics\", got %+v", svc.Name, listenPort, svc.Spec.Ports)
			}

			// The ServiceMonitor scrapes that Service as the job the rules watch.
			if len(objs.serviceMonitors) != 1 {
				t.Fatalf("want one ServiceMonitor, got %d", len(objs.serviceMonitors))
			}
			sm := objs.serviceMonitors[0]
			sel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
			if err != nil || sel.Empty() || !sel.Matches(labels.Set(svc.Labels)) {
				t.Errorf("ServiceMonitor selector %v does not select Service labels %v", sm.Spec.Selector, svc.Labels)
			}
			if job := svc.Labels[sm.Spec.JobLabel]; sm.Spec.JobLabel == "" || job != rulesJob {
				t.Errorf("ServiceMonitor jobLabel %q gives job %q; the exporter-down alert watches job %q (PGCAPACITY_RULES_JOB)", sm.Spec.JobLabel, job, rulesJob)
			}
			if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != "metrics" || sm.Spec.Endpoints[0].Path != "/metrics" {
				t.Errorf("ServiceMonitor endpoints %+v: want port metrics, path /metrics", sm.Spec.Endpoints)
			} else {
				ep := sm.Spec.Endpoints[0]
				if want := prometheusScrapeInterval(t); string(ep.Interval) != want {
					t.Errorf("ServiceMonitor interval %q: want %q, deploy/prometheus/prometheus.yml's, which the dashboards' rate windows assume", ep.Interval, want)
				}
				checkScrapeAuth(t, objs, ep, v.https, web)
			}

			if len(objs.prometheusRules)+len(objs.configMaps) > 0 {
				t.Errorf("%s carries rules or dashboards: they belong to deploy/kubernetes, applied where Prometheus and Grafana run", v.dir)
			}
		})
	}
	// One exporter configuration, whichever way it runs.
	for i := 0; i+1 < len(exporters); i += 2 {
		if !reflect.DeepEqual(exporters[i], exporters[i+1]) {
			t.Errorf("the pgcapacity containers of %s and %s differ: keep them the same:\n%s", kubeVariants[i].dir, kubeVariants[i+1].dir, pretty.Compare(exporters[i], exporters[i+1]))
		}
	}
}

// checkScrapeAuth: the https variants scrape over HTTPS, trusting a CA
// under a certificate name, with the user of the web configuration and a
// password from a shipped Secret; the others over plain HTTP.
func checkScrapeAuth(t *testing.T, objs kubeObjects, ep monitoringv1.Endpoint, https bool, web webConfig) {
	t.Helper()
	if !https {
		if s := ep.Scheme.String(); s != "" && s != "http" || ep.BasicAuth != nil || ep.TLSConfig != nil {
			t.Errorf("ServiceMonitor: want plain HTTP without credentials, got scheme %q basicAuth %v tlsConfig %v", s, ep.BasicAuth, ep.TLSConfig)
		}
		return
	}
	if ep.Scheme.String() != "https" {
		t.Errorf("ServiceMonitor scheme %q: want https, the web configuration's TLS", ep.Scheme.String())
	}
	if ep.TLSConfig == nil || ep.TLSConfig.ServerName == nil || *ep.TLSConfig.ServerName == "" || ep.TLSConfig.CA.Secret == nil ||
		(ep.TLSConfig.InsecureSkipVerify != nil && *ep.TLSConfig.InsecureSkipVerify) {
		t.Errorf("ServiceMonitor tlsConfig %+v: want a CA from a Secret and the certificate's serverName (Prometheus dials pod IPs), verification on", ep.TLSConfig)
	} else if ca := ep.TLSConfig.CA.Secret; !externalSecrets[ca.Name] {
		if _, ok := objs.secretValue(ca.Name, ca.Key); !ok {
			t.Errorf("ServiceMonitor CA: no Secret %s with key %s", ca.Name, ca.Key)
		}
	}
	if ep.BasicAuth == nil {
		t.Fatal("ServiceMonitor: want basicAuth, the web configuration's")
	}
	user, okUser := objs.secretValue(ep.BasicAuth.Username.Name, ep.BasicAuth.Username.Key)
	_, okPassword := objs.secretValue(ep.BasicAuth.Password.Name, ep.BasicAuth.Password.Key)
	if !okUser || !okPassword {
		t.Errorf("ServiceMonitor basicAuth %+v: the variant ships no such Secret keys", ep.BasicAuth)
	}
	if _, ok := web.BasicAuthUsers[user]; !ok {
		t.Errorf("ServiceMonitor scrapes as %q, a user the web configuration does not have (%v)", user, web.BasicAuthUsers)
	}
}

// TestKubernetesMonitoring: deploy/kubernetes renders the generated
// PrometheusRule and one ConfigMap per dashboard, and nothing else.
func TestKubernetesMonitoring(t *testing.T) {
	objs := renderKustomization(t, kubeDir)
	if len(objs.prometheusRules) != 1 {
		t.Fatalf("want the generated PrometheusRule, got %d", len(objs.prometheusRules))
	}
	checkRulesMatch(t, objs.prometheusRules[0])
	checkDashboardConfigMaps(t, objs.configMaps)
	if n := len(objs.services) + len(objs.secrets) + len(objs.statefulSets) + len(objs.deployments) + len(objs.serviceMonitors); n > 0 {
		t.Errorf("%s renders %d exporter objects: they belong to the variants", kubeDir, n)
	}
}

// checkRulesMatch: the PrometheusRule carries the groups of
// rules/pgcapacity.rules.yml (the rules engineer's tests check the rules).
func checkRulesMatch(t *testing.T, pr monitoringv1.PrometheusRule) {
	t.Helper()
	var file struct {
		Groups []struct {
			Name  string           `yaml:"name"`
			Rules []map[string]any `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(readFile(t, repo("rules", "pgcapacity.rules.yml")), &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Groups) == 0 || len(file.Groups) != len(pr.Spec.Groups) {
		t.Fatalf("PrometheusRule has %d groups, rules/pgcapacity.rules.yml %d", len(pr.Spec.Groups), len(file.Groups))
	}
	for i, g := range file.Groups {
		got := pr.Spec.Groups[i]
		if got.Name != g.Name || len(got.Rules) != len(g.Rules) {
			t.Errorf("PrometheusRule group %d is %s with %d rules; rules/pgcapacity.rules.yml has %s with %d", i, got.Name, len(got.Rules), g.Name, len(g.Rules))
		}
	}
}

func prometheusScrapeInterval(t *testing.T) string {
	t.Helper()
	var cfg struct {
		Global struct {
			ScrapeInterval string `yaml:"scrape_interval"`
		} `yaml:"global"`
	}
	if err := yaml.Unmarshal(readFile(t, repo("deploy", "prometheus", "prometheus.yml")), &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg.Global.ScrapeInterval
}

// dashboardFiles are the generated dashboards, by file name.
func dashboardFiles(t *testing.T) map[string][]byte {
	t.Helper()
	paths, err := filepath.Glob(repo("dashboards", "json", "*.json"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no dashboards in dashboards/json: %v", err)
	}
	files := map[string][]byte{}
	for _, p := range paths {
		files[filepath.Base(p)] = readFile(t, p)
	}
	return files
}

// checkDashboardConfigMaps: one ConfigMap per dashboard, labelled for the
// Grafana sidecar, holding the file as generated.
func checkDashboardConfigMaps(t *testing.T, cms []corev1.ConfigMap) {
	t.Helper()
	files := dashboardFiles(t)
	seen := map[string]bool{}
	for _, cm := range cms {
		if cm.Labels["grafana_dashboard"] != "1" {
			continue
		}
		if cm.Annotations["grafana_folder"] == "" {
			t.Errorf("ConfigMap %s: no grafana_folder annotation", cm.Name)
		}
		for key, content := range cm.Data {
			want, ok := files[key]
			switch {
			case !ok:
				t.Errorf("ConfigMap %s holds %s, which is not in dashboards/json", cm.Name, key)
			case content != string(want):
				t.Errorf("ConfigMap %s: %s differs from dashboards/json/%s: run (cd deploy/tests && go test -run TestDashboardConfigMaps -update)", cm.Name, key, key)
			}
			seen[key] = true
		}
	}
	for name := range files {
		if !seen[name] {
			t.Errorf("dashboards/json/%s has no ConfigMap: run (cd deploy/tests && go test -run TestDashboardConfigMaps -update)", name)
		}
	}
}

// renderDashboardConfigMaps writes one ConfigMap per dashboard, the JSON
// as a literal block so a diff reads like the dashboard's own.
func renderDashboardConfigMaps(files map[string][]byte) ([]byte, error) {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	str := func(v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v} }
	mapping := func(kv ...*yaml.Node) *yaml.Node { return &yaml.Node{Kind: yaml.MappingNode, Content: kv} }
	var buf bytes.Buffer
	buf.WriteString("# Generated from dashboards/json by `cd deploy/tests && go test -run TestDashboardConfigMaps -update`; do not edit.\n")
	buf.WriteString("# One ConfigMap per dashboard for the Grafana sidecar (label grafana_dashboard: \"1\",\n")
	buf.WriteString("# folder from the grafana_folder annotation, as kube-prometheus-stack configures it).\n")
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "pgcapacity-"), ".json")
		content := str(string(files[n]))
		content.Style = yaml.LiteralStyle
		doc := mapping(
			str("apiVersion"), str("v1"),
			str("kind"), str("ConfigMap"),
			str("metadata"), mapping(
				str("name"), str("pgcapacity-dashboard-"+base),
				str("labels"), mapping(
					str("app.kubernetes.io/name"), str("pgcapacity"),
					str("app.kubernetes.io/component"), str("dashboards"),
					str("grafana_dashboard"), str("1"),
				),
				str("annotations"), mapping(str("grafana_folder"), str("pgcapacity")),
			),
			str("data"), mapping(str(n), content),
		)
		buf.WriteString("---\n")
		enc := yaml.NewEncoder(&buf)
		enc.SetIndent(2)
		if err := enc.Encode(doc); err != nil {
			return nil, fmt.Errorf("encoding the ConfigMap of %s: %w", n, err)
		}
		if err := enc.Close(); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}

// TestDashboardConfigMaps: the committed ConfigMaps are the dashboards as
// generated now; -update rewrites them.
func TestDashboardConfigMaps(t *testing.T) {
	want, err := renderDashboardConfigMaps(dashboardFiles(t))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(".", dashboardsConfigMaps)
	if *update {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got := readFile(t, path)
	if !bytes.Equal(got, want) {
		t.Errorf("%s is not current: run (cd deploy/tests && go test -run TestDashboardConfigMaps -update)", path)
	}
	// Each is under the 1 MiB a ConfigMap may hold.
	dec := yaml.NewDecoder(bytes.NewReader(got))
	for {
		var cm corev1.ConfigMap
		var raw map[string]any
		if err := dec.Decode(&raw); err != nil {
			break
		}
		data, _ := json.Marshal(raw)
		if err := strictJSON(data, &cm); err != nil {
			t.Errorf("%s: %v", path, err)
		}
		for k, v := range cm.Data {
			if len(v) > 900*1024 {
				t.Errorf("%s: %s is %d bytes; a ConfigMap holds at most 1 MiB", path, k, len(v))
			}
		}
	}
}
