package app

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/creativeai-studio/studio/ingest"
	"github.com/creativeai-studio/studio/internal/assets"
	"github.com/creativeai-studio/studio/schemas"
)

// eventLog collects the messages of one core NATS subscription.
type eventLog struct {
	mu   sync.Mutex
	msgs [][]byte
}

func (l *eventLog) add(m *nats.Msg) { l.mu.Lock(); l.msgs = append(l.msgs, m.Data); l.mu.Unlock() }

// forJob decodes every collected message of job id into a fresh T.
func forJob[T any](l *eventLog, id string) []T {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []T
	for _, b := range l.msgs {
		var probe struct {
			JobID string `json:"job_id"`
		}
		if json.Unmarshal(b, &probe) != nil || probe.JobID != id {
			continue
		}
		var v T
		_ = json.Unmarshal(b, &v)
		out = append(out, v)
	}
	return out
}

// TestEndToEndChainedSteps runs "cut out, then upscale x2" through the real pipeline
// and models, over HTTP and over the NATS entry.
func TestEndToEndChainedSteps(t *testing.T) {
	_, _, photo := realAssets(t)
	api, natsURL := startUp(t, func(c *Config) { c.MaxOutPixels = 3 << 20 })
	input, err := os.ReadFile(photo(assets.PhotoChelsea)) // 451x300
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var steps, results eventLog
	for subj, l := range map[string]*eventLog{"studio.steps.local.>": &steps, "studio.results.local.>": &results} {
		sub, err := nc.Subscribe(subj, l.add)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
	}
	_ = nc.Flush()

	// HTTP, multipart, the compact syntax of `studio submit --steps`.
	resp, body := submit(t, api, "chelsea.png", input, map[string]string{"steps": "remove-background,upscale:scale=2"})
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /v1/jobs with steps = %s %s", resp.Status, body)
	}
	var queued ingest.JobResponse
	_ = json.Unmarshal(body, &queued)
	if queued.Task != schemas.TaskRemoveBackground || len(queued.Chain) != 2 {
		t.Fatalf("queued job: task %q, chain %+v", queued.Task, queued.Chain)
	}

	// One progress bar: the percent never falls, and both steps show on it in order.
	var seen []ingest.JobResponse
	deadline := time.Now().Add(8 * time.Minute)
	var final ingest.JobResponse
	for time.Now().Before(deadline) {
		j := getJob(t, api, queued.ID)
		seen = append(seen, j)
		if j.Status.Final() {
			final = j
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if final.JobRecord == nil {
		t.Fatalf("chained job did not finish in 8 minutes (last seen %+v)", seen[len(seen)-1].JobRecord)
	}
	if final.Status != schemas.StatusSucceeded {
		t.Fatalf("chained job: %s %+v (last seen %+v)", final.Status, final.Error, seen[len(seen)-1].JobRecord)
	}
	sawFirst, sawSecond := false, false
	for i, j := range seen {
		if i > 0 && j.Percent < seen[i-1].Percent {
			t.Errorf("percent fell from %d to %d", seen[i-1].Percent, j.Percent)
		}
		if j.Status == schemas.StatusRunning && j.ChainStep == 0 && j.Percent > 0 && j.Percent < 50 {
			sawFirst = true
		}
		if j.Status == schemas.StatusRunning && j.ChainStep == 1 && j.Percent >= 50 && j.Percent < 100 {
			sawSecond = true
		}
	}
	if !sawFirst || !sawSecond {
		t.Errorf("progress did not span the steps: first step under 50%% seen %v, second step 50-99%% seen %v", sawFirst, sawSecond)
	}

	// Every step's outputs are kept and named; the final output is also under its plain name.
	for _, name := range []string{"step0.remove-background.cutout", "step0.remove-background.mask", "step1.upscale.image", "step1.upscale.thumbnail", "image"} {
		if final.Downloads[name] == "" {
			t.Fatalf("result %q missing; results: %v", name, final.Downloads)
		}
	}
	cut, err := png.Decode(bytes.NewReader(download(t, api, final.Downloads["step0.remove-background.cutout"])))
	if err != nil {
		t.Fatal(err)
	}
	up, err := png.Decode(bytes.NewReader(download(t, api, final.Downloads["step1.upscale.image"])))
	if err != nil {
		t.Fatal(err)
	}
	if b := cut.Bounds(); b.Dx() != 451 || b.Dy() != 300 {
		t.Errorf("cut-out is %v, want 451x300", b)
	}
	if b := up.Bounds(); b.Dx() != 902 || b.Dy() != 600 {
		t.Errorf("upscaled cut-out is %v, want 902x600", b)
	}
	if final.Results["image"].Key != final.Results["step1.upscale.image"].Key {
		t.Errorf("image is not the last step's output: %+v", final.Results)
	}
	for i, st := range final.Chain {
		if st.Status != schemas.StatusSucceeded || len(st.Results) == 0 || st.DurationsMS[schemas.StageInference] <= 0 {
			t.Errorf("step %d: %+v, want succeeded with results and its inference time", i, st)
		}
	}

	// Per-step events for each step, and one result event at the end.
	waitEvents := func(id string, wantSteps int) ([]schemas.StepEvent, []schemas.ResultEvent) {
		t.Helper()
		end := time.Now().Add(30 * time.Second)
		for {
			se, re := forJob[schemas.StepEvent](&steps, id), forJob[schemas.ResultEvent](&results, id)
			if len(se) >= wantSteps && len(re) >= 1 || time.Now().After(end) {
				time.Sleep(500 * time.Millisecond) // a duplicate would arrive by now
				return forJob[schemas.StepEvent](&steps, id), forJob[schemas.ResultEvent](&results, id)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	se, re := waitEvents(queued.ID, 2)
	if len(se) != 2 || se[0].Step != 0 || se[0].Task != schemas.TaskRemoveBackground || se[1].Step != 1 || se[1].Task != schemas.TaskUpscale {
		t.Errorf("step events = %+v, want step 0 remove-background then step 1 upscale", se)
	}
	if len(re) != 1 || re[0].Status != schemas.StatusSucceeded || re[0].Results["step1.upscale.image"].Key == "" || len(re[0].Chain) != 2 {
		t.Errorf("result events = %+v, want one, succeeded, with both steps", re)
	}

	t.Run("predict with the same JSON steps is answered from the cache at once", func(t *testing.T) {
		body, _ := json.Marshal(map[string]any{"image": map[string]any{"data": input}, "steps": []map[string]any{
			{"task": "remove-background"}, {"task": "upscale", "params": map[string]any{"scale": 2}}}})
		req, _ := http.NewRequest(http.MethodPost, api+"/v2/predict", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Prefer", "wait=30")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := readAll(resp)
		var job ingest.JobV2
		if err := json.Unmarshal(b, &job); err != nil || resp.StatusCode != http.StatusOK || job.Status != schemas.StatusSucceeded {
			t.Fatalf("POST /v2/predict = %s %s", resp.Status, b)
		}
		if len(job.Chain) != 2 || !job.Chain[0].CacheHit || !job.Chain[1].CacheHit || !job.CacheHit {
			t.Errorf("chain = %+v, want both steps from the cache", job.Chain)
		}
		names := map[string]bool{}
		for _, r := range job.Results {
			names[r.Name] = true
		}
		if !names["step0.remove-background.cutout"] || !names["step1.upscale.image"] || !names["image"] {
			t.Errorf("results %v", names)
		}
		if se, re := waitEvents(job.ID, 2); len(se) != 2 || len(re) != 1 {
			t.Errorf("cached chain: %d step events, %d results; want 2 and 1", len(se), len(re))
		}
	})

	t.Run("a redelivered step message does not run the step twice", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		stream, err := js.Stream(ctx, schemas.StreamRequests)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := stream.GetLastMsgForSubject(ctx, schemas.RequestSubject(schemas.TierNormal, schemas.TaskUpscale))
		if err != nil {
			t.Fatal(err)
		}
		var ev schemas.JobEvent
		if err := json.Unmarshal(msg.Data, &ev); err != nil || ev.JobID != queued.ID || ev.ChainStep != 1 {
			t.Fatalf("step 1 request: %+v (%v)", ev, err)
		}
		before := getJob(t, api, queued.ID)
		// A new message id gets past the stream's de-duplication, as a redelivery would.
		if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: msg.Subject, Data: msg.Data, Header: nats.Header{"Nats-Msg-Id": {queued.ID + ":again"}}}); err != nil {
			t.Fatal(err)
		}
		cons, err := js.Consumer(ctx, schemas.StreamRequests, "preprocess-normal")
		if err != nil {
			t.Fatal(err)
		}
		for {
			info, err := cons.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if info.NumPending == 0 && info.NumAckPending == 0 {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("the republished step was not consumed: %+v", info)
			}
			time.Sleep(50 * time.Millisecond)
		}
		after := getJob(t, api, queued.ID)
		if !after.UpdatedAt.Equal(before.UpdatedAt) || after.Stages[schemas.StagePreprocess].StartedAt != before.Stages[schemas.StagePreprocess].StartedAt {
			t.Errorf("the record changed: preprocess started %v then %v", before.Stages[schemas.StagePreprocess].StartedAt, after.Stages[schemas.StagePreprocess].StartedAt)
		}
		if se, re := waitEvents(queued.ID, 3); len(se) != 2 || len(re) != 1 {
			t.Errorf("after the redelivery: %d step events, %d results; want 2 and 1", len(se), len(re))
		}
	})

	t.Run("the NATS entry takes steps and the cache answers a repeated step", func(t *testing.T) {
		// Same input and first step: the cache answers step 0; step 1 asks for sRGB, so it runs.
		req, _ := json.Marshal(schemas.JobRequest{Image: &schemas.ImageInput{Data: input}, Steps: []schemas.StepRequest{
			{Task: schemas.TaskRemoveBackground},
			{Task: schemas.TaskUpscale, Params: map[string]any{"scale": 2, "color": "srgb"}},
		}})
		msg, err := nc.Request(schemas.SubmitSubject(schemas.TaskRemoveBackground), req, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var reply schemas.SubmitReply
		if err := json.Unmarshal(msg.Data, &reply); err != nil || reply.JobID == "" {
			t.Fatalf("NATS submit reply %s (%v)", msg.Data, err)
		}
		j := waitFinal(t, api, reply.JobID, 8*time.Minute)
		if j.Status != schemas.StatusSucceeded {
			t.Fatalf("NATS chained job: %s %+v", j.Status, j.Error)
		}
		if len(j.Chain) != 2 || !j.Chain[0].CacheHit || j.Chain[1].CacheHit {
			t.Errorf("cache hits per step = %+v, want step 0 from the cache and step 1 run", j.Chain)
		}
		for _, name := range []string{"step0.remove-background.cutout", "step1.upscale.image", "image"} {
			if j.Downloads[name] == "" {
				t.Errorf("result %q missing; results: %v", name, j.Downloads)
			}
		}
		if !strings.HasPrefix(reply.ResultSubject, "studio.results.local.remove-background") {
			t.Errorf("result subject %q", reply.ResultSubject)
		}
		se, re := waitEvents(reply.JobID, 2)
		if len(se) != 2 || !se[0].CacheHit || len(re) != 1 {
			t.Errorf("NATS job: step events %+v, %d results; want 2 (the first a cache hit) and 1", se, len(re))
		}
	})

	t.Run("invalid chains are refused with a problem naming the step", func(t *testing.T) {
		tests := []struct {
			name  string
			json  string            // a JSON body, or
			form  map[string]string // multipart fields
			field string
		}{
			{name: "ocr text cannot be upscaled (form)", form: map[string]string{"steps": "ocr,upscale"}, field: "steps.1.task"},
			{name: "an unknown task (JSON)", json: `{"steps":[{"task":"remove-background"},{"task":"sharpen"}]}`, field: "steps.1.task"},
			{name: "too many steps (form)", form: map[string]string{"steps": "upscale,upscale,upscale,upscale,upscale"}, field: "steps"},
			{name: "a step's parameter out of range (JSON)", json: `{"steps":[{"task":"remove-background"},{"task":"upscale","params":{"scale":9}}]}`, field: "steps.1.params.scale"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				var resp *http.Response
				var body []byte
				if tt.form != nil {
					resp, body = submit(t, api, "chelsea.png", input, tt.form)
				} else {
					var doc map[string]any
					_ = json.Unmarshal([]byte(tt.json), &doc)
					doc["image"] = map[string]any{"data": input}
					b, _ := json.Marshal(doc)
					r, err := http.Post(api+"/v1/jobs", "application/json", bytes.NewReader(b))
					if err != nil {
						t.Fatal(err)
					}
					defer r.Body.Close()
					resp = r
					body, _ = readAll(r)
				}
				var p schemas.Problem
				_ = json.Unmarshal(body, &p)
				if resp.StatusCode != http.StatusUnprocessableEntity || len(p.Errors) == 0 || p.Errors[0].Field != tt.field {
					t.Fatalf("= %s %s, want 422 naming %s", resp.Status, body, tt.field)
				}
			})
		}
		req, _ := json.Marshal(schemas.JobRequest{Image: &schemas.ImageInput{Data: input}, Steps: []schemas.StepRequest{{Task: schemas.TaskOCR}, {Task: schemas.TaskUpscale}}})
		msg, err := nc.Request(schemas.SubmitSubject(schemas.TaskOCR), req, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var p schemas.Problem
		_ = json.Unmarshal(msg.Data, &p)
		if msg.Header.Get("Nats-Service-Error-Code") != "422" || len(p.Errors) == 0 || p.Errors[0].Field != "steps.1.task" {
			t.Fatalf("NATS invalid chain: %v %s", msg.Header, msg.Data)
		}
	})
}

func readAll(r *http.Response) ([]byte, error) {
	var b bytes.Buffer
	_, err := b.ReadFrom(r.Body)
	return b.Bytes(), err
}
