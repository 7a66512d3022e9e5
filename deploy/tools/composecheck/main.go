// Command composecheck loads compose files the way `docker compose config` does, with
// compose-go (the library inside Docker Compose): the compose-spec JSON schema,
// interpolation of ${VAR:-default} with an empty environment, YAML anchors and merge
// keys, !reset/!override in override files, and the consistency checks (every
// depends_on, network and volume exists). It then checks what the schema cannot:
// build contexts, Dockerfiles and bind-mounted files exist, and every image is pinned.
// It prints the resolved project, like `docker compose config`, with -print.
//
//	composecheck [-print] -f compose.yaml [-f override.yaml]...
//
// For machines without the Docker Compose plugin; where it exists, validate-deploy.sh
// runs `docker compose config` too.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

type files []string

func (f *files) String() string     { return strings.Join(*f, ",") }
func (f *files) Set(v string) error { *f = append(*f, v); return nil }

func main() {
	var fs files
	flag.Var(&fs, "f", "compose file (repeatable; later files override earlier ones)")
	print := flag.Bool("print", false, "print the resolved project")
	flag.Parse()
	if len(fs) == 0 {
		fmt.Fprintln(os.Stderr, "usage: composecheck [-print] -f compose.yaml [-f override.yaml]...")
		os.Exit(2)
	}
	p, err := load(fs)
	if err != nil {
		fmt.Fprintln(os.Stderr, "composecheck:", err)
		os.Exit(1)
	}
	problems := check(p)
	for _, e := range problems {
		fmt.Fprintln(os.Stderr, "composecheck:", e)
	}
	if len(problems) > 0 {
		os.Exit(1)
	}
	if *print {
		b, err := p.MarshalYAML()
		if err != nil {
			fmt.Fprintln(os.Stderr, "composecheck:", err)
			os.Exit(1)
		}
		os.Stdout.Write(b)
	}
	fmt.Fprintf(os.Stderr, "%s: %d services valid\n", strings.Join(fs, " + "), len(p.Services))
}

func load(fs []string) (*types.Project, error) {
	opts, err := cli.NewProjectOptions(fs,
		cli.WithWorkingDirectory(filepath.Dir(fs[0])),
		// An empty environment: the file must work with its defaults alone.
		cli.WithEnv(nil),
		cli.WithInterpolation(true),
		cli.WithNormalization(true),
		cli.WithConsistency(true),
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		return nil, err
	}
	return opts.LoadProject(context.Background())
}

func check(p *types.Project) []string {
	var out []string
	names := make([]string, 0, len(p.Services))
	for n := range p.Services {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		s := p.Services[n]
		if err := pinned(s.Image); err != nil {
			out = append(out, fmt.Sprintf("service %s: image %q: %v", n, s.Image, err))
		}
		if s.Build != nil {
			if st, err := os.Stat(s.Build.Context); err != nil || !st.IsDir() {
				out = append(out, fmt.Sprintf("service %s: build context %s does not exist", n, s.Build.Context))
			}
			df := s.Build.Dockerfile
			if !filepath.IsAbs(df) {
				df = filepath.Join(s.Build.Context, df)
			}
			if _, err := os.Stat(df); err != nil {
				out = append(out, fmt.Sprintf("service %s: Dockerfile %s does not exist", n, df))
			}
		}
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			if _, err := os.Stat(v.Source); err != nil {
				out = append(out, fmt.Sprintf("service %s: bind mount source %s does not exist", n, v.Source))
			}
		}
	}
	return out
}

// pinned reports a missing or moving image tag.
func pinned(ref string) error {
	if ref == "" {
		return fmt.Errorf("no image")
	}
	if strings.Contains(ref, "@sha256:") {
		return nil
	}
	_, tag, ok := strings.Cut(ref[strings.LastIndex(ref, "/")+1:], ":")
	switch {
	case !ok || tag == "":
		return fmt.Errorf("no tag: pin a version")
	case tag == "latest":
		return fmt.Errorf(`tag "latest": pin a version`)
	}
	return nil
}
