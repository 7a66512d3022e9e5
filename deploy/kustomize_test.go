package deploy

import (
	"bytes"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/creativeai-studio/studio/processors"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
)

// manifests is the output of `kustomize build` of one overlay, indexed by kind and name.
type manifests struct {
	docs   []obj
	byKind map[string]map[string]obj
}

func (m manifests) get(kind, name string) obj { return m.byKind[kind][name] }

var (
	buildMu    sync.Mutex
	buildCache = map[string]manifests{}
)

// buildOverlay runs `kustomize build deploy/overlays/NAME`, or skips the test when no
// kustomize binary is found (scripts/validate-deploy.sh installs one).
func buildOverlay(t *testing.T, name string) manifests {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if m, ok := buildCache[name]; ok {
		return m
	}
	kz := lookTool("KUSTOMIZE", "kustomize")
	if kz == "" {
		t.Skip("kustomize not found: run scripts/validate-deploy.sh, or set KUSTOMIZE to its path")
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(kz, "build", filepath.Join(repoRoot(t), "deploy", "overlays", name))
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kustomize build overlays/%s: %v\n%s", name, err, stderr.String())
	}
	m := manifests{byKind: map[string]map[string]obj{}}
	dec := yaml.NewDecoder(&stdout)
	for {
		var d obj
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("overlays/%s output: %v", name, err)
		}
		if d == nil {
			continue
		}
		kind, n := str(d, "kind"), str(d, "metadata", "name")
		if str(d, "apiVersion") == "" || kind == "" || n == "" {
			t.Fatalf("overlays/%s: document without apiVersion, kind or metadata.name: %v", name, d)
		}
		if m.byKind[kind] == nil {
			m.byKind[kind] = map[string]obj{}
		}
		if m.byKind[kind][n] != nil {
			t.Fatalf("overlays/%s: %s %s defined twice", name, kind, n)
		}
		m.byKind[kind][n] = d
		m.docs = append(m.docs, d)
	}
	buildCache[name] = m
	return m
}

// studioEnv lists the environment variables studio reads: one per flag registered by
// app.Config.RegisterFlags (internal/app/config.go) and sink.Config.RegisterFlags
// (sink/config.go), plus the worker's --stage and the cache root of `studio fetch`.
func studioEnv(t *testing.T) map[string]bool {
	t.Helper()
	env, _ := studioFlags(t)
	return env
}

// studioFlags returns studioEnv and the default value of each string flag, by flag
// name. The flags are read from the source rather than by importing the packages, so
// that these tests do not depend on every package of the service compiling.
func studioFlags(t *testing.T) (env map[string]bool, defaults map[string]string) {
	t.Helper()
	env = map[string]bool{"STUDIO_STAGE": true, "STUDIO_CACHE": true}
	defaults = map[string]string{}
	for _, src := range []string{"internal/app/config.go", "sink/config.go", "internal/auth/config.go", "internal/quota/policy.go"} {
		f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(repoRoot(t), filepath.FromSlash(src)), nil, 0)
		if err != nil {
			if src != "internal/app/config.go" {
				continue // optional parts
			}
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			fn, ok := n.(*ast.FuncDecl)
			if !ok || fn.Name.Name != "RegisterFlags" {
				return true
			}
			// Every flag is registered as helper(&c.X, "name", default, ...) or
			// fs.TypeVar(&c.X, "name", default, ...).
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok || len(call.Args) < 3 {
					return true
				}
				if _, ok := call.Args[0].(*ast.UnaryExpr); !ok {
					return true
				}
				if lit, ok := call.Args[1].(*ast.BasicLit); ok && lit.Kind == token.STRING {
					name, _ := strconv.Unquote(lit.Value)
					env["STUDIO_"+strings.ToUpper(strings.ReplaceAll(name, "-", "_"))] = true
					if def, ok := call.Args[2].(*ast.BasicLit); ok && def.Kind == token.STRING {
						defaults[name], _ = strconv.Unquote(def.Value)
					}
				}
				return true
			})
			return false
		})
	}
	if !env["STUDIO_NATS_URL"] || !env["STUDIO_HTTP"] {
		t.Fatalf("found no flags in internal/app/config.go RegisterFlags (got %v); update studioFlags", env)
	}
	return env, defaults
}

// podTemplate returns the pod template of a workload.
func podTemplate(w obj) obj { return mapping(w, "spec", "template") }

func container(w obj, name string) obj {
	for _, c := range list(podTemplate(w), "spec", "containers") {
		if str(c, "name") == name {
			return c.(obj)
		}
	}
	return nil
}

func allContainers(w obj) []obj {
	var out []obj
	for _, key := range []string{"initContainers", "containers"} {
		for _, c := range list(podTemplate(w), "spec", key) {
			out = append(out, c.(obj))
		}
	}
	return out
}

func envValue(c obj, name string) (value string, found bool) {
	for _, e := range list(c, "env") {
		if str(e, "name") == name {
			return str(e, "value"), true
		}
	}
	return "", false
}

func labelsMatch(selector, labels obj) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// workloads returns the Deployments and StatefulSets.
func (m manifests) workloads() map[string]obj {
	out := map[string]obj{}
	for _, kind := range []string{"Deployment", "StatefulSet"} {
		for n, w := range m.byKind[kind] {
			out[kind+"/"+n] = w
		}
	}
	return out
}

// kedaNATSKeys are the trigger metadata keys the KEDA nats-jetstream scaler reads
// (pkg/scalers/nats_jetstream_scaler.go); anything else is silently ignored by KEDA.
var kedaNATSKeys = []string{"natsServerMonitoringEndpoint", "account", "accountID", "stream", "consumer", "lagThreshold", "activationLagThreshold", "useHttps"}

func TestKustomizeOverlays(t *testing.T) {
	known := studioEnv(t)
	for _, overlay := range []string{"dev", "prod"} {
		t.Run(overlay, func(t *testing.T) {
			m := buildOverlay(t, overlay)
			ns := str(m.docs[0], "metadata", "namespace")
			if nsObj := m.byKind["Namespace"]; len(nsObj) != 1 {
				t.Fatalf("want one Namespace, got %d", len(nsObj))
			} else {
				for name := range nsObj {
					ns = name
				}
			}
			prod := overlay == "prod"

			t.Run("everything lives in the overlay's namespace", func(t *testing.T) {
				for _, d := range m.docs {
					if str(d, "kind") == "Namespace" {
						continue
					}
					if got := str(d, "metadata", "namespace"); got != ns {
						t.Errorf("%s %s in namespace %q, want %q", str(d, "kind"), str(d, "metadata", "name"), got, ns)
					}
				}
			})

			t.Run("every component runs studio with the right command", func(t *testing.T) {
				for svc, cmd := range stageCommands() {
					d := m.get("Deployment", "studio-"+svc)
					if d == nil {
						t.Errorf("no Deployment studio-%s", svc)
						continue
					}
					c := container(d, "studio")
					if got := stringList(c, "args"); !slices.Equal(got, cmd) {
						t.Errorf("studio-%s args %q, want %q", svc, got, cmd)
					}
					if m.get("Service", "studio-"+svc) == nil {
						t.Errorf("no Service studio-%s", svc)
					}
				}
			})

			t.Run("every stage scales on each tier consumer of its stream", func(t *testing.T) {
				// Inference has one consumer group per model name of STUDIO_MODELS.
				var modelNames []string
				for _, id := range strings.Split(str(m.get("ConfigMap", configMapName(t, m, m.get("Deployment", "studio-inference"))), "data", "STUDIO_MODELS"), ",") {
					if name, _, _ := strings.Cut(strings.TrimSpace(id), "@"); name != "" && !slices.Contains(modelNames, name) {
						modelNames = append(modelNames, name)
					}
				}
				if len(modelNames) == 0 {
					t.Fatal("studio-config has no STUDIO_MODELS")
				}
				for _, stage := range processors.StageNames() {
					groups := []string{""}
					if stage == schemas.StageInference {
						groups = modelNames
					}
					var spec streams.ConsumerSpec
					var want []string
					for _, model := range groups {
						var err error
						if spec, err = processors.Consumers(stage, model); err != nil {
							t.Fatal(err)
						}
						for _, tier := range schemas.Tiers {
							want = append(want, spec.DurableFor(tier))
						}
					}
					so := m.get("ScaledObject", "studio-"+string(stage))
					if so == nil {
						t.Errorf("no ScaledObject studio-%s", stage)
						continue
					}
					if got := str(so, "spec", "scaleTargetRef", "name"); got != "studio-"+string(stage) {
						t.Errorf("ScaledObject studio-%s targets %q", stage, got)
					}
					var consumers []string
					for _, tr := range list(so, "spec", "triggers") {
						md := mapping(tr, "metadata")
						if str(tr, "type") != "nats-jetstream" {
							t.Errorf("studio-%s: trigger type %q", stage, str(tr, "type"))
						}
						for k := range md {
							if !slices.Contains(kedaNATSKeys, k) {
								t.Errorf("studio-%s: trigger metadata %q is not a nats-jetstream setting (KEDA would ignore it)", stage, k)
							}
						}
						if str(md, "stream") != spec.Stream {
							t.Errorf("studio-%s: trigger stream %q, want %q", stage, str(md, "stream"), spec.Stream)
						}
						if n, err := strconv.Atoi(str(md, "lagThreshold")); err != nil || n < 1 {
							t.Errorf("studio-%s: lagThreshold %q must be a positive integer string", stage, str(md, "lagThreshold"))
						}
						if want := "nats." + ns + ".svc.cluster.local:8222"; str(md, "natsServerMonitoringEndpoint") != want {
							t.Errorf("studio-%s: natsServerMonitoringEndpoint %q, want %q (KEDA runs in another namespace)", stage, str(md, "natsServerMonitoringEndpoint"), want)
						}
						wantAccount := "$G"
						if prod {
							wantAccount = "STUDIO"
						}
						if str(md, "account") != wantAccount {
							t.Errorf("studio-%s: account %q, want %q", stage, str(md, "account"), wantAccount)
						}
						consumers = append(consumers, str(md, "consumer"))
					}
					slices.Sort(consumers)
					slices.Sort(want)
					if !slices.Equal(consumers, want) {
						t.Errorf("studio-%s: trigger consumers %q, want %q (streams/topology.go)", stage, consumers, want)
					}
					if n, _ := num(so, "spec", "minReplicaCount"); n < 1 {
						t.Errorf("studio-%s: minReplicaCount %v: keep one replica warm", stage, n)
					}
				}
				if svc := m.get("Service", "nats"); !slices.ContainsFunc(list(svc, "spec", "ports"), func(p any) bool { n, _ := num(p, "port"); return n == 8222 }) {
					t.Error("Service nats does not expose the monitoring port 8222 KEDA reads")
				}
			})

			t.Run("one autoscaler per workload, and none fights a fixed replica count", func(t *testing.T) {
				owner := map[string]string{}
				for n, so := range m.byKind["ScaledObject"] {
					owner[str(so, "spec", "scaleTargetRef", "name")] = "ScaledObject " + n
				}
				for n, h := range m.byKind["HorizontalPodAutoscaler"] {
					target := str(h, "spec", "scaleTargetRef", "name")
					if prev, ok := owner[target]; ok {
						t.Errorf("%s is scaled by both %s and HPA %s", target, prev, n)
					}
					owner[target] = "HPA " + n
				}
				for target, by := range owner {
					d := m.get("Deployment", target)
					if d == nil {
						t.Errorf("%s targets missing Deployment %s", by, target)
						continue
					}
					if _, ok := mapping(d, "spec")["replicas"]; ok {
						t.Errorf("Deployment %s sets spec.replicas although %s owns it", target, by)
					}
				}
				h := m.get("HorizontalPodAutoscaler", "studio-ingest")
				if h == nil || str(h, "spec", "metrics", 0, "resource", "name") != "cpu" {
					t.Error("ingest needs an HPA on CPU")
				}
			})

			t.Run("inference runs where the overlay says", func(t *testing.T) {
				d := m.get("Deployment", "studio-inference")
				spec := mapping(podTemplate(d), "spec")
				c := container(d, "studio")
				gpuTolerated := slices.ContainsFunc(list(spec, "tolerations"), func(t any) bool {
					return str(t, "key") == "nvidia.com/gpu" && str(t, "effect") == "NoSchedule"
				})
				if !prod {
					if gpuTolerated || len(mapping(spec, "nodeSelector")) > 0 || get(c, "resources", "limits", "nvidia.com/gpu") != nil {
						t.Error("dev inference must not need the GPU node pool")
					}
					if v, _ := envValue(c, "STUDIO_DEVICE"); v != "cpu" {
						t.Errorf("dev inference STUDIO_DEVICE=%q, want cpu", v)
					}
					if strings.Contains(str(c, "image"), "cuda") {
						t.Errorf("dev inference image %q: want the CPU image", str(c, "image"))
					}
					return
				}
				if !gpuTolerated {
					t.Error("inference does not tolerate the nvidia.com/gpu taint")
				}
				if len(mapping(spec, "nodeSelector")) == 0 {
					t.Error("inference has no nodeSelector for the GPU node pool")
				}
				limits := mapping(c, "resources", "limits")
				for k, want := range map[string]string{"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": "1"} {
					if got := strings.TrimSpace(yamlScalar(limits[k])); got != want {
						t.Errorf("inference limit %s = %q, want %q", k, got, want)
					}
				}
				if v, _ := envValue(c, "STUDIO_DEVICE"); v != "cuda" {
					t.Errorf("inference STUDIO_DEVICE=%q, want cuda", v)
				}
				if !strings.Contains(str(c, "image"), "studio-cuda") {
					t.Errorf("inference image %q: want the CUDA image", str(c, "image"))
				}
			})

			t.Run("probes, shutdown and security of studio pods", func(t *testing.T) {
				for svc := range stageCommands() {
					d := m.get("Deployment", "studio-"+svc)
					spec := mapping(podTemplate(d), "spec")
					c := container(d, "studio")
					for probe, want := range map[string][2]any{"livenessProbe": {"/health/live", 30.0}, "readinessProbe": {"/health/ready", 10.0}} {
						period, _ := num(c, probe, "periodSeconds")
						if str(c, probe, "httpGet", "path") != want[0] || period != want[1] || str(c, probe, "httpGet", "port") != "http" {
							t.Errorf("studio-%s %s = %v, want GET %s on port http every %vs", svc, probe, get(c, probe), want[0], want[1])
						}
					}
					grace, _ := num(spec, "terminationGracePeriodSeconds")
					if grace != 30 {
						t.Errorf("studio-%s terminationGracePeriodSeconds %v, want 30", svc, grace)
					}
					drain := str(m.get("ConfigMap", configMapName(t, m, d)), "data", "STUDIO_DRAIN_TIMEOUT")
					if v, ok := envValue(c, "STUDIO_DRAIN_TIMEOUT"); ok {
						drain = v
					}
					var preStop float64
					if cmd := stringList(c, "lifecycle", "preStop", "exec", "command"); len(cmd) == 2 && cmd[0] == "sleep" {
						preStop, _ = strconv.ParseFloat(cmd[1], 64)
					}
					if d, err := strconv.ParseFloat(strings.TrimSuffix(drain, "s"), 64); err != nil || d+preStop >= grace {
						t.Errorf("studio-%s: drain %q + preStop %vs must end before the %vs grace period", svc, drain, preStop, grace)
					}
					for _, cc := range allContainers(d) {
						sc := mapping(cc, "securityContext")
						if get(sc, "allowPrivilegeEscalation") != false || !slices.Contains(stringList(sc, "capabilities", "drop"), "ALL") {
							t.Errorf("studio-%s container %s: drop ALL capabilities and privilege escalation", svc, str(cc, "name"))
						}
					}
					if get(spec, "securityContext", "runAsNonRoot") != true {
						t.Errorf("studio-%s: runAsNonRoot is not set", svc)
					}
				}
			})

			t.Run("every workload has a disruption budget", func(t *testing.T) {
				for id, w := range m.workloads() {
					labels := mapping(podTemplate(w), "metadata", "labels")
					covered := slices.ContainsFunc(maps(m.byKind["PodDisruptionBudget"]), func(p obj) bool {
						return labelsMatch(mapping(p, "spec", "selector", "matchLabels"), labels)
					})
					if !covered {
						t.Errorf("%s: no PodDisruptionBudget selects its pods", id)
					}
				}
			})

			t.Run("images are pinned", func(t *testing.T) {
				for id, w := range m.workloads() {
					for _, c := range allContainers(w) {
						if err := checkImageRef(str(c, "image")); err != nil {
							t.Errorf("%s container %s: image %q: %v", id, str(c, "name"), str(c, "image"), err)
						}
					}
				}
			})

			t.Run("config keys are studio settings and references resolve", func(t *testing.T) {
				for id, w := range m.workloads() {
					for _, c := range allContainers(w) {
						for _, e := range list(c, "env") {
							name := str(e, "name")
							if strings.HasPrefix(name, "STUDIO_") && !known[name] {
								t.Errorf("%s: env %s is not a studio setting", id, name)
							}
							if ref := mapping(e, "valueFrom", "secretKeyRef"); ref != nil {
								sec := m.get("Secret", str(ref, "name"))
								if get(sec, "stringData", str(ref, "key")) == nil && get(sec, "data", str(ref, "key")) == nil {
									t.Errorf("%s: env %s refers to missing Secret key %s/%s", id, name, str(ref, "name"), str(ref, "key"))
								}
							}
						}
						for _, ef := range list(c, "envFrom") {
							if n := str(ef, "configMapRef", "name"); n != "" && m.get("ConfigMap", n) == nil {
								t.Errorf("%s: envFrom missing ConfigMap %s", id, n)
							}
							if n := str(ef, "secretRef", "name"); n != "" && m.get("Secret", n) == nil {
								t.Errorf("%s: envFrom missing Secret %s", id, n)
							}
						}
					}
					for _, v := range list(podTemplate(w), "spec", "volumes") {
						if n := str(v, "configMap", "name"); n != "" && m.get("ConfigMap", n) == nil {
							t.Errorf("%s: volume of missing ConfigMap %s", id, n)
						}
					}
				}
				for n, cm := range m.byKind["ConfigMap"] {
					if !strings.HasPrefix(n, "studio-config") {
						continue
					}
					for k := range mapping(cm, "data") {
						if !known[k] {
							t.Errorf("ConfigMap %s: %s is not a studio setting", n, k)
						}
					}
					if str(cm, "data", "STUDIO_REPLICAS") != "3" {
						t.Errorf("ConfigMap %s: STUDIO_REPLICAS must be 3 (R3 on the 3-node cluster)", n)
					}
					// The images carry a read-only cache with the default models only.
					_, defaults := studioFlags(t)
					baked := strings.Split(defaults["models"], ",")
					for _, id := range strings.Split(str(cm, "data", "STUDIO_MODELS"), ",") {
						if !slices.Contains(baked, strings.TrimSpace(id)) {
							t.Errorf("ConfigMap %s: model %s is not pre-fetched into the images (default --models %q); build them with --build-arg MODELS=...", n, id, defaults["models"])
						}
					}
				}
			})

			t.Run("services select pods and their named ports", func(t *testing.T) {
				for n, svc := range m.byKind["Service"] {
					var match obj
					for _, w := range m.workloads() {
						if labelsMatch(mapping(svc, "spec", "selector"), mapping(podTemplate(w), "metadata", "labels")) {
							match = w
						}
					}
					if match == nil {
						t.Errorf("Service %s selects no pods", n)
						continue
					}
					for _, p := range list(svc, "spec", "ports") {
						target := str(p, "targetPort")
						if target == "" {
							continue
						}
						found := slices.ContainsFunc(allContainers(match), func(c obj) bool {
							return slices.ContainsFunc(list(c, "ports"), func(cp any) bool { return str(cp, "name") == target })
						})
						if !found {
							t.Errorf("Service %s: targetPort %q is not a named container port", n, target)
						}
					}
				}
			})

			t.Run("network policies deny by default and admit the API", func(t *testing.T) {
				np := m.byKind["NetworkPolicy"]
				dd := np["default-deny"]
				if dd == nil || len(mapping(dd, "spec", "podSelector")) != 0 || !slices.Equal(stringList(dd, "spec", "policyTypes"), []string{"Ingress", "Egress"}) {
					t.Fatal("no default-deny policy over all pods for Ingress and Egress")
				}
				ing := np["studio-ingest"]
				open := slices.ContainsFunc(list(ing, "spec", "ingress"), func(r any) bool {
					n, _ := num(r, "ports", 0, "port")
					return get(r, "from") == nil && n == 8080
				})
				if !open {
					t.Error("ingest does not admit traffic from outside on 8080")
				}
				workers := np["studio-workers"]
				var selected []string
				for _, e := range list(workers, "spec", "podSelector", "matchExpressions") {
					if str(e, "key") == "app.kubernetes.io/component" {
						selected = stringList(e, "values")
					}
				}
				for _, s := range processors.StageNames() {
					if !slices.Contains(selected, string(s)) {
						t.Errorf("policy studio-workers does not cover %s", s)
					}
				}
				allowed := []float64{4222, 443, 9000, 9440}
				for _, name := range []string{"studio-workers", "studio-sink"} {
					for _, r := range list(np[name], "spec", "egress") {
						for _, p := range list(r, "ports") {
							if n, _ := num(p, "port"); !slices.Contains(allowed, n) {
								t.Errorf("policy %s lets egress out on port %v: only NATS, S3 and ClickHouse", name, n)
							}
						}
					}
					for _, r := range list(np[name], "spec", "ingress") {
						if get(r, "from") == nil {
							t.Errorf("policy %s admits ingress from anywhere", name)
						}
					}
				}
			})

			t.Run("NATS is a 3-node JetStream cluster on persistent volumes", func(t *testing.T) {
				ss := m.get("StatefulSet", "nats")
				if n, _ := num(ss, "spec", "replicas"); n != 3 {
					t.Errorf("nats replicas %v, want 3", n)
				}
				if str(ss, "spec", "serviceName") != "nats-headless" || m.get("Service", "nats-headless") == nil {
					t.Error("nats must use the headless Service nats-headless (its pod names are the routes)")
				}
				if str(ss, "spec", "volumeClaimTemplates", 0, "metadata", "name") != "data" {
					t.Error("nats has no data volume claim template")
				}
				_, mods := goModVersions(t)
				if want := "nats:" + strings.TrimPrefix(mods["github.com/nats-io/nats-server/v2"], "v") + "-alpine"; str(container(ss, "nats"), "image") != want {
					t.Errorf("nats image %q, want %s (go.mod's server version)", str(container(ss, "nats"), "image"), want)
				}
				cm := m.get("ConfigMap", configMapVolume(ss, "config"))
				conf := str(cm, "data", "nats.conf")
				if conf == "" {
					t.Fatal("nats config map has no nats.conf")
				}
				// The rendered config must be what the source files say.
				src := "deploy/base/nats.conf"
				if prod {
					src = "deploy/nats/nats-server.conf"
				}
				if conf != string(readFile(t, src)) {
					t.Errorf("nats.conf of the %s overlay is not %s", overlay, src)
				}
				if prod {
					envFrom := list(container(ss, "nats"), "envFrom")
					if len(envFrom) == 0 || m.get("Secret", str(envFrom[0], "secretRef", "name")) == nil {
						t.Error("prod nats servers do not get the password Secret")
					}
					for svc := range stageCommands() {
						c := container(m.get("Deployment", "studio-"+svc), "studio")
						found := slices.ContainsFunc(list(c, "env"), func(e any) bool {
							return str(e, "name") == "STUDIO_NATS_URL" && str(e, "valueFrom", "secretKeyRef", "key") == svc+"-url"
						})
						if !found {
							t.Errorf("prod studio-%s does not dial NATS as its own user", svc)
						}
					}
				}
			})
		})
	}
}

func maps(m map[string]obj) []obj {
	out := make([]obj, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// configMapName returns the (hash-suffixed) name of the ConfigMap a workload's studio
// container takes its environment from.
func configMapName(t *testing.T, m manifests, w obj) string {
	t.Helper()
	for _, ef := range list(container(w, "studio"), "envFrom") {
		if n := str(ef, "configMapRef", "name"); n != "" {
			return n
		}
	}
	t.Fatalf("%s has no envFrom ConfigMap", str(w, "metadata", "name"))
	return ""
}

func configMapVolume(w obj, volume string) string {
	for _, v := range list(podTemplate(w), "spec", "volumes") {
		if str(v, "name") == volume {
			return str(v, "configMap", "name")
		}
	}
	return ""
}

func yamlScalar(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int:
		return strconv.Itoa(x)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	return ""
}
