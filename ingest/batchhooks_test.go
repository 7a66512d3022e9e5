package ingest_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/ingest"
	"github.com/creativeai-studio/studio/schemas"
)

// batchHook decodes and checks the signature of the webhook call c.
func batchHook(t *testing.T, c call) schemas.BatchCompleted {
	t.Helper()
	var ev schemas.BatchCompleted
	require.NoError(t, json.Unmarshal(c.body, &ev), "body: %s", c.body)
	require.Equal(t, schemas.SchemaBatchCompleted, c.header.Get(ingest.HeaderEvent))
	require.Equal(t, ev.BatchID, c.header.Get("Studio-Batch-Id"))
	key := ingest.TenantWebhookSecret(webhookSecret, ev.Tenant)
	require.True(t, ingest.VerifyWebhook(c.header.Get(ingest.HeaderSignature), c.body, key, time.Now(), 5*time.Minute), "the batch webhook is signed with the tenant's secret")
	return ev
}

func TestBatchWebhookIsSentOnceWhenEveryJobHasEnded(t *testing.T) {
	p := newPipeline(t, webhookConfig())
	hook := newReceiver(t, 1) // the first call fails: the retry is the same claim's
	// Two senders in the consumer group, as two ingest replicas run them.
	p.runWebhooks(t)
	p.runWebhooks(t)
	body, ct := batchForm(t, 4, field("task", "remove-background"), field("callback_url", hook.srv.URL+"/hooks/batch"))
	r := p.do(t, http.MethodPost, "/v2/batches", body, ct)
	require.Equal(t, http.StatusAccepted, r.status, "body: %s", r.body)
	b := decodeBatch(t, r.body)
	p.runAll()
	p.openAll()
	for _, j := range b.Jobs {
		p.waitStatus(t, j.ID, schemas.StatusSucceeded)
	}
	streamsEventually(t, func() bool { return hook.count() >= 2 }, "the batch webhook was not delivered after one failure")
	// Every result has been handled once the group is idle: no further call may follow.
	p.waitConsumerIdle(t, schemas.StreamResults, ingest.DurableWebhooks, 4)
	require.Equal(t, 2, hook.count(), "one failed call and one delivery; the batch's jobs send none of their own")

	ev := batchHook(t, hook.get(1))
	require.Equal(t, b.ID, ev.BatchID)
	require.Equal(t, schemas.TaskRemoveBackground, ev.Task)
	require.Equal(t, 4, ev.Total)
	require.Equal(t, schemas.BatchCounts{Succeeded: 4}, ev.Counts)
	var ids []string
	for _, j := range b.Jobs {
		ids = append(ids, j.ID)
	}
	require.ElementsMatch(t, ids, ev.JobIDs)
	require.False(t, ev.CompletedAt.IsZero())
	// Attempts are counted per sender, and the retry may reach the other one.
	require.Contains(t, []string{b.ID + ".1", b.ID + ".2"}, hook.get(1).header.Get(ingest.HeaderDelivery))
	require.Equal(t, hook.get(0).header.Get(ingest.HeaderEvent), hook.get(1).header.Get(ingest.HeaderEvent))

	// The claim says it was sent, so a redelivered result calls nobody.
	v, err := p.idem.Get(context.Background(), "b.local.local."+b.ID)
	require.NoError(t, err)
	require.Equal(t, "sent", string(v))
}

func TestBatchWebhookCountsCancelledJobs(t *testing.T) {
	e := newEnv(t, webhookConfig()) // no stages: the jobs stay queued until cancelled
	hook := newReceiver(t, 0)
	e.runWebhooks(t)
	body, ct := batchForm(t, 2, field("task", "remove-background"), field("callback_url", hook.srv.URL+"/hooks/batch"))
	r := e.do(t, http.MethodPost, "/v2/batches", body, ct)
	require.Equal(t, http.StatusAccepted, r.status, "body: %s", r.body)
	b := decodeBatch(t, r.body)

	// One job is cancelled alone: the batch is not complete, and nothing is sent.
	c := e.do(t, http.MethodDelete, "/v2/jobs/"+b.Jobs[0].ID, nil, "")
	require.Equal(t, http.StatusOK, c.status, "body: %s", c.body)
	e.waitConsumerIdle(t, schemas.StreamResults, ingest.DurableWebhooks, 1)
	require.Zero(t, hook.count(), "a batch with a queued job is not complete")

	c = e.do(t, http.MethodDelete, "/v2/batches/"+b.ID, nil, "")
	require.Equal(t, http.StatusOK, c.status, "body: %s", c.body)
	streamsEventually(t, func() bool { return hook.count() >= 1 }, "the batch webhook was not delivered")
	e.waitConsumerIdle(t, schemas.StreamResults, ingest.DurableWebhooks, 2)
	require.Equal(t, 1, hook.count())
	ev := batchHook(t, hook.get(0))
	require.Equal(t, schemas.BatchCounts{Cancelled: 2}, ev.Counts)
	require.Equal(t, 2, ev.Total)
}

func TestBatchCallbackURLIsRefusedWithoutAWebhookSecret(t *testing.T) {
	e := newEnv(t, ingest.Config{}) // no webhook secret: callbacks are refused
	body, ct := batchForm(t, 1, field("task", "remove-background"), field("callback_url", "http://example.test/hook"))
	r := e.do(t, http.MethodPost, "/v2/batches", body, ct)
	require.GreaterOrEqual(t, r.status, 400, "body: %s", r.body)
	require.Less(t, r.status, 500, "body: %s", r.body)
	require.Contains(t, string(r.body), "callback_url")
}
