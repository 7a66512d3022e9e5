package bench

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// CPUUse is where the CPU went during a measured window: to this process, or to the
// rest of the machine.
type CPUUse struct {
	WallSeconds float64 `json:"wall_s"`
	// SelfCPUSeconds is this process's user and system CPU time (getrusage
	// RUSAGE_SELF): every thread, ONNX Runtime's C threads included.
	SelfCPUSeconds float64 `json:"self_cpu_s"`
	// SelfCores is SelfCPUSeconds / WallSeconds: the cores this process kept busy.
	SelfCores float64 `json:"self_cores"`
	// PerJobCPUSeconds is SelfCPUSeconds over the jobs (or runs) of the window.
	PerJobCPUSeconds float64 `json:"per_job_cpu_s"`
	// Machine reports whether the machine's busy time was read (/proc/stat, Linux).
	// Without it the fields below are unknown and left out; with it, a missing field
	// is 0.
	Machine bool `json:"machine_measured"`
	// OtherCPUSeconds is the machine's busy CPU time less this process's, at least 0:
	// other processes, and interrupt time the kernel charges to no process.
	OtherCPUSeconds float64 `json:"other_cpu_s,omitempty"`
	// OtherShare is OtherCPUSeconds / (WallSeconds * CPUs): the share of the whole
	// machine that others used.
	OtherShare float64 `json:"other_share,omitempty"`
}

// A measured window in which other processes used more than otherShareLimit of the
// machine, and more than statResolution core-seconds, makes the run PRELIMINARY. The
// floor keeps short windows fair: /proc/stat counts in 10 ms ticks, so a single tick
// in a window of milliseconds would read as most of the machine.
const (
	otherShareLimit = 0.05
	statResolution  = 0.05 // core-seconds
)

// userHZ is the unit of the times in /proc/stat: USER_HZ, which Linux fixes at 100
// for user space whatever the kernel's tick rate.
const userHZ = 100

// cpuMark is one reading of the clocks that CPUUse compares.
type cpuMark struct {
	wall time.Time
	self time.Duration // this process's user + system CPU time
	busy time.Duration // the machine's busy CPU time, all CPUs; valid when busyOK
	// busyOK reports whether /proc/stat was read.
	busyOK bool
}

// markCPU reads the clocks now. A machine without /proc/stat gives a mark without
// busy time rather than an error.
func markCPU() cpuMark {
	m := cpuMark{wall: time.Now()}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		m.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if f, err := os.Open("/proc/stat"); err == nil {
		m.busy, err = parseProcStat(f)
		m.busyOK = err == nil
		f.Close()
	}
	return m
}

// parseProcStat returns the machine's busy CPU time from the first "cpu " line of
// /proc/stat: user + nice + system + irq + softirq + steal. Idle and iowait are not
// busy; guest time is already inside user and nice.
func parseProcStat(r io.Reader) (time.Duration, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || f[0] != "cpu" {
			continue
		}
		if len(f) < 9 {
			return 0, fmt.Errorf("bench: /proc/stat: short cpu line %q", sc.Text())
		}
		var busy int64
		for _, i := range []int{1, 2, 3, 6, 7, 8} { // user nice system (idle iowait) irq softirq steal
			v, err := strconv.ParseInt(f[i], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("bench: /proc/stat: cpu line: %w", err)
			}
			busy += v
		}
		return time.Duration(busy) * (time.Second / userHZ), nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("bench: /proc/stat: %w", err)
	}
	return 0, fmt.Errorf("bench: /proc/stat has no cpu line")
}

// cpuUse returns the CPU use between marks a and b, on a machine of cpus CPUs, for
// jobs jobs. Quotients over zero are left at 0.
func cpuUse(a, b cpuMark, cpus, jobs int) *CPUUse {
	wall := b.wall.Sub(a.wall).Seconds()
	self := (b.self - a.self).Seconds()
	u := &CPUUse{WallSeconds: wall, SelfCPUSeconds: self}
	if wall > 0 {
		u.SelfCores = self / wall
	}
	if jobs > 0 {
		u.PerJobCPUSeconds = self / float64(jobs)
	}
	if a.busyOK && b.busyOK {
		u.Machine = true
		u.OtherCPUSeconds = max(0, (b.busy-a.busy).Seconds()-self)
		if wall > 0 && cpus > 0 {
			u.OtherShare = u.OtherCPUSeconds / (wall * float64(cpus))
		}
	}
	return u
}

// othersBusy reports whether other processes used enough of the machine during the
// window to make the run PRELIMINARY.
func (u *CPUUse) othersBusy() bool {
	return u.Machine && u.OtherShare > otherShareLimit && u.OtherCPUSeconds > statResolution
}

// preliminary returns the PRELIMINARY note for a run whose machine was not its own,
// or "" for a clean run: other processes were busy (othersBusy) during the pipeline or
// the raw window (either may be nil: not judged). Only when neither window could be
// measured does the 1-minute load average at the start decide (above half the CPUs):
// it lags by a minute, so right after another run it reads high on an idle machine.
func preliminary(m Machine, pipeline, raw *CPUUse) string {
	var why []string
	measured := (pipeline != nil && pipeline.Machine) || (raw != nil && raw.Machine)
	if l := m.LoadAvgStart[0]; !measured && l > float64(m.CPUs)/2 {
		why = append(why, fmt.Sprintf("1-minute load average %.2f at start, on %d CPUs", l, m.CPUs))
	}
	for _, w := range []struct {
		name string
		use  *CPUUse
	}{{"pipeline", pipeline}, {"raw baseline", raw}} {
		if u := w.use; u != nil && u.othersBusy() {
			why = append(why, fmt.Sprintf("other processes used %.1f%% of the machine during the %s window (%.3g core-s in %.1f s)",
				100*u.OtherShare, w.name, u.OtherCPUSeconds, u.WallSeconds))
		}
	}
	if len(why) == 0 {
		return ""
	}
	return "PRELIMINARY: " + strings.Join(why, "; ")
}

// fmtCPU writes u as a report line: this process's CPU per unit ("job" or "run") and
// the cores it kept busy, then what the rest of the machine used. client says this
// process is only the bench's client, the pipeline running in another.
func fmtCPU(u *CPUUse, cpus int, per string, client bool) string {
	self := fmt.Sprintf("%.3g core-s per %s (this process; %.2f of %d cores busy)", u.PerJobCPUSeconds, per, u.SelfCores, cpus)
	if client {
		self = fmt.Sprintf("client only: %.3g core-s per %s, %.2f of %d cores busy (the pipeline runs in the server's process, not counted here)", u.PerJobCPUSeconds, per, u.SelfCores, cpus)
	}
	if !u.Machine {
		return self + "; other processes not measured (no /proc/stat)"
	}
	others := "other processes"
	if client {
		others = "other processes (the server included, if it runs on this machine)"
	}
	s := fmt.Sprintf("%s; %s %.3g core-s (%.1f%% of the machine)", self, others, u.OtherCPUSeconds, 100*u.OtherShare)
	if u.OtherShare > otherShareLimit && !u.othersBusy() {
		s += ", too little to judge: /proc/stat counts in 10 ms ticks"
	}
	return s
}
