package app

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"mime/multipart"
	"net/http"
	"testing"
	"time"

	"github.com/creativeai-studio/studio/ingest"
	"github.com/creativeai-studio/studio/schemas"
)

// BenchmarkPredictVersusSubmitAndPoll measures what a client waits for a small upscale
// (x2 of a 64x64 image, real Real-ESRGAN, the whole in-process pipeline) two ways: one
// POST /v2/predict with Prefer: wait=60, and POST /v1/jobs followed by GET /v1/jobs/{id}
// every 50 ms until the job is final. Every iteration sends a new image, so the result
// cache never answers. ns/op is the client's wall time per job.
func BenchmarkPredictVersusSubmitAndPoll(b *testing.B) {
	realAssets(b)
	api, _ := startUp(b, nil)
	seq := 0
	image64 := func() []byte {
		seq++
		img := image.NewNRGBA(image.Rect(0, 0, 64, 64))
		for y := range 64 {
			for x := range 64 {
				img.SetNRGBA(x, y, color.NRGBA{uint8(x*4 + seq), uint8(y * 4), uint8(seq * 7), 255})
			}
		}
		var buf bytes.Buffer
		_ = png.Encode(&buf, img)
		return buf.Bytes()
	}
	post := func(path string, header http.Header) (int, []byte) {
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		_ = mw.WriteField("task", "upscale")
		_ = mw.WriteField("params", `{"scale":2}`)
		fw, _ := mw.CreateFormFile("image", "small.png")
		_, _ = fw.Write(image64())
		_ = mw.Close()
		req, _ := http.NewRequest(http.MethodPost, api+path, &body)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, data
	}
	// One job first, so the model is loaded before either measurement.
	if code, body := post("/v2/predict", http.Header{"Prefer": {"wait=60"}}); code != http.StatusOK {
		b.Fatalf("warm-up predict = %d %s", code, body)
	}

	b.Run("predict", func(b *testing.B) {
		for b.Loop() {
			code, body := post("/v2/predict", http.Header{"Prefer": {"wait=60"}})
			var j struct {
				Status schemas.Status `json:"status"`
			}
			_ = json.Unmarshal(body, &j)
			if code != http.StatusOK || j.Status != schemas.StatusSucceeded {
				b.Fatalf("predict = %d %s", code, body)
			}
		}
	})
	b.Run("submit-and-poll-50ms", func(b *testing.B) {
		for b.Loop() {
			code, body := post("/v1/jobs", nil)
			if code != http.StatusAccepted {
				b.Fatalf("submit = %d %s", code, body)
			}
			var queued ingest.JobResponse
			_ = json.Unmarshal(body, &queued)
			deadline := time.Now().Add(time.Minute)
			for {
				j := getJob(b, api, queued.ID)
				if j.Status.Final() {
					if j.Status != schemas.StatusSucceeded {
						b.Fatal(fmt.Sprintf("job %s: %s", j.ID, j.Status))
					}
					break
				}
				if time.Now().After(deadline) {
					b.Fatalf("job %s not final in a minute", queued.ID)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	})
}
