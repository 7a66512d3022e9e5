package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/creativeai-studio/studio/internal/app"
	"github.com/creativeai-studio/studio/internal/assets"
	"github.com/creativeai-studio/studio/internal/models"
)

func runFetch(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("studio fetch", flag.ContinueOnError)
	dir := fs.String("cache-dir", assets.DefaultDir(), "cache directory [STUDIO_CACHE]")
	fs.Usage = func() {
		var groups []string
		for g := range assets.Groups {
			groups = append(groups, g)
		}
		sort.Strings(groups)
		fmt.Fprintf(fs.Output(), "usage: studio fetch [--cache-dir DIR] [GROUP...]\ngroups: %v (default: runtime models web)\n", groups)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	groups := fs.Args()
	if len(groups) == 0 {
		groups = []string{"runtime", "models", "web"}
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
		for _, a := range assets.Groups[g] {
			p, err := cache.Ensure(ctx, a)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%-16s %s  %s\n", a.Name, a.SHA256[:12], p)
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
