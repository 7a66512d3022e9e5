// Command studio runs CreativeAI Studio: `studio up` runs everything in one process;
// `studio ingest` and `studio worker --stage S` run the parts separately against a
// shared NATS server; `studio submit` and `studio jobs` are command-line clients of the
// HTTP API; `studio users` manages users over NATS; `studio fetch` downloads and
// verifies models and the ONNX Runtime library.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
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
  studio sql      "SELECT …" | --cookbook NAME | --list   read-only analyst query on the running studio (admin)
  studio submit   --task T [-o DIR] IMAGE...   submit images to a running studio and save results
  studio jobs     list|get|cancel|watch [ID...]  your jobs on a running studio: list, inspect, cancel, follow
  studio fetch    [GROUP...]         fetch and verify assets: runtime, models, models-all, photos
  studio models   list [--server URL]              model versions: task, default, weights, fallback, cache
  studio models   import-ncnn --param P --bin B ...  convert an ncnn model to ONNX and write its manifest
  studio bench    --task T --jobs N --concurrency C  load the pipeline and compare with raw ONNX Runtime
  studio users    create|list|set-tier|disable|enable|delete|erase|token --tenant T [--user U]   manage users; erase is the GDPR erasure
  studio rollout  start|status|list|pause|resume|abort   move a task to another model version in judged steps
  studio replay   --task T --since 24h --to model@version [--sample 10%]   re-run past requests on another version (shadow lane) and compare
  studio webhooks secret|rotate-tenant|rotate --tenant T   print a tenant's webhook signing secret; rotate one tenant's; rotate the root key
  studio backup   --to DIR           snapshot every JetStream stream, KV bucket and object store to DIR
  studio restore  --from DIR         load a backup into a fresh NATS server or cluster
  studio help     [COMMAND [VERB]]   flags of a command

Every flag can also be set through the environment variable shown in its help.
`

// command is one `studio` subcommand. run parses args (the arguments after the
// command's name) with a flag set of its own and writes its report to stdout; logs and
// progress of long-running processes go to stderr.
type command struct {
	name string
	run  func(ctx context.Context, args []string, stdout io.Writer) error
	// verbs are the subcommands of a command that has them (studio users create ...);
	// each parses its own flags.
	verbs []string
}

// commands is every `studio` command; TestEveryFlagSetParses parses each one's flags.
var commands = []command{
	{name: "up", run: runUp},
	{name: "ingest", run: runIngest},
	{name: "worker", run: runWorker},
	{name: "sink", run: runSink},
	{name: "migrate", run: runMigrate},
	{name: "sql", run: runSQL},
	{name: "submit", run: runSubmit},
	{name: "jobs", run: runJobs, verbs: jobsVerbs},
	{name: "fetch", run: runFetch},
	{name: "models", run: runModels, verbs: []string{"list", "import-ncnn"}},
	{name: "bench", run: runBench},
	{name: "users", run: runUsers, verbs: usersVerbs},
	{name: "rollout", run: runRollout, verbs: rolloutVerbs},
	{name: "replay", run: runReplay},
	{name: "webhooks", run: runWebhooks, verbs: webhooksVerbs},
	{name: "backup", run: runBackup},
	{name: "restore", run: runRestore},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run runs the command line args (without the program name) and returns the exit
// status: 0, 1 when the command failed, 2 for an unknown command.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	name, args := args[0], args[1:]
	switch name {
	case "help", "-h", "--help":
		if len(args) == 0 {
			fmt.Fprint(stdout, usage)
			return 0
		}
		// studio help users create: the flags of that command
		return run(ctx, append(args, "-h"), stdout, stderr)
	}
	for _, c := range commands {
		if c.name != name {
			continue
		}
		err := c.run(ctx, args, stdout)
		if err != nil && !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "studio "+name+": "+err.Error())
			return 1
		}
		return 0
	}
	fmt.Fprintf(stderr, "studio: unknown command %q\n\n%s", name, usage)
	return 2
}

// verbHelp reports whether args asks a command with verbs for its usage
// (`studio users`, `studio users -h`, `studio users help`); it prints the usage then.
func verbHelp(args []string, usage string, stdout io.Writer) (asked bool, err error) {
	if len(args) == 0 {
		return true, errors.New(usage)
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(stdout, usage)
		return true, nil
	}
	return false, nil
}

// verbOf reads the verb of `studio <command> <verb> [flags]` from args, one of verbs,
// and returns it with an empty flag set named for both. done is true when the caller
// has nothing more to do: args asked for the usage (verbHelp; printed, err nil), or
// named no verb or an unknown one (err says so, with the usage).
func verbOf(command string, verbs, args []string, usage string, stdout io.Writer) (verb string, fs *flag.FlagSet, done bool, err error) {
	if asked, err := verbHelp(args, usage, stdout); asked {
		return "", nil, true, err
	}
	verb = args[0]
	if !slices.Contains(verbs, verb) {
		return "", nil, true, fmt.Errorf("unknown %s command %q\n\n%s", command, verb, usage)
	}
	return verb, flag.NewFlagSet("studio "+command+" "+verb, flag.ContinueOnError), false, nil
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
