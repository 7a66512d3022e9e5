package app

import (
	"bufio"
	"bytes"
	"os/exec"
	"path"
	"sort"
	"strings"
	"testing"
)

// The dependency rule of the repository, as the README's layout section states it.
// Each package belongs to one layer; a package may import packages of its own layer
// and of the layers below it (lower number), plus what the exceptions allow. The
// test reads the real import graph with `go list -deps`, so a new import that breaks
// the map fails CI.

const module = "github.com/creativeai-studio/studio"

// layers maps a package (or a folder and everything under it, written "dir/...") to
// its layer. The most specific entry wins.
var layers = map[string]int{
	// 0: the wire contract, standard library only.
	"schemas/...": 0,
	// 1: libraries: no NATS, no domain rule.
	"internal/trace/...":     1,
	"internal/imageio/...":   1,
	"internal/colour/...":    1,
	"internal/ncnn/...":      1,
	"internal/onnx/...":      1,
	"internal/diffusion/...": 1,
	"internal/assets/...":    1,
	"internal/chdb/...":      1,
	"internal/blob":          1,
	"internal/blob/s3":       1,
	"internal/blob/blobtest": 1,
	"internal/models/...":    1,
	"internal/ocr/...":       1,
	"internal/metrics/...":   1,
	// 2: the JetStream transport, no domain.
	"streams": 2,
	// 3: domain state and rules, each with its NATS KV store beside it.
	"internal/jobs/...":      3,
	"internal/quota/...":     3,
	"internal/auth/...":      3,
	"internal/blob/natsobj":  3,
	"internal/erasure/...":   3,
	"internal/rollout/...":   3,
	"internal/replay/...":    3,
	"internal/telemetry/...": 3,
	// 4: the pipeline: the stage table and handler, then one package per stage.
	"processors":          4,
	"processors/artifact": 4,
	"processors/...":      5,
	// 6: the front doors and the analytics writer.
	"ingest/...": 6,
	"sink/...":   6,
	// 7: wiring: provisioning, process assembly, load generation, test servers.
	"internal/topology/...":   7,
	"streams/streamstest/...": 7,
	"internal/app/...":        7,
	"internal/bench/...":      7,
	// 8: the binary and the deployment checks.
	"cmd/...":    8,
	"deploy/...": 8,
}

// forbidden lists imports that the layer order alone would allow but the map does not:
// a stage package never imports another stage package, the analytics writer and the
// front door never import each other, the web UI imports no service package.
var forbidden = []struct{ from, to, why string }{
	{"processors/preprocess", "processors/inference", "stage packages never import each other; shared artifact I/O is processors/artifact"},
	{"processors/preprocess", "processors/postprocess", "stage packages never import each other"},
	{"processors/preprocess", "processors/store", "stage packages never import each other"},
	{"processors/inference", "processors/preprocess", "stage packages never import each other"},
	{"processors/inference", "processors/postprocess", "stage packages never import each other"},
	{"processors/inference", "processors/store", "stage packages never import each other"},
	{"processors/postprocess", "processors/preprocess", "stage packages never import each other"},
	{"processors/postprocess", "processors/inference", "stage packages never import each other"},
	{"processors/postprocess", "processors/store", "stage packages never import each other"},
	{"processors/store", "processors/preprocess", "stage packages never import each other"},
	{"processors/store", "processors/inference", "stage packages never import each other"},
	{"processors/store", "processors/postprocess", "stage packages never import each other"},
	{"sink", "ingest", "the analytics writer imports no front-door or UI package"},
	{"ingest", "sink", "the front door does not write analytics"},
	{"ingest", "processors/", "ingest may read the stage table (processors) but never a stage's code"},
}

// ceilings bound what some packages may import more tightly than their layer: the
// analytics writer reads events off the transport and needs no domain or pipeline
// code; the web UI package serves pages from schemas and its fetched assets.
var ceilings = map[string]int{"sink/...": 2, "ingest/studio/...": 1}

// natsAllowed are the only packages of ours that may import nats.go or nats-server:
// the transport, the domain packages' KV stores, provisioning, wiring, the load
// generator (an upstream NATS client) and the deployment checks.
var natsAllowed = []string{
	"streams", "streams/streamstest",
	"internal/jobs", "internal/quota", "internal/auth", "internal/blob/natsobj", "internal/erasure", "internal/rollout", "internal/replay",
	"internal/topology", "internal/app", "internal/bench", "deploy",
}

func layerOf(pkg string) (int, bool) {
	best, bestLen, found := 0, -1, false
	for pat, l := range layers {
		dir, all := strings.CutSuffix(pat, "/...")
		// An exact entry outranks a "dir/..." entry for the same folder.
		n := 2 * len(dir)
		if !all {
			n++
		}
		ok := pkg == dir || all && strings.HasPrefix(pkg, dir+"/")
		if ok && n > bestLen {
			best, bestLen, found = l, n, true
		}
	}
	return best, found
}

// importGraph returns every package of the module with its direct imports (tests
// excluded), read with `go list -deps`.
func importGraph(t *testing.T) map[string][]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, module+"/...")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	g := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || !strings.HasPrefix(f[0], module+"/") {
			continue
		}
		g[strings.TrimPrefix(f[0], module+"/")] = f[1:]
	}
	return g
}

func TestEveryImportFollowsTheLayoutMap(t *testing.T) {
	g := importGraph(t)
	if len(g) < 30 {
		t.Fatalf("go list found only %d packages of the module", len(g))
	}
	var bad []string
	pkgs := make([]string, 0, len(g))
	for p := range g {
		pkgs = append(pkgs, p)
	}
	sort.Strings(pkgs)
	for _, p := range pkgs {
		lp, ok := layerOf(p)
		if !ok {
			bad = append(bad, p+": not on the layout map (add it to layers here and to the README's layout section)")
			continue
		}
		for _, imp := range g[p] {
			if strings.HasPrefix(imp, "github.com/nats-io/") && !contains(natsAllowed, p) {
				bad = append(bad, p+" imports "+imp+": only the transport, domain stores and wiring talk to NATS")
			}
			if lp == 0 && strings.Contains(imp, ".") {
				bad = append(bad, p+" imports "+imp+": schemas is the standard library only")
			}
			own, isOwn := strings.CutPrefix(imp, module+"/")
			if !isOwn {
				continue
			}
			li, _ := layerOf(own)
			for pat, c := range ceilings {
				dir, _ := strings.CutSuffix(pat, "/...")
				if (p == dir || strings.HasPrefix(p, dir+"/")) && li > c && !strings.HasPrefix(own, dir) {
					bad = append(bad, p+" imports "+own+" (layer "+itoa(li)+"): "+dir+" may import only layers 0-"+itoa(c))
				}
			}
			if li > lp {
				bad = append(bad, p+" (layer "+itoa(lp)+") imports "+own+" (layer "+itoa(li)+"): an import may not point up")
			}
			for _, f := range forbidden {
				if (p == f.from || strings.HasPrefix(p, f.from+"/")) && (own == f.to || strings.HasSuffix(f.to, "/") && strings.HasPrefix(own, f.to)) {
					if f.from == "ingest" && strings.HasPrefix(p, "ingest/studio") && f.to == "processors/" {
						continue
					}
					bad = append(bad, p+" imports "+own+": "+f.why)
				}
			}
		}
	}
	for _, b := range bad {
		t.Error(b)
	}
}

// The stage packages are siblings: the rule above must name every pair of them.
func TestForbiddenListCoversEveryPairOfStagePackages(t *testing.T) {
	g := importGraph(t)
	var stages []string
	for p := range g {
		if path.Dir(p) == "processors" && p != "processors/artifact" {
			stages = append(stages, p)
		}
	}
	for _, a := range stages {
		for _, b := range stages {
			if a == b {
				continue
			}
			found := false
			for _, f := range forbidden {
				if f.from == a && f.to == b {
					found = true
				}
			}
			if !found {
				t.Errorf("no rule keeps %s from importing %s", a, b)
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func itoa(i int) string { return string(rune('0' + i)) }
