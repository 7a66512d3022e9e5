package sink_test

import (
	"context"
	"encoding/json"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creativeai-studio/studio/internal/telemetry"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/sink"
	"github.com/creativeai-studio/studio/streams"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

// BenchmarkSinkThroughput measures end to end: fetch from JetStream, decode, look up
// stored ids, insert, ack, into the ClickHouse server and into the embedded engine.
// Messages are published before the timer starts; the schema is migrated before too.
// Besides rows/s it reports the CPU the test process (sink and the in-process NATS
// server) spent per row, and, with STUDIO_BENCH_CLICKHOUSE_PID naming the server's
// process, the server's CPU per row: on a shared machine those vary less than rows/s.
// Run with a fixed count, e.g.
//
//	go test ./sink -run '^$' -bench SinkThroughput -benchtime 100000x
//
// STUDIO_BENCH_CPUPROFILE=prefix writes a CPU profile of each case's timed window alone
// to prefix.<case>.prof.
func BenchmarkSinkThroughput(b *testing.B) {
	for _, bc := range []struct {
		name     string
		embedded bool
		batch    int
		jobs     bool
		// perMsg > 0 packs that many stage runs into each message, as the stages'
		// telemetry batcher does (studio.telemetry.batch).
		perMsg int
	}{
		{"server/stage_runs/batch=10000", false, 10000, false, 0},
		{"server/stage_runs/batch=1000", false, 1000, false, 0},
		{"server/stage_runs_batched=256/batch=10000", false, 10000, false, 256},
		{"server/stage_runs_batched=256/batch=50000", false, 50000, false, 256},
		{"server/jobs/batch=10000", false, 10000, true, 0},
		{"embedded/stage_runs/batch=10000", true, 10000, false, 0},
		{"embedded/stage_runs_batched=256/batch=10000", true, 10000, false, 256},
		{"embedded/jobs/batch=10000", true, 10000, true, 0},
	} {
		b.Run(bc.name, func(b *testing.B) {
			srv := streamstest.Start(b)
			var cfg sink.Config
			if bc.embedded {
				cfg = embeddedConfig(b)
			} else {
				cfg = testConfig(b, clickhouseAddr(b))
			}
			cfg.BatchRows, cfg.FlushInterval, cfg.AckWait = bc.batch, 200*time.Millisecond, time.Minute
			cfg.QueryTimeout = time.Minute
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if _, err := sink.Migrate(ctx, cfg); err != nil {
				b.Fatal(err)
			}
			var outs []streams.Output
			for len(outs) < b.N {
				d := newDataset(time.Now().UTC(), max(b.N/4, 10), uint64(len(outs)+1))
				for _, o := range d.outputs(b) {
					isRun := strings.HasPrefix(o.Subject, "studio.telemetry.") && !strings.HasSuffix(o.Subject, ".http")
					isJob := strings.HasPrefix(o.Subject, "studio.results.")
					if (bc.jobs && isJob) || (!bc.jobs && isRun) {
						o.MsgID += "-" + d.now.String() // distinct across datasets
						outs = append(outs, o)
					}
				}
			}
			outs = outs[:b.N]
			for i := range outs {
				// Distinct ids, so every message is a new row.
				outs[i].Data = uniqueID(outs[i].Data, i)
			}
			if bc.perMsg > 0 {
				outs = packRuns(b, outs, bc.perMsg)
			}
			publish(b, srv, outs...)
			chPID := os.Getenv("STUDIO_BENCH_CLICKHOUSE_PID")
			selfCPU, serverCPU := processCPU(""), processCPU(chPID)
			stopProfile := profileWindow(b)
			b.ResetTimer()
			s := startSink(b, srv, cfg)
			if bc.perMsg > 0 {
				waitRows(b, s, "stage_runs", uint64(b.N), 10*time.Minute)
			} else {
				waitWritten(b, s, uint64(b.N), 10*time.Minute)
			}
			b.StopTimer()
			stopProfile()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric((processCPU("")-selfCPU).Seconds()*1e6/float64(b.N), "proc-cpu-µs/row")
			if chPID != "" && !bc.embedded {
				b.ReportMetric((processCPU(chPID)-serverCPU).Seconds()*1e6/float64(b.N), "ch-cpu-µs/row")
			}
			if s.Stats().Duplicates != 0 {
				b.Fatalf("%d rows were duplicates; the benchmark data should be distinct", s.Stats().Duplicates)
			}
		})
	}
}

// profileWindow starts a CPU profile of the timed window when STUDIO_BENCH_CPUPROFILE
// names a file prefix (the sub-benchmark's name is appended), so the profile holds the
// sink's work and not the setup's; it returns the function that stops it.
func profileWindow(b *testing.B) func() {
	prefix := os.Getenv("STUDIO_BENCH_CPUPROFILE")
	if prefix == "" {
		return func() {}
	}
	f, err := os.Create(prefix + "." + strings.NewReplacer("/", "_", "=", "").Replace(b.Name()) + ".prof")
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatalf("start the CPU profile (not with -cpuprofile): %v", err)
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}
}

// packRuns turns single stage-run events into TelemetryBatch messages of perMsg rows.
func packRuns(b *testing.B, outs []streams.Output, perMsg int) []streams.Output {
	var packed []streams.Output
	var runs []schemas.StageRun
	flush := func() {
		out, err := telemetry.EncodeStageRuns("bench", uint64(len(packed)+1), runs)
		if err != nil {
			b.Fatal(err)
		}
		packed, runs = append(packed, out), nil
	}
	for _, o := range outs {
		var r schemas.StageRun
		if err := json.Unmarshal(o.Data, &r); err != nil {
			b.Fatal(err)
		}
		if runs = append(runs, r); len(runs) == perMsg {
			flush()
		}
	}
	if len(runs) > 0 {
		flush()
	}
	return packed
}

// waitRows waits until the sink has inserted n rows into table.
func waitRows(t testing.TB, s *running, table string, n uint64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for s.Stats().Rows[table] < n {
		if time.Now().After(deadline) {
			t.Fatalf("after %s the sink has written %d of %d rows: %+v", timeout, s.Stats().Rows[table], n, s.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// processCPU returns the user and system CPU time a process has used: this one for
// pid "", else the one /proc/<pid>/stat describes (0 when it cannot be read).
func processCPU(pid string) time.Duration {
	if pid == "" {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			return 0
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	data, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0
	}
	s := string(data)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(fields[11], 10, 64) // clock ticks, 100 per second
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// uniqueID rewrites the job_id in a JSON event so that every message is distinct.
func uniqueID(data []byte, i int) []byte {
	s := string(data)
	const key = `"job_id":"`
	at := strings.Index(s, key)
	if at < 0 {
		return data
	}
	return []byte(s[:at+len(key)] + "b" + strconv.Itoa(i) + "-" + s[at+len(key):])
}
