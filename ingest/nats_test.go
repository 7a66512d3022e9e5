package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/ingest"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
)

// results follows studio.results.> with a plain NATS subscription.
type results struct {
	ch chan *nats.Msg
}

func (e *env) subscribeResults(t *testing.T) *results {
	t.Helper()
	ch := make(chan *nats.Msg, 64)
	sub, err := e.srv.NC.ChanSubscribe("studio.results.>", ch)
	require.NoError(t, err)
	require.NoError(t, e.srv.NC.Flush())
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return &results{ch: ch}
}

func (r *results) next(t *testing.T) schemas.ResultEvent {
	t.Helper()
	select {
	case m := <-r.ch:
		var ev schemas.ResultEvent
		require.NoError(t, json.Unmarshal(m.Data, &ev))
		return ev
	case <-time.After(30 * time.Second):
		t.Fatal("no result event within 30s")
	}
	return schemas.ResultEvent{}
}

// none checks that no result event arrives within d.
func (r *results) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case m := <-r.ch:
		t.Fatalf("unexpected result event: %s", m.Data)
	case <-time.After(d):
	}
}

// serveNATS runs the NATS entry until the test ends.
func (e *env) serveNATS(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.svc.ServeNATS(ctx, streams.RequestServer{NC: e.srv.NC}) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Error("ServeNATS did not return")
		}
	})
	// Listening once the micro service answers a ping.
	streamsEventually(t, func() bool {
		_, err := e.srv.NC.Request("$SRV.PING.studio-ingest", nil, 200*time.Millisecond)
		return err == nil
	}, "the NATS entry did not start")
}

// upstream is a system outside the service: its own NATS connection, speaking only
// the documented subjects.
func (e *env) upstream(t *testing.T) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(e.srv.Embedded.ClientURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	return nc
}

func request(t *testing.T, nc *nats.Conn, subject string, body any, hdr nats.Header) *nats.Msg {
	t.Helper()
	m := nats.NewMsg(subject)
	switch b := body.(type) {
	case []byte:
		m.Data = b
	default:
		data, err := json.Marshal(b)
		require.NoError(t, err)
		m.Data = data
	}
	for k, v := range hdr {
		m.Header[k] = v
	}
	res, err := nc.RequestMsg(m, 30*time.Second)
	require.NoError(t, err)
	return res
}

func TestNATSRequestRoundTripsToAResultEventADurableConsumerResumes(t *testing.T) {
	p := newPipeline(t, ingest.Config{})
	p.serveNATS(t)
	nc := p.upstream(t)
	ctx := context.Background()

	// A downstream system's durable consumer, created before the job, reading later.
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	cons, err := js.CreateOrUpdateConsumer(ctx, schemas.StreamResults, jetstream.ConsumerConfig{
		Durable: "partner-a", FilterSubject: "studio.results.acme.>", AckPolicy: jetstream.AckExplicitPolicy,
	})
	require.NoError(t, err)

	img := encodePNG(t, gridImage(6, 4))
	res := request(t, nc, "studio.submit.remove-background", schemas.JobRequest{
		Tenant: "acme", User: "batch-7", Tier: schemas.TierPremium,
		Params: map[string]any{"threshold": 0.25}, Image: &schemas.ImageInput{Data: img},
	}, nats.Header{"traceparent": {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}})
	require.Empty(t, res.Header.Get(micro.ErrorCodeHeader), "error reply: %s", res.Data)
	var reply schemas.SubmitReply
	require.NoError(t, json.Unmarshal(res.Data, &reply))
	require.Equal(t, schemas.SchemaJobSubmitted, reply.Schema)
	require.NotEmpty(t, reply.JobID)
	require.Equal(t, schemas.StatusQueued, reply.Status)
	require.Equal(t, "studio.results.acme.remove-background", reply.ResultSubject)
	require.Equal(t, "/v1/jobs/"+reply.JobID+"/events", reply.EventsURL)
	require.Equal(t, "0af7651916cd43dd8448eb211c80319c", reply.TraceID)

	rec, err := p.jobs.Get(ctx, reply.JobID)
	require.NoError(t, err)
	require.Equal(t, "acme", rec.Tenant)
	require.Equal(t, "batch-7", rec.User)
	require.Equal(t, schemas.TierPremium, rec.Tier)
	msgs := p.requestMsgs(t)
	require.Len(t, msgs, 1)
	require.Equal(t, "studio.requests.premium.remove-background", msgs[0].Subject)

	p.runAll()
	p.openAll()
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(30*time.Second))
	require.NoError(t, err)
	var got []schemas.ResultEvent
	for m := range batch.Messages() {
		var ev schemas.ResultEvent
		require.NoError(t, json.Unmarshal(m.Data(), &ev))
		got = append(got, ev)
		require.NoError(t, m.Ack())
	}
	require.Len(t, got, 1)
	require.Equal(t, reply.JobID, got[0].JobID)
	require.Equal(t, schemas.StatusSucceeded, got[0].Status)
	require.Equal(t, schemas.SchemaJobResult, got[0].Schema)
	require.Contains(t, got[0].Results, "cutout")
}

func TestNATSEntryUsesUploadedObjectsAndIdempotencyKeys(t *testing.T) {
	e := newEnv(t, ingest.Config{})
	e.serveNATS(t)
	nc := e.upstream(t)
	// The upstream system put the image into the object store itself.
	key := "uploads/acme/scan-0001.jpg"
	img := encodeJPEG(t, photoImage(40, 30))
	_, err := e.blobs.Put(context.Background(), key, bytes.NewReader(img), int64(len(img)), "")
	require.NoError(t, err)

	body := schemas.JobRequest{Schema: schemas.SchemaJobSubmit, Tenant: "acme", Image: &schemas.ImageInput{Key: key}}
	hdr := nats.Header{"Idempotency-Key": {"scan-0001"}}
	first := request(t, nc, "studio.submit.remove-background", body, hdr)
	second := request(t, nc, "studio.submit.remove-background", body, hdr)
	var a, b schemas.SubmitReply
	require.NoError(t, json.Unmarshal(first.Data, &a), "%s", first.Data)
	require.NoError(t, json.Unmarshal(second.Data, &b), "%s", second.Data)
	require.NotEmpty(t, a.JobID)
	require.Equal(t, a.JobID, b.JobID, "the same key and body give the same job")
	require.False(t, a.Replayed)
	require.True(t, b.Replayed)
	require.Len(t, e.requestMsgs(t), 1)
	require.Equal(t, 40, mustJob(t, e, a.JobID).Input.Width)

	body.Params = map[string]any{"feather": 3}
	conflict := request(t, nc, "studio.submit.remove-background", body, hdr)
	require.Equal(t, "409", conflict.Header.Get(micro.ErrorCodeHeader))
}

func TestNATSEntryAnswersInvalidRequestsWithStructuredErrors(t *testing.T) {
	e := newEnv(t, ingest.Config{})
	e.serveNATS(t)
	nc := e.upstream(t)
	img := encodePNG(t, gridImage(2, 2))
	tests := []struct {
		name    string
		subject string
		body    any
		status  string
		code    string
		field   string
	}{
		{"bad JSON", "studio.submit.remove-background", []byte(`{"image": `), "400", "bad_json", ""},
		{"a missing image", "studio.submit.remove-background", map[string]any{"tier": "free"}, "422", "missing_field", "image"},
		{"an out-of-range parameter", "studio.submit.remove-background", map[string]any{"image": map[string]any{"data": img}, "params": map[string]any{"threshold": 7}}, "422", "invalid_params", "params.threshold"},
		{"an unknown parameter", "studio.submit.remove-background", map[string]any{"image": map[string]any{"data": img}, "params": map[string]any{"radius": 1}}, "422", "invalid_params", "params.radius"},
		{"an unknown output format", "studio.submit.remove-background", map[string]any{"image": map[string]any{"data": img}, "params": map[string]any{"format": "tiff"}}, "422", "invalid_params", "params.format"},
		{"a quality with png", "studio.submit.remove-background", map[string]any{"image": map[string]any{"data": img}, "params": map[string]any{"format": "png", "quality": 50}}, "422", "invalid_params", "params.quality"},
		{"a background that is no colour", "studio.submit.remove-background", map[string]any{"image": map[string]any{"data": img}, "params": map[string]any{"format": "jpeg", "background": "#fff"}}, "422", "invalid_params", "params.background"},
		{"a format for ocr, which returns no image", "studio.submit.ocr", map[string]any{"image": map[string]any{"data": img}, "params": map[string]any{"format": "jpeg"}}, "422", "invalid_params", "params.format"},
		{"an unknown task", "studio.submit.paint-a-cat", map[string]any{"image": map[string]any{"data": img}}, "422", "unknown_model", "task"},
		{"a task that disagrees with the subject", "studio.submit.remove-background", map[string]any{"task": "ocr", "image": map[string]any{"data": img}}, "422", "task_mismatch", "task"},
		{"an unknown field", "studio.submit.remove-background", map[string]any{"image": map[string]any{"data": img}, "colour": "red"}, "422", "invalid_field", "colour"},
		{"not an image", "studio.submit.remove-background", map[string]any{"image": map[string]any{"data": []byte("hello, world")}}, "415", "not_an_image", "image.data"},
		{"a pixel bomb", "studio.submit.remove-background", map[string]any{"image": map[string]any{"data": pngHeaderOnly(100000, 100000)}}, "413", "image_too_large", "image.data"},
		{"a user id that is not a name", "studio.submit.remove-background", map[string]any{"user": "ann@example.com", "image": map[string]any{"data": img}}, "422", "invalid_user", "user"},
		{"another tenant's object", "studio.submit.remove-background", map[string]any{"tenant": "acme", "image": map[string]any{"key": "uploads/other/x.png"}}, "422", "invalid_image", "image.key"},
		{"a missing object", "studio.submit.remove-background", map[string]any{"image": map[string]any{"key": "uploads/local/nothing.png"}}, "422", "missing_object", "image.key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := request(t, nc, tt.subject, tt.body, nil)
			require.Equal(t, tt.status, res.Header.Get(micro.ErrorCodeHeader), "reply: %s", res.Data)
			require.Contains(t, res.Header.Get(micro.ErrorHeader), tt.code)
			var p ingest.Problem
			require.NoError(t, json.Unmarshal(res.Data, &p))
			require.Equal(t, tt.code, p.Code)
			require.Equal(t, tt.subject, p.Instance)
			require.NotEmpty(t, p.Detail)
			if tt.field != "" {
				require.Contains(t, fieldsOf(p), tt.field)
				for _, f := range p.Errors {
					if f.Field == tt.field {
						require.NotEmpty(t, f.Constraint, "the problem names the constraint")
					}
				}
			}
		})
	}
	e.requireNothingKept(t)
}

func mustJob(t *testing.T, e *env, id string) *schemas.JobRecord {
	t.Helper()
	rec, err := e.jobs.Get(context.Background(), id)
	require.NoError(t, err)
	return rec
}
