package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/creativeai-studio/studio/ingest"
)

const jobsUsage = `usage: studio jobs COMMAND [flags] [ID...]

  list    [--limit N] [--cursor C] [--json]   your jobs, newest first
  get     ID... [--json]                       a job's status, stage, model, timings and results
  cancel  ID...                                cancel queued or running jobs (a finished job cannot be)
  watch   ID [-o DIR]                          follow a job until it is final; -o saves its results

Calls a running studio (--server, default $STUDIO_SERVER or http://127.0.0.1:8080) as
the owner of --token ($STUDIO_TOKEN): you see and cancel your own jobs only.
get, cancel and watch exit 1 when a job is not found, cannot be cancelled, or (watch)
ends in any state but succeeded.`

// jobsVerbs are the jobs commands.
var jobsVerbs = []string{"list", "get", "cancel", "watch"}

// runJobs is `studio jobs`: the HTTP client for jobs already submitted.
func runJobs(ctx context.Context, args []string, stdout io.Writer) error {
	verb, fs, done, err := verbOf("jobs", jobsVerbs, args, jobsUsage, stdout)
	if done {
		return err
	}
	var sf serverFlags
	sf.register(fs)
	timeout := fs.Duration("timeout", time.Minute, "give up after this long (watch: waiting for the job to finish)")
	asJSON := fs.Bool("json", false, "list, get: print the API's JSON instead of a table")
	limit := fs.Int("limit", 20, "list: jobs per page, 1 to 100")
	cursor := fs.String("cursor", "", "list: the next page, as printed after the previous one")
	out := fs.String("o", "", "watch: directory for the results of a succeeded job")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), jobsUsage+"\n\nflags:")
		fs.PrintDefaults()
	}
	ids, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return err
	}
	switch {
	case verb == "list" && len(ids) > 0:
		return fmt.Errorf("list takes no job id (got %q)", ids[0])
	case verb == "list" && (*limit < 1 || *limit > 100):
		return fmt.Errorf("--limit %d: use 1 to 100", *limit)
	case verb == "watch" && len(ids) != 1:
		return errors.New("watch follows one job: studio jobs watch ID")
	case verb != "list" && len(ids) == 0:
		return fmt.Errorf("name a job: studio jobs %s ID", verb)
	}
	if *timeout <= 0 {
		return fmt.Errorf("--timeout %s: must be positive", *timeout)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	c := sf.client()
	switch verb {
	case "list":
		return c.listJobs(ctx, *limit, *cursor, *asJSON, stdout)
	case "get":
		return eachJob(ids, func(id string) error {
			job, err := c.get(ctx, id)
			if err != nil {
				return err
			}
			if *asJSON {
				return writeJSON(stdout, job)
			}
			printJob(stdout, job)
			return nil
		})
	case "cancel":
		return eachJob(ids, func(id string) error {
			job, err := c.cancel(ctx, id)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s %s\n", job.ID, job.Status)
			return nil
		})
	default: // watch
		job, err := c.get(ctx, ids[0])
		if err != nil {
			return fmt.Errorf("job %s: %w", ids[0], err)
		}
		final := job
		if !job.Status.Final() {
			if final, err = c.follow(ctx, job, printProgress(stdout)); err != nil {
				return err
			}
		}
		fmt.Fprintf(stdout, "%s %s\n", final.ID, final.Status)
		if err := failure(final); err != nil {
			return err
		}
		if *out != "" {
			return c.saveResults(ctx, final, *out, final.ID, stdout)
		}
		return nil
	}
}

// parseInterspersed parses flags that may come before, between or after the
// positional arguments (studio jobs get ID --json) and returns the positional ones.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		if rest := len(args) - fs.NArg(); rest > 0 && args[rest-1] == "--" {
			return append(pos, fs.Args()...), nil // after --, all are arguments
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// eachJob runs fn for every id, going on past failures, and returns them all, each
// prefixed with its job id.
func eachJob(ids []string, fn func(id string) error) error {
	var errs []error
	for _, id := range ids {
		if err := fn(id); err != nil {
			errs = append(errs, fmt.Errorf("job %s: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

func (c *client) listJobs(ctx context.Context, limit int, cursor string, asJSON bool, stdout io.Writer) error {
	q := url.Values{"limit": {strconv.Itoa(limit)}}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v2/jobs?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	var page ingest.JobListV2
	if err := c.do(req, http.StatusOK, &page); err != nil {
		return err
	}
	if asJSON {
		return writeJSON(stdout, page)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tSTAGE\tPERCENT\tTASK\tMODEL\tSUBMITTED")
	for _, j := range page.Items {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d%%\t%s\t%s\t%s\n", j.ID, j.Status, dash(string(j.Stage)), j.Percent, j.Task,
			modelID(j.Model), j.SubmittedAt.Local().Format(time.DateTime))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if page.NextCursor != "" {
		fmt.Fprintf(stdout, "more: studio jobs list --cursor %s\n", page.NextCursor)
	}
	return nil
}

// cancel cancels a job; cancelling a cancelled job is a no-op, a finished one fails.
func (c *client) cancel(ctx context.Context, id string) (*ingest.JobV2, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, c.base+"/v2/jobs/"+url.PathEscape(id), nil)
	if err != nil {
		return nil, err
	}
	var job ingest.JobV2
	if err := c.do(req, http.StatusOK, &job); err != nil {
		return nil, err
	}
	return &job, nil
}

// printJob writes a job for people: one line of what it is, then its timeline.
func printJob(w io.Writer, j *ingest.JobV2) {
	fmt.Fprintf(w, "job %s  %s", j.ID, j.Status)
	if !j.Status.Final() {
		fmt.Fprintf(w, " (%s %d%%)", dash(string(j.Stage)), j.Percent)
	}
	fmt.Fprintf(w, "\n  task       %s, model %s, tier %s\n", j.Task, modelID(j.Model), j.Tier)
	if j.Queue != nil {
		fmt.Fprintf(w, "  queue      position %d\n", j.Queue.Position)
	}
	fmt.Fprintf(w, "  submitted  %s\n", j.SubmittedAt.Local().Format(time.DateTime))
	for _, t := range j.Timings {
		fmt.Fprintf(w, "  %-10s %s", t.Stage, time.Duration(t.DurationMS*float64(time.Millisecond)).Round(time.Millisecond))
		if t.Attempts > 1 {
			fmt.Fprintf(w, " (attempt %d)", t.Attempts)
		}
		if t.Worker != "" {
			fmt.Fprintf(w, " on %s", t.Worker)
		}
		fmt.Fprintln(w)
	}
	if !j.FinishedAt.IsZero() {
		fmt.Fprintf(w, "  finished   %s\n", j.FinishedAt.Local().Format(time.DateTime))
	}
	if j.Error != nil {
		fmt.Fprintf(w, "  error      %s (%s)\n", j.Error.Message, j.Error.Code)
	}
	for _, r := range j.Results {
		fmt.Fprintf(w, "  result     %s  %s  %d bytes\n", r.Name, r.URL, r.Size)
	}
}

func modelID(m ingest.ModelRef) string {
	if m.Name == "" {
		return "-"
	}
	return m.Name + "@" + m.Version
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
