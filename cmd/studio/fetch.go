package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sort"

	"github.com/creativeai-studio/studio/internal/assets"
)

func runFetch(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("studio fetch", flag.ContinueOnError)
	dir := fs.String("cache-dir", assets.DefaultDir(), "cache directory [STUDIO_CACHE]")
	fs.Usage = func() {
		var groups []string
		for g := range assets.Groups {
			groups = append(groups, g)
		}
		sort.Strings(groups)
		fmt.Fprintf(fs.Output(), "usage: studio fetch [--cache-dir DIR] [GROUP...]\ngroups: %v (default: runtime models)\n", groups)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	groups := fs.Args()
	if len(groups) == 0 {
		groups = []string{"runtime", "models"}
	}
	log, err := newLogger("info", os.Stderr)
	if err != nil {
		return err
	}
	cache := &assets.Cache{Dir: *dir, Log: log}
	for _, g := range groups {
		as, ok := assets.Groups[g]
		if !ok {
			fs.Usage()
			return fmt.Errorf("unknown group %q", g)
		}
		for _, a := range as {
			p, err := cache.Ensure(ctx, a)
			if err != nil {
				return err
			}
			fmt.Printf("%-16s %s  %s\n", a.Name, a.SHA256[:12], p)
		}
	}
	return nil
}
