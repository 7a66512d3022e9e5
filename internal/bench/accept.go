package bench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// This file is the bench's accepting-only mode (--accept-only with --burst): ingest
// runs without stages, and a job counts once its submission is answered, so the figure
// is ingest's accept rate and the CPU it spends per accepted job.

// answered is the waiter of --accept-only: a job is done when its submission is
// answered, so nothing waits for results.
type answered struct{}

func (answered) Wait(context.Context, string) (time.Time, error) { return time.Now(), nil }

func (answered) How() string {
	return "the submission's answer (--accept-only: HTTP 202 or the NATS entry's reply; no stage runs)"
}

func (answered) Close() {}

// summariseAccepts fills the figures of an accepting-only burst: accepted jobs (those
// answered with a job id) over the time from the first submission to the last answer.
// Cache hits are counted from the answers.
func summariseAccepts(outs []outcome) Pipeline {
	p := Pipeline{Submitted: len(outs)}
	var first, last time.Time
	var submit []float64
	for _, o := range outs {
		if first.IsZero() || o.start.Before(first) {
			first = o.start
		}
		if o.submitErr != nil {
			p.SubmitErrors++
			if len(p.FirstErrors) < 5 {
				p.FirstErrors = append(p.FirstErrors, o.submitErr.Error())
			}
			continue
		}
		p.Succeeded++
		if o.cacheHit {
			p.CacheHits++
		}
		submit = append(submit, ms(o.accepted.Sub(o.start)))
		if o.accepted.After(last) {
			last = o.accepted
		}
	}
	if !last.IsZero() {
		p.WallSeconds = last.Sub(first).Seconds()
		if p.WallSeconds > 0 {
			p.JobsPerSecond = float64(p.Succeeded) / p.WallSeconds
		}
	}
	p.Submit = distOf(submit)
	p.EndToEnd = p.Submit
	return p
}

// ProcessCPU is the CPU another process on this machine (the studio behind --server,
// named by --server-pid) used during the measured window.
type ProcessCPU struct {
	PID     int     `json:"pid"`
	CPUSecs float64 `json:"cpu_s"`
	// Cores is CPUSecs over the window's wall time.
	Cores float64 `json:"cores"`
	// CoreMSPerJob is CPUSecs in milliseconds over the jobs of the window.
	CoreMSPerJob float64 `json:"core_ms_per_job"`
}

// readProcCPU returns the user + system CPU time of process pid from /proc/PID/stat
// (0 and no error for pid 0).
func readProcCPU(pid int) (time.Duration, error) {
	if pid == 0 {
		return 0, nil
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("read its CPU time: %w (is it running on this machine?)", err)
	}
	return parsePIDStat(string(b))
}

// parsePIDStat reads utime and stime (fields 14 and 15, in USER_HZ ticks) from a
// /proc/PID/stat line. The command name, field 2, may hold spaces and parentheses, so
// the fields are counted from its closing parenthesis.
func parsePIDStat(line string) (time.Duration, error) {
	i := strings.LastIndexByte(line, ')')
	if i < 0 {
		return 0, fmt.Errorf("bench: /proc/PID/stat: no command name in %q", line)
	}
	f := strings.Fields(line[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, fmt.Errorf("bench: /proc/PID/stat: %d fields after the name, want at least 13", len(f))
	}
	var ticks int64
	for _, s := range f[11:13] { // fields 14 (utime) and 15 (stime)
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("bench: /proc/PID/stat: %w", err)
		}
		ticks += v
	}
	return time.Duration(ticks) * (time.Second / userHZ), nil
}

func serverCPU(pid int, start, end, wall time.Duration, jobs int) *ProcessCPU {
	u := &ProcessCPU{PID: pid, CPUSecs: (end - start).Seconds()}
	if wall > 0 {
		u.Cores = u.CPUSecs / wall.Seconds()
	}
	if jobs > 0 {
		u.CoreMSPerJob = u.CPUSecs * 1000 / float64(jobs)
	}
	return u
}
