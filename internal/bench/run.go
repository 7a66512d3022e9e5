package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/internal/app"
	"github.com/creativeai-studio/studio/internal/assets"
	"github.com/creativeai-studio/studio/internal/blob"
	"github.com/creativeai-studio/studio/internal/jobs"
	"github.com/creativeai-studio/studio/internal/models"
	"github.com/creativeai-studio/studio/streams"
)

// JetStreamReference quotes the raw JetStream figures of DESIGN.md section 3 (measured
// on the project's 2-core machines, not in this run), the ceiling the identity bench is
// read against.
var JetStreamReference = []string{
	"raw JetStream on the 2-core dev machine (DESIGN.md section 3, not this run): ~138k msg/s async publish (256 B), ~95k msg/s pull consume, 4-hop chain with ack-after-PubAck ~13k msg/s (p50 0.8 ms)",
}

// Run performs one bench: start the pipeline (or target cfg.Server), submit the jobs,
// wait for them, read their records, measure the raw baseline, and return the report.
// Pipeline logs go to log; progress lines to progress.
func Run(ctx context.Context, cfg *Config, log logrus.FieldLogger, progress io.Writer) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.AcceptOnly {
		cfg.Raw = false // no model runs: there is nothing to compare with
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	say := func(format string, args ...any) { fmt.Fprintf(progress, "bench: "+format+"\n", args...) }

	rep := &Report{Date: time.Now().UTC(), Command: cfg.Args, Machine: machine(), Task: cfg.Task, Jobs: cfg.measured(), Warmup: cfg.Warmup, Concurrency: cfg.Concurrency}
	rep.Mode = "closed loop"
	if cfg.Burst > 0 {
		rep.Mode, rep.Warmup = "burst", 0
	}
	if cfg.AcceptOnly {
		rep.Mode = "burst, accepting only (ingest without stages; jobs count when answered)"
	}
	tmp, err := os.MkdirTemp("", "studio-bench-")
	if err != nil {
		return nil, err
	}
	if cfg.KeepData {
		say("keeping %s", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}

	// The model under test, resolved as ingest would, so the raw baseline runs the very
	// file the pipeline serves.
	if cfg.Task == TaskIdentity {
		dir := filepath.Join(tmp, "models")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		if err := WriteIdentityModel(dir); err != nil {
			return nil, err
		}
		cfg.App.ModelDir = dir
		cfg.App.Models = IdentityModel + "@" + IdentityVersion
		cfg.Model, cfg.Version = IdentityModel, IdentityVersion
		if cfg.AcceptOnly {
			rep.Notes = append(rep.Notes, "identity: the bench's synthetic model names the task; no stage runs, so only ingest's work is measured")
		} else {
			rep.Reference = JetStreamReference
			rep.Notes = append(rep.Notes, "identity: a 1x1 identity convolution built by the bench (internal/ncnn), a synthetic graph, not a model; the figure is the pipeline's own ceiling")
		}
	}
	spec, err := resolveSpec(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	rep.Model = spec.ID()
	if cfg.Server == "" && !cfg.modelsSet {
		// Serve only the model under test, so memory figures are its own.
		cfg.App.Models = spec.ID()
	}

	side := 0
	if cfg.Task == TaskIdentity && !(cfg.AcceptOnly && cfg.MaxSide > 0) {
		side = IdentitySide // accepting alone, --max-side picks the upload size instead
	}
	inputs, err := LoadInputs(ctx, cfg.App.CacheDir, cfg.Images, cfg.MaxSide, side)
	if err != nil {
		return nil, err
	}
	rep.Settings = Settings{InProcess: cfg.Server == "", Server: cfg.Server, Entry: cfg.Entry, Device: cfg.App.Device,
		Threads: cfg.App.Threads, Sessions: max(1, cfg.App.Sessions), StageConcurrency: cfg.App.Concurrency, MaxSide: cfg.MaxSide, AcceptOnly: cfg.AcceptOnly}
	for _, in := range inputs {
		rep.Settings.Images = append(rep.Settings.Images, fmt.Sprintf("%s %dx%d", in.Name, in.Pixels.Rect.Dx(), in.Pixels.Rect.Dy()))
	}

	api, natsURL := cfg.Server, cfg.App.NATSURL
	rep.Settings.ModelsServed = "(the server's: GET /v1/models)"
	stopPipeline := func() {}
	if cfg.Server == "" {
		say("starting the pipeline in-process (models load first)")
		rep.Settings.ModelsServed = cfg.App.Models
		var stop func() error
		stages := "ingest,preprocess,inference,postprocess,store"
		if cfg.AcceptOnly {
			// Ingest alone: no stage consumes, and no analytics sink shares the cores.
			stages, cfg.App.Analytics = "ingest", app.AnalyticsOff
		}
		api, natsURL, stop, err = startPipeline(ctx, &cfg.App, tmp, stages, log)
		if err != nil {
			return nil, err
		}
		stopped := false
		stopOnce := func() {
			if !stopped {
				stopped = true
				if err := stop(); err != nil {
					say("pipeline stopped with: %v", err)
				}
			}
		}
		defer stopOnce()
		stopPipeline = func() {
			say("stopping the pipeline")
			stopOnce()
		}
	}
	api = strings.TrimRight(api, "/")

	cl, err := connectClient(ctx, cfg, api, natsURL, spec, log)
	if err != nil {
		return nil, err
	}
	defer cl.close()
	rep.Pipeline.Completion = cl.wait.How()

	lg := &loadGen{cfg: cfg, cl: cl, inputs: inputs, salt: uint32(time.Now().UnixNano()>>10) ^ uint32(os.Getpid())}
	warmup := cfg.Warmup
	if cfg.Burst > 0 {
		warmup = 0
	}
	if warmup > 0 {
		say("warm-up: %d jobs", warmup)
		for _, o := range lg.closedLoop(ctx, 0, warmup) {
			if o.submitErr != nil {
				return nil, fmt.Errorf("warm-up job: %w", o.submitErr)
			}
			if o.waitErr != nil {
				return nil, fmt.Errorf("warm-up job: %w", o.waitErr)
			}
		}
	}

	held, err := lg.prepare(warmup, cfg.measured())
	if err != nil {
		return nil, err
	}
	if held > 0 {
		rep.Settings.MeanInputBytes = held / int64(cfg.measured())
		rep.Notes = append(rep.Notes, fmt.Sprintf("job files: %d PNGs encoded before measuring (%.1f KB each on average), %s held by the client during the run (in the RSS figures)", cfg.measured(), float64(held)/float64(cfg.measured())/1000, fmtBytes(held)))
	} else {
		rep.Notes = append(rep.Notes, "job files: encoded by the client during the run (over the 128 MiB it may hold), on the same cores")
	}
	var smp *sampler
	if cfg.Server == "" {
		before, _ := ReadProcStatus()
		rep.Memory.RSSBefore = before.VmRSS
		smp = startSampler(cfg.SampleEvery, lg.queued.Load)
	} else {
		rep.Memory.Skipped = "not measured: the pipeline runs in another process (--server); read the server's own metrics"
	}
	stopProfile := func() {}
	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile)
		if err != nil {
			return nil, err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return nil, err
		}
		stopProfile = func() {
			pprof.StopCPUProfile()
			f.Close()
		}
	}
	var outs []outcome
	metricsClient := &http.Client{Timeout: 10 * time.Second}
	counter, closeCounter := newStreamCounter(natsURL, cfg.App.NATSCreds)
	defer closeCounter()
	msgsStart := counter.read(ctx)
	stageCPUStart := readStageCPU(ctx, metricsClient, api)
	cpuStart := markCPU()
	serverStart, serverErr := readProcCPU(cfg.ServerPID)
	if cfg.Burst > 0 {
		say("burst: queueing %d jobs, %d submissions in flight", cfg.Burst, cfg.Concurrency)
		var queued time.Duration
		outs, queued = lg.burst(ctx, warmup, cfg.Burst)
		rep.Pipeline.QueuedSeconds = queued.Seconds()
	} else {
		say("measuring: %d jobs, %d in flight", cfg.Jobs, cfg.Concurrency)
		outs = lg.closedLoop(ctx, warmup, cfg.Jobs)
	}
	cpuEnd := markCPU()
	serverEnd, serverErr2 := readProcCPU(cfg.ServerPID)
	stageCPUEnd := readStageCPU(ctx, metricsClient, api)
	stopProfile()
	if smp != nil {
		samples, peakRSS, peakHeap := smp.Stop()
		rep.Memory.PeakRSS, rep.Memory.GoHeapPeak, rep.Memory.Samples = peakRSS, peakHeap, len(samples)
		rep.Memory.SampleEvery = cfg.SampleEvery.String()
		if cfg.Burst > 0 {
			rep.Memory.Timeline = samples
		}
		if st, err := ReadProcStatus(); err == nil {
			rep.Memory.VmHWM = st.VmHWM
		}
	}
	if cfg.MemProfile != "" {
		if err := writeHeapProfile(cfg.MemProfile); err != nil {
			return nil, err
		}
	}
	if cfg.AcceptOnly {
		rep.Pipeline = withCompletion(summariseAccepts(outs), rep.Pipeline)
	} else {
		lg.readRecords(ctx, outs)
		rep.Pipeline = withCompletion(summarise(outs), rep.Pipeline)
	}
	rep.Pipeline.CPU = cpuUse(cpuStart, cpuEnd, rep.Machine.CPUs, rep.Pipeline.Succeeded)
	if cfg.ServerPID != 0 {
		if err := errors.Join(serverErr, serverErr2); err != nil {
			return nil, fmt.Errorf("--server-pid %d: %w", cfg.ServerPID, err)
		}
		rep.Pipeline.ServerCPU = serverCPU(cfg.ServerPID, serverStart, serverEnd, cpuEnd.wall.Sub(cpuStart.wall), rep.Pipeline.Succeeded)
	}
	var self float64
	if rep.Settings.InProcess {
		self = rep.Pipeline.CPU.SelfCPUSeconds
	}
	rep.Pipeline.StageCPU = stageCPUTable(stageCPUStart, stageCPUEnd, rep.Pipeline.Succeeded, self)
	// A stage publishes its telemetry batch up to --telemetry-batch-wait after its last run.
	if natsURL != "" && pause(ctx, cfg.App.TelemetryBatchWait+200*time.Millisecond) {
		rep.Pipeline.MessagesPerJob = messagesPerJob(msgsStart, counter.read(ctx), len(outs))
	}
	if s := rep.Settings; s.InProcess && !s.AcceptOnly && s.StageConcurrency > s.Sessions {
		rep.Notes = append(rep.Notes, fmt.Sprintf("inference time includes waiting for a session: the runner holds up to %d messages (--stage-concurrency) for %d session(s) (--sessions)", s.StageConcurrency, s.Sessions))
	}
	if n := rep.Pipeline.CacheHits; n > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("INVALID: %d jobs were answered from the result cache, so the pipeline figures are not the pipeline's work", n))
	}
	cl.close()
	stopPipeline() // frees the cores for the raw baseline

	if cfg.Raw {
		runs := cfg.RawJobs
		if runs == 0 {
			runs = cfg.measured()
		}
		say("raw baseline: %s through ONNX Runtime directly, %d runs", spec.ID(), runs)
		raw, err := RawBaseline(ctx, &cfg.App, spec, inputs, runs, cfg.Warmup, log)
		if err != nil {
			return nil, err
		}
		rep.Raw = raw
		rep.Settings.Device = raw.Device
		if raw.JobsPerSecond > 0 {
			rep.Ratio = rep.Pipeline.JobsPerSecond / raw.JobsPerSecond
		}
		if cfg.Server != "" {
			rep.Notes = append(rep.Notes, "raw baseline ran in this process with this command's --threads/--sessions/--device; the server's may differ")
		}
	}
	rep.Machine.LoadAvgEnd = loadAvg() // context only: the bench itself keeps the cores busy
	// With --server the pipeline's CPU is another process's, so the pipeline window's
	// "other processes" are the server itself when it runs here: not judged.
	pipelineCPU := rep.Pipeline.CPU
	if cfg.Server != "" {
		pipelineCPU = nil
	}
	var rawCPU *CPUUse
	if rep.Raw != nil {
		rawCPU = rep.Raw.CPU
	}
	if note := preliminary(rep.Machine, pipelineCPU, rawCPU); note != "" {
		rep.Notes = append(rep.Notes, note)
	}
	if cfg.JSONFile != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return rep, err
		}
		if err := os.WriteFile(cfg.JSONFile, append(b, '\n'), 0o644); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

func withCompletion(p, prev Pipeline) Pipeline {
	p.Completion, p.QueuedSeconds = prev.Completion, prev.QueuedSeconds
	return p
}

// resolveSpec finds the manifest the jobs will run (explicit model and version, else
// the task's default, as ingest resolves it) and fetches or verifies its file.
func resolveSpec(ctx context.Context, cfg *Config, log logrus.FieldLogger) (models.Spec, error) {
	all, _, err := app.Manifests(&cfg.App)
	if err != nil {
		return models.Spec{}, err
	}
	cat := models.NewCatalog()
	byID := map[string]models.Manifest{}
	for _, m := range all {
		byID[m.ID()] = m
		if err := cat.Add(models.Spec{Manifest: m}); err != nil {
			return models.Spec{}, err
		}
	}
	s, err := cat.Resolve(cfg.jobTask(), cfg.Model, cfg.Version, 0)
	if err != nil {
		return models.Spec{}, fmt.Errorf("--task %s --model %q --version %q: %w", cfg.Task, cfg.Model, cfg.Version, err)
	}
	spec, err := models.Fetch(ctx, &assets.Cache{Dir: cfg.App.CacheDir, Log: log}, byID[s.ID()])
	if err != nil {
		return models.Spec{}, err
	}
	cfg.Model, cfg.Version = spec.Name, spec.Version
	return spec, nil
}

// startPipeline runs app.Up in this process with a fresh data folder, the embedded NATS
// server on a free loopback port (so the bench can subscribe to results), no monitoring
// port, HTTP on a free loopback port, and the given parts (every stage, or ingest alone).
func startPipeline(ctx context.Context, cfg *app.Config, tmp, stages string, log logrus.FieldLogger) (api, natsURL string, stop func() error, err error) {
	cfg.DataDir = filepath.Join(tmp, "data")
	natsURL = cfg.NATSURL
	if natsURL == "" {
		port, err := freePort()
		if err != nil {
			return "", "", nil, err
		}
		cfg.NATSListen = fmt.Sprintf("127.0.0.1:%d", port)
		natsURL = "nats://" + cfg.NATSListen
	}
	cfg.NATSMonitor = ""
	cfg.HTTPListen = "127.0.0.1:0"
	cfg.PublicURL = ""
	cfg.Stages = stages
	// Only the bench reaches this private pipeline, and per-user caps (3 active jobs,
	// 100 requests an hour) would throttle the load it is meant to measure.
	cfg.Auth = "off"
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	urls := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- app.Up(pctx, cfg, log, func(u string) { urls <- u }) }()
	stop = func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(90 * time.Second):
			return errors.New("the pipeline did not stop within 90s")
		}
	}
	select {
	case api = <-urls:
		return api, natsURL, stop, nil
	case err := <-done:
		cancel()
		return "", "", nil, fmt.Errorf("start the pipeline: %w", err)
	case <-ctx.Done():
		_ = stop()
		return "", "", nil, ctx.Err()
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// client is the bench's side of the pipeline.
type client struct {
	sub     submitter
	wait    waiter
	records records
	nc      *nats.Conn
	once    sync.Once
}

func (c *client) close() {
	c.once.Do(func() {
		c.wait.Close()
		if c.nc != nil {
			c.nc.Close()
		}
	})
}

func connectClient(ctx context.Context, cfg *Config, api, natsURL string, spec models.Spec, log logrus.FieldLogger) (*client, error) {
	var rt http.RoundTripper = &http.Transport{MaxIdleConnsPerHost: cfg.Concurrency + 8, IdleConnTimeout: time.Minute}
	tok := os.Getenv("STUDIO_TOKEN")
	if cfg.Server == "" {
		tok = "" // the bench's own studio runs without authentication
	}
	if tok != "" {
		rt = bearer{token: tok, next: rt} // a running studio with authentication on
	}
	hc := &http.Client{Transport: rt}
	httpRecs := &httpRecords{base: api, hc: hc}
	c := &client{records: httpRecs}
	if natsURL != "" {
		nc, err := streams.Dial(natsURL, "studio-bench", cfg.App.NATSCreds)
		if err != nil {
			return nil, err
		}
		c.nc = nc
		js, err := jetstream.New(nc)
		if err != nil {
			nc.Close()
			return nil, err
		}
		jobStore, err := jobs.Open(ctx, js)
		if err != nil {
			nc.Close()
			return nil, err
		}
		c.records = kvRecords{jobStore}
		if cfg.AcceptOnly {
			c.wait = answered{}
		} else if c.wait, err = newResultWaiter(nc, cfg.jobTask()); err != nil {
			nc.Close()
			return nil, err
		}
		if cfg.Entry == EntryNATS {
			var blobs blob.Store
			if blobs, err = app.OpenBlobs(ctx, &cfg.App, &app.Bus{NC: nc, JS: js}, log); err != nil {
				c.close()
				return nil, err
			}
			c.sub = &natsSubmitter{nc: nc, token: tok, blobs: blobs, task: cfg.jobTask(), model: spec.Name, version: spec.Version, params: cfg.params(), runID: strconv.FormatInt(time.Now().UnixNano(), 36)}
		}
	} else if cfg.AcceptOnly {
		c.wait = answered{}
	} else {
		c.wait = &pollWaiter{api: httpRecs, every: 50 * time.Millisecond, gate: make(chan struct{}, 8)}
	}
	if c.sub == nil {
		c.sub = &httpSubmitter{base: api, hc: hc, fields: map[string]string{"task": string(cfg.jobTask()), "model": spec.Name, "version": spec.Version, "params": cfg.Params}}
	}
	return c, nil
}

// loadGen submits jobs and waits for them.
type loadGen struct {
	cfg    *Config
	cl     *client
	inputs []Input
	salt   uint32
	// files are the job files made before measuring, from job number first on.
	files [][]byte
	first int
	// queued counts jobs submitted and not yet seen finished.
	queued atomic.Int64
}

// maxHeldFiles bounds the job files made before measuring (four times as much with
// --accept-only); past it they are made during the run.
const maxHeldFiles = 128 << 20

// prepare makes the files of jobs first..first+n-1 now, unless they would take more
// than maxHeldFiles, and returns the bytes held.
func (g *loadGen) prepare(first, n int) (int64, error) {
	var total int64
	for i := range n {
		b, err := Variant(g.inputs[(first+i)%len(g.inputs)], first+i, g.salt)
		if err != nil {
			return 0, err
		}
		total += int64(len(b))
		limit := int64(maxHeldFiles)
		if g.cfg.AcceptOnly {
			limit *= 4 // made during the run, the files would cost the client more than ingest
		}
		if i < len(g.inputs) && total*int64(n)/int64(i+1) > limit {
			g.files = nil
			return 0, nil
		}
		g.files = append(g.files, b)
	}
	g.first = first
	return total, nil
}

// submit sends job number i and records when.
func (g *loadGen) submit(ctx context.Context, i int) outcome {
	in := g.inputs[i%len(g.inputs)]
	o := outcome{index: i}
	var data []byte
	if k := i - g.first; g.files != nil && k >= 0 && k < len(g.files) {
		data, g.files[k] = g.files[k], nil
	} else if data, o.submitErr = Variant(in, i, g.salt); o.submitErr != nil {
		return o
	}
	name := strings.TrimSuffix(in.Name, filepath.Ext(in.Name)) + ".png"
	o.start = time.Now()
	o.id, o.cacheHit, o.submitErr = g.cl.sub.Submit(ctx, name, data)
	o.accepted = time.Now()
	if o.submitErr == nil {
		g.queued.Add(1)
	}
	return o
}

func (g *loadGen) await(ctx context.Context, o *outcome) {
	o.done, o.waitErr = g.cl.wait.Wait(ctx, o.id)
	g.queued.Add(-1)
}

// closedLoop runs jobs first..first+n-1 with Concurrency clients, each submitting its
// next job when the previous one finished.
func (g *loadGen) closedLoop(ctx context.Context, first, n int) []outcome {
	outs := make([]outcome, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(g.cfg.Concurrency, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				o := g.submit(ctx, first+i)
				if o.submitErr == nil {
					g.await(ctx, &o)
				}
				outs[i] = o
			}
		}()
	}
	feed(ctx, next, outs)
	wg.Wait()
	return outs
}

// feed hands the indexes of outs to the submitters on next, one at a time, and closes
// next; once ctx ends, the jobs not handed out yet are recorded as not submitted.
func feed(ctx context.Context, next chan<- int, outs []outcome) {
	defer close(next)
	for i := range outs {
		select {
		case next <- i:
		case <-ctx.Done():
			for j := i; j < len(outs); j++ {
				outs[j] = outcome{index: j, start: time.Now(), submitErr: ctx.Err()}
			}
			return
		}
	}
}

// burst submits jobs first..first+n-1 as fast as ingest takes them (Concurrency
// submissions in flight) and waits for all; queued is how long the submitting took.
func (g *loadGen) burst(ctx context.Context, first, n int) (outs []outcome, queued time.Duration) {
	outs = make([]outcome, n)
	next := make(chan int)
	var submitters, waiters sync.WaitGroup
	start := time.Now()
	for range min(g.cfg.Concurrency, n) {
		submitters.Add(1)
		go func() {
			defer submitters.Done()
			for i := range next {
				outs[i] = g.submit(ctx, first+i)
				if outs[i].submitErr != nil || g.cfg.AcceptOnly {
					continue
				}
				waiters.Add(1)
				go func() {
					defer waiters.Done()
					g.await(ctx, &outs[i])
				}()
			}
		}()
	}
	feed(ctx, next, outs)
	submitters.Wait()
	queued = time.Since(start)
	waiters.Wait()
	return outs, queued
}

// readRecords fetches the final record of every finished job, 8 at a time.
func (g *loadGen) readRecords(ctx context.Context, outs []outcome) {
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i := range outs {
		o := &outs[i]
		if o.submitErr != nil || o.waitErr != nil {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			// The result event is published after the record is final, but a record
			// read may still race a redelivered stage; retry briefly until it is final.
			for attempt := 0; attempt < 50; attempt++ {
				rec, err := g.cl.records.Get(ctx, o.id)
				if err == nil && rec.Status.Final() {
					o.rec = rec
					return
				}
				select {
				case <-time.After(100 * time.Millisecond):
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	wg.Wait()
}

// bearer adds STUDIO_TOKEN to every request to a --server studio.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// writeHeapProfile writes the live heap, after a collection, to file.
func writeHeapProfile(file string) error {
	f, err := os.Create(file)
	if err != nil {
		return fmt.Errorf("memprofile: %w", err)
	}
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return fmt.Errorf("memprofile %s: %w", file, err)
	}
	return f.Close()
}
