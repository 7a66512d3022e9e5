package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/creativeai-studio/studio/ingest"
	"github.com/creativeai-studio/studio/internal/app"
)

const modelsUsage = `usage: studio models COMMAND [flags]

  list         [--server URL [--token T]]          model versions: task, default, weights, fallback, cache
  import-ncnn  --param P --bin B --name N --version V [--out DIR]   convert an ncnn model to ONNX and write its manifest`

func runModels(ctx context.Context, args []string, stdout io.Writer) error {
	if asked, err := verbHelp(args, modelsUsage, stdout); asked {
		return err
	}
	switch args[0] {
	case "list":
		return modelsList(ctx, args[1:], stdout)
	case "import-ncnn":
		return importNCNN(ctx, args[1:], stdout)
	}
	return fmt.Errorf("unknown models command %q\n\n%s", args[0], modelsUsage)
}

func modelsList(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("studio models list", flag.ContinueOnError)
	cfg := &app.Config{}
	cfg.RegisterFlags(fs)
	var sf serverFlags
	fs.StringVar(&sf.server, "server", "", "ask a running studio (e.g. http://127.0.0.1:8080) which versions it serves and has loaded")
	fs.StringVar(&sf.token, "token", os.Getenv("STUDIO_TOKEN"), "with --server: access token or API key [STUDIO_TOKEN]")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	defer tw.Flush()
	if sf.server != "" {
		c := sf.client()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1/models", nil)
		if err != nil {
			return err
		}
		var body ingest.ModelList
		if err := c.do(req, http.StatusOK, &body); err != nil {
			return fmt.Errorf("GET /v1/models: %w", err)
		}
		fmt.Fprintln(tw, "MODEL\tTASK\tDEFAULT\tWEIGHT\tFALLBACK\tLOADED")
		for _, m := range body.Models {
			loaded := "-"
			if m.Loaded != nil {
				loaded = fmt.Sprint(*m.Loaded)
			}
			fmt.Fprintf(tw, "%s\t%s\t%v\t%d\t%s\t%s\n", m.ID, m.Task, m.Default, m.Weight, dash(m.Fallback), loaded)
		}
		return nil
	}
	all, enabled, err := app.Manifests(cfg)
	if err != nil {
		return err
	}
	fmt.Fprintln(tw, "MODEL\tTASK\tDEFAULT\tWEIGHT\tFALLBACK\tSERVED\tCACHED\tLICENSE\tMANIFEST")
	for _, m := range all {
		cached := "-"
		if m.Source.Path == "" {
			_, err := os.Stat(filepath.Join(cfg.CacheDir, filepath.FromSlash(m.Asset().Path)))
			cached = fmt.Sprint(err == nil)
		}
		fmt.Fprintf(tw, "%s\t%s\t%v\t%d\t%s\t%v\t%s\t%s\t%s\n", m.ID(), m.Task, m.Default, m.Weight, dash(m.Fallback), enabled[m.ID()], cached, m.License, m.File)
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
