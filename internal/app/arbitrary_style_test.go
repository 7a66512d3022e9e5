package app

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"image"
	"image/png"
	"io"
	"math"
	"mime/multipart"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/creativeai-studio/studio/ingest"
	"github.com/creativeai-studio/studio/internal/assets"
	"github.com/creativeai-studio/studio/internal/imageio"
	"github.com/creativeai-studio/studio/internal/models/styletest"
	"github.com/creativeai-studio/studio/schemas"
)

// submitStyled posts a multipart job with an image part and, when style is not nil,
// a style part.
func submitStyled(t *testing.T, api string, content, style []byte, fields map[string]string) (*http.Response, []byte) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for k, v := range fields {
		_ = mw.WriteField(k, v)
	}
	fw, _ := mw.CreateFormFile("image", "content.png")
	_, _ = fw.Write(content)
	if style != nil {
		sw, _ := mw.CreateFormFile("style", "style.png")
		_, _ = sw.Write(style)
	}
	_ = mw.Close()
	resp, err := http.Post(api+"/v2/jobs", mw.FormDataContentType(), &body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// channelStats returns the mean and standard deviation of each RGB channel.
func channelStats(img image.Image) (mean, std [3]float64) {
	n := imageio.ToNRGBA(img)
	px := float64(n.Bounds().Dx() * n.Bounds().Dy())
	var sum, sq [3]float64
	for i := 0; i < len(n.Pix); i += 4 {
		for c := range 3 {
			v := float64(n.Pix[i+c])
			sum[c] += v
			sq[c] += v * v
		}
	}
	for c := range 3 {
		mean[c] = sum[c] / px
		std[c] = math.Sqrt(sq[c]/px - mean[c]*mean[c])
	}
	return mean, std
}

func TestArbitraryStyleTransferRunsContentAndStyle(t *testing.T) {
	_, _, photo := realAssets(t)
	dir := t.TempDir()
	if err := styletest.WriteAdaIN(dir); err != nil {
		t.Fatal(err)
	}
	negativeModel(t, dir, "any-size", 0, "none") // a fast-neural-style model: no style image
	api, natsURL := startUp(t, func(c *Config) { c.ModelDir = dir })
	content, err := os.ReadFile(photo(assets.PhotoChelsea))
	if err != nil {
		t.Fatal(err)
	}
	style, err := os.ReadFile(photo(assets.PhotoCoffee))
	if err != nil {
		t.Fatal(err)
	}
	adain := map[string]string{"task": "style-transfer", "model": "adain", "version": "test"}

	t.Run("GET /v1/models says the model takes a style image", func(t *testing.T) {
		resp, err := http.Get(api + "/v1/models")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var list ingest.ModelList
		if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
			t.Fatal(err)
		}
		takes := map[string]bool{}
		for _, m := range list.Models {
			takes[m.ID] = m.TakesStyle
		}
		if !takes["adain@test"] || takes["negative@any-size"] {
			t.Errorf("takes_style = %v, want adain@test only", takes)
		}
	})

	t.Run("the result has the content's size and the style's colours, pixel for pixel as before", func(t *testing.T) {
		resp, body := submitStyled(t, api, content, style, adain)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST = %s %s", resp.Status, body)
		}
		var j ingest.JobResponse
		_ = json.Unmarshal(body, &j)
		final := waitFinal(t, api, j.ID, 2*time.Minute)
		if final.Status != schemas.StatusSucceeded {
			t.Fatalf("job: %s %+v", final.Status, final.Error)
		}
		got, err := png.Decode(bytes.NewReader(download(t, api, final.Downloads["image"])))
		if err != nil {
			t.Fatal(err)
		}
		src, _ := png.Decode(bytes.NewReader(content))
		if got.Bounds() != src.Bounds() {
			t.Fatalf("result is %v, want the content's %v", got.Bounds(), src.Bounds())
		}
		// AdaIN gives the result the style's channel statistics (of the 64x64 style
		// input the manifest asks for, close to the whole photo's), up to clipping.
		styleImg, _ := png.Decode(bytes.NewReader(style))
		gm, _ := channelStats(got)
		sm, _ := channelStats(styleImg)
		for c := range 3 {
			if math.Abs(gm[c]-sm[c]) > 8 {
				t.Errorf("channel %d: result mean %.1f, style mean %.1f", c, gm[c], sm[c])
			}
		}
		// Golden: the pixels of this content and style through this graph, recorded
		// when the test was written (ONNX Runtime CPU).
		sum := sha256.Sum256(imageio.ToNRGBA(got).Pix)
		if h := hex.EncodeToString(sum[:]); h != adainGolden {
			t.Errorf("result pixels sha256 %s, want %s", h, adainGolden)
		}
	})

	t.Run("another style image is another picture, not a cache hit", func(t *testing.T) {
		other, err := os.ReadFile(photo(assets.PhotoAstronaut))
		if err != nil {
			t.Fatal(err)
		}
		resp, body := submitStyled(t, api, content, other, adain)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST = %s %s", resp.Status, body)
		}
		var j ingest.JobResponse
		_ = json.Unmarshal(body, &j)
		final := waitFinal(t, api, j.ID, 2*time.Minute)
		if final.Status != schemas.StatusSucceeded || final.CacheHit {
			t.Fatalf("job: %s cache hit %v %+v", final.Status, final.CacheHit, final.Error)
		}
	})

	t.Run("the NATS entry takes the style image inline and gives the same pixels", func(t *testing.T) {
		nc, err := nats.Connect(natsURL)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		// Another tenant, so the result cache (per tenant) cannot answer.
		body, _ := json.Marshal(schemas.JobRequest{Tenant: "other", User: "u1", Model: "adain", Version: "test",
			Image: &schemas.ImageInput{Data: content}, Style: &schemas.ImageInput{Data: style}})
		msg, err := nc.Request(schemas.SubmitSubject(schemas.TaskStyleTransfer), body, 10*time.Second)
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
		got, err := png.Decode(bytes.NewReader(download(t, api, final.Downloads["image"])))
		if err != nil {
			t.Fatal(err)
		}
		if sum := sha256.Sum256(imageio.ToNRGBA(got).Pix); hex.EncodeToString(sum[:]) != adainGolden {
			t.Errorf("the NATS job's pixels differ from the multipart job's")
		}
	})

	t.Run("POST /v2/predict takes the style image as an uploaded key", func(t *testing.T) {
		resp, body := postJSON(t, api+"/v1/uploads", nil)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("POST /v1/uploads = %s %s", resp.Status, body)
		}
		var ticket ingest.UploadTicket
		_ = json.Unmarshal(body, &ticket)
		req, _ := http.NewRequest(http.MethodPut, api+ticket.UploadURL, bytes.NewReader(style))
		put, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		put.Body.Close()
		if put.StatusCode != http.StatusCreated {
			t.Fatalf("PUT upload = %s", put.Status)
		}
		resp, body = postJSON(t, api+"/v2/predict", map[string]any{"task": "style-transfer", "model": "adain", "version": "test",
			"image": map[string]any{"data": content}, "style": map[string]any{"key": ticket.Key}})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST /v2/predict = %s %s", resp.Status, body)
		}
		var job ingest.JobV2
		_ = json.Unmarshal(body, &job)
		// The same content and style bytes as the first job: the result cache, whose
		// key includes the style image's digest, answers.
		if job.Status != schemas.StatusSucceeded || !job.CacheHit {
			t.Errorf("predict: %s cache hit %v, want succeeded from the cache: %s", job.Status, job.CacheHit, body)
		}
	})

	tooWide := encodeGrey(t, imageio.DefaultMaxSide+1, 1)
	for _, tc := range []struct {
		name        string
		fields      map[string]string
		style       []byte
		status      int
		code, field string
	}{
		{"an arbitrary-style job without a style image is refused", adain, nil, 422, "missing_field", "style"},
		{"a style image for a model whose style is in its weights is refused", map[string]string{"task": "style-transfer", "model": "negative", "version": "any-size"}, style, 422, "invalid_style", "style"},
		{"a style image that is no image is refused", adain, []byte("GIF89a not really"), 415, "", "style"},
		{"a style image past the decoder bounds is refused", adain, tooWide, 413, "image_too_large", "style"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := submitStyled(t, api, content, tc.style, tc.fields)
			if resp.StatusCode != tc.status {
				t.Fatalf("POST = %s %s, want %d", resp.Status, body, tc.status)
			}
			var p struct {
				Code   string `json:"code"`
				Errors []struct {
					Field string `json:"field"`
				} `json:"errors"`
			}
			_ = json.Unmarshal(body, &p)
			if tc.code != "" && p.Code != tc.code {
				t.Errorf("code %q, want %q: %s", p.Code, tc.code, body)
			}
			if len(p.Errors) == 0 || p.Errors[0].Field != tc.field {
				t.Errorf("problem names %+v, want field %q: %s", p.Errors, tc.field, body)
			}
		})
	}
}

// encodeGrey is a w x h mid-grey PNG.
func encodeGrey(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewGray(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = 128
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

const adainGolden = "d02195d52683eb7e6704e2dfb6b8bb65454b70de0982d8ba08d5ac66526084b5"
