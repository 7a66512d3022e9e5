package streams_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

// lockedBuffer collects log output from the runner's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestRunnerReportsRetriesAndDeadLettersWithTheJobInItsLogs(t *testing.T) {
	s := streamstest.Start(t)
	var retries, dead atomic.Int32
	var logs lockedBuffer
	l := logrus.New()
	l.SetFormatter(&logrus.JSONFormatter{})
	l.SetOutput(&logs)
	var attempts sync.Map
	h := streams.HandlerFunc(func(ctx context.Context, m *streams.Msg) ([]streams.Output, error) {
		id := jobID(m)
		n, _ := attempts.LoadOrStore(id, new(atomic.Int32))
		switch k := n.(*atomic.Int32).Add(1); {
		case id == "flaky" && k == 1:
			return nil, errors.New("storage timeout")
		case id == "poison":
			return nil, &schemas.JobError{Code: "corrupt_image", Message: "truncated", Stage: schemas.StagePreprocess}
		}
		return forward(m), nil
	})
	startRunner(t, s, h, func(c *streams.RunnerConfig) {
		c.Log = l
		c.Observer = &countingObserver{retries: &retries, dead: &dead}
	})
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, id := range []string{"flaky", "poison"} {
		data, _ := json.Marshal(map[string]string{"job_id": id})
		msg := &nats.Msg{Subject: schemas.RequestSubject(schemas.TierNormal, schemas.TaskRemoveBackground), Data: data,
			Header: nats.Header{"Studio-Job-Id": []string{id}, "traceparent": []string{tp}}}
		if _, err := s.JS.PublishMsg(context.Background(), msg); err != nil {
			t.Fatal(err)
		}
	}
	streamstest.Eventually(t, 20*time.Second, func() bool {
		return downstream(t, s)["flaky"] == 1 && len(dlqMessages(t, s)) == 1
	}, "flaky job not forwarded or poison job not dead-lettered")
	if r, d := retries.Load(), dead.Load(); r != 1 || d != 1 {
		t.Errorf("Observer saw %d retries and %d dead letters; want 1 and 1", r, d)
	}
	seen := 0
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var f map[string]any
		if err := json.Unmarshal([]byte(line), &f); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if f["job_id"] == nil {
			continue
		}
		seen++
		if f["trace_id"] != "4bf92f3577b34da6a3ce929d0e0e4736" {
			t.Errorf("runner line about job %v lacks its trace id: %v", f["job_id"], f)
		}
	}
	if seen < 2 {
		t.Errorf("%d runner lines name a job; want the retry and the dead letter:\n%s", seen, logs.String())
	}
}

// countingObserver counts what a runner reports to its Observer.
type countingObserver struct {
	retries, dead *atomic.Int32
	handled       sync.Map // outcome -> *atomic.Int32
}

func (o *countingObserver) Retried(string)      { o.retries.Add(1) }
func (o *countingObserver) DeadLettered(string) { o.dead.Add(1) }
func (o *countingObserver) Handled(_, outcome string, _ time.Duration) {
	n, _ := o.handled.LoadOrStore(outcome, new(atomic.Int32))
	n.(*atomic.Int32).Add(1)
}
