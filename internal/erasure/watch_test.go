package erasure_test

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/internal/erasure"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

// TestWatchRequestsHoldsUntilTheSinkAppliedTheRequest publishes an erasure request
// and plays the sink's durable consumer: the hold starts with the request and ends
// only after the consumer has acknowledged it.
func TestWatchRequestsHoldsUntilTheSinkAppliedTheRequest(t *testing.T) {
	s := streamstest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := s.JS.Stream(ctx, schemas.StreamAudit)
	if err != nil {
		t.Fatal(err)
	}
	sinkCons, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable: "sink-audit", FilterSubject: "studio.audit.>", AckPolicy: jetstream.AckExplicitPolicy,
	})
	if err != nil {
		t.Fatal(err)
	}
	var holds, releases atomic.Int32
	hold := func() func() {
		holds.Add(1)
		return func() { releases.Add(1) }
	}
	log := logrus.New()
	log.SetLevel(logrus.PanicLevel)
	done := make(chan error, 1)
	go func() { done <- erasure.WatchRequests(ctx, s.JS, "sink-audit", hold, log) }()
	streamstest.Eventually(t, 10*time.Second, func() bool {
		info, err := stream.Info(ctx)
		return err == nil && info.State.Consumers == 2
	}, "the watcher's consumer exists")

	req := schemas.ErasureRequest{Schema: schemas.SchemaErasure, ID: "e1", Tenant: "acme", User: "alice", RequestedAt: time.Now().UTC()}
	data, _ := json.Marshal(req)
	if err := (streams.JSPublisher{JS: s.JS}).Publish(ctx, streams.Output{Subject: schemas.SubjectErasure, MsgID: "erasure:e1", Data: data}); err != nil {
		t.Fatal(err)
	}
	streamstest.Eventually(t, 10*time.Second, func() bool { return holds.Load() == 1 }, "the request starts a hold")
	time.Sleep(2 * time.Second)
	if releases.Load() != 0 {
		t.Fatal("the hold ended before the sink acknowledged the request")
	}
	batch, err := sinkCons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
	}
	streamstest.Eventually(t, 15*time.Second, func() bool { return releases.Load() == 1 }, "the hold ends once the sink applied the request")
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WatchRequests did not return after its context ended")
	}
}
