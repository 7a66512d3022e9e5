package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/creativeai-studio/studio/processors"
)

// StageCPU is the CPU one stage's handlers used per job during the measured window,
// read from the studio's own counters (studio_stage_cpu_seconds_total, which
// processors.MeasureCPU fills with each handler thread's getrusage RUSAGE_THREAD time).
type StageCPU struct {
	Stage string `json:"stage"`
	// CoreMSPerJob is the stage's CPU milliseconds over the measured jobs.
	CoreMSPerJob float64 `json:"core_ms_per_job"`
	// Jobs is how many job messages the stage handled in the window (retries count).
	Jobs float64 `json:"jobs"`
}

// RestStage names the row for the process's CPU outside the stage handlers: ONNX
// Runtime's pool threads, ingest, the NATS server and client, the garbage collector.
const RestStage = "rest of the process"

// cpuCounters is one reading of the stage CPU counters: seconds and jobs by stage.
type cpuCounters struct {
	seconds, jobs map[string]float64
	ok            bool
}

// readStageCPU scrapes api's /metrics for the stage CPU counters. A studio without
// them (older, or metrics off) gives a reading that is not ok, never an error: the
// table is then left out.
func readStageCPU(ctx context.Context, hc *http.Client, api string) cpuCounters {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, api+"/metrics", nil)
	if err != nil {
		return cpuCounters{}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return cpuCounters{}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return cpuCounters{}
	}
	return parseStageCPU(resp.Body)
}

// parseStageCPU reads the two counters out of the Prometheus text format.
func parseStageCPU(r io.Reader) cpuCounters {
	c := cpuCounters{seconds: map[string]float64{}, jobs: map[string]float64{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		var into map[string]float64
		switch {
		case strings.HasPrefix(line, "studio_stage_cpu_seconds_total{"):
			into = c.seconds
		case strings.HasPrefix(line, "studio_stage_cpu_jobs_total{"):
			into = c.jobs
		default:
			continue
		}
		_, rest, _ := strings.Cut(line, `stage="`)
		stage, rest, ok := strings.Cut(rest, `"`)
		_, val, ok2 := strings.Cut(rest, "} ")
		v, err := strconv.ParseFloat(strings.Fields(val + " ")[0], 64)
		if !ok || !ok2 || err != nil {
			continue
		}
		into[stage] = v
		c.ok = true
	}
	return c
}

// stageCPUTable turns two readings into core-ms per job per stage, in pipeline order,
// over jobs measured jobs. self, when positive, is the process's CPU seconds in the
// same window (in-process runs): the rest of it gets its own row.
func stageCPUTable(a, b cpuCounters, jobs int, self float64) []StageCPU {
	if !a.ok || !b.ok || jobs <= 0 {
		return nil
	}
	var out []StageCPU
	var sum float64
	for _, st := range processors.StageNames() {
		s := string(st)
		d := b.seconds[s] - a.seconds[s]
		if _, seen := b.seconds[s]; !seen {
			continue
		}
		sum += d
		out = append(out, StageCPU{Stage: s, CoreMSPerJob: 1000 * d / float64(jobs), Jobs: b.jobs[s] - a.jobs[s]})
	}
	if self > 0 {
		out = append(out, StageCPU{Stage: RestStage, CoreMSPerJob: 1000 * max(0, self-sum) / float64(jobs)})
	}
	return slices.Clip(out)
}

// fmtStageCPU writes the table's rows, with each stage's share of the total.
func fmtStageCPU(rows []StageCPU, line func(string, ...any)) {
	var total float64
	for _, r := range rows {
		total += r.CoreMSPerJob
	}
	line("CPU PER JOB\tcore-ms\tshare\tjob messages")
	for _, r := range rows {
		jobs := fmt.Sprintf("%.0f", r.Jobs)
		if r.Stage == RestStage {
			jobs = ""
		}
		line("  %s\t%.1f\t%.0f%%\t%s", r.Stage, r.CoreMSPerJob, 100*r.CoreMSPerJob/max(total, 1e-9), jobs)
	}
	line("  total\t%.1f\t\t", total)
}
