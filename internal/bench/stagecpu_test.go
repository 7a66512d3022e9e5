package bench

import (
	"math"
	"strings"
	"testing"
)

func TestStageCPUTable(t *testing.T) {
	const before = `# HELP studio_stage_cpu_seconds_total CPU time
# TYPE studio_stage_cpu_seconds_total counter
studio_stage_cpu_seconds_total{stage="inference"} 10
studio_stage_cpu_seconds_total{stage="preprocess"} 1
studio_stage_cpu_jobs_total{stage="inference"} 4
studio_stage_cpu_jobs_total{stage="preprocess"} 4
studio_stage_duration_seconds_bucket{stage="preprocess",task="x",le="1"} 3
`
	const after = `studio_stage_cpu_seconds_total{stage="inference"} 12
studio_stage_cpu_seconds_total{stage="preprocess"} 1.5
studio_stage_cpu_seconds_total{stage="store"} 0.25
studio_stage_cpu_jobs_total{stage="inference"} 14
studio_stage_cpu_jobs_total{stage="preprocess"} 14
studio_stage_cpu_jobs_total{stage="store"} 10
`
	a, b := parseStageCPU(strings.NewReader(before)), parseStageCPU(strings.NewReader(after))
	if !a.ok || !b.ok {
		t.Fatal("counters not found")
	}
	t.Run("core-ms per job per stage in pipeline order, with the rest of the process", func(t *testing.T) {
		rows := stageCPUTable(a, b, 10, 4.0) // 10 jobs, 4 s of process CPU
		want := []StageCPU{
			{Stage: "preprocess", CoreMSPerJob: 50, Jobs: 10},
			{Stage: "inference", CoreMSPerJob: 200, Jobs: 10},
			{Stage: "store", CoreMSPerJob: 25, Jobs: 10},
			{Stage: RestStage, CoreMSPerJob: 125},
		}
		if len(rows) != len(want) {
			t.Fatalf("rows %+v, want %+v", rows, want)
		}
		for i := range want {
			if rows[i].Stage != want[i].Stage || math.Abs(rows[i].CoreMSPerJob-want[i].CoreMSPerJob) > 1e-9 || rows[i].Jobs != want[i].Jobs {
				t.Errorf("row %d = %+v, want %+v", i, rows[i], want[i])
			}
		}
	})
	t.Run("against a server there is no rest-of-process row", func(t *testing.T) {
		rows := stageCPUTable(a, b, 10, 0)
		if rows[len(rows)-1].Stage == RestStage {
			t.Errorf("rows %+v end with the rest of the process", rows)
		}
	})
	t.Run("a studio without the counters gives no table", func(t *testing.T) {
		none := parseStageCPU(strings.NewReader("go_goroutines 12\n"))
		if none.ok || stageCPUTable(none, b, 10, 1) != nil {
			t.Error("a table from a scrape without the counters")
		}
	})
}
