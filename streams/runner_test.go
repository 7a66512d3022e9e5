package streams_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

// testSpec is a consumer of the request stream with short timings so failures show
// quickly.
func testSpec(t *testing.T) streams.ConsumerSpec {
	return tierSpec(schemas.StreamRequests, "preprocess", schemas.RootRequests, time.Second, 3)
}

// tierSpec is a per-tier consumer group of stream reading <root>.<tier>.>.
func tierSpec(stream, durable, root string, ackWait time.Duration, maxDeliver int) streams.ConsumerSpec {
	return streams.ConsumerSpec{
		Stream: stream, Durable: durable, AckWait: ackWait, MaxDeliver: maxDeliver, MaxAckPending: 64,
		Filter: func(t schemas.Tier) string { return schemas.TierSubjects(root, t) },
	}
}

func quietLog() logrus.FieldLogger {
	l := logrus.New()
	l.SetLevel(logrus.WarnLevel)
	return l
}

func publishRequest(t *testing.T, s *streamstest.Server, tier schemas.Tier, id string) {
	t.Helper()
	data, _ := json.Marshal(map[string]string{"job_id": id})
	if _, err := s.JS.Publish(context.Background(), schemas.RequestSubject(tier, schemas.TaskRemoveBackground), data, jetstream.WithMsgID(id)); err != nil {
		t.Fatal(err)
	}
}

func jobID(m *streams.Msg) string {
	var v struct {
		JobID string `json:"job_id"`
	}
	_ = json.Unmarshal(m.Data, &v)
	return v.JobID
}

// forward returns the output a stage would publish for m.
func forward(m *streams.Msg) []streams.Output {
	id := jobID(m)
	return []streams.Output{{Subject: schemas.PreprocessedSubject(m.Tier, "isnet"), MsgID: id + ":inference", Data: []byte(id)}}
}

// downstream counts the messages that reached the next stream, by job id.
func downstream(t *testing.T, s *streamstest.Server) map[string]int {
	t.Helper()
	st, err := s.JS.Stream(context.Background(), schemas.StreamPreprocessed)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := st.Info(context.Background())
	out := map[string]int{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(context.Background(), seq)
		if err != nil {
			continue
		}
		out[string(m.Data)]++
	}
	return out
}

func startRunner(t *testing.T, s *streamstest.Server, h streams.Handler, mod func(*streams.RunnerConfig)) (stop func()) {
	t.Helper()
	cfg := streams.RunnerConfig{
		Stage: schemas.StagePreprocess, Worker: "test", Spec: testSpec(t), Concurrency: 2,
		BackoffBase: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
		PullExpiry: time.Second, DrainTimeout: 5 * time.Second, Log: quietLog(),
	}
	if mod != nil {
		mod(&cfg)
	}
	r, err := streams.NewRunner(context.Background(), s.NC, s.JS, h, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = r.Run(ctx); close(done) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(15 * time.Second):
				t.Error("runner did not stop within 15s")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func dlqMessages(t *testing.T, s *streamstest.Server) []*jetstream.RawStreamMsg {
	t.Helper()
	st, err := s.JS.Stream(context.Background(), schemas.StreamDLQ)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := st.Info(context.Background())
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		if m, err := st.GetMsg(context.Background(), seq); err == nil {
			out = append(out, m)
		}
	}
	return out
}

func TestRunner(t *testing.T) {
	t.Run("a handler that panics mid-message is redelivered and the job completes once", func(t *testing.T) {
		s := streamstest.Start(t)
		var calls atomic.Int32
		h := streams.HandlerFunc(func(ctx context.Context, m *streams.Msg) ([]streams.Output, error) {
			if calls.Add(1) == 1 {
				panic("simulated crash")
			}
			return forward(m), nil
		})
		startRunner(t, s, h, nil)
		publishRequest(t, s, schemas.TierNormal, "job-1")
		streamstest.Eventually(t, 10*time.Second, func() bool { return downstream(t, s)["job-1"] == 1 }, "job-1 never reached the next stage")
		time.Sleep(300 * time.Millisecond)
		if got := downstream(t, s)["job-1"]; got != 1 {
			t.Fatalf("job-1 reached the next stage %d times, want exactly 1", got)
		}
		if calls.Load() != 2 {
			t.Fatalf("handler ran %d times, want 2 (crash, then success)", calls.Load())
		}
	})

	t.Run("a worker killed mid-message leaves it for another worker, which completes it once", func(t *testing.T) {
		s := streamstest.Start(t)
		started := make(chan struct{})
		var once sync.Once
		block := streams.HandlerFunc(func(ctx context.Context, m *streams.Msg) ([]streams.Output, error) {
			once.Do(func() { close(started) })
			<-ctx.Done() // never finishes on its own: it "dies" with the worker
			return nil, ctx.Err()
		})
		// The first worker's drain timeout is tiny and it never acks: like a SIGKILL,
		// the message is only recovered through AckWait expiry... except that the
		// runner naks on shutdown, which is the graceful path. Simulate the hard kill
		// by closing the connection under the runner instead.
		nc2, err := s.Embedded.Connect("victim")
		if err != nil {
			t.Fatal(err)
		}
		js2, _ := jetstream.New(nc2)
		r, err := streams.NewRunner(context.Background(), nc2, js2, block, streams.RunnerConfig{
			Stage: schemas.StagePreprocess, Spec: testSpec(t), Log: quietLog(), PullExpiry: time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() { _ = r.Run(ctx) }()
		publishRequest(t, s, schemas.TierNormal, "job-2")
		<-started
		nc2.Close() // the process is gone: no ack, no nak, no InProgress

		startRunner(t, s, streams.HandlerFunc(func(ctx context.Context, m *streams.Msg) ([]streams.Output, error) {
			return forward(m), nil
		}), nil)
		streamstest.Eventually(t, 15*time.Second, func() bool { return downstream(t, s)["job-2"] == 1 }, "job-2 was not completed by the second worker")
	})

	t.Run("a poison message lands in the DLQ with its reason and the failure hook sees it", func(t *testing.T) {
		s := streamstest.Start(t)
		var failed sync.Map
		h := streams.HandlerFunc(func(ctx context.Context, m *streams.Msg) ([]streams.Output, error) {
			if jobID(m) == "poison" {
				return nil, &schemas.JobError{Code: "invalid_image", Message: "not an image", Stage: schemas.StagePreprocess}
			}
			return forward(m), nil
		})
		startRunner(t, s, h, func(c *streams.RunnerConfig) {
			c.OnFailure = func(ctx context.Context, m *streams.Msg, err error) error {
				failed.Store(jobID(m), err.Error())
				return nil
			}
		})
		publishRequest(t, s, schemas.TierNormal, "poison")
		publishRequest(t, s, schemas.TierNormal, "good")
		streamstest.Eventually(t, 10*time.Second, func() bool { return len(dlqMessages(t, s)) == 1 && downstream(t, s)["good"] == 1 }, "poison not in DLQ or good job not forwarded")
		m := dlqMessages(t, s)[0]
		if m.Subject != schemas.DLQSubject(schemas.StagePreprocess) {
			t.Errorf("DLQ subject = %s", m.Subject)
		}
		if r := m.Header.Get(streams.HeaderDLQReason); r == "" || !contains(r, "not an image") {
			t.Errorf("DLQ reason = %q, want it to mention the cause", r)
		}
		if m.Header.Get(streams.HeaderDLQStage) != "preprocess" || m.Header.Get(streams.HeaderDLQAttempts) != "1" {
			t.Errorf("DLQ headers = %v", m.Header)
		}
		if v, ok := failed.Load("poison"); !ok || !contains(v.(string), "not an image") {
			t.Errorf("OnFailure saw %v, %v", v, ok)
		}
		if downstream(t, s)["poison"] != 0 {
			t.Error("poison message was forwarded")
		}
	})

	t.Run("a message failing transiently on every delivery goes to the DLQ after MaxDeliver", func(t *testing.T) {
		s := streamstest.Start(t)
		var calls atomic.Int32
		h := streams.HandlerFunc(func(ctx context.Context, m *streams.Msg) ([]streams.Output, error) {
			calls.Add(1)
			return nil, errors.New("storage timeout")
		})
		startRunner(t, s, h, nil)
		publishRequest(t, s, schemas.TierFree, "flaky")
		streamstest.Eventually(t, 10*time.Second, func() bool { return len(dlqMessages(t, s)) == 1 }, "exhausted message not in the DLQ")
		if calls.Load() != 3 {
			t.Errorf("handler ran %d times, want MaxDeliver=3", calls.Load())
		}
		if r := dlqMessages(t, s)[0].Header.Get(streams.HeaderDLQReason); !contains(r, "storage timeout") || !contains(r, "maximum number") {
			t.Errorf("DLQ reason = %q", r)
		}
	})

	t.Run("a handler that keeps running past the consumer's timeout is retried, then dead-lettered with the timeout as reason", func(t *testing.T) {
		s := streamstest.Start(t)
		var calls atomic.Int32
		h := streams.HandlerFunc(func(ctx context.Context, m *streams.Msg) ([]streams.Output, error) {
			calls.Add(1)
			<-ctx.Done()
			return nil, ctx.Err()
		})
		startRunner(t, s, h, func(c *streams.RunnerConfig) { c.Spec.Timeout = 100 * time.Millisecond })
		publishRequest(t, s, schemas.TierNormal, "slow")
		streamstest.Eventually(t, 10*time.Second, func() bool { return len(dlqMessages(t, s)) == 1 }, "the slow message never reached the DLQ")
		if calls.Load() != 3 {
			t.Errorf("handler ran %d times, want MaxDeliver=3", calls.Load())
		}
		if r := dlqMessages(t, s)[0].Header.Get(streams.HeaderDLQReason); !contains(r, "ran past its deadline") || !contains(r, "maximum number") {
			t.Errorf("DLQ reason = %q", r)
		}
	})

	t.Run("a message whose worker keeps dying is moved to the DLQ by the max-deliveries advisory", func(t *testing.T) {
		s := streamstest.Start(t)
		spec := tierSpec(schemas.StreamInferred, "postprocess", schemas.RootInferred, 500*time.Millisecond, 2)
		cons, err := spec.Ensure(context.Background(), s.JS)
		if err != nil {
			t.Fatal(err)
		}
		var failed atomic.Value
		var retries, dead atomic.Int32
		r, err := streams.NewRunner(context.Background(), s.NC, s.JS, streams.HandlerFunc(func(ctx context.Context, m *streams.Msg) ([]streams.Output, error) {
			return nil, nil
		}), streams.RunnerConfig{Stage: schemas.StagePostprocess, Spec: spec, Log: quietLog(), Worker: "test",
			OnFailure: func(_ context.Context, m *streams.Msg, err error) error { failed.Store(err); return nil },
			Observer:  &countingObserver{retries: &retries, dead: &dead}})
		if err != nil {
			t.Fatal(err)
		}
		stopWatch, err := r.WatchAdvisories()
		if err != nil {
			t.Fatal(err)
		}
		defer stopWatch()
		if _, err := s.JS.Publish(context.Background(), schemas.InferredSubject(schemas.TierNormal, schemas.TaskRemoveBackground), []byte(`{"job_id":"doomed"}`)); err != nil {
			t.Fatal(err)
		}
		// Workers that take the message and die before acking it, twice.
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			for ctx.Err() == nil {
				b, err := cons[schemas.TierNormal].Fetch(1, jetstream.FetchMaxWait(300*time.Millisecond))
				if err != nil {
					continue
				}
				for range b.Messages() {
				}
			}
		}()
		streamstest.Eventually(t, 15*time.Second, func() bool { return len(dlqMessages(t, s)) == 1 }, "advisory did not move the message to the DLQ")
		cancel()
		<-done
		st, _ := s.JS.Stream(context.Background(), schemas.StreamInferred)
		info, _ := st.Info(context.Background())
		if info.State.Msgs != 0 {
			t.Errorf("work queue still holds %d messages; the dead letter must be deleted from it", info.State.Msgs)
		}
		// The same dead-letter path as the runner's: failure handler, headers, metrics.
		if err, _ := failed.Load().(error); !errors.Is(err, streams.ErrMaxDeliveries) {
			t.Errorf("failure handler saw %v; want ErrMaxDeliveries", err)
		}
		h := dlqMessages(t, s)[0].Header
		if h.Get(streams.HeaderDLQStage) != "postprocess" || h.Get(streams.HeaderDLQStream) != schemas.StreamInferred ||
			h.Get(streams.HeaderDLQSeq) != "1" || h.Get(streams.HeaderDLQAttempts) != "2" || h.Get(streams.HeaderDLQWorker) != "test" {
			t.Errorf("DLQ headers = %v", h)
		}
		if dead.Load() != 1 {
			t.Errorf("observer counted %d dead letters; want 1", dead.Load())
		}
	})

	t.Run("drain on shutdown finishes in-flight work and loses nothing", func(t *testing.T) {
		s := streamstest.Start(t)
		const n = 40
		var mu sync.Mutex
		handled := map[string]int{}
		slow := streams.HandlerFunc(func(ctx context.Context, m *streams.Msg) ([]streams.Output, error) {
			time.Sleep(30 * time.Millisecond)
			mu.Lock()
			handled[jobID(m)]++
			mu.Unlock()
			return forward(m), nil
		})
		stop := startRunner(t, s, slow, nil)
		for i := range n {
			publishRequest(t, s, schemas.Tiers[i%3], fmt.Sprintf("d-%d", i))
		}
		streamstest.Eventually(t, 10*time.Second, func() bool { return len(downstream(t, s)) >= 5 }, "nothing processed")
		stop() // SIGTERM mid-stream
		afterStop := len(downstream(t, s))
		if afterStop == n {
			t.Log("everything finished before the stop; drain still verified below")
		}
		// A new worker picks up the rest.
		startRunner(t, s, slow, nil)
		streamstest.Eventually(t, 20*time.Second, func() bool { return len(downstream(t, s)) == n }, "not every job completed after restart: %d/%d", len(downstream(t, s)), n)
		for id, c := range downstream(t, s) {
			if c != 1 {
				t.Errorf("%s reached the next stage %d times", id, c)
			}
		}
	})

	t.Run("premium work overtakes a free backlog and free work still progresses under a premium flood", func(t *testing.T) {
		s := streamstest.Start(t)
		var mu sync.Mutex
		var order []string
		h := streams.HandlerFunc(func(ctx context.Context, m *streams.Msg) ([]streams.Output, error) {
			time.Sleep(5 * time.Millisecond)
			mu.Lock()
			order = append(order, string(m.Tier)+":"+jobID(m))
			mu.Unlock()
			return forward(m), nil
		})
		for i := range 30 {
			publishRequest(t, s, schemas.TierFree, fmt.Sprintf("f-%d", i))
		}
		for i := range 30 {
			publishRequest(t, s, schemas.TierPremium, fmt.Sprintf("p-%d", i))
		}
		startRunner(t, s, h, func(c *streams.RunnerConfig) { c.Concurrency = 1 })
		streamstest.Eventually(t, 20*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(order) == 60 }, "not all handled")
		mu.Lock()
		defer mu.Unlock()
		// In the first 20 picks premium dominates but free is not starved.
		prem, free := 0, 0
		for _, o := range order[:20] {
			if o[0] == 'p' {
				prem++
			} else {
				free++
			}
		}
		if prem < 14 || free < 2 {
			t.Errorf("first 20 picks: %d premium, %d free; want premium first with a floor share for free (order %v)", prem, free, order[:20])
		}
	})
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
