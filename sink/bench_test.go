package sink_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/creativeai-studio/studio/sink"
	"github.com/creativeai-studio/studio/streams"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

// BenchmarkSinkThroughput measures end to end: fetch from JetStream, decode, look up
// stored ids, insert, ack. Messages are published before the timer starts; the schema is
// migrated before too. Run with a fixed count, e.g.
//
//	go test ./sink -run '^$' -bench SinkThroughput -benchtime 100000x
func BenchmarkSinkThroughput(b *testing.B) {
	addr := clickhouseAddr(b)
	for _, bc := range []struct {
		name  string
		batch int
		jobs  bool
	}{
		{"stage_runs/batch=10000", 10000, false},
		{"stage_runs/batch=1000", 1000, false},
		{"jobs/batch=10000", 10000, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			srv := streamstest.Start(b)
			cfg := testConfig(b, addr)
			cfg.BatchRows, cfg.FlushInterval, cfg.AckWait = bc.batch, 200*time.Millisecond, time.Minute
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
			publish(b, srv, outs...)
			b.ResetTimer()
			s := startSink(b, srv, cfg)
			waitWritten(b, s, uint64(b.N), 10*time.Minute)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
			if s.Stats().Duplicates != 0 {
				b.Fatalf("%d rows were duplicates; the benchmark data should be distinct", s.Stats().Duplicates)
			}
		})
	}
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
