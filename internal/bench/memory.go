package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ProcStatus holds the memory lines of /proc/self/status, in bytes.
type ProcStatus struct {
	VmRSS, VmHWM int64
}

// ReadProcStatus reads VmRSS and VmHWM of this process (Linux only).
func ReadProcStatus() (ProcStatus, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return ProcStatus{}, err
	}
	return parseProcStatus(b)
}

func parseProcStatus(b []byte) (ProcStatus, error) {
	var st ProcStatus
	found := 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		var dst *int64
		switch name {
		case "VmRSS":
			dst = &st.VmRSS
		case "VmHWM":
			dst = &st.VmHWM
		default:
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return st, fmt.Errorf("bench: /proc/self/status: unexpected %s line %q", name, sc.Text())
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return st, fmt.Errorf("bench: /proc/self/status: %s: %w", name, err)
		}
		*dst = kb << 10
		found++
	}
	if found != 2 {
		return st, fmt.Errorf("bench: /proc/self/status has no VmRSS and VmHWM lines")
	}
	return st, nil
}

// MemSample is one reading of the sampler.
type MemSample struct {
	AtMS      int64 `json:"at_ms"`
	RSS       int64 `json:"rss_bytes"`
	HeapAlloc int64 `json:"go_heap_alloc_bytes"`
	// Queued is the number of jobs submitted and not yet finished at that moment.
	Queued int64 `json:"queued_jobs"`
}

// sampler reads VmRSS and the Go heap every interval until stopped. Safe for
// concurrent use.
type sampler struct {
	every  time.Duration
	queued func() int64
	start  time.Time

	mu       sync.Mutex
	samples  []MemSample
	peakRSS  int64
	peakHeap int64
	stop     chan struct{}
	done     chan struct{}
}

func startSampler(every time.Duration, queued func() int64) *sampler {
	s := &sampler{every: every, queued: queued, start: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	s.sample()
	go s.run()
	return s
}

func (s *sampler) run() {
	defer close(s.done)
	t := time.NewTicker(s.every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			s.sample()
			return
		case <-t.C:
			s.sample()
		}
	}
}

func (s *sampler) sample() {
	st, err := ReadProcStatus()
	if err != nil {
		return
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms) // stops the world for microseconds; fine at 10/s
	m := MemSample{AtMS: time.Since(s.start).Milliseconds(), RSS: st.VmRSS, HeapAlloc: int64(ms.HeapAlloc)}
	if s.queued != nil {
		m.Queued = s.queued()
	}
	s.mu.Lock()
	s.samples = append(s.samples, m)
	s.peakRSS = max(s.peakRSS, m.RSS)
	s.peakHeap = max(s.peakHeap, m.HeapAlloc)
	s.mu.Unlock()
}

// Stop takes a last sample and returns everything sampled.
func (s *sampler) Stop() (samples []MemSample, peakRSS, peakHeap int64) {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.samples, s.peakRSS, s.peakHeap
}
