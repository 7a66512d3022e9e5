// Package bench is the load generator behind `studio bench`: it runs the whole pipeline
// in-process (or targets a running studio), submits jobs with real photos, waits for each,
// and reports throughput, latency percentiles, per-stage times and queue waits, inference
// batch sizes, errors and peak memory. In the same run it measures the raw figure for
// the same model called directly through ONNX Runtime (same threads, sessions, images and
// tiling), so a pipeline number is never quoted without the ceiling it is measured
// against.
package bench

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/creativeai-studio/studio/internal/app"
	"github.com/creativeai-studio/studio/schemas"
)

// TaskIdentity is the bench-only task that runs every stage with a 1x1 identity
// convolution on 8x8 images: the pipeline's own ceiling, with almost no model work.
const TaskIdentity = "identity"

// Entry points for submitting jobs.
const (
	EntryHTTP = "http"
	EntryNATS = "nats"
)

// Config is one bench run. App is the studio configuration used for the in-process
// pipeline and for the raw ONNX Runtime baseline (threads, sessions, device, library).
type Config struct {
	App app.Config

	// Task is upscale, remove-background, style-transfer or TaskIdentity.
	Task string
	// Model and Version pin what the jobs ask for; empty uses the task's default.
	Model, Version string
	// Params is the jobs' params as a JSON object ({"format":"jpeg","quality":85});
	// empty sends none.
	Params string
	// Jobs is the number of measured jobs; Warmup jobs run first and are not counted.
	Jobs, Warmup int
	// Concurrency is the number of jobs in flight (closed loop), or of submissions in
	// flight in burst mode.
	Concurrency int
	// Burst, when > 0, queues that many jobs as fast as they are accepted (open loop)
	// and samples memory while they drain. It replaces Jobs.
	Burst int
	// AcceptOnly measures ingest's accepting alone (with Burst): the in-process
	// pipeline runs ingest without stages, and the bench counts a job once its
	// submission is answered (202, or the NATS entry's reply) instead of waiting for it
	// to finish.
	AcceptOnly bool
	// ServerPID is, with Server, the id of the studio process behind it (studio ingest)
	// on this machine: its CPU time over the measured window is read from
	// /proc/PID/stat and reported per job.
	ServerPID int
	// Entry is http (multipart POST /v2/jobs) or nats (a schemas.JobRequest on
	// studio.submit.<task>).
	Entry string
	// Server targets a running studio instead of starting one in-process.
	Server string
	// Images is a folder of JPEG, PNG or WebP files; empty uses the cached photos.
	Images string
	// MaxSide shrinks inputs so their longer side is at most this (0 keeps them).
	MaxSide int
	// Raw runs the direct ONNX Runtime baseline; RawJobs is how many runs it times
	// (0: as many as Jobs).
	Raw     bool
	RawJobs int
	// JSONFile receives the report as JSON.
	JSONFile string
	// SampleEvery is the memory sampling interval.
	SampleEvery time.Duration
	// Timeout bounds the whole run.
	Timeout time.Duration
	// KeepData keeps the in-process pipeline's temporary data folder.
	KeepData bool
	// CPUProfile receives a pprof CPU profile of the measured window (in-process: the
	// whole pipeline, NATS server included).
	CPUProfile string
	// MemProfile receives a pprof heap profile taken after the measured jobs (in-process:
	// the pipeline, the NATS server and the client), before the pipeline stops.
	MemProfile string
	// Args is the command line, recorded in the report.
	Args []string

	// modelsSet records that --models (or STUDIO_MODELS) was given; otherwise the
	// in-process pipeline serves only the model under test.
	modelsSet bool
}

// RegisterFlags adds the `studio up` flags (app.Config.RegisterFlags) and the bench's
// own. The stage setting --concurrency of `studio up` is offered as --stage-concurrency
// here, because --concurrency is the number of jobs the load generator keeps in flight.
// The flags that place the in-process pipeline (data folder, listen addresses, stages)
// are left out: the bench chooses those.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	appFlags := flag.NewFlagSet("studio up", flag.ContinueOnError)
	c.App.RegisterFlags(appFlags)
	appFlags.VisitAll(func(f *flag.Flag) {
		name := f.Name
		switch name {
		case "data-dir", "http", "nats-listen", "nats-monitor", "public-url", "stages":
			return // the in-process pipeline gets a temporary folder, free ports and every stage
		case "concurrency":
			name = "stage-concurrency"
		}
		fs.Var(f.Value, name, f.Usage)
	})
	fs.StringVar(&c.Task, "task", string(schemas.TaskRemoveBackground), "upscale, remove-background, style-transfer, or identity (every stage with an identity model on 8x8 images: the pipeline's own ceiling)")
	fs.StringVar(&c.Model, "model", "", "model name the jobs ask for (default: the task's default)")
	fs.StringVar(&c.Version, "version", "", "model version the jobs ask for (default: the model's default)")
	fs.StringVar(&c.Params, "params", "", `task parameters of every job, a JSON object, e.g. '{"format":"webp","quality":85}' (checked by the server)`)
	fs.IntVar(&c.Jobs, "jobs", 8, "measured jobs")
	fs.IntVar(&c.Warmup, "warmup", 2, "jobs run before measuring, not counted (also the raw baseline's warm-up runs per session)")
	fs.IntVar(&c.Concurrency, "concurrency", 2, "jobs in flight: each client submits, waits for the result, then submits the next (burst: submissions in flight)")
	fs.IntVar(&c.Burst, "burst", 0, "queue this many jobs as fast as ingest accepts them, then sample memory every --sample while they drain (replaces --jobs)")
	fs.BoolVar(&c.AcceptOnly, "accept-only", false, "with --burst: measure ingest's accepting alone: the in-process pipeline runs ingest without stages (with --server, load a studio ingest whose stages run elsewhere), a job counts once its submission is answered, and nothing waits for results; implies --raw=false")
	fs.IntVar(&c.ServerPID, "server-pid", 0, "with --server: the process id of the studio behind it on this machine (e.g. studio ingest); its CPU time over the measured window is reported per job (/proc/PID/stat)")
	fs.StringVar(&c.Entry, "entry", EntryHTTP, "how jobs enter: http (multipart POST /v2/jobs) or nats (a job request on studio.submit.<task>)")
	fs.StringVar(&c.Server, "server", "", "URL of a running studio to load instead of starting the pipeline in-process (memory is then not measured)")
	fs.StringVar(&c.Images, "images", "", "folder of JPEG/PNG/WebP inputs (default: the cached test photos from studio fetch photos)")
	fs.IntVar(&c.MaxSide, "max-side", 0, "shrink inputs so the longer side is at most this many pixels (0 keeps them; identity always uses 8x8)")
	fs.BoolVar(&c.Raw, "raw", true, "also measure the same model called directly through ONNX Runtime, in this process")
	fs.IntVar(&c.RawJobs, "raw-jobs", 0, "timed runs of the raw baseline (0: as many as --jobs)")
	fs.StringVar(&c.JSONFile, "json", "", "also write the report as JSON to this file")
	fs.DurationVar(&c.SampleEvery, "sample", 100*time.Millisecond, "memory sampling interval")
	fs.DurationVar(&c.Timeout, "timeout", 30*time.Minute, "give up after this long")
	fs.BoolVar(&c.KeepData, "keep-data", false, "keep the in-process pipeline's data folder (JetStream store and logs)")
	fs.StringVar(&c.CPUProfile, "cpuprofile", "", "write a CPU profile of the measured jobs to this file (go tool pprof)")
	fs.StringVar(&c.MemProfile, "memprofile", "", "write a heap profile, taken after the measured jobs, to this file (go tool pprof)")
}

// Parsed records which flags the command line set; call it after fs.Parse.
func (c *Config) Parsed(fs *flag.FlagSet) {
	_, c.modelsSet = os.LookupEnv("STUDIO_MODELS")
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "models" {
			c.modelsSet = true
		}
	})
}

// Validate checks the bench settings; the studio settings are checked by app.Up.
func (c *Config) Validate() error {
	var errs []error
	switch c.Task {
	case string(schemas.TaskUpscale), string(schemas.TaskRemoveBackground), string(schemas.TaskStyleTransfer), TaskIdentity:
	default:
		errs = append(errs, fmt.Errorf("--task %q: use upscale, remove-background, style-transfer or identity", c.Task))
	}
	switch c.Entry {
	case EntryHTTP, EntryNATS:
	default:
		errs = append(errs, fmt.Errorf("--entry %q: use http or nats", c.Entry))
	}
	if c.Params != "" {
		var m map[string]any
		if err := json.Unmarshal([]byte(c.Params), &m); err != nil || m == nil {
			errs = append(errs, fmt.Errorf("--params %q: give a JSON object such as '{\"format\":\"jpeg\"}'", c.Params))
		}
	}
	if c.Burst < 0 {
		errs = append(errs, fmt.Errorf("--burst %d: must not be negative", c.Burst))
	}
	if c.Burst == 0 && c.Jobs < 1 {
		errs = append(errs, fmt.Errorf("--jobs %d: run at least one", c.Jobs))
	}
	if c.Warmup < 0 || c.RawJobs < 0 || c.MaxSide < 0 {
		errs = append(errs, errors.New("--warmup, --raw-jobs and --max-side must not be negative"))
	}
	if c.AcceptOnly && c.Burst == 0 {
		errs = append(errs, errors.New("--accept-only measures a burst: give --burst N"))
	}
	if c.ServerPID != 0 && c.Server == "" {
		errs = append(errs, errors.New("--server-pid names the process behind --server; give --server too"))
	}
	if c.Concurrency < 1 {
		errs = append(errs, fmt.Errorf("--concurrency %d: must be at least 1", c.Concurrency))
	}
	if c.SampleEvery < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("--sample %s: use at least 10ms", c.SampleEvery))
	}
	if c.Server != "" && !strings.HasPrefix(c.Server, "http://") && !strings.HasPrefix(c.Server, "https://") {
		errs = append(errs, fmt.Errorf("--server %q: give an http:// or https:// URL", c.Server))
	}
	if c.Server != "" && c.Task == TaskIdentity {
		errs = append(errs, errors.New("--task identity builds its model in-process; it cannot target --server"))
	}
	if c.Server != "" && c.Entry == EntryNATS && c.App.NATSURL == "" {
		errs = append(errs, errors.New("--entry nats with --server needs --nats-url (the studio's NATS server)"))
	}
	if c.Task == TaskIdentity && c.App.ModelDir != "" {
		errs = append(errs, errors.New("--task identity serves its own model folder; leave out --model-dir"))
	}
	return errors.Join(errs...)
}

// measured is the number of jobs whose figures count.
func (c *Config) measured() int {
	if c.Burst > 0 {
		return c.Burst
	}
	return c.Jobs
}

// jobTask is the task the jobs are submitted as.
func (c *Config) jobTask() schemas.Task {
	if c.Task == TaskIdentity {
		return schemas.TaskStyleTransfer
	}
	return schemas.Task(c.Task)
}

// params is Params decoded (Validate checked it), or nil.
func (c *Config) params() map[string]any {
	var m map[string]any
	_ = json.Unmarshal([]byte(c.Params), &m)
	return m
}
