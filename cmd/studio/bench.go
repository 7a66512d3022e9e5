package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/internal/bench"
	"github.com/creativeai-studio/studio/internal/metrics"
)

// runBench is `studio bench`: a load generator and report (internal/bench).
func runBench(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("studio bench", flag.ContinueOnError)
	cfg := &bench.Config{Args: append([]string{"studio", "bench"}, args...)}
	cfg.RegisterFlags(fs)
	logFile := fs.String("log-file", "", "write the in-process pipeline's JSON logs here (default: discarded with the temporary data folder)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), `usage: studio bench --task upscale|remove-background|identity --jobs N --concurrency C [--entry http|nats] [--server URL] [--burst N] [--json FILE]

Starts the whole pipeline in this process (as studio up, with a temporary data folder,
in-process NATS and HTTP on a free loopback port), or loads --server; submits jobs made
from real photos, each with distinct bytes so the result cache never answers; reports
throughput, latency percentiles, per-stage times and queue waits, inference batch sizes,
errors, peak memory and CPU use (this process's and other processes'); then times the
same model called directly through ONNX Runtime and prints pipeline/raw. Every studio up
flag applies; its --concurrency is --stage-concurrency here.`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	cfg.Parsed(fs)
	if err := cfg.Validate(); err != nil {
		return err
	}
	out := io.Discard
	if *logFile != "" {
		if err := os.MkdirAll(filepath.Dir(*logFile), 0o755); err != nil {
			return err
		}
		f, err := os.Create(*logFile)
		if err != nil {
			return err
		}
		defer f.Close()
		out = f
	}
	// Pipeline logs are written (and formatted) as under studio up, so their cost is in
	// the figures; they only go nowhere unless --log-file is given.
	log, err := newLogger(cfg.App.LogLevel, out)
	if err != nil {
		return err
	}
	if e, ok := log.(*logrus.Entry); ok {
		metrics.SampleSuccessLogs(e.Logger, cfg.App.LogSample)
	}
	rep, err := bench.Run(ctx, cfg, log, os.Stderr)
	if err != nil {
		return err
	}
	return rep.Print(stdout)
}
