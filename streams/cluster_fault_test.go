package streams_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

// TestClusterFaultsEveryJobCompletesExactlyOnce is the fault test: on a 3-node
// cluster, three workers (one per node) run a stage while, in each round, one worker's
// connection is cut mid-job (a SIGKILL: no ack, no nak; a replacement starts) and then
// the stream's leader node crashes and restarts. Every job must reach the next stream
// exactly once and none may be dead-lettered. The short form (300 jobs, 1 round) runs
// with the tests; `make faults` runs the long form, sized by STUDIO_FAULTS_JOBS and
// STUDIO_FAULTS_ROUNDS, and prints its figures.
func TestClusterFaultsEveryJobCompletesExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster and kills parts of it")
	}
	jobs, rounds := envInt(t, "STUDIO_FAULTS_JOBS", 300), envInt(t, "STUDIO_FAULTS_ROUNDS", 1)
	c := streamstest.StartCluster(t, 3)
	spec := tierSpec(schemas.StreamRequests, "preprocess", schemas.RootRequests, 2*time.Second, 20)
	var handled atomic.Int64
	var mu sync.Mutex
	var finished []time.Time // when each handler run ended well, for the longest stall
	h := streams.HandlerFunc(func(ctx context.Context, m *streams.Msg) ([]streams.Output, error) {
		handled.Add(1)
		select {
		case <-time.After(10 * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		mu.Lock()
		finished = append(finished, time.Now())
		mu.Unlock()
		return forward(m), nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := 0
	worker := func(node int) *nats.Conn {
		t.Helper()
		nc, err := nats.Connect(c.Servers[node].ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		started++
		// NewRunner fails while the cluster elects a leader (the engine does not retry
		// it yet); like a supervisor restarting a process, try again.
		var r *streams.Runner
		streamstest.Eventually(t, time.Minute, func() bool {
			var err error
			r, err = streams.NewRunner(ctx, nc, js, h, streams.RunnerConfig{
				Stage: schemas.StagePreprocess, Worker: fmt.Sprintf("w%d", started), Spec: spec, Concurrency: 4,
				BackoffBase: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond,
				PullExpiry: time.Second, DrainTimeout: 5 * time.Second, Log: silentLog(),
			})
			return err == nil
		}, "worker %d could not start", started)
		done := make(chan struct{})
		go func() { _ = r.Run(ctx); close(done) }()
		t.Cleanup(func() { cancel(); <-done })
		return nc
	}
	workers := []*nats.Conn{worker(0), worker(1), worker(2)}
	begin := time.Now()
	for i := range jobs {
		id := fmt.Sprintf("job-%05d", i)
		data, _ := json.Marshal(map[string]string{"job_id": id})
		pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := c.JS[0].Publish(pctx, schemas.RequestSubject(schemas.TierNormal, schemas.TaskRemoveBackground), data, jetstream.WithMsgID(id))
		pcancel()
		if err != nil {
			t.Fatalf("publish %s: %v", id, err)
		}
	}
	// progress waits until at least n jobs reached the next stream.
	progress := func(n int, what string) {
		t.Helper()
		got := 0
		streamstest.Eventually(t, 3*time.Minute, func() bool {
			got = clusterCount(t, c, schemas.StreamPreprocessed)
			return got >= n
		}, "%s: %d of %d jobs done", what, got, n)
	}
	steps := 2*rounds + 1
	for r := range rounds {
		progress((2*r+1)*jobs/steps, "before a worker kill")
		victim := r % len(workers)
		workers[victim].Close() // the worker dies holding messages
		workers[victim] = worker(victim)
		progress((2*r+2)*jobs/steps, "before a leader restart")
		c.Restart(t, c.StreamLeader(t, schemas.StreamRequests))
	}
	progress(jobs, "after the faults")
	elapsed := time.Since(begin)
	mu.Lock()
	slices.SortFunc(finished, time.Time.Compare)
	var stall time.Duration
	for i := 1; i < len(finished); i++ {
		stall = max(stall, finished[i].Sub(finished[i-1]))
	}
	mu.Unlock()
	dups, final := 0, clusterDownstream(t, c)
	for id, n := range final {
		if n != 1 {
			dups++
			t.Errorf("job %s reached the next stream %d times", id, n)
		}
	}
	dl := clusterDLQ(t, c)
	if dl != 0 {
		t.Errorf("%d messages were dead-lettered", dl)
	}
	t.Logf("faults: %d jobs, %d rounds (worker SIGKILL + leader restart each): %d completed, %d duplicates, %d dead-lettered, %d handler runs (%d redeliveries), longest stall %s, total %s",
		jobs, rounds, len(final), dups, dl, handled.Load(), handled.Load()-int64(jobs), stall.Round(10*time.Millisecond), elapsed.Round(100*time.Millisecond))
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// silentLog drops the warnings a fault test provokes by design.
func silentLog() logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

// clusterDownstream counts, by job id, the messages that reached the preprocessed
// stream, reading through any live node.
func clusterDownstream(t *testing.T, c *streamstest.Cluster) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, m := range clusterMsgs(t, c, schemas.StreamPreprocessed) {
		out[string(m.Data)]++
	}
	return out
}

// clusterCount returns the number of messages in stream, or 0 while no node answers.
func clusterCount(t *testing.T, c *streamstest.Cluster, stream string) int {
	t.Helper()
	for _, js := range c.JS {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := js.Stream(ctx, stream)
		cancel()
		if err == nil {
			return int(st.CachedInfo().State.Msgs)
		}
	}
	return 0
}

func clusterDLQ(t *testing.T, c *streamstest.Cluster) int {
	return len(clusterMsgs(t, c, schemas.StreamDLQ))
}

func clusterMsgs(t *testing.T, c *streamstest.Cluster, stream string) []*jetstream.RawStreamMsg {
	t.Helper()
	for _, js := range c.JS {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		out, err := readStream(ctx, js, stream)
		cancel()
		if err == nil {
			return out
		}
	}
	return nil // no node answered now; the caller polls again
}

func readStream(ctx context.Context, js jetstream.JetStream, stream string) ([]*jetstream.RawStreamMsg, error) {
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, err
	}
	info := st.CachedInfo()
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				continue
			}
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}
