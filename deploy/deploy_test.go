// Package deploy holds the deployment artefacts (Kubernetes manifests, NATS, Prometheus
// and Grafana configuration) and, in these tests, the properties they must keep. The
// tests read the files as data; they never need a cluster or a Docker engine.
//
// What needs an external tool skips with a message when it is missing: kustomize
// (kustomize_test.go), promtool and a ClickHouse server (observability_test.go).
// scripts/validate-deploy.sh provides them, and also runs the schema-level checkers of
// deploy/tools (kubecheck, composecheck, dockerfilecheck), a separate module so that
// the service's go.mod carries none of their dependencies.
package deploy

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/creativeai-studio/studio/processors"
)

// repoRoot is the repository root, found from this file's location.
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate deploy_test.go")
	}
	return filepath.Dir(filepath.Dir(file))
}

func readFile(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// obj is a decoded YAML or JSON mapping with typed accessors, so assertions read as
// paths ("spec", "template", "spec") instead of chains of type switches.
type obj = map[string]any

func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			s, ok := v.([]any)
			if !ok || k >= len(s) {
				return nil
			}
			v = s[k]
		}
	}
	return v
}

func str(v any, path ...any) string {
	s, _ := get(v, path...).(string)
	return s
}

func list(v any, path ...any) []any {
	s, _ := get(v, path...).([]any)
	return s
}

func mapping(v any, path ...any) obj {
	m, _ := get(v, path...).(map[string]any)
	return m
}

// num returns a YAML/JSON number as float64 (ints decode as int in YAML).
func num(v any, path ...any) (float64, bool) {
	switch n := get(v, path...).(type) {
	case int:
		return float64(n), true
	case float64:
		return n, true
	}
	return 0, false
}

func stringList(v any, path ...any) []string {
	var out []string
	for _, x := range list(v, path...) {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// composeDefaults expands ${VAR:-default} and ${VAR} the way compose does when VAR is
// unset, which is what the file must work with out of the box.
var composeVarRE = regexp.MustCompile(`\$\{([A-Z0-9_]+)(?::?-([^}]*))?\}`)

func composeDefaults(s string) string {
	return composeVarRE.ReplaceAllString(s, "$2")
}

// checkImageRef reports what is wrong with a container image reference: it must name a
// tag or digest, and the tag must not be "latest".
func checkImageRef(ref string) error {
	switch {
	case ref == "":
		return errors.New("no image")
	case strings.Contains(ref, "@sha256:"):
		return nil
	}
	name, tag, ok := strings.Cut(ref[strings.LastIndex(ref, "/")+1:], ":")
	switch {
	case !ok || tag == "":
		return errors.New("no tag: pin a version")
	case tag == "latest":
		return errors.New(`tag "latest": pin a version`)
	case name == "":
		return errors.New("no image name")
	}
	return nil
}

// goModVersions returns the go directive and the required version of each module.
func goModVersions(t *testing.T) (goVersion string, mods map[string]string) {
	t.Helper()
	mods = map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(string(readFile(t, "go.mod"))))
	for sc.Scan() {
		f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(sc.Text()), "require "))
		switch {
		case len(f) == 2 && f[0] == "go":
			goVersion = f[1]
		case len(f) >= 2 && strings.Contains(f[0], "/"):
			mods[f[0]] = f[1]
		}
	}
	return goVersion, mods
}

// stageCommands are the pipeline services and the studio command line each runs.
func stageCommands() map[string][]string {
	out := map[string][]string{
		"ingest": {"ingest"},
		"sink":   {"sink"},
	}
	for _, s := range processors.StageNames() {
		out[string(s)] = []string{"worker", "--stage", string(s)}
	}
	return out
}

func TestCompose(t *testing.T) {
	var c obj
	if err := yaml.Unmarshal(readFile(t, "compose.yaml"), &c); err != nil {
		t.Fatalf("compose.yaml does not parse: %v", err)
	}
	services := mapping(c, "services")
	_, mods := goModVersions(t)
	natsImage := "nats:" + strings.TrimPrefix(mods["github.com/nats-io/nats-server/v2"], "v") + "-alpine"

	t.Run("every service pins its image", func(t *testing.T) {
		for name, s := range services {
			if err := checkImageRef(composeDefaults(str(s, "image"))); err != nil {
				t.Errorf("service %s: image %q: %v", name, str(s, "image"), err)
			}
		}
	})

	t.Run("every long-running service has a healthcheck", func(t *testing.T) {
		// The exporter image has no shell or HTTP client to probe itself with;
		// Prometheus's `up` covers it. migrate is a one-shot job.
		exempt := map[string]bool{"nats-exporter": true, "migrate": true}
		for name, s := range services {
			if exempt[name] {
				continue
			}
			test := stringList(s, "healthcheck", "test")
			if len(test) < 2 || (test[0] != "CMD" && test[0] != "CMD-SHELL") {
				t.Errorf("service %s: healthcheck.test = %q, want CMD or CMD-SHELL with a command", name, test)
			}
		}
	})

	t.Run("three clustered NATS servers run the tested server version", func(t *testing.T) {
		var names []string
		for i := 1; i <= 3; i++ {
			name := "nats-" + string(rune('0'+i))
			s := services[name]
			if s == nil {
				t.Fatalf("service %s missing", name)
			}
			if got := str(s, "image"); got != natsImage {
				t.Errorf("%s: image %s, want %s (go.mod's nats-server version)", name, got, natsImage)
			}
			args := stringList(s, "command")
			if i := slices.Index(args, "--name"); i < 0 || i+1 >= len(args) || args[i+1] != name {
				t.Errorf("%s: command %q must set --name %s (JetStream needs unique server names)", name, args, name)
			}
			if !slices.Contains(args, "/etc/nats/nats.conf") {
				t.Errorf("%s: command %q does not load /etc/nats/nats.conf", name, args)
			}
			names = append(names, name)
		}
		opts := loadNATSConfig(t, "deploy/compose/nats.conf", nil)
		assertCluster(t, opts, names)
	})

	t.Run("studio services run the right command against the cluster", func(t *testing.T) {
		for svc, cmd := range stageCommands() {
			s := services[svc]
			if s == nil {
				t.Errorf("service %s missing", svc)
				continue
			}
			if got := stringList(s, "command"); !slices.Equal(got, cmd) {
				t.Errorf("%s: command %q, want %q", svc, got, cmd)
			}
			env := mapping(s, "environment")
			if got := str(env, "STUDIO_REPLICAS"); got != "3" {
				t.Errorf("%s: STUDIO_REPLICAS=%q, want 3 (R3 streams on the 3-node cluster)", svc, got)
			}
			urls := str(env, "STUDIO_NATS_URL")
			for i := 1; i <= 3; i++ {
				if !strings.Contains(urls, "nats://nats-"+string(rune('0'+i))+":4222") {
					t.Errorf("%s: STUDIO_NATS_URL %q does not list nats-%d", svc, urls, i)
				}
			}
			if got := str(env, "STUDIO_HTTP"); got != "0.0.0.0:8080" {
				t.Errorf("%s: STUDIO_HTTP=%q, want 0.0.0.0:8080 (metrics and health for Prometheus and the healthcheck)", svc, got)
			}
			for _, dep := range []string{"nats-1", "nats-2", "nats-3"} {
				if str(s, "depends_on", dep, "condition") != "service_healthy" {
					t.Errorf("%s: must wait for %s to be healthy", svc, dep)
				}
			}
			if got := str(s, "stop_grace_period"); got != "30s" {
				t.Errorf("%s: stop_grace_period %q, want 30s (drain takes up to 25 s)", svc, got)
			}
		}
	})

	t.Run("environment keys are studio settings", func(t *testing.T) {
		known := studioEnv(t)
		for name, s := range services {
			for k := range mapping(s, "environment") {
				if strings.HasPrefix(k, "STUDIO_") && !known[k] {
					t.Errorf("service %s: %s is not a studio setting", name, k)
				}
			}
		}
	})

	t.Run("ingest runs two replicas on distinct host ports", func(t *testing.T) {
		if n, _ := num(services["ingest"], "deploy", "replicas"); n != 2 {
			t.Errorf("ingest deploy.replicas = %v, want 2", n)
		}
		ports := stringList(services["ingest"], "ports")
		if len(ports) != 1 || !strings.Contains(ports[0], "8080-8081:8080") {
			t.Errorf("ingest ports %q: want a host port range with one port per replica", ports)
		}
	})

	t.Run("inference reserves a GPU and runs the CUDA image", func(t *testing.T) {
		inf := services["inference"]
		dev := mapping(get(inf, "deploy", "resources", "reservations", "devices", 0))
		if str(dev, "driver") != "nvidia" || !slices.Contains(stringList(dev, "capabilities"), "gpu") {
			t.Errorf("inference: deploy.resources.reservations.devices[0] = %v, want an nvidia gpu", dev)
		}
		if n, _ := num(dev, "count"); n != 1 {
			t.Errorf("inference: GPU count %v, want 1", n)
		}
		if str(inf, "build", "dockerfile") != "Dockerfile.cuda" || !strings.Contains(str(inf, "image"), "studio-cuda") {
			t.Errorf("inference: build %v image %q, want Dockerfile.cuda / studio-cuda", get(inf, "build"), str(inf, "image"))
		}
		if str(inf, "environment", "STUDIO_DEVICE") != "cuda" {
			t.Error("inference: STUDIO_DEVICE must be cuda")
		}
	})

	t.Run("the sink waits for its schema", func(t *testing.T) {
		if str(services["sink"], "depends_on", "migrate", "condition") != "service_completed_successfully" {
			t.Error("sink must depend on migrate completing")
		}
		if str(services["migrate"], "depends_on", "clickhouse", "condition") != "service_healthy" {
			t.Error("migrate must wait for a healthy ClickHouse")
		}
	})

	t.Run("bind-mounted files exist", func(t *testing.T) {
		for name, s := range services {
			for _, v := range stringList(s, "volumes") {
				src, _, _ := strings.Cut(v, ":")
				if !strings.HasPrefix(src, "./") {
					continue
				}
				if _, err := os.Stat(filepath.Join(repoRoot(t), src)); err != nil {
					t.Errorf("service %s mounts %s: %v", name, src, err)
				}
			}
		}
	})

	t.Run("Prometheus scrapes every studio service", func(t *testing.T) {
		var p obj
		if err := yaml.Unmarshal(readFile(t, "deploy/prometheus/prometheus.yml"), &p); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, sc := range list(p, "scrape_configs") {
			for _, sd := range list(sc, "dns_sd_configs") {
				names = append(names, stringList(sd, "names")...)
				if n, _ := num(sd, "port"); n != 8080 {
					t.Errorf("dns_sd port %v, want 8080", n)
				}
			}
		}
		for svc := range stageCommands() {
			if !slices.Contains(names, svc) {
				t.Errorf("no scrape target for %s (dns_sd names %q)", svc, names)
			}
			if services[svc] == nil {
				t.Errorf("scrape target %s is not a compose service", svc)
			}
		}
	})

	t.Run("the CPU override parses and targets inference", func(t *testing.T) {
		var o obj
		if err := yaml.Unmarshal(readFile(t, "deploy/compose/cpu.yaml"), &o); err != nil {
			t.Fatalf("deploy/compose/cpu.yaml: %v", err)
		}
		if str(o, "services", "inference", "environment", "STUDIO_DEVICE") != "cpu" {
			t.Error("cpu.yaml must set STUDIO_DEVICE=cpu on inference")
		}
	})
}

// dockerfile is a parsed Dockerfile: instructions with continuation lines joined.
type dockerfile struct {
	instructions [][2]string // keyword (upper case), rest
}

func parseDockerfile(t *testing.T, rel string) dockerfile {
	t.Helper()
	var d dockerfile
	var cur strings.Builder
	for _, line := range strings.Split(string(readFile(t, rel)), "\n") {
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur.WriteString(strings.TrimSuffix(trimmed, "\\") + " ")
			continue
		}
		cur.WriteString(trimmed)
		kw, rest, _ := strings.Cut(cur.String(), " ")
		d.instructions = append(d.instructions, [2]string{strings.ToUpper(kw), strings.TrimSpace(rest)})
		cur.Reset()
	}
	return d
}

func (d dockerfile) all(kw string) []string {
	var out []string
	for _, in := range d.instructions {
		if in[0] == kw {
			out = append(out, in[1])
		}
	}
	return out
}

// final returns the instructions of the last stage.
func (d dockerfile) final() dockerfile {
	last := 0
	for i, in := range d.instructions {
		if in[0] == "FROM" {
			last = i
		}
	}
	return dockerfile{instructions: d.instructions[last:]}
}

func TestDockerfiles(t *testing.T) {
	goVersion, _ := goModVersions(t)
	for _, tt := range []struct {
		file       string
		runtimeRef string // what the final FROM must resolve to
		env        []string
	}{
		{"Dockerfile", "debian:bookworm-slim", []string{"STUDIO_HTTP=0.0.0.0:8080", "STUDIO_CACHE_DIR=/opt/studio/cache"}},
		{"Dockerfile.cuda", "nvidia/cuda:", []string{"STUDIO_DEVICE=cuda", "STUDIO_ORT_LIB=/opt/studio/cache/lib/onnxruntime-cuda-1.29.0/libonnxruntime.so", "STUDIO_HTTP=0.0.0.0:8080"}},
	} {
		t.Run(tt.file, func(t *testing.T) {
			d := parseDockerfile(t, tt.file)
			args := map[string]string{}
			for _, a := range d.all("ARG") {
				k, v, _ := strings.Cut(a, "=")
				args[k] = strings.Trim(v, `"`)
			}
			if args["GO_VERSION"] != goVersion {
				t.Errorf("ARG GO_VERSION=%s, want go.mod's %s", args["GO_VERSION"], goVersion)
			}
			froms := d.all("FROM")
			if len(froms) < 3 {
				t.Fatalf("want build, fetch and runtime stages, got FROM %q", froms)
			}
			for _, f := range froms {
				ref := strings.Fields(f)[0]
				ref = regexp.MustCompile(`\$\{(\w+)\}`).ReplaceAllStringFunc(ref, func(m string) string { return args[m[2:len(m)-1]] })
				if err := checkImageRef(ref); err != nil {
					t.Errorf("FROM %s: %v", ref, err)
				}
			}
			if !strings.Contains(froms[0], "golang:") {
				t.Errorf("first stage %q is not the Go builder", froms[0])
			}
			if !slices.ContainsFunc(d.all("ENV"), func(e string) bool { return strings.Contains(e, "CGO_ENABLED=1") }) {
				t.Error("the builder must set CGO_ENABLED=1 (onnxruntime_go needs cgo)")
			}
			fetch := slices.IndexFunc(d.all("RUN"), func(r string) bool { return strings.Contains(r, "studio fetch") })
			if fetch < 0 {
				t.Fatal("no stage runs `studio fetch`")
			}
			run := d.all("RUN")[fetch]
			if !strings.Contains(args["FETCH_GROUPS"], "models") || !strings.Contains(run, "${FETCH_GROUPS}") {
				t.Errorf("`studio fetch` must fetch the models group (FETCH_GROUPS=%q): the runtime cache is read-only", args["FETCH_GROUPS"])
			}
			if !strings.Contains(run, `"$STUDIO_CACHE/npm"`) {
				t.Error("the fetch stage must drop the npm tarballs from the cache before it is copied")
			}
			final := d.final()
			lastFrom := strings.Fields(final.all("FROM")[0])[0]
			lastFrom = regexp.MustCompile(`\$\{(\w+)\}`).ReplaceAllStringFunc(lastFrom, func(m string) string { return args[m[2:len(m)-1]] })
			if !strings.HasPrefix(lastFrom, tt.runtimeRef) {
				t.Errorf("runtime stage FROM %s, want %s...", lastFrom, tt.runtimeRef)
			}
			users := final.all("USER")
			if len(users) == 0 || strings.HasPrefix(users[len(users)-1], "0") || strings.HasPrefix(users[len(users)-1], "root") {
				t.Errorf("runtime USER %q: run as a non-root user", users)
			}
			hc := strings.Join(final.all("HEALTHCHECK"), " ")
			if !strings.Contains(hc, "/health/live") {
				t.Errorf("HEALTHCHECK %q does not probe /health/live", hc)
			}
			if ep := final.all("ENTRYPOINT"); len(ep) != 1 || ep[0] != `["studio"]` {
				t.Errorf("ENTRYPOINT %q, want [\"studio\"]", ep)
			}
			env := strings.Join(final.all("ENV"), " ")
			for _, want := range tt.env {
				if !strings.Contains(env, want) {
					t.Errorf("runtime ENV lacks %s", want)
				}
			}
			if !slices.ContainsFunc(final.all("COPY"), func(c string) bool { return strings.Contains(c, "/opt/studio/cache") }) {
				t.Error("the runtime stage does not copy the fetched cache")
			}
		})
	}

	t.Run("the CUDA image fetches the pinned CUDA runtime with studio fetch runtime --gpu", func(t *testing.T) {
		d := parseDockerfile(t, "Dockerfile.cuda")
		run := strings.Join(d.all("RUN"), "\n")
		// The packages and each library's sha256 are pinned in internal/assets
		// (RuntimeGPU), where `studio fetch` verifies them.
		if !regexp.MustCompile(`studio fetch [^\n;]*--gpu runtime`).MatchString(run) {
			t.Errorf("no `studio fetch --gpu runtime` in the image's RUN steps:\n%s", run)
		}
		if strings.Contains(run, "com.github.asus4.onnxruntime@") {
			t.Error("the asus4 base package's libonnxruntime.so is a CPU build; the CUDA runtime comes from studio fetch runtime --gpu")
		}
	})

	t.Run("the build context keeps local state out", func(t *testing.T) {
		ignore := strings.Fields(string(readFile(t, ".dockerignore")))
		for _, want := range []string{".git", ".cache/", "bin/", "**/*.onnx"} {
			if !slices.Contains(ignore, want) {
				t.Errorf(".dockerignore lacks %s", want)
			}
		}
	})
}

// lookTool finds an external tool: $ENV, then $STUDIO_CACHE/bin/NAME*, then PATH.
func lookTool(env, name string) string {
	if p := os.Getenv(env); p != "" {
		return p
	}
	cache := os.Getenv("STUDIO_CACHE")
	if cache == "" {
		if home, err := os.UserHomeDir(); err == nil {
			cache = filepath.Join(home, ".cache", "studio")
		}
	}
	if m, _ := filepath.Glob(filepath.Join(cache, "bin", name+"-*")); len(m) > 0 {
		slices.Sort(m)
		return m[len(m)-1]
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	return ""
}
