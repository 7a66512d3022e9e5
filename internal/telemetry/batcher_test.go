package telemetry_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/internal/telemetry"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

func run(i int) schemas.StageRun {
	return schemas.StageRun{
		Schema: schemas.SchemaStageRun, JobID: fmt.Sprintf("job-%d", i), Tenant: "acme", User: "u",
		Stage: schemas.StagePreprocess, Attempt: 1, Outcome: "ok", StartedAt: time.Now().UTC(),
	}
}

// batches reads every studio.telemetry.batch message of the TELEMETRY stream.
func batches(t *testing.T, js jetstream.JetStream) []schemas.TelemetryBatch {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := js.OrderedConsumer(ctx, schemas.StreamTelemetry, jetstream.OrderedConsumerConfig{FilterSubjects: []string{schemas.SubjectTelemetryBatch}})
	require.NoError(t, err)
	var out []schemas.TelemetryBatch
	for {
		msgs, err := c.FetchNoWait(100)
		require.NoError(t, err)
		n := 0
		for m := range msgs.Messages() {
			var b schemas.TelemetryBatch
			require.NoError(t, json.Unmarshal(m.Data(), &b))
			out = append(out, b)
			n++
		}
		if n == 0 {
			return out
		}
	}
}

func TestBatcherPublishesFullBatchesAndFlushesTheRestOnClose(t *testing.T) {
	srv := streamstest.Start(t)
	b := telemetry.New(telemetry.Config{Producer: "w1", MaxRows: 100, MaxWait: time.Hour}, streams.JSPublisher{JS: srv.JS}, telemetry.EncodeStageRuns)
	for i := range 250 {
		require.True(t, b.Add(run(i)))
	}
	// Two full batches go out at once; the last 50 rows wait for MaxWait (an hour).
	streamstest.Eventually(t, 10*time.Second, func() bool { return b.Stats().Batches == 2 }, "two full batches are published")
	require.Equal(t, uint64(200), b.Stats().Rows)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, b.Close(ctx))
	require.Equal(t, telemetry.Stats{Batches: 3, Rows: 250}, b.Stats(), "close publishes what is held")
	require.False(t, b.Add(run(999)), "a closed batcher takes nothing")
	require.Equal(t, uint64(1), b.Stats().Lost, "and counts what it refused")

	got := batches(t, srv.JS)
	require.Len(t, got, 3)
	seen := map[string]bool{}
	for i, m := range got {
		require.Equal(t, schemas.SchemaTelemetryBatch, m.Schema)
		require.Equal(t, b.Producer(), m.Producer)
		require.Equal(t, uint64(i+1), m.Seq)
		for _, r := range m.StageRuns {
			require.False(t, seen[r.JobID], "row %s is in one batch only", r.JobID)
			seen[r.JobID] = true
		}
	}
	require.Len(t, seen, 250)
}

func TestBatcherPublishesAPartialBatchAfterMaxWait(t *testing.T) {
	srv := streamstest.Start(t)
	b := telemetry.New(telemetry.Config{Producer: "w1", MaxRows: 100, MaxWait: 50 * time.Millisecond}, streams.JSPublisher{JS: srv.JS}, telemetry.EncodeStageRuns)
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	start := time.Now()
	b.Add(run(1))
	b.Add(run(2))
	streamstest.Eventually(t, 10*time.Second, func() bool { return b.Stats().Rows == 2 }, "the partial batch is published")
	require.GreaterOrEqual(t, time.Since(start), 50*time.Millisecond)
	require.Equal(t, uint64(1), b.Stats().Batches)
}

// flaky fails its first publishes after they reached the stream, as a lost PubAck does.
type flaky struct {
	next  streams.Publisher
	fails atomic.Int32
}

func (f *flaky) Publish(ctx context.Context, outs ...streams.Output) error {
	err := f.next.Publish(ctx, outs...)
	if f.fails.Add(-1) >= 0 {
		return errors.New("pub ack lost")
	}
	return err
}

func TestBatcherRetriesWithTheSameMessageIDSoTheStreamStoresABatchOnce(t *testing.T) {
	srv := streamstest.Start(t)
	pub := &flaky{next: streams.JSPublisher{JS: srv.JS}}
	pub.fails.Store(2)
	b := telemetry.New(telemetry.Config{Producer: "w1", MaxRows: 10, MaxWait: time.Hour, Attempts: 3}, pub, telemetry.EncodeStageRuns)
	for i := range 10 {
		b.Add(run(i))
	}
	require.NoError(t, b.Close(context.Background()))
	require.Equal(t, telemetry.Stats{Batches: 1, Rows: 10}, b.Stats())
	require.Len(t, batches(t, srv.JS), 1, "three publishes of one batch, one message in the stream")
}

func TestBatcherDropsAndCountsWhatTheStreamRefuses(t *testing.T) {
	srv := streamstest.Start(t)
	var lost atomic.Int64
	// No stream holds this subject: every publish is refused.
	b := telemetry.New(telemetry.Config{Producer: "w1", MaxRows: 5, MaxWait: time.Hour, Attempts: 2, PublishTimeout: time.Second,
		Lost: func(n int) { lost.Add(int64(n)) }}, streams.JSPublisher{JS: srv.JS},
		func(producer string, seq uint64, rows []schemas.StageRun) (streams.Output, error) {
			out, err := telemetry.EncodeStageRuns(producer, seq, rows)
			out.Subject = "nowhere.telemetry"
			return out, err
		})
	for i := range 5 {
		b.Add(run(i))
	}
	require.NoError(t, b.Close(context.Background()))
	require.Equal(t, telemetry.Stats{Lost: 5}, b.Stats())
	require.Equal(t, int64(5), lost.Load())
}

func TestBatcherBoundsTheRowsItHolds(t *testing.T) {
	block := make(chan struct{})
	pub := publisherFunc(func(ctx context.Context, _ ...streams.Output) error {
		<-block
		return nil
	})
	b := telemetry.New(telemetry.Config{Producer: "w1", MaxRows: 2, MaxPending: 4, MaxWait: time.Hour}, pub, telemetry.EncodeStageRuns)
	taken := 0
	for i := range 20 {
		if b.Add(run(i)) {
			taken++
		}
	}
	close(block)
	require.NoError(t, b.Close(context.Background()))
	st := b.Stats()
	require.LessOrEqual(t, taken, 6, "at most MaxPending rows wait, plus the batch being published")
	require.Equal(t, uint64(20-taken), st.Lost)
	require.Equal(t, uint64(taken), st.Rows)
}

func TestBatcherAddWaitReturnsOnceTheRowIsStored(t *testing.T) {
	srv := streamstest.Start(t)
	b := telemetry.New(telemetry.Config{Producer: "ingest-1", MaxRows: 64}, streams.JSPublisher{JS: srv.JS}, telemetry.EncodeAudit)
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ev := schemas.AuditEvent{Schema: schemas.SchemaAudit, ID: "a1", Time: time.Now().UTC(), Actor: "u", Tenant: "acme", Action: "job-submit", Result: "allowed"}
	require.NoError(t, b.AddWait(ctx, ev))
	s, err := srv.JS.Stream(ctx, schemas.StreamAudit)
	require.NoError(t, err)
	m, err := s.GetLastMsgForSubject(ctx, schemas.SubjectAuditBatch)
	require.NoError(t, err, "the batch is in the stream when AddWait returns")
	var got schemas.AuditBatch
	require.NoError(t, json.Unmarshal(m.Data, &got))
	require.Equal(t, []schemas.AuditEvent{ev}, got.Events)
}

type publisherFunc func(ctx context.Context, outs ...streams.Output) error

func (f publisherFunc) Publish(ctx context.Context, outs ...streams.Output) error {
	return f(ctx, outs...)
}

func TestBatcherSplitsABatchLargerThanMaxBytes(t *testing.T) {
	srv := streamstest.Start(t)
	b := telemetry.New(telemetry.Config{Producer: "w1", MaxRows: 8, MaxWait: time.Hour, MaxBytes: 2000}, streams.JSPublisher{JS: srv.JS}, telemetry.EncodeStageRuns)
	for i := range 8 {
		r := run(i)
		r.Error = strings.Repeat("x", 600) // three rows no longer fit 2000 bytes
		b.Add(r)
	}
	require.NoError(t, b.Close(context.Background()))
	require.Equal(t, uint64(8), b.Stats().Rows)
	got := batches(t, srv.JS)
	require.Len(t, got, 4, "8 rows in halves until each message fits: 4 messages of 2")
	for i, m := range got {
		require.Equal(t, uint64(i+1), m.Seq, "the halves take consecutive sequence numbers")
	}
}
