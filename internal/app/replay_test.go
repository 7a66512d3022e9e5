package app

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/creativeai-studio/studio/ingest"
	"github.com/creativeai-studio/studio/internal/assets"
	"github.com/creativeai-studio/studio/internal/blob/natsobj"
	"github.com/creativeai-studio/studio/internal/erasure"
	"github.com/creativeai-studio/studio/internal/jobs"
	"github.com/creativeai-studio/studio/internal/models"
	"github.com/creativeai-studio/studio/internal/replay"
	"github.com/creativeai-studio/studio/schemas"
)

// hookRecorder is a webhook receiver that keeps every body it is sent.
type hookRecorder struct {
	mu     sync.Mutex
	bodies []string
}

func (h *hookRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	h.bodies = append(h.bodies, string(b))
	h.mu.Unlock()
}

func (h *hookRecorder) all() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.bodies...)
}

// TestReplayOnTheShadowLane replays past remove-background jobs of a running studio
// (real IS-Net small) to the version that made them: every row is compared with IoU
// 1.0 and published for replay_results; the shadow jobs stay out of the user's listing,
// lookups, result events and webhooks; an erased user's request is not replayed; the
// window never selects a shadow run; and erasing the user removes the shadow jobs too.
func TestReplayOnTheShadowLane(t *testing.T) {
	_, _, photo := realAssets(t)
	hook := &hookRecorder{}
	hooks := httptest.NewServer(hook)
	defer hooks.Close()
	api, natsURL := startUp(t, func(c *Config) {
		c.WebhookSecret, c.WebhookAllowPrivate = "replay-test-secret", true
	})
	ctx := context.Background()
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	read := func(a assets.Asset) []byte {
		b, err := os.ReadFile(photo(a))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	since := time.Now().Add(-time.Minute)

	// The HTTP caller's jobs, each with a webhook.
	var originals []string
	for _, a := range []assets.Asset{assets.PhotoAstronaut, assets.PhotoCoffee, assets.PhotoChelsea} {
		resp, body := submit(t, api, a.Name, read(a), map[string]string{"task": "remove-background", "callback_url": hooks.URL + "/hook"})
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST /v1/jobs %s = %s: %s", a.Name, resp.Status, body)
		}
		var j ingest.JobResponse
		_ = json.Unmarshal(body, &j)
		originals = append(originals, j.ID)
	}
	// Another user's job through the NATS entry; that user is erased before the replay.
	req, _ := json.Marshal(schemas.JobRequest{Tenant: "local", User: "bob", Image: &schemas.ImageInput{Data: read(assets.PhotoCamera)}})
	msg, err := nc.Request(schemas.SubmitSubject(schemas.TaskRemoveBackground), req, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var bob schemas.SubmitReply
	if err := json.Unmarshal(msg.Data, &bob); err != nil || bob.JobID == "" {
		t.Fatalf("NATS submit reply %s (%v)", msg.Data, err)
	}
	for _, id := range append(originals, bob.JobID) {
		if j := waitFinal(t, api, id, 5*time.Minute); j.Status != schemas.StatusSucceeded {
			t.Fatalf("original %s ended %s: %+v", id, j.Status, j.Error)
		}
	}
	blobs, err := natsobj.Open(ctx, js, natsobj.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	eraser, err := erasure.NewEraser(ctx, js, blobs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eraser.Erase(ctx, "local", "bob"); err != nil {
		t.Fatal(err)
	}

	all, _, err := Manifests(&Config{Models: "isnet@small"})
	if err != nil {
		t.Fatal(err)
	}
	cat := models.NewCatalog()
	for _, m := range all {
		if err := cat.Add(models.Spec{Manifest: m}); err != nil {
			t.Fatal(err)
		}
	}
	spec, err := replay.Target(cat, schemas.TaskRemoveBackground, "isnet@small")
	if err != nil {
		t.Fatal(err)
	}
	store, err := jobs.Open(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	runner := &replay.Runner{JS: js, Jobs: store, Blobs: blobs}
	rep, err := runner.Run(ctx, replay.Plan{Window: replay.Window{Task: schemas.TaskRemoveBackground, Since: since}, To: spec, Wait: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("each replayed job matches its original exactly", func(t *testing.T) {
		if len(rep.Rows) != len(originals) {
			t.Fatalf("%d rows, want %d (one per original): %+v", len(rep.Rows), len(originals), rep.Rows)
		}
		for i, row := range rep.Rows {
			if row.JobID != originals[i] || row.Outcome != schemas.ReplayCompared || row.IoU == nil || *row.IoU != 1 {
				t.Errorf("row %d = %+v (iou %v), want job %s compared with IoU 1", i, row, row.IoU, originals[i])
			}
			if row.OriginalVersion != "small" || row.ShadowVersion != "small" || row.ShadowMS <= 0 || !strings.HasPrefix(row.ShadowJobID, "shadow-") {
				t.Errorf("row %d versions/timing = %s -> %s, %.1f ms, shadow %q", i, row.OriginalVersion, row.ShadowVersion, row.ShadowMS, row.ShadowJobID)
			}
		}
		if len(rep.Summaries) != 1 || rep.Summaries[0].MeanIoU != 1 || rep.Summaries[0].Compared != 3 {
			t.Errorf("summaries %+v", rep.Summaries)
		}
	})

	t.Run("the rows are published for replay_results", func(t *testing.T) {
		got := telemetryRows(t, ctx, js, rep.ID)
		if len(got) != len(originals) {
			t.Errorf("%d rows of %s on %s, want %d", len(got), rep.ID, schemas.SubjectReplayResults, len(originals))
		}
	})

	t.Run("an erased user's request is not replayed", func(t *testing.T) {
		for _, row := range rep.Rows {
			if row.JobID == bob.JobID || row.User == "bob" {
				t.Errorf("bob's job was replayed: %+v", row)
			}
		}
	})

	t.Run("the shadow jobs are invisible to their user", func(t *testing.T) {
		var list ingest.JobList
		if code := admin(t, api, http.MethodGet, "/v1/jobs", "", &list); code != http.StatusOK {
			t.Fatalf("GET /v1/jobs = %d", code)
		}
		listed := map[string]bool{}
		for _, j := range list.Jobs {
			listed[j.ID] = true
		}
		for i, row := range rep.Rows {
			if !listed[originals[i]] || listed[row.ShadowJobID] {
				t.Errorf("listing has original %v, shadow %v; want the original only", listed[originals[i]], listed[row.ShadowJobID])
			}
			if code := admin(t, api, http.MethodGet, "/v1/jobs/"+row.ShadowJobID, "", nil); code != http.StatusNotFound {
				t.Errorf("GET /v1/jobs/%s = %d, want 404", row.ShadowJobID, code)
			}
		}
	})

	t.Run("the shadow jobs send no result event and no webhook", func(t *testing.T) {
		// A job submitted after the replay: once its webhook arrives, any shadow
		// webhook (queued earlier) would have arrived too.
		resp, body := submit(t, api, "rocket.jpg", read(assets.PhotoRocket), map[string]string{"task": "remove-background", "callback_url": hooks.URL + "/hook"})
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST /v1/jobs = %s: %s", resp.Status, body)
		}
		var last ingest.JobResponse
		_ = json.Unmarshal(body, &last)
		waitFinal(t, api, last.ID, 5*time.Minute)
		deadline := time.Now().Add(time.Minute)
		for !strings.Contains(strings.Join(hook.all(), "\n"), last.ID) {
			if time.Now().After(deadline) {
				t.Fatalf("the last job's webhook never came; got %d", len(hook.all()))
			}
			time.Sleep(50 * time.Millisecond)
		}
		for _, b := range hook.all() {
			if strings.Contains(b, "shadow-") {
				t.Errorf("a shadow job's webhook was sent: %s", b)
			}
		}
		for _, data := range streamBodies(t, ctx, js, schemas.StreamResults, schemas.ResultSubject("local", schemas.TaskRemoveBackground)) {
			if strings.Contains(data, "shadow-") {
				t.Errorf("a shadow job's result event was published: %s", data)
			}
		}
	})

	t.Run("the window never selects a shadow run", func(t *testing.T) {
		_, skipped, err := replay.ReadWindow(ctx, js, store, replay.Window{Task: schemas.TaskRemoveBackground, Since: since})
		if err != nil {
			t.Fatal(err)
		}
		if skipped.Shadow != len(originals) {
			t.Errorf("skipped %+v, want %d shadow requests", skipped, len(originals))
		}
	})

	t.Run("erasing the user removes the shadow jobs", func(t *testing.T) {
		if _, err := eraser.Erase(ctx, "local", rep.Rows[0].User); err != nil {
			t.Fatal(err)
		}
		for _, row := range rep.Rows {
			if _, err := store.Get(ctx, row.ShadowJobID); !errors.Is(err, jobs.ErrNotFound) {
				t.Errorf("shadow job %s after erasure: %v, want not found", row.ShadowJobID, err)
			}
			keys, err := blobs.Keys(ctx, "results/local/"+row.ShadowJobID+"/")
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range keys {
				if info, err := blobs.Stat(ctx, k); err == nil {
					t.Errorf("shadow result %s survived erasure (%d bytes)", k, info.Size)
				}
			}
		}
	})
}

// telemetryRows reads the replay rows of replayID from the TELEMETRY stream.
func telemetryRows(t *testing.T, ctx context.Context, js jetstream.JetStream, replayID string) []schemas.ReplayResult {
	t.Helper()
	var out []schemas.ReplayResult
	for _, data := range streamBodies(t, ctx, js, schemas.StreamTelemetry, schemas.SubjectReplayResults) {
		var r schemas.ReplayResult
		if err := json.Unmarshal([]byte(data), &r); err != nil {
			t.Fatal(err)
		}
		if r.Validate() != nil {
			t.Errorf("invalid row %s: %v", data, r.Validate())
		}
		if r.ReplayID == replayID {
			out = append(out, r)
		}
	}
	return out
}

// streamBodies returns the bodies of every message on subject in stream.
func streamBodies(t *testing.T, ctx context.Context, js jetstream.JetStream, stream, subject string) []string {
	t.Helper()
	st, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	c, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for {
		batch, err := c.Fetch(100, jetstream.FetchMaxWait(500*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			out = append(out, string(m.Data()))
		}
		if n == 0 {
			return out
		}
	}
}
