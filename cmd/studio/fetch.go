package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"

	"github.com/creativeai-studio/studio/internal/app"
	"github.com/creativeai-studio/studio/internal/assets"
	"github.com/creativeai-studio/studio/internal/models"
)

func runFetch(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("studio fetch", flag.ContinueOnError)
	dir := fs.String("cache-dir", assets.DefaultDir(), "cache directory [STUDIO_CACHE]")
	gpu := fs.Bool("gpu", false, "runtime: fetch the CUDA build of ONNX Runtime and its CUDA provider libraries (into a directory of their own) instead of the CPU build")
	fs.Usage = func() {
		var groups []string
		for g := range assets.Groups {
			groups = append(groups, g)
		}
		sort.Strings(groups)
		fmt.Fprintf(fs.Output(), "usage: studio fetch [--cache-dir DIR] [--gpu] [GROUP...]\ngroups: %v (default: runtime models web)\n", groups)
		fs.PrintDefaults()
	}
	groups, err := parseInterspersed(fs, args) // studio fetch runtime --gpu
	if err != nil {
		return err
	}
	if len(groups) == 0 {
		groups = []string{"runtime", "models", "web"}
	}
	if *gpu && !slices.Contains(groups, "runtime") {
		return fmt.Errorf("--gpu selects the CUDA build of the runtime group: name it (studio fetch runtime --gpu)")
	}
	for _, g := range groups {
		if _, ok := assets.Groups[g]; !ok && g != "models" && g != "models-all" {
			fs.Usage()
			return fmt.Errorf("unknown group %q", g)
		}
	}
	log, err := newLogger("info", os.Stderr)
	if err != nil {
		return err
	}
	cache := &assets.Cache{Dir: *dir, Log: log}
	for _, g := range groups {
		if g == "models" || g == "models-all" {
			if err := fetchModels(ctx, cache, g == "models-all", stdout); err != nil {
				return err
			}
			continue
		}
		as := assets.Groups[g]
		if g == "runtime" && *gpu {
			as = assets.RuntimeGPU
		}
		for _, a := range as {
			p, err := cache.Ensure(ctx, a)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%-28s %s  %s\n", a.Name, a.SHA256[:12], p)
		}
	}
	return nil
}

// fetchModels fetches the shipped models that `studio up` serves by default (--models
// default), or all shipped models.
func fetchModels(ctx context.Context, cache *assets.Cache, all bool, out io.Writer) error {
	ms, err := models.Shipped()
	if err != nil {
		return err
	}
	cfg := &app.Config{}
	cfg.RegisterFlags(flag.NewFlagSet("defaults", flag.ContinueOnError))
	_, enabled, err := app.Manifests(cfg)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if !all && !enabled[m.ID()] {
			continue
		}
		spec, err := models.Fetch(ctx, cache, m)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%-24s %s\n", m.ID(), spec.Path)
	}
	return nil
}
