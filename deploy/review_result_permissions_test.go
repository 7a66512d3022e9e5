package deploy

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/creativeai-studio/studio/internal/quota"
	"github.com/creativeai-studio/studio/internal/topology"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
)

// ingest runs two consumers on RESULTS (app.ServeIngest: the webhook sender and the
// active-slot release, both on the one runner), and the runner dead-letters webhooks
// on studio.dlq.webhooks. With the production permissions the ingest role must be able
// to ack RESULTS and write that DLQ subject, or a webhook that fails for good loses
// its dead letter (DeadLetters and the max-deliveries advisory only log the refusal).
func TestProductionRolesCanWriteTheFailureResultsAndDeadLettersTheCodeWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a JetStream server")
	}
	passwords := map[string]string{}
	for _, r := range prodRoles {
		passwords[r] = "secret-" + r
	}
	s := startProductionServer(t, prodEnv(passwords))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ingest := dialRole(t, s, "ingest", passwords["ingest"])
	noErr(t, topology.Provision(ctx, ingest.js, streams.DefaultTopology(1)))
	store := dialRole(t, s, "store", passwords["store"])
	_, err := store.js.Publish(ctx, schemas.ResultSubject("acme", schemas.TaskRemoveBackground), []byte(`{"job_id":"j1"}`))
	noErr(t, err)

	spec := quota.ActiveJobsConsumer()
	spec.DeliverNew = false
	cons, err := spec.Ensure(ctx, ingest.js)
	noErr(t, err)
	batch, err := cons[""].Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	noErr(t, err)
	got := 0
	for m := range batch.Messages() {
		got++
		actx, acancel := context.WithTimeout(ctx, 5*time.Second)
		if err := m.DoubleAck(actx); err != nil {
			t.Errorf("ingest acking its RESULTS consumer %s: %v", spec.Durable, err)
		}
		acancel()
	}
	if got != 1 {
		t.Fatalf("fetched %d results as ingest (err %v)", got, batch.Error())
	}
	pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
	defer pcancel()
	if _, err := ingest.js.Publish(pctx, schemas.DLQSubject("webhooks"), []byte(`{"job_id":"j1"}`)); err != nil {
		t.Errorf("ingest writing a webhook dead letter: %v", err)
	}

	// processors.Handler.Fail publishes the failed job's result (schemas.ResultSubject)
	// from whichever stage failed it; ingest does the same for a cache hit and a
	// cancellation (publishResult). Without it no webhook is sent for the job, its
	// active slot is not released (quota.ReleaseFinished) and tenants never hear of it.
	for _, role := range []string{"preprocess", "inference", "postprocess", "ingest"} {
		rc := dialRole(t, s, role, passwords[role])
		rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := rc.js.Publish(rctx, schemas.ResultSubject("acme", schemas.TaskRemoveBackground), []byte(`{"job_id":"j2","status":"failed"}`))
		rcancel()
		if err != nil {
			t.Errorf("%s publishing a job's final result: %v", role, err)
		}
	}
}
