package app

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/png"
	"net/http"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/creativeai-studio/studio/ingest"
	"github.com/creativeai-studio/studio/internal/assets"
	"github.com/creativeai-studio/studio/internal/imageio"
	"github.com/creativeai-studio/studio/internal/models"
	"github.com/creativeai-studio/studio/internal/ocr"
	"github.com/creativeai-studio/studio/processors/artifact"
	"github.com/creativeai-studio/studio/processors/inference/ort"
	"github.com/creativeai-studio/studio/schemas"
)

// TestEndToEndOCR reads scikit-image's page.png through the whole pipeline from the
// HTTP API and from the NATS entry: the lines equal a direct run of the same models
// through internal/ocr, the text is the page's, and the overlay is the input with boxes.
func TestEndToEndOCR(t *testing.T) {
	lib, _, photo := realAssets(t)
	api, natsURL := startUp(t, func(c *Config) { c.Models = "ppocr@v4" })
	input, err := os.ReadFile(photo(assets.PhotoPage))
	if err != nil {
		t.Fatal(err)
	}

	resp, body := submit(t, api, "page.png", input, map[string]string{"task": "ocr"})
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /v1/jobs = %s: %s", resp.Status, body)
	}
	var job ingest.JobResponse
	_ = json.Unmarshal(body, &job)
	final := waitFinal(t, api, job.ID, 5*time.Minute)
	if final.Status != schemas.StatusSucceeded {
		t.Fatalf("ocr job %s: %s %+v", job.ID, final.Status, final.Error)
	}
	for _, name := range []string{"text", "overlay", "thumbnail"} {
		if final.Downloads[name] == "" {
			t.Fatalf("job has no %q download: %v", name, final.Downloads)
		}
	}
	if ct := final.Results["text"].ContentType; ct != "application/json" {
		t.Errorf("text result content type %q, want application/json", ct)
	}
	var got schemas.OCRResult
	if err := json.Unmarshal(download(t, api, final.Downloads["text"]), &got); err != nil {
		t.Fatal(err)
	}
	if got.Schema != schemas.SchemaOCRResult || got.Width != 384 || got.Height != 191 {
		t.Errorf("result header = %q %dx%d, want %s 384x191", got.Schema, got.Width, got.Height, schemas.SchemaOCRResult)
	}
	// Spaces are the recogniser's weak point (a Chinese-English model): the title is
	// compared without them.
	if len(got.Lines) < 6 || strings.ReplaceAll(got.Lines[0].Text, " ", "") != "Region-basedsegmentation" || !strings.Contains(got.Text, "markers of the coins") {
		t.Errorf("read %d lines:\n%s\nwant the page's title first and its body", len(got.Lines), got.Text)
	}
	for i, l := range got.Lines {
		if l.Index != i || l.Confidence < 0.5 || l.Confidence > 1 {
			t.Errorf("line %d: index %d confidence %.3f", i, l.Index, l.Confidence)
		}
	}

	// The pipeline's lines equal a direct run of the same three models.
	direct := directOCR(t, lib, input)
	if !reflect.DeepEqual(got.Lines, direct) {
		t.Errorf("pipeline lines differ from a direct run:\npipeline %+v\ndirect   %+v", got.Lines, direct)
	}

	over, err := png.Decode(bytes.NewReader(download(t, api, final.Downloads["overlay"])))
	if err != nil {
		t.Fatal(err)
	}
	src, _, _ := imageio.Decode(input, imageio.Limits{})
	if over.Bounds() != src.Bounds() {
		t.Fatalf("overlay is %v, input %v", over.Bounds(), src.Bounds())
	}
	// A box corner is drawn in the overlay's ink; the input there is grey.
	c := got.Lines[0].Box[0]
	if r, g, b, _ := over.At(c[0], c[1]).RGBA(); !(r>>8 > 200 && g>>8 < 60 && b>>8 > 60) {
		t.Errorf("overlay at the first box's corner %v is rgb(%d,%d,%d), want the box colour", c, r>>8, g>>8, b>>8)
	}

	// An image without text succeeds with no lines (an empty list, not null).
	blank := image.NewGray(image.Rect(0, 0, 200, 100))
	for i := range blank.Pix {
		blank.Pix[i] = 255
	}
	var buf bytes.Buffer
	_ = png.Encode(&buf, blank)
	resp, body = submit(t, api, "blank.png", buf.Bytes(), map[string]string{"task": "ocr"})
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST blank = %s: %s", resp.Status, body)
	}
	var blankJob ingest.JobResponse
	_ = json.Unmarshal(body, &blankJob)
	if j := waitFinal(t, api, blankJob.ID, 5*time.Minute); j.Status != schemas.StatusSucceeded {
		t.Errorf("blank image: %s %+v, want succeeded", j.Status, j.Error)
	} else if raw := string(download(t, api, j.Downloads["text"])); !strings.Contains(raw, `"lines": []`) || !strings.Contains(raw, `"text": ""`) {
		t.Errorf("blank image result %s, want no lines and no text", raw)
	}

	// The NATS entry admits the same job (inline image) and the result event names the
	// same results.
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	results := make(chan *nats.Msg, 4)
	sub, err := nc.ChanSubscribe(schemas.ResultSubject("local", schemas.TaskOCR), results)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	req, _ := json.Marshal(schemas.JobRequest{Image: &schemas.ImageInput{Data: input}, Params: map[string]any{"min_confidence": 0.9}})
	msg, err := nc.Request(schemas.SubmitSubject(schemas.TaskOCR), req, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var reply schemas.SubmitReply
	if err := json.Unmarshal(msg.Data, &reply); err != nil || reply.JobID == "" {
		t.Fatalf("NATS submit reply %s (%v)", msg.Data, err)
	}
	viaNATS := waitFinal(t, api, reply.JobID, 5*time.Minute)
	if viaNATS.Status != schemas.StatusSucceeded {
		t.Fatalf("NATS ocr job: %s %+v", viaNATS.Status, viaNATS.Error)
	}
	var strict schemas.OCRResult
	if err := json.Unmarshal(download(t, api, viaNATS.Downloads["text"]), &strict); err != nil {
		t.Fatal(err)
	}
	for _, l := range strict.Lines {
		if l.Confidence < 0.9 {
			t.Errorf("min_confidence 0.9 kept %q at %.3f", l.Text, l.Confidence)
		}
	}
	deadline := time.After(time.Minute)
	for {
		select {
		case m := <-results:
			var ev schemas.ResultEvent
			_ = json.Unmarshal(m.Data, &ev)
			if ev.JobID != reply.JobID {
				continue
			}
			if ev.Status != schemas.StatusSucceeded || ev.Results["text"].Key == "" || ev.Results["overlay"].Key == "" {
				t.Errorf("result event %+v, want succeeded with text and overlay", ev)
			}
			return
		case <-deadline:
			t.Fatal("no result event for the NATS job within a minute")
		}
	}
}

// directOCR reads input with the shipped PaddleOCR models through internal/ocr alone.
func directOCR(t *testing.T, lib string, input []byte) []schemas.OCRLine {
	t.Helper()
	ms, _ := models.Shipped()
	var spec models.Spec
	var err error
	for _, m := range ms {
		if m.ID() == "ppocr@v4" {
			if spec, err = models.Fetch(context.Background(), &assets.Cache{Dir: assets.DefaultDir()}, m); err != nil {
				t.Fatal(err)
			}
		}
	}
	backend, err := ort.New(ort.Config{LibraryPath: lib, Device: "cpu"})
	if err != nil {
		t.Fatal(err)
	}
	open := func(role string) ocr.Model {
		s := spec
		if role != "" {
			if s, err = spec.Part(role); err != nil {
				t.Fatal(err)
			}
		}
		sess, err := backend.Open(s)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sess.Close() })
		return func(ctx context.Context, x ocr.Tensor) (ocr.Tensor, error) {
			y, err := sess.Run(ctx, artifact.Tensor(x))
			return ocr.Tensor(y), err
		}
	}
	path, err := spec.File("dict")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dict, err := ocr.ReadDictionary(f)
	if err != nil {
		t.Fatal(err)
	}
	img, _, err := imageio.Decode(input, imageio.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	r := &ocr.Reader{Det: open(""), Cls: open("cls"), Rec: open("rec"), Dict: dict, MinConfidence: 0.5}
	lines, err := r.Read(context.Background(), img, ocr.DetInput(img, spec.Input.Mean, spec.Input.Std))
	if err != nil {
		t.Fatal(err)
	}
	return lines
}
