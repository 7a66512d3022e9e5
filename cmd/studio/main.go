// Command studio runs CreativeAI Studio: `studio up` runs everything in one process;
// `studio ingest` and `studio worker --stage S` run the parts separately against a
// shared NATS server; `studio submit` is a command-line client; `studio fetch`
// downloads and verifies models and the ONNX Runtime library.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/sirupsen/logrus"
)

const usage = `studio: an event-streaming AI image service on NATS JetStream

Usage:
  studio up       [flags]            everything in one process (embedded NATS, all stages, HTTP)
  studio ingest   [flags]            the HTTP API only, against --nats-url
  studio worker   --stage S [flags]  one pipeline stage (preprocess, inference, postprocess, store)
  studio sink     --nats-url URL --clickhouse-addr HOST:PORT   write events to ClickHouse
  studio migrate  --clickhouse-addr HOST:PORT      create or upgrade the ClickHouse schema
  studio submit   --task T [-o DIR] IMAGE...   submit images to a running studio and save results
  studio fetch    [GROUP...]         fetch and verify assets: runtime, models, models-all, photos
  studio models   list [--server URL]              model versions: task, default, weights, fallback, cache
  studio models   import-ncnn --param P --bin B ...  convert an ncnn model to ONNX and write its manifest
  studio bench    --task T --jobs N --concurrency C  load the pipeline and compare with raw ONNX Runtime
  studio users    create|list|set-tier|delete|erase|token --tenant T [--user U]   manage users; erase is the GDPR erasure
  studio help     [COMMAND]          flags of a command

Every flag can also be set through the environment variable shown in its help.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd, args := os.Args[1], os.Args[2:]
	var err error
	switch cmd {
	case "up":
		err = runUp(ctx, args)
	case "ingest":
		err = runIngest(ctx, args)
	case "worker":
		err = runWorker(ctx, args)
	case "submit":
		err = runSubmit(ctx, args, os.Stdout)
	case "fetch":
		err = runFetch(ctx, args)
	case "models":
		err = runModels(ctx, args, os.Stdout)
	case "users":
		err = runUsers(ctx, args, os.Stdout)
	case "sink":
		err = runSink(ctx, args)
	case "migrate":
		err = runMigrate(ctx, args)
	case "bench":
		err = runBench(ctx, args, os.Stdout)
	case "help", "-h", "--help":
		if len(args) > 0 {
			os.Args = []string{os.Args[0], args[0], "-h"}
			main()
			return
		}
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "studio: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "studio "+cmd+": "+err.Error())
		os.Exit(1)
	}
}

// newLogger returns a JSON logger with the service field set.
func newLogger(level string, out io.Writer) (logrus.FieldLogger, error) {
	l := logrus.New()
	l.SetOutput(out)
	l.SetFormatter(&logrus.JSONFormatter{FieldMap: logrus.FieldMap{logrus.FieldKeyMsg: "message"}})
	lv, err := logrus.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	l.SetLevel(lv)
	return l.WithField("service", "studio"), nil
}
