// Command dockerfilecheck runs the checks of `docker build --check` on Dockerfiles
// without a Docker engine or network: BuildKit's own Dockerfile frontend parses each
// file, expands ARGs, builds the stage graph and applies its lint rules (undefined
// ARGs and variables, FROM casing, JSON-form CMD/ENTRYPOINT, stage names, secrets in
// ARG/ENV, ...). Base images are not pulled: every FROM resolves to an empty image
// config.
//
//	dockerfilecheck [-build-arg K=V]... Dockerfile...
//
// Any warning or error fails, as with `docker build --check`.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
	"github.com/moby/buildkit/frontend/dockerui"
	digest "github.com/opencontainers/go-digest"
)

type buildArgs map[string]string

func (b buildArgs) String() string { return fmt.Sprint(map[string]string(b)) }
func (b buildArgs) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok {
		return fmt.Errorf("want K=V, got %q", v)
	}
	b[k] = val
	return nil
}

// offlineResolver answers every base image with a minimal Linux config instead of
// asking a registry.
type offlineResolver struct{}

func (offlineResolver) ResolveImageConfig(_ context.Context, ref string, _ sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	cfg := `{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},"rootfs":{"type":"layers","diff_ids":[]}}`
	return ref, digest.FromString(ref), []byte(cfg), nil
}

var _ llb.ImageMetaResolver = offlineResolver{}

func main() {
	args := buildArgs{}
	flag.Var(args, "build-arg", "build argument K=V (repeatable)")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: dockerfilecheck [-build-arg K=V]... Dockerfile...")
		os.Exit(2)
	}
	failed := false
	for _, name := range flag.Args() {
		n, err := check(name, args)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
			failed = true
			continue
		}
		fmt.Fprintf(os.Stderr, "%s: %d stages, no lint warnings\n", name, n)
	}
	if failed {
		os.Exit(1)
	}
}

func check(name string, args buildArgs) (int, error) {
	dt, err := os.ReadFile(name)
	if err != nil {
		return 0, err
	}
	ctx := context.Background()
	// The frontend records where the Dockerfile came from; an empty state will do.
	src := llb.Scratch()
	def, err := src.Marshal(ctx)
	if err != nil {
		return 0, err
	}
	sm := llb.NewSourceMap(&src, name, "Dockerfile", dt)
	sm.Definition = def
	res, err := dockerfile2llb.DockerfileLint(ctx, dt, dockerfile2llb.ConvertOpt{
		Config:       dockerui.Config{BuildArgs: args},
		SourceMap:    sm,
		MetaResolver: offlineResolver{},
	})
	if err != nil {
		return 0, err
	}
	var problems []string
	for _, w := range res.Warnings {
		line := 0
		if w.Location != nil && len(w.Location.Ranges) > 0 {
			line = int(w.Location.Ranges[0].Start.Line)
		}
		problems = append(problems, fmt.Sprintf("line %d: %s: %s", line, w.RuleName, w.Detail))
	}
	if res.Error != nil {
		problems = append(problems, "error: "+res.Error.Message)
	}
	if len(problems) > 0 {
		return 0, fmt.Errorf("\n  %s", strings.Join(problems, "\n  "))
	}
	return strings.Count(strings.ToUpper(string(dt)), "\nFROM "), nil
}
