package streams_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

// TestClusterFaultsEveryJobCompletesExactlyOnce is the short fault test: on a 3-node
// cluster, three workers (one per node) run a stage while one worker's connection is
// cut mid-job (a SIGKILL: no ack, no nak) and the stream's leader node crashes and
// restarts; every job still reaches the next stream exactly once and none is
// dead-lettered.
func TestClusterFaultsEveryJobCompletesExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster and kills parts of it")
	}
	const jobs = 300
	c := streamstest.StartCluster(t, 3)
	spec := tierSpec(schemas.StreamRequests, "preprocess", schemas.RootRequests, 2*time.Second, 20)
	var handled atomic.Int64
	h := streams.HandlerFunc(func(ctx context.Context, m *streams.Msg) ([]streams.Output, error) {
		handled.Add(1)
		select {
		case <-time.After(10 * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return forward(m), nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var victim *nats.Conn
	for i, srv := range c.Servers {
		nc, err := nats.Connect(srv.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		if i == 1 {
			victim = nc
		}
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		r, err := streams.NewRunner(ctx, nc, js, h, streams.RunnerConfig{
			Stage: schemas.StagePreprocess, Worker: fmt.Sprintf("w%d", i), Spec: spec, Concurrency: 4,
			BackoffBase: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond,
			PullExpiry: time.Second, DrainTimeout: 5 * time.Second, Log: quietLog(),
		})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { _ = r.Run(ctx); close(done) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	for i := range jobs {
		id := fmt.Sprintf("job-%03d", i)
		data, _ := json.Marshal(map[string]string{"job_id": id})
		pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := c.JS[0].Publish(pctx, schemas.RequestSubject(schemas.TierNormal, schemas.TaskRemoveBackground), data, jetstream.WithMsgID(id))
		pcancel()
		if err != nil {
			t.Fatalf("publish %s: %v", id, err)
		}
	}
	done := func() map[string]int { return clusterDownstream(t, c) }
	streamstest.Eventually(t, time.Minute, func() bool { return len(done()) >= jobs/4 }, "no progress before the faults")
	victim.Close() // worker 1 dies holding messages

	streamstest.Eventually(t, time.Minute, func() bool { return len(done()) >= jobs/2 }, "no progress after a worker died")
	leader := c.StreamLeader(t, schemas.StreamRequests)
	c.Restart(t, leader) // the leader node crashes and comes back

	streamstest.Eventually(t, 2*time.Minute, func() bool { return len(done()) == jobs }, "not every job completed: %d of %d", len(done()), jobs)
	for id, n := range done() {
		if n != 1 {
			t.Errorf("job %s reached the next stream %d times", id, n)
		}
	}
	if dl := clusterDLQ(t, c); dl != 0 {
		t.Errorf("%d messages were dead-lettered", dl)
	}
	t.Logf("%d jobs, %d handler runs (redeliveries after the faults: %d)", jobs, handled.Load(), handled.Load()-jobs)
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
			if err == jetstream.ErrMsgNotFound {
				continue
			}
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}
