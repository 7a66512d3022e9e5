package app

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"image/png"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/nats-io/nats.go"

	"github.com/creativeai-studio/studio/ingest"
	"github.com/creativeai-studio/studio/internal/diffusion/diffusiontest"
	"github.com/creativeai-studio/studio/schemas"
)

var updateGenerateGolden = flag.Bool("update-generate-golden", false, "rewrite testdata/generate-golden.txt")

// tinySD writes a test export (synthetic random-weight graphs with a real export's
// names, shapes and dtypes: see diffusiontest) and its manifest into dir.
func tinySD(t *testing.T, dir string) {
	t.Helper()
	if err := diffusiontest.WriteExport(filepath.Join(dir, "tiny-sd"), diffusiontest.Options{}); err != nil {
		t.Fatal(err)
	}
	manifest := `name: tiny-sd
version: test
task: generate
default: true
license: test-only (synthetic random weights)
source:
  export: tiny-sd
diffusion:
  steps: 4
  guidance: 7.5
  width: 64
  height: 64
`
	if err := os.WriteFile(filepath.Join(dir, "tiny-sd.yaml"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
}

func postJSON(t *testing.T, url string, body any) (*http.Response, []byte) {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp, out
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestGenerateEndToEnd runs text-to-image jobs through `studio up` with a test export:
// the HTTP API (JSON, no image), per-step progress on the WebSocket, a golden image for
// a fixed seed, the same image again from the NATS entry, cancellation between steps,
// and a request with an image refused.
func TestGenerateEndToEnd(t *testing.T) {
	realAssets(t)
	dir := t.TempDir()
	tinySD(t, dir)
	api, natsURL := startUp(t, func(c *Config) { c.ModelDir = dir; c.Models = "realesrgan@general-x4v3" })
	req := map[string]any{"task": "generate", "params": map[string]any{"prompt": "a photo of a red cat", "negative_prompt": "blurry", "seed": 42, "steps": 6}}

	var goldenSum string
	t.Run("POST /v1/jobs with a prompt makes a PNG and reports every denoising step", func(t *testing.T) {
		resp, body := postJSON(t, api+"/v1/jobs", req)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST = %s %s", resp.Status, body)
		}
		var job ingest.JobResponse
		if err := json.Unmarshal(body, &job); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(api, "http")+"/v1/jobs/"+job.ID+"/events", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.CloseNow()
		steps := map[int]bool{}
		var last ingest.EventFrame
		for !last.Status.Final() {
			if err := wsjson.Read(ctx, conn, &last); err != nil {
				t.Fatalf("WebSocket: %v (frames so far: steps %v)", err, steps)
			}
			if last.Steps > 0 {
				if last.Steps != 6 {
					t.Errorf("frame says %d steps, want 6", last.Steps)
				}
				steps[last.Step] = true
			}
		}
		if last.Status != schemas.StatusSucceeded {
			t.Fatalf("job ended %s: %+v", last.Status, last.Job.Error)
		}
		// The KV watch may coalesce quick updates, but the last step is always seen.
		if !steps[6] || len(steps) < 2 {
			t.Errorf("step frames seen %v, want several ending with 6", steps)
		}
		final := getJob(t, api, job.ID)
		if final.Input.ContentType != "application/json" {
			t.Errorf("input is %q, want the prompt document", final.Input.ContentType)
		}
		img := download(t, api, final.Downloads["image"])
		decoded, err := png.Decode(bytes.NewReader(img))
		if err != nil {
			t.Fatal(err)
		}
		if b := decoded.Bounds(); b.Dx() != 64 || b.Dy() != 64 {
			t.Errorf("image is %v, want 64x64", b)
		}
		goldenSum = sha(img)
		golden := filepath.Join("testdata", "generate-golden.txt")
		if *updateGenerateGolden {
			if err := os.WriteFile(golden, []byte(goldenSum+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, _ := os.ReadFile(golden)
		if strings.TrimSpace(string(want)) != goldenSum {
			t.Errorf("image.png sha256 %s, golden %s (-update-generate-golden after an intended change)", goldenSum, want)
		}
	})

	t.Run("the NATS entry runs the same request again to the same image", func(t *testing.T) {
		nc, err := nats.Connect(natsURL)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		// Another tenant, so the result cache (per tenant) cannot answer: this is a
		// second run of the pipeline.
		body, _ := json.Marshal(map[string]any{"tenant": "other", "user": "u1", "params": req["params"]})
		msg, err := nc.Request(schemas.SubmitSubject(schemas.TaskGenerate), body, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var reply schemas.SubmitReply
		if err := json.Unmarshal(msg.Data, &reply); err != nil || reply.JobID == "" {
			t.Fatalf("reply %s: %v", msg.Data, err)
		}
		final := waitFinal(t, api, reply.JobID, 2*time.Minute)
		if final.Status != schemas.StatusSucceeded || final.CacheHit {
			t.Fatalf("job %s cache hit %v: %+v", final.Status, final.CacheHit, final.Error)
		}
		if got := sha(download(t, api, final.Downloads["image"])); goldenSum != "" && got != goldenSum {
			t.Errorf("second run gave %s, first %s", got, goldenSum)
		}
	})

	t.Run("several images, and a seed drawn when none is sent", func(t *testing.T) {
		resp, body := postJSON(t, api+"/v1/jobs", map[string]any{"task": "generate", "params": map[string]any{"prompt": "a dog", "num_images": 2, "width": 64, "height": 72, "steps": 2}})
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST = %s %s", resp.Status, body)
		}
		var job ingest.JobResponse
		_ = json.Unmarshal(body, &job)
		if _, ok := job.Params["seed"].(float64); !ok {
			t.Errorf("params %v: no seed recorded", job.Params)
		}
		final := waitFinal(t, api, job.ID, 2*time.Minute)
		if final.Status != schemas.StatusSucceeded {
			t.Fatalf("%s: %+v", final.Status, final.Error)
		}
		for _, name := range []string{"image", "image-2", "thumbnail"} {
			if final.Downloads[name] == "" {
				t.Errorf("no %s in %v", name, final.Downloads)
			}
		}
		img, err := png.Decode(bytes.NewReader(download(t, api, final.Downloads["image-2"])))
		if err != nil || img.Bounds().Dx() != 64 || img.Bounds().Dy() != 72 {
			t.Errorf("image-2: %v %v", img.Bounds(), err)
		}
	})

	t.Run("cancelling a running job stops it between steps", func(t *testing.T) {
		resp, body := postJSON(t, api+"/v1/jobs", map[string]any{"task": "generate", "params": map[string]any{"prompt": "a red dog", "steps": 150, "width": 1024, "height": 1024, "seed": 1}})
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST = %s %s", resp.Status, body)
		}
		var job ingest.JobResponse
		_ = json.Unmarshal(body, &job)
		deadline := time.Now().Add(time.Minute)
		for getJob(t, api, job.ID).Step == 0 {
			if time.Now().After(deadline) {
				t.Fatal("no denoising step reported within a minute")
			}
			time.Sleep(10 * time.Millisecond)
		}
		r, _ := http.NewRequest(http.MethodDelete, api+"/v1/jobs/"+job.ID, nil)
		dr, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		dr.Body.Close()
		final := waitFinal(t, api, job.ID, time.Minute)
		if final.Status != schemas.StatusCancelled || final.Step >= 150 || len(final.Results) != 0 {
			t.Errorf("status %s at step %d/%d with results %v, want cancelled before the last step", final.Status, final.Step, final.Steps, final.Results)
		}
	})

	t.Run("bad requests are refused at the door", func(t *testing.T) {
		cases := []struct {
			name string
			body map[string]any
			code string
		}{
			{"an image is refused", map[string]any{"task": "generate", "image": map[string]any{"data": "iVBORw0KGgo="}, "params": map[string]any{"prompt": "x"}}, "invalid_image"},
			{"a missing prompt is refused", map[string]any{"task": "generate", "params": map[string]any{"seed": 1}}, "missing_field"},
			{"a width that is not a multiple of 8 is refused", map[string]any{"task": "generate", "params": map[string]any{"prompt": "x", "width": 100}}, "invalid_params"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				resp, body := postJSON(t, api+"/v1/jobs", c.body)
				if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(string(body), c.code) {
					t.Errorf("POST = %s %s, want 422 %s", resp.Status, body, c.code)
				}
			})
		}
	})
}
