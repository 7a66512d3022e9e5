package bench

import (
	"bufio"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/creativeai-studio/studio/processors"
	"github.com/creativeai-studio/studio/schemas"
)

// Dist summarises a set of durations in milliseconds (nearest-rank percentiles).
type Dist struct {
	N    int     `json:"n"`
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P95  float64 `json:"p95"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
}

func distOf(ms []float64) Dist {
	if len(ms) == 0 {
		return Dist{}
	}
	s := append([]float64(nil), ms...)
	sort.Float64s(s)
	var sum float64
	for _, v := range s {
		sum += v
	}
	rank := func(p float64) float64 { return s[max(0, int(math.Ceil(p*float64(len(s))))-1)] }
	return Dist{N: len(s), Mean: sum / float64(len(s)), P50: rank(0.50), P95: rank(0.95), P99: rank(0.99), Max: s[len(s)-1]}
}

// Machine describes where the bench ran.
type Machine struct {
	CPUs         int        `json:"cpus"`
	CPUModel     string     `json:"cpu_model"`
	GoVersion    string     `json:"go_version"`
	OS           string     `json:"os"`
	LoadAvgStart [3]float64 `json:"load_avg_start"`
	LoadAvgEnd   [3]float64 `json:"load_avg_end"`
}

func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	m.LoadAvgStart = loadAvg()
	return m
}

func loadAvg() [3]float64 {
	var l [3]float64
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		_, _ = fmt.Sscanf(string(b), "%f %f %f", &l[0], &l[1], &l[2])
	}
	return l
}

// StageStats is one stage's processing time and the wait before it.
type StageStats struct {
	Stage schemas.Stage `json:"stage"`
	// Duration is the stage's duration_ms from the job records.
	Duration Dist `json:"duration_ms"`
	// QueueWait is from the previous stage's finish (ingest: submission) to this
	// stage's start: the queue, the previous stage's publish and ack, and the fetch.
	QueueWait Dist `json:"queue_wait_ms"`
	// FirstP50 and LastP50 are the median stage time of the first and the last tenth
	// of the jobs (by submission): a stage that slows as the run goes on shows here.
	FirstP50 float64 `json:"first_tenth_p50_ms"`
	LastP50  float64 `json:"last_tenth_p50_ms"`
}

// Pipeline is what the load run measured.
type Pipeline struct {
	Submitted    int            `json:"submitted"`
	Succeeded    int            `json:"succeeded"`
	Failed       int            `json:"failed"`
	SubmitErrors int            `json:"submit_errors"`
	WaitErrors   int            `json:"wait_errors"`
	ErrorCodes   map[string]int `json:"error_codes,omitempty"`
	FirstErrors  []string       `json:"first_errors,omitempty"`
	CacheHits    int            `json:"cache_hits"`
	// WallSeconds runs from the first measured submission to the last completion.
	WallSeconds   float64 `json:"wall_s"`
	JobsPerSecond float64 `json:"jobs_per_s"`
	// EndToEnd is what the client saw: submit call to completion.
	EndToEnd Dist `json:"end_to_end_ms"`
	// Submit is the submit call alone (upload, validation, input stored, job queued).
	Submit Dist `json:"submit_ms"`
	// ServerEndToEnd is finished_at - submitted_at of the job records.
	ServerEndToEnd Dist           `json:"server_end_to_end_ms"`
	Stages         []StageStats   `json:"stages"`
	QueueWaitTotal Dist           `json:"queue_wait_total_ms"`
	BatchSizes     map[string]int `json:"inference_batch_sizes"`
	// QueuedSeconds is, in burst mode, how long queueing every job took.
	QueuedSeconds float64 `json:"queued_s,omitempty"`
	Completion    string  `json:"completion_observed_by"`
	// CPU is the CPU use of the measured window. With --server this process is only
	// the client.
	CPU *CPUUse `json:"cpu,omitempty"`
	// ServerCPU is, with --server-pid, the CPU of the studio process behind --server.
	ServerCPU *ProcessCPU `json:"server_cpu,omitempty"`
	// StageCPU is core-ms per job per stage, from the studio's stage CPU counters; with
	// an in-process pipeline its last row is the rest of the process.
	StageCPU []StageCPU `json:"stage_cpu,omitempty"`
	// MessagesPerJob is, by stream (TELEMETRY, RESULTS, AUDIT), the messages stored
	// during the measured window per job, read after telemetry batches had time to go out.
	MessagesPerJob map[string]float64 `json:"messages_per_job,omitempty"`
	// Results are the sizes of the succeeded jobs' result files, by result name.
	Results []ResultSize `json:"results,omitempty"`
}

// ResultSize is the size in bytes of one named result over the succeeded jobs.
type ResultSize struct {
	Name        string `json:"name"`
	ContentType string `json:"content_type"`
	Bytes       Dist   `json:"bytes"`
}

// Memory is the process's memory during the load run (in-process pipeline only).
type Memory struct {
	Skipped string `json:"skipped,omitempty"`
	// PeakRSS is the largest VmRSS sampled during the load run.
	PeakRSS int64 `json:"peak_rss_bytes,omitempty"`
	// RSSBefore is VmRSS just before the first measured job.
	RSSBefore int64 `json:"rss_before_bytes,omitempty"`
	// VmHWM is the kernel's high-water mark since the process started (model loading
	// included), read after the load run, before the raw baseline.
	VmHWM int64 `json:"vm_hwm_bytes,omitempty"`
	// GoHeapPeak is the largest runtime.MemStats.HeapAlloc sampled.
	GoHeapPeak  int64       `json:"go_heap_peak_bytes,omitempty"`
	SampleEvery string      `json:"sample_every,omitempty"`
	Samples     int         `json:"samples,omitempty"`
	Timeline    []MemSample `json:"timeline,omitempty"`
}

// Settings are the knobs that shape the figures.
type Settings struct {
	InProcess        bool     `json:"in_process"`
	Server           string   `json:"server,omitempty"`
	Entry            string   `json:"entry"`
	Device           string   `json:"device"`
	Threads          int      `json:"threads"`
	Sessions         int      `json:"sessions"`
	StageConcurrency int      `json:"stage_concurrency"`
	ModelsServed     string   `json:"models_served,omitempty"`
	Images           []string `json:"images"`
	MaxSide          int      `json:"max_side,omitempty"`
	// AcceptOnly says the run measured ingest's accepting alone (--accept-only).
	AcceptOnly bool `json:"accept_only,omitempty"`
	// MeanInputBytes is the mean size of the job files (when made before measuring).
	MeanInputBytes int64 `json:"mean_input_bytes,omitempty"`
}

// Report is the outcome of one bench run.
type Report struct {
	Date        time.Time  `json:"date"`
	Command     []string   `json:"command"`
	Machine     Machine    `json:"machine"`
	Task        string     `json:"task"`
	Model       string     `json:"model"`
	Mode        string     `json:"mode"`
	Jobs        int        `json:"jobs"`
	Warmup      int        `json:"warmup"`
	Concurrency int        `json:"concurrency"`
	Settings    Settings   `json:"settings"`
	Pipeline    Pipeline   `json:"pipeline"`
	Memory      Memory     `json:"memory"`
	Raw         *RawResult `json:"raw,omitempty"`
	// Ratio is pipeline jobs/s over raw jobs/s.
	Ratio float64 `json:"pipeline_over_raw,omitempty"`
	// Reference holds figures quoted from elsewhere (not measured in this run).
	Reference []string `json:"reference,omitempty"`
	Notes     []string `json:"notes,omitempty"`
}

// outcome is one job as the client saw it.
type outcome struct {
	index     int
	id        string
	start     time.Time
	accepted  time.Time
	done      time.Time
	submitErr error
	waitErr   error
	// cacheHit is what the submission's answer said.
	cacheHit bool
	rec      *schemas.JobRecord
}

// summarise fills the pipeline figures from the measured outcomes.
func summarise(outs []outcome) Pipeline {
	p := Pipeline{Submitted: len(outs), ErrorCodes: map[string]int{}, BatchSizes: map[string]int{}}
	var first, last time.Time
	var e2e, submit, server, waitTotal []float64
	dur := map[schemas.Stage][]float64{}
	wait := map[schemas.Stage][]float64{}
	sizes := map[string][]float64{}
	ctypes := map[string]string{}
	noteErr := func(msg string) {
		if len(p.FirstErrors) < 5 {
			p.FirstErrors = append(p.FirstErrors, msg)
		}
	}
	for _, o := range outs {
		if first.IsZero() || o.start.Before(first) {
			first = o.start
		}
		switch {
		case o.submitErr != nil:
			p.SubmitErrors++
			noteErr(o.submitErr.Error())
			continue
		case o.waitErr != nil:
			p.WaitErrors++
			noteErr(o.waitErr.Error())
			continue
		}
		submit = append(submit, ms(o.accepted.Sub(o.start)))
		if o.done.After(last) {
			last = o.done
		}
		r := o.rec
		if r == nil {
			p.WaitErrors++
			noteErr("job " + o.id + ": finished but its record could not be read")
			continue
		}
		if r.CacheHit {
			p.CacheHits++
		}
		if r.Status != schemas.StatusSucceeded {
			p.Failed++
			code := string(r.Status)
			if r.Error != nil {
				code = r.Error.Code
				noteErr(fmt.Sprintf("job %s: %s", r.ID, r.Error.Error()))
			}
			p.ErrorCodes[code]++
			continue
		}
		p.Succeeded++
		for name, ref := range r.Results {
			sizes[name] = append(sizes[name], float64(ref.Size))
			ctypes[name] = ref.ContentType
		}
		e2e = append(e2e, ms(o.done.Sub(o.start)))
		server = append(server, ms(r.FinishedAt.Sub(r.SubmittedAt)))
		prev := r.SubmittedAt
		var total float64
		complete := true
		for _, st := range processors.StageNames() {
			t := r.Stages[st]
			if t == nil {
				complete = false
				break
			}
			dur[st] = append(dur[st], t.DurationMS)
			w := ms(t.StartedAt.Sub(prev))
			wait[st] = append(wait[st], w)
			total += w
			prev = t.FinishedAt
		}
		if complete {
			waitTotal = append(waitTotal, total)
		}
		if t := r.Stages[schemas.StageInference]; t != nil {
			p.BatchSizes[fmt.Sprint(t.BatchSize)]++
		}
	}
	if !last.IsZero() {
		p.WallSeconds = last.Sub(first).Seconds()
		if p.WallSeconds > 0 {
			p.JobsPerSecond = float64(p.Succeeded) / p.WallSeconds
		}
	}
	p.EndToEnd, p.Submit, p.ServerEndToEnd, p.QueueWaitTotal = distOf(e2e), distOf(submit), distOf(server), distOf(waitTotal)
	for _, name := range slices.Sorted(maps.Keys(sizes)) {
		p.Results = append(p.Results, ResultSize{Name: name, ContentType: ctypes[name], Bytes: distOf(sizes[name])})
	}
	for _, st := range processors.StageNames() {
		d := dur[st]
		tenth := max(1, len(d)/10)
		ss := StageStats{Stage: st, Duration: distOf(d), QueueWait: distOf(wait[st])}
		if len(d) > 0 {
			ss.FirstP50, ss.LastP50 = distOf(d[:tenth]).P50, distOf(d[len(d)-tenth:]).P50
		}
		p.Stages = append(p.Stages, ss)
	}
	if len(p.ErrorCodes) == 0 {
		p.ErrorCodes = nil
	}
	return p
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Print writes the report as aligned text.
func (r *Report) Print(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	line := func(format string, args ...any) { fmt.Fprintf(tw, format+"\n", args...) }
	where := "in-process (studio up in this process)"
	if !r.Settings.InProcess {
		where = "against " + r.Settings.Server
	}
	line("studio bench\t%s, model %s, %s, entry %s, %s", r.Task, r.Model, r.Mode, r.Settings.Entry, where)
	line("date\t%s", r.Date.Format(time.RFC3339))
	line("machine\t%d CPUs, %s, %s, %s", r.Machine.CPUs, r.Machine.CPUModel, r.Machine.OS, r.Machine.GoVersion)
	line("load average\t%.2f %.2f %.2f at start, %.2f %.2f %.2f at end", r.Machine.LoadAvgStart[0], r.Machine.LoadAvgStart[1], r.Machine.LoadAvgStart[2], r.Machine.LoadAvgEnd[0], r.Machine.LoadAvgEnd[1], r.Machine.LoadAvgEnd[2])
	s := r.Settings
	line("settings\tdevice %s, --threads %d, --sessions %d, --stage-concurrency %d, served %s", s.Device, s.Threads, s.Sessions, s.StageConcurrency, s.ModelsServed)
	line("inputs\t%s", strings.Join(s.Images, ", "))
	if s.MeanInputBytes > 0 {
		line("job files\t%.1f KB on average", float64(s.MeanInputBytes)/1000)
	}
	line("")
	p := r.Pipeline
	if s.AcceptOnly {
		r.printAccepts(line)
		return tw.Flush()
	}
	line("PIPELINE\t%d jobs (+%d warm-up), %d in flight", r.Jobs, r.Warmup, r.Concurrency)
	line("  succeeded / failed\t%d / %d", p.Succeeded, p.Failed)
	line("  errors\tsubmit %d, wait %d, failed by code: %s", p.SubmitErrors, p.WaitErrors, fmtCounts(p.ErrorCodes))
	for _, e := range p.FirstErrors {
		line("  \t%s", e)
	}
	line("  cache hits\t%d (must be 0: inputs differ per job)", p.CacheHits)
	if p.QueuedSeconds > 0 {
		line("  queued all in\t%.2f s", p.QueuedSeconds)
	}
	line("  wall\t%.2f s", p.WallSeconds)
	line("  throughput\t%.3f jobs/s", p.JobsPerSecond)
	if p.CPU != nil {
		line("  cpu\t%s", fmtCPU(p.CPU, r.Machine.CPUs, "job", !r.Settings.InProcess))
	}
	line("  end-to-end (client)\tp50 %s  p95 %s  p99 %s  max %s", fmtMS(p.EndToEnd.P50), fmtMS(p.EndToEnd.P95), fmtMS(p.EndToEnd.P99), fmtMS(p.EndToEnd.Max))
	line("  submit call\tp50 %s  p95 %s", fmtMS(p.Submit.P50), fmtMS(p.Submit.P95))
	line("  end-to-end (records)\tp50 %s  p95 %s  p99 %s", fmtMS(p.ServerEndToEnd.P50), fmtMS(p.ServerEndToEnd.P95), fmtMS(p.ServerEndToEnd.P99))
	line("  completion seen by\t%s", p.Completion)
	line("")
	line("STAGE\ttime p50\ttime p95\tqueue wait p50\tqueue wait p95\tp50 first -> last tenth")
	for _, st := range p.Stages {
		line("  %s\t%s\t%s\t%s\t%s\t%s -> %s", st.Stage, fmtMS(st.Duration.P50), fmtMS(st.Duration.P95), fmtMS(st.QueueWait.P50), fmtMS(st.QueueWait.P95), fmtMS(st.FirstP50), fmtMS(st.LastP50))
	}
	line("  all queues\t\t\t%s\t%s", fmtMS(p.QueueWaitTotal.P50), fmtMS(p.QueueWaitTotal.P95))
	line("  inference batch sizes\t%s", fmtCounts(p.BatchSizes))
	line("")
	if len(p.MessagesPerJob) > 0 {
		fmtMessagesPerJob(p.MessagesPerJob, line)
	}
	if len(p.StageCPU) > 0 {
		fmtStageCPU(p.StageCPU, line)
		line("")
	}
	if len(p.Results) > 0 {
		line("RESULT FILES	p50 size	mean size	content type")
		for _, rs := range p.Results {
			line("  %s	%s	%s	%s", rs.Name, fmtBytes(int64(rs.Bytes.P50)), fmtBytes(int64(rs.Bytes.Mean)), rs.ContentType)
		}
		line("")
	}
	m := r.Memory
	if m.Skipped != "" {
		line("MEMORY\t%s", m.Skipped)
	} else {
		line("MEMORY\tpeak RSS %s (sampled every %s, %d samples; %s before the first job)", fmtBytes(m.PeakRSS), m.SampleEvery, m.Samples, fmtBytes(m.RSSBefore))
		line("  VmHWM\t%s (process high-water mark, model loading included)", fmtBytes(m.VmHWM))
		line("  Go heap peak\t%s (HeapAlloc)", fmtBytes(m.GoHeapPeak))
	}
	line("")
	if r.Raw != nil {
		x := r.Raw
		line("RAW ONNX RUNTIME\t%s on %s, %d session(s), --threads %d, same images", x.Model, x.Device, x.Sessions, x.Threads)
		line("  tiling\t%s", x.Tiling)
		line("  runs\t%d timed (+%d warm-up per session)", x.Runs, x.WarmupRuns)
		line("  throughput\t%.3f jobs/s", x.JobsPerSecond)
		line("  per run\tp50 %s  p95 %s", fmtMS(x.Latency.P50), fmtMS(x.Latency.P95))
		if x.CPU != nil {
			line("  cpu\t%s", fmtCPU(x.CPU, r.Machine.CPUs, "run", false))
		}
		line("  pipeline / raw\t%.3g (throughput)", r.Ratio)
		line("")
	}
	for _, ref := range r.Reference {
		line("reference\t%s", ref)
	}
	for _, n := range r.Notes {
		line("note\t%s", n)
	}
	return tw.Flush()
}

// printAccepts writes the figures of an accepting-only run (--accept-only).
func (r *Report) printAccepts(line func(string, ...any)) {
	p := r.Pipeline
	line("INGEST\t%d jobs, %d submissions in flight, ingest without stages", r.Jobs, r.Concurrency)
	line("  accepted / refused\t%d / %d", p.Succeeded, p.SubmitErrors)
	for _, e := range p.FirstErrors {
		line("  \t%s", e)
	}
	line("  cache hits\t%d (must be 0: inputs differ per job)", p.CacheHits)
	line("  wall\t%.2f s (first submission to last answer)", p.WallSeconds)
	line("  accept rate\t%.0f jobs/s", p.JobsPerSecond)
	line("  submit call\tp50 %s  p95 %s  p99 %s  max %s", fmtMS(p.Submit.P50), fmtMS(p.Submit.P95), fmtMS(p.Submit.P99), fmtMS(p.Submit.Max))
	if p.CPU != nil {
		what := "this process: ingest, the NATS server and the client"
		if !r.Settings.InProcess {
			what = "this process: the client"
		}
		line("  cpu (%s)\t%s", what, fmtCPU(p.CPU, r.Machine.CPUs, "job", !r.Settings.InProcess))
	}
	if c := p.ServerCPU; c != nil {
		line("  cpu (process %d behind --server)\t%.2f core-s, %.2f cores, %.3f core-ms per accepted job", c.PID, c.CPUSecs, c.Cores, c.CoreMSPerJob)
	}
	for _, ref := range r.Reference {
		line("reference\t%s", ref)
	}
	for _, n := range r.Notes {
		line("note\t%s", n)
	}
}

func fmtMS(v float64) string {
	switch {
	case v == 0:
		return "-"
	case v < 1:
		return fmt.Sprintf("%.0f µs", v*1000)
	case v < 10:
		return fmt.Sprintf("%.2f ms", v)
	case v < 10000:
		return fmt.Sprintf("%.0f ms", v)
	}
	return fmt.Sprintf("%.1f s", v/1000)
}

// fmtKB writes a file size in KB (1000 bytes), as result files are small.
func fmtKB(b float64) string { return fmt.Sprintf("%.1f KB", b/1000) }

func fmtBytes(b int64) string {
	return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20))
}

// fmtCounts writes {"1": 8, "2": 3} as "1: 8, 2: 3", numeric keys in order.
func fmtCounts(m map[string]int) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, errA := strconv.Atoi(keys[i])
		b, errB := strconv.Atoi(keys[j])
		if errA != nil || errB != nil {
			return keys[i] < keys[j]
		}
		return a < b
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}
