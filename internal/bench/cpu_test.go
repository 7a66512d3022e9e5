package bench

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

func TestParseProcStat(t *testing.T) {
	const stat = "cpu  946525 3953 226769 924493 3922 10 2701 1112 500 0\n" +
		"cpu0 473528 1908 113091 464215 1048 0 693 480 0 0\n" +
		"intr 31290495 0 0 0\nctxt 64624905\n"
	busy, err := parseProcStat(strings.NewReader(stat))
	if err != nil {
		t.Fatal(err)
	}
	// user + nice + system + irq + softirq + steal, not idle, iowait or guest.
	if want := time.Duration(946525+3953+226769+10+2701+1112) * 10 * time.Millisecond; busy != want {
		t.Errorf("busy = %v, want %v", busy, want)
	}
	for _, bad := range []string{"", "intr 1 2 3\n", "cpu  1 2 3 4 5 6 7\n", "cpu  1 2 x 4 5 6 7 8\n"} {
		if _, err := parseProcStat(strings.NewReader(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	if m := markCPU(); m.busyOK && m.busy <= 0 {
		t.Errorf("this machine: %+v", m)
	}
}

func TestCPUUse(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	a := cpuMark{wall: t0, self: 3 * time.Second, busy: 100 * time.Second, busyOK: true}
	// 10 s on 2 CPUs: this process used 16 core-s, the machine 18.
	b := cpuMark{wall: t0.Add(10 * time.Second), self: 19 * time.Second, busy: 118 * time.Second, busyOK: true}
	u := cpuUse(a, b, 2, 4)
	want := CPUUse{WallSeconds: 10, SelfCPUSeconds: 16, SelfCores: 1.6, PerJobCPUSeconds: 4, Machine: true, OtherCPUSeconds: 2, OtherShare: 0.1}
	if !near(*u, want) {
		t.Errorf("cpuUse = %+v, want %+v", *u, want)
	}

	// Ticks lag the precise process clock: others never go below 0.
	b.busy = 115 * time.Second
	if u := cpuUse(a, b, 2, 4); u.OtherCPUSeconds != 0 || u.OtherShare != 0 || !u.Machine {
		t.Errorf("machine busy less than self: %+v", *u)
	}

	// No /proc/stat: the machine fields are unknown and left out of the JSON.
	a.busyOK = false
	u = cpuUse(a, b, 2, 0)
	if u.Machine || u.OtherCPUSeconds != 0 || u.PerJobCPUSeconds != 0 || u.SelfCPUSeconds != 16 {
		t.Errorf("without /proc/stat: %+v", *u)
	}
	js, err := json.Marshal(u)
	if err != nil || strings.Contains(string(js), "other_") {
		t.Errorf("JSON %s, %v", js, err)
	}

	// An empty window gives zeros, not NaN (which JSON cannot carry).
	if _, err := json.Marshal(cpuUse(a, a, 0, 0)); err != nil {
		t.Error(err)
	}
}

func near(a, b CPUUse) bool {
	eq := func(x, y float64) bool { return math.Abs(x-y) < 1e-9 }
	return eq(a.WallSeconds, b.WallSeconds) && eq(a.SelfCPUSeconds, b.SelfCPUSeconds) && eq(a.SelfCores, b.SelfCores) &&
		eq(a.PerJobCPUSeconds, b.PerJobCPUSeconds) && a.Machine == b.Machine && eq(a.OtherCPUSeconds, b.OtherCPUSeconds) && eq(a.OtherShare, b.OtherShare)
}

func TestPreliminary(t *testing.T) {
	m := Machine{CPUs: 2, LoadAvgStart: [3]float64{0.4, 0, 0}}
	quiet := &CPUUse{WallSeconds: 10, Machine: true, OtherCPUSeconds: 0.5, OtherShare: 0.025}
	busy := &CPUUse{WallSeconds: 10, Machine: true, OtherCPUSeconds: 3, OtherShare: 0.15}
	if n := preliminary(m, quiet, quiet); n != "" {
		t.Errorf("quiet run: %q", n)
	}
	if n := preliminary(m, quiet, busy); !strings.Contains(n, "PRELIMINARY") || !strings.Contains(n, "raw baseline window") || !strings.Contains(n, "15.0%") || strings.Contains(n, "pipeline") {
		t.Errorf("busy raw window: %q", n)
	}
	if n := preliminary(m, nil, &CPUUse{Machine: false}); n != "" {
		t.Errorf("nothing measured: %q", n)
	}
	tick := &CPUUse{WallSeconds: 0.002, Machine: true, OtherCPUSeconds: 0.01, OtherShare: 2.5}
	if n := preliminary(m, quiet, tick); n != "" {
		t.Errorf("one 10 ms tick in a 2 ms window: %q", n)
	}
	if l := fmtCPU(tick, 2, "run", false); !strings.Contains(l, "too little to judge") {
		t.Errorf("one tick: %q", l)
	}
	m.LoadAvgStart[0] = 1.5
	if n := preliminary(m, busy, nil); strings.Contains(n, "load average") || !strings.Contains(n, "pipeline window") {
		t.Errorf("busy in the pipeline, measured: the load average must not count: %q", n)
	}
	if n := preliminary(m, quiet, quiet); n != "" {
		t.Errorf("high load average at start, quiet measured windows: %q", n)
	}
	if n := preliminary(m, nil, &CPUUse{Machine: false}); !strings.Contains(n, "load average 1.50 at start") {
		t.Errorf("nothing measured, busy at start: %q", n)
	}
}

func TestFmtCPU(t *testing.T) {
	u := &CPUUse{WallSeconds: 10, SelfCPUSeconds: 19.1, SelfCores: 1.91, PerJobCPUSeconds: 3.82, Machine: true, OtherCPUSeconds: 0.4, OtherShare: 0.02}
	if got, want := fmtCPU(u, 2, "job", false), "3.82 core-s per job (this process; 1.91 of 2 cores busy); other processes 0.4 core-s (2.0% of the machine)"; got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if l := fmtCPU(u, 2, "job", true); !strings.HasPrefix(l, "client only") || !strings.Contains(l, "server") {
		t.Errorf("--server: %q", l)
	}
	u.Machine = false
	if l := fmtCPU(u, 2, "run", false); !strings.HasSuffix(l, "other processes not measured (no /proc/stat)") {
		t.Errorf("no /proc/stat: %q", l)
	}
}
