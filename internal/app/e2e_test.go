package app

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/ingest"
	"github.com/creativeai-studio/studio/internal/assets"
	"github.com/creativeai-studio/studio/internal/imageio"
	"github.com/creativeai-studio/studio/internal/models"
	"github.com/creativeai-studio/studio/processors"
	"github.com/creativeai-studio/studio/processors/inference/ort"
	"github.com/creativeai-studio/studio/processors/postprocess"
	"github.com/creativeai-studio/studio/processors/preprocess"
	"github.com/creativeai-studio/studio/schemas"
)

// realAssets returns the cached ONNX Runtime library, IS-Net small and a photo, fetching
// them when missing. Without them the test skips under -short and fails otherwise.
func realAssets(t testing.TB) (lib, model string, photo func(assets.Asset) string) {
	t.Helper()
	if testing.Short() {
		t.Skip("real-model test skipped with -short")
	}
	cache := &assets.Cache{Dir: assets.DefaultDir()}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var err error
	if lib, err = cache.Ensure(ctx, assets.ONNXRuntimeCPU); err != nil {
		t.Fatalf("ONNX Runtime library: %v (run `studio fetch runtime`)", err)
	}
	if model, err = cache.Ensure(ctx, assets.ISNetSmall); err != nil {
		t.Fatalf("IS-Net model: %v (run `studio fetch models`)", err)
	}
	return lib, model, func(a assets.Asset) string {
		p, err := cache.Ensure(ctx, a)
		if err != nil {
			t.Fatalf("photo %s: %v (run `studio fetch photos`)", a.Name, err)
		}
		return p
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startUp runs Up in the background and returns the API URL and the NATS URL. Logs are
// discarded unless STUDIO_TEST_LOGS is set.
func startUp(t testing.TB, mod func(*Config)) (api, natsURL string) {
	t.Helper()
	log := logrus.New()
	log.SetFormatter(&logrus.JSONFormatter{})
	log.SetOutput(io.Discard)
	if os.Getenv("STUDIO_TEST_LOGS") != "" {
		log.SetOutput(os.Stderr)
	}
	return startUpLogged(t, log, mod)
}

func submit(t *testing.T, api, filename string, data []byte, fields map[string]string) (*http.Response, []byte) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for k, v := range fields {
		_ = mw.WriteField(k, v)
	}
	fw, _ := mw.CreateFormFile("image", filename)
	_, _ = fw.Write(data)
	_ = mw.Close()
	resp, err := http.Post(api+"/v1/jobs", mw.FormDataContentType(), &body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func getJob(t testing.TB, api, id string) ingest.JobResponse {
	t.Helper()
	resp, err := http.Get(api + "/v1/jobs/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var j ingest.JobResponse
	if err := json.NewDecoder(resp.Body).Decode(&j); err != nil {
		t.Fatal(err)
	}
	return j
}

func waitFinal(t *testing.T, api, id string, timeout time.Duration) ingest.JobResponse {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		j := getJob(t, api, id)
		if j.Status.Final() {
			return j
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("job %s not finished within %s: %+v", id, timeout, getJob(t, api, id).JobRecord)
	return ingest.JobResponse{}
}

func download(t *testing.T, api, path string) []byte {
	t.Helper()
	resp, err := http.Get(api + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", path, resp.Status)
	}
	b, _ := io.ReadAll(resp.Body)
	return b
}

func TestEndToEndRemoveBackground(t *testing.T) {
	lib, modelPath, photo := realAssets(t)
	api, natsURL := startUp(t, nil)

	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	results := make(chan *nats.Msg, 16)
	sub, err := nc.ChanSubscribe(schemas.ResultSubject("local", schemas.TaskRemoveBackground), results)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()

	input, err := os.ReadFile(photo(assets.PhotoAstronaut))
	if err != nil {
		t.Fatal(err)
	}
	// A damaged JPEG travels alongside: it must fail on its own and harm nothing.
	jpg, err := os.ReadFile(photo(assets.PhotoRocket))
	if err != nil {
		t.Fatal(err)
	}
	truncated := jpg[:len(jpg)/3]

	start := time.Now()
	resp, body := submit(t, api, "astronaut.png", input, map[string]string{"task": "remove-background"})
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /v1/jobs = %s: %s", resp.Status, body)
	}
	var job ingest.JobResponse
	if err := json.Unmarshal(body, &job); err != nil {
		t.Fatal(err)
	}
	resp, body = submit(t, api, "broken.jpg", truncated, map[string]string{"task": "remove-background"})
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("truncated JPEG: POST = %s: %s (a header-valid JPEG is accepted and fails in preprocess)", resp.Status, body)
	}
	var broken ingest.JobResponse
	_ = json.Unmarshal(body, &broken)
	resp, body = submit(t, api, "animation.jpg", []byte("GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"), map[string]string{"task": "remove-background"})
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("GIF renamed to .jpg: POST = %s, want 415: %s", resp.Status, body)
	}

	final := waitFinal(t, api, job.ID, 5*time.Minute)
	latency := time.Since(start)
	if final.Status != schemas.StatusSucceeded {
		t.Fatalf("job %s ended %s: %+v", job.ID, final.Status, final.Error)
	}
	bad := waitFinal(t, api, broken.ID, time.Minute)
	if bad.Status != schemas.StatusFailed || bad.Error == nil || bad.Error.Code != "corrupt_image" || bad.Error.Stage != schemas.StagePreprocess {
		t.Errorf("truncated JPEG job = %s %+v, want failed with corrupt_image in preprocess", bad.Status, bad.Error)
	}

	// The cut-out is an RGBA PNG at the input size, with both kept and removed pixels.
	cutPNG := download(t, api, final.Downloads["cutout"])
	cut, err := png.Decode(bytes.NewReader(cutPNG))
	if err != nil {
		t.Fatalf("cut-out is not a PNG: %v", err)
	}
	nrgba, ok := cut.(*image.NRGBA)
	if !ok {
		t.Fatalf("cut-out decodes as %T, want an alpha channel (*image.NRGBA)", cut)
	}
	if b := nrgba.Bounds(); b.Dx() != 512 || b.Dy() != 512 {
		t.Errorf("cut-out is %v, want 512x512 like the input", b)
	}
	// Kept pixels are 254, not 255: the mask is truncated as the model's reference
	// truncates it (output.quantize: truncate), and a sigmoid never reaches 1.
	opaque, clear := 0, 0
	for i := 3; i < len(nrgba.Pix); i += 4 {
		switch v := nrgba.Pix[i]; {
		case v >= 254:
			opaque++
		case v == 0:
			clear++
		}
	}
	if opaque < 1000 || clear < 1000 {
		t.Errorf("cut-out alpha: %d opaque, %d transparent pixels; want a real subject and a removed background", opaque, clear)
	}

	// The pipeline's mask equals a direct ONNX Runtime call on the same input.
	maskPNG := download(t, api, final.Downloads["mask"])
	gotMask, err := png.Decode(bytes.NewReader(maskPNG))
	if err != nil {
		t.Fatal(err)
	}
	backend, err := ort.New(ort.Config{LibraryPath: lib, Device: "cpu"})
	if err != nil {
		t.Fatal(err)
	}
	spec := models.ISNet("small", modelPath)
	sess, err := backend.Open(spec)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	img, _, err := imageio.Decode(input, imageio.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	x := preprocess.ToTensor(spec.Input.Resampling().ResizeNRGBA(img, spec.Input.W(), spec.Input.H()), spec.Input)
	inferStart := time.Now()
	y, err := sess.Run(context.Background(), x)
	inferTime := time.Since(inferStart)
	if err != nil {
		t.Fatal(err)
	}
	m, err := postprocess.MaskFromTensor(y, spec.Output)
	if err != nil {
		t.Fatal(err)
	}
	want := postprocess.ScaleMask(m, 512, 512, spec.Output.Resampling())
	iou := maskIoU(t, gotMask, want)
	if iou < 0.99 {
		t.Errorf("mask IoU with a direct ONNX Runtime call = %.4f, want >= 0.99", iou)
	}

	// A plain NATS subscriber sees the result event.
	deadline := time.After(30 * time.Second)
	seen := map[string]schemas.ResultEvent{}
	for len(seen) < 2 {
		select {
		case msg := <-results:
			var ev schemas.ResultEvent
			if err := json.Unmarshal(msg.Data, &ev); err != nil {
				t.Fatalf("result event is not JSON: %v", err)
			}
			seen[ev.JobID] = ev
		case <-deadline:
			t.Fatalf("result events seen: %d, want 2", len(seen))
		}
	}
	if ev := seen[job.ID]; ev.Status != schemas.StatusSucceeded || ev.Results["cutout"].Key == "" || ev.Schema != schemas.SchemaJobResult {
		t.Errorf("result event = %+v", ev)
	}
	if ev := seen[broken.ID]; ev.Status != schemas.StatusFailed || ev.Error == nil {
		t.Errorf("failure result event = %+v", ev)
	}

	t.Logf("end-to-end latency %s; direct ONNX Runtime inference %s; mask IoU %.4f", latency.Round(time.Millisecond), inferTime.Round(time.Millisecond), iou)
	for _, s := range processors.StageNames() {
		if st := final.Stages[s]; st != nil {
			t.Logf("  %-11s %8.1f ms", s, st.DurationMS)
		}
	}
	if os.Getenv("STUDIO_TEST_ARTIFACTS") != "" {
		_ = os.WriteFile(filepath.Join(os.Getenv("STUDIO_TEST_ARTIFACTS"), "astronaut.cutout.png"), cutPNG, 0o644)
	}
}

// maskIoU binarises both masks at 128 and returns intersection over union.
func maskIoU(t *testing.T, a image.Image, b *image.Gray) float64 {
	t.Helper()
	if a.Bounds() != b.Bounds() {
		t.Fatalf("mask sizes differ: %v vs %v", a.Bounds(), b.Bounds())
	}
	var inter, union int
	for y := b.Rect.Min.Y; y < b.Rect.Max.Y; y++ {
		for x := b.Rect.Min.X; x < b.Rect.Max.X; x++ {
			r, _, _, _ := a.At(x, y).RGBA()
			pa := r>>8 >= 128
			pb := b.GrayAt(x, y).Y >= 128
			if pa && pb {
				inter++
			}
			if pa || pb {
				union++
			}
		}
	}
	if union == 0 {
		t.Fatal("both masks are empty")
	}
	return float64(inter) / float64(union)
}

func TestEndToEndFallbackAndCache(t *testing.T) {
	_, _, photo := realAssets(t)
	// An operator's version whose file is not a loadable model falls back to small.
	dir := t.TempDir()
	junk := bytes.Repeat([]byte("not an onnx graph "), 64)
	sum := sha256.Sum256(junk)
	if err := os.WriteFile(filepath.Join(dir, "broken.onnx"), junk, 0o644); err != nil {
		t.Fatal(err)
	}
	manifest := fmt.Sprintf(`name: isnet
version: broken
task: remove-background
fallback: small
license: test
source:
  path: broken.onnx
  sha256: %x
input:
  name: input
  shape: [1, 3, 1024, 1024]
  mean: [128, 128, 128]
  std: [256, 256, 256]
  # The same preprocessing as small, so that small can run on the tensor made for it.
  coordinates: asymmetric
  antialias: false
  orientation: stored
output:
  name: output
  shape: [1, 1, 1024, 1024]
  color: GRAY
`, sum)
	if err := os.WriteFile(filepath.Join(dir, "broken.yaml"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	api, _ := startUp(t, func(c *Config) { c.ModelDir = dir })
	input, err := os.ReadFile(photo(assets.PhotoChelsea))
	if err != nil {
		t.Fatal(err)
	}

	resp, body := submit(t, api, "chelsea.png", input, map[string]string{"task": "remove-background", "version": "broken"})
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST = %s %s", resp.Status, body)
	}
	var job ingest.JobResponse
	_ = json.Unmarshal(body, &job)
	final := waitFinal(t, api, job.ID, 5*time.Minute)
	if final.Status != schemas.StatusSucceeded || final.ModelVersion != "small" || final.FallbackFrom != "broken" {
		t.Fatalf("job = %s version %s fallback_from %q error %+v; want succeeded on small after broken failed", final.Status, final.ModelVersion, final.FallbackFrom, final.Error)
	}

	// The same bytes, task and (resolved) version again: served from the cache at once.
	start := time.Now()
	resp, body = submit(t, api, "chelsea-again.png", input, map[string]string{"task": "remove-background"})
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST = %s %s", resp.Status, body)
	}
	var again ingest.JobResponse
	_ = json.Unmarshal(body, &again)
	if again.Status != schemas.StatusSucceeded || !again.CacheHit || again.ID == job.ID {
		t.Fatalf("repeat = %s cache_hit %v; want an immediate cache hit with its own id", again.Status, again.CacheHit)
	}
	if again.Results["cutout"].SHA256 != final.Results["cutout"].SHA256 {
		t.Error("cached results differ from the original's")
	}
	if got := download(t, api, getJob(t, api, again.ID).Downloads["cutout"]); len(got) == 0 {
		t.Error("cached cut-out does not download")
	}
	t.Logf("cache hit answered in %s", time.Since(start).Round(time.Microsecond))

	// Different parameters are a different result.
	resp, body = submit(t, api, "chelsea-params.png", input, map[string]string{"task": "remove-background", "params": `{"threshold":0.4}`})
	var third ingest.JobResponse
	_ = json.Unmarshal(body, &third)
	if resp.StatusCode != http.StatusAccepted || third.CacheHit {
		t.Errorf("a request with other params hit the cache: %s %s", resp.Status, body)
	}
}
