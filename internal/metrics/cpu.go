package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// stageCPU is the CPU time each stage's handler used (processors.MeasureCPU) and the
// jobs it was spent on.
type stageCPU struct {
	seconds, jobs *prometheus.CounterVec
}

func newStageCPU() stageCPU {
	return stageCPU{
		seconds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "studio_stage_cpu_seconds_total",
			Help: "CPU time (user + system) of the stage handlers' threads, by stage: decoding, resampling, encoding, record updates and the calling thread's part of a model run; not ONNX Runtime's pool threads, the NATS client or the garbage collector.",
		}, []string{"stage"}),
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "studio_stage_cpu_jobs_total",
			Help: "Job messages whose handling is counted in studio_stage_cpu_seconds_total, by stage (divide for CPU per job).",
		}, []string{"stage"}),
	}
}

func (c stageCPU) collectors() []prometheus.Collector {
	return []prometheus.Collector{c.seconds, c.jobs}
}

// StageCPU records that a stage's handler used cpu on jobs job messages; its signature
// is processors.CPURecorder's. Safe for concurrent use; never blocks.
func (m *Metrics) StageCPU(stage string, cpu time.Duration, jobs int) {
	if m == nil {
		return
	}
	m.stageCPU.seconds.WithLabelValues(stage).Add(cpu.Seconds())
	m.stageCPU.jobs.WithLabelValues(stage).Add(float64(jobs))
}
