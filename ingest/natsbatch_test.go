package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/ingest"
	"github.com/creativeai-studio/studio/internal/blob"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
)

// serveNATSBatches runs the NATS batch entry on srv until the test ends.
func serveNATSBatches(t *testing.T, svc *ingest.Service, nc *nats.Conn) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.ServeNATSBatches(ctx, streams.RequestServer{NC: nc}) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Error("ServeNATSBatches did not return")
		}
	})
	streamsEventually(t, func() bool {
		_, err := nc.Request("$SRV.PING.studio-ingest-batches", nil, 200*time.Millisecond)
		return err == nil
	}, "the NATS batch entry did not start")
}

// putUploads stores n small PNGs under prefix and returns their keys.
func putUploads(t *testing.T, blobs blob.Store, prefix string, n int) []string {
	t.Helper()
	var keys []string
	for i := range n {
		data := encodePNG(t, gridImage(4+i, 4))
		key := fmt.Sprintf("%s/u%d.png", prefix, i)
		_, err := blobs.Put(context.Background(), key, bytes.NewReader(data), int64(len(data)), "image/png")
		require.NoError(t, err)
		keys = append(keys, key)
	}
	return keys
}

func batchOf(keys ...string) schemas.BatchRequest {
	b := schemas.BatchRequest{Params: map[string]any{"threshold": 0.3}}
	for _, k := range keys {
		b.Images = append(b.Images, schemas.ImageInput{Key: k})
	}
	return b
}

func TestNATSBatchRunsOneJobPerImageOnTheBatchLane(t *testing.T) {
	p := newPipeline(t, ingest.Config{})
	serveNATSBatches(t, p.svc, p.srv.NC)
	nc := p.upstream(t)
	keys := putUploads(t, p.blobs, "uploads/local/local", 3)
	keys = append(keys[:1], "uploads/local/local/missing.png", keys[1], keys[2])

	res := request(t, nc, schemas.SubmitBatchSubject(schemas.TaskRemoveBackground), batchOf(keys...), nil)
	require.Empty(t, res.Header.Get(micro.ErrorCodeHeader), "error reply: %s", res.Data)
	var reply schemas.BatchReply
	require.NoError(t, json.Unmarshal(res.Data, &reply), "%s", res.Data)
	require.Equal(t, schemas.SchemaBatchSubmitted, reply.Schema)
	require.Equal(t, "/v2/batches/"+reply.BatchID, reply.StatusURL)
	require.Len(t, reply.Jobs, 3)
	require.Equal(t, []int{0, 2, 3}, []int{reply.Jobs[0].Index, reply.Jobs[1].Index, reply.Jobs[2].Index}, "jobs keep their image's position")
	require.Len(t, reply.Refused, 1, "partial admission, as over HTTP")
	require.Equal(t, 1, reply.Refused[0].Index)
	require.Equal(t, "missing_object", reply.Refused[0].Problem.Code)

	for _, j := range reply.Jobs {
		rec := mustJob(t, p.env, j.JobID)
		require.Equal(t, reply.BatchID, rec.Batch)
		require.Equal(t, ingest.BatchTier, rec.Tier, "batch jobs travel on the batch lane")
		require.Equal(t, 0.3, rec.Params["threshold"])
	}
	for _, m := range p.requestMsgs(t) {
		require.Equal(t, schemas.RequestSubject(ingest.BatchTier, schemas.TaskRemoveBackground), m.Subject)
	}

	// The batch is the same batch over HTTP.
	p.runAll()
	p.openAll()
	streamsEventually(t, func() bool {
		g := p.do(t, "GET", reply.StatusURL, nil, "")
		return g.status == 200 && decodeBatch(t, g.body).Status == "done"
	}, "the batch did not finish")
	g := p.do(t, "GET", reply.StatusURL, nil, "")
	require.Equal(t, ingest.BatchCounts{Succeeded: 3}, decodeBatch(t, g.body).Counts)
}

func TestNATSBatchRefusesWhatNoJobCouldTake(t *testing.T) {
	e := newEnv(t, ingest.Config{})
	serveNATSBatches(t, e.svc, e.srv.NC)
	nc := e.upstream(t)
	many := make([]string, ingest.MaxBatchImages+1)
	for i := range many {
		many[i] = fmt.Sprintf("uploads/local/local/u%d.png", i)
	}
	subject := schemas.SubmitBatchSubject(schemas.TaskRemoveBackground)
	tests := []struct {
		name    string
		subject string
		body    any
		status  string
		code    string
	}{
		{"bad JSON", subject, []byte(`{"images": `), "400", "bad_json"},
		{"no image", subject, batchOf(), "422", "missing_field"},
		{"inline data", subject, map[string]any{"images": []map[string]any{{"data": []byte("x")}}}, "422", "invalid_image"},
		{"too many images", subject, batchOf(many...), "413", "too_many_images"},
		{"a task that disagrees with the subject", subject, map[string]any{"task": "ocr", "images": []map[string]any{{"key": "uploads/local/local/a.png"}}}, "422", "task_mismatch"},
		{"an unknown field", subject, map[string]any{"colour": "red", "images": []map[string]any{{"key": "uploads/local/local/a.png"}}}, "400", "bad_json"},
		{"every image missing", subject, batchOf("uploads/local/local/a.png"), "422", "missing_object"},
		{"an unknown task", schemas.SubmitBatchSubject("paint-a-cat"), batchOf("uploads/local/local/a.png"), "422", "unknown_model"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := request(t, nc, tt.subject, tt.body, nil)
			require.Equal(t, tt.status, res.Header.Get(micro.ErrorCodeHeader), "reply: %s", res.Data)
			var p ingest.Problem
			require.NoError(t, json.Unmarshal(res.Data, &p))
			require.Equal(t, tt.code, p.Code, "reply: %s", res.Data)
			require.Equal(t, tt.subject, p.Instance)
		})
	}
	e.requireNothingKept(t)
}

func TestNATSBatchIsChargedOnceAndTheActiveCapAppliesPerJob(t *testing.T) {
	e := newSecureEnv(t) // carol: 2 requests per hour, 3 active jobs
	serveNATSBatches(t, e.svc, e.srv.NC)
	nc, err := nats.Connect(e.srv.Embedded.ClientURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	keys := putUploads(t, e.svc.Blobs(), "uploads/ta/carol", 5)
	send := func(bearer string) *nats.Msg {
		return request(t, nc, schemas.SubmitBatchSubject(schemas.TaskRemoveBackground), batchOf(keys...), nats.Header{"Authorization": {"Bearer " + bearer}})
	}

	require.Equal(t, "401", send("not-a-token").Header.Get(micro.ErrorCodeHeader), "a caller without a valid credential gets nothing")
	res := send(e.tokens["carol"])
	require.Empty(t, res.Header.Get(micro.ErrorCodeHeader), "error reply: %s", res.Data)
	var reply schemas.BatchReply
	require.NoError(t, json.Unmarshal(res.Data, &reply))
	require.Len(t, reply.Jobs, 3, "the active-job cap admits three")
	require.Len(t, reply.Refused, 2)
	for i, ref := range reply.Refused {
		require.Equal(t, 3+i, ref.Index)
		require.Equal(t, "too_many_active_jobs", ref.Problem.Code)
	}
	for _, j := range reply.Jobs {
		rec, err := e.jobs.Get(context.Background(), j.JobID)
		require.NoError(t, err)
		require.Equal(t, "ta", rec.Tenant)
		require.Equal(t, "carol", rec.User)
	}

	// The first batch cost one request of two.
	res = send(e.tokens["carol"])
	require.Equal(t, "429", res.Header.Get(micro.ErrorCodeHeader), "reply: %s", res.Data)
	require.Contains(t, string(res.Data), "too_many_active_jobs")
	res = send(e.tokens["carol"])
	require.Equal(t, "429", res.Header.Get(micro.ErrorCodeHeader), "reply: %s", res.Data)
	require.Contains(t, string(res.Data), "rate_limited")
	require.NotEmpty(t, res.Header.Get("Retry-After"))

	// Another tenant's uploads are not the caller's to name.
	res = request(t, nc, schemas.SubmitBatchSubject(schemas.TaskRemoveBackground), batchOf(keys[0]), nats.Header{"Authorization": {"Bearer " + e.tokens["bob"]}})
	require.Equal(t, "422", res.Header.Get(micro.ErrorCodeHeader), "reply: %s", res.Data)
}
