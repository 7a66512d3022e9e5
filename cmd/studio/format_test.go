package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg"
	"image/png"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	_ "golang.org/x/image/webp"

	"github.com/creativeai-studio/studio/ingest"
	"github.com/creativeai-studio/studio/internal/assets"
)

// TestSubmitFormats runs `studio submit --format/--quality/--background` against
// `studio up` serving the identity model as style-transfer, so every result goes
// through the real stages (decode, inference, postprocess's encoders, store): each
// format's image and thumbnail are decoded back from the downloaded files, the job
// says their content type, the download answers with it, and a half-transparent input
// keeps its alpha in png and webp and is flattened onto the background (white unless
// --background says otherwise) in jpeg. Bad values are refused by the server (422) with
// the field named.
func TestSubmitFormats(t *testing.T) {
	needCached(t, "studio submit --format", append([]assets.Asset{assets.ONNXRuntimeCPU}, assets.Web...)...)
	modelDir := identityModel(t)
	api := fmt.Sprintf("http://127.0.0.1:%d", port(t))
	env := testEnv()
	up := startDaemon(t, env, "up", "--data-dir", t.TempDir(), "--nats-listen", fmt.Sprintf("127.0.0.1:%d", port(t)), "--nats-monitor", "",
		"--http", strings.TrimPrefix(api, "http://"), "--model-dir", modelDir, "--models", testModelID, "--threads", "1")
	tokenLine := regexp.MustCompile(`Token:\s+(\S+)`)
	waitFor(t, up, 2*time.Minute, "studio up to print its token", func() bool { return tokenLine.MatchString(up.stdout.String()) })
	token := tokenLine.FindStringSubmatch(up.stdout.String())[1]
	env = append(slices.Clone(env), "STUDIO_TOKEN="+token, "STUDIO_SERVER="+api)

	// 40x30: the left half fully transparent, the right half opaque (200, 60, 30).
	img := image.NewNRGBA(image.Rect(0, 0, 40, 30))
	for y := range 30 {
		for x := range 40 {
			a := uint8(0)
			if x >= 20 {
				a = 255
			}
			img.SetNRGBA(x, y, color.NRGBA{200, 60, 30, a})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	input := filepath.Join(t.TempDir(), "half.png")
	if err := os.WriteFile(input, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	jobLine := regexp.MustCompile(`job (\S+) `)

	tests := []struct {
		name, ext, ctype, decoded string
		args                      []string
		keepsAlpha                bool
		bg                        [3]int
	}{
		{name: "png by default", ext: ".png", ctype: "image/png", decoded: "png", keepsAlpha: true},
		{name: "jpeg flattens onto white", args: []string{"--format", "jpeg", "--quality", "85"}, ext: ".jpg", ctype: "image/jpeg", decoded: "jpeg", bg: [3]int{255, 255, 255}},
		{name: "jpeg flattens onto --background", args: []string{"--format", "jpeg", "--background", "#0000ff"}, ext: ".jpg", ctype: "image/jpeg", decoded: "jpeg", bg: [3]int{0, 0, 255}},
		{name: "webp keeps transparency", args: []string{"--format", "webp", "--quality", "80"}, ext: ".webp", ctype: "image/webp", decoded: "webp", keepsAlpha: true},
	}
	near := func(got uint32, want int) bool { d := int(got>>8) - want; return d >= -12 && d <= 12 }
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := t.TempDir()
			r := studio(t, env, append(append([]string{"submit", "--task", "style-transfer", "--timeout", "2m", "-o", out}, tt.args...), input)...)
			expect(t, r, 0, "half.image"+tt.ext, "half.thumbnail"+tt.ext, "done in")
			for _, name := range []string{"image", "thumbnail"} {
				f, err := os.Open(filepath.Join(out, "half."+name+tt.ext))
				if err != nil {
					t.Fatal(err)
				}
				got, format, err := image.Decode(f)
				f.Close()
				if err != nil {
					t.Fatalf("%s: decode: %v", name, err)
				}
				if format != tt.decoded || got.Bounds().Dx() != 40 || got.Bounds().Dy() != 30 {
					t.Fatalf("%s is %s %v, want %s 40x30", name, format, got.Bounds(), tt.decoded)
				}
				r, g, b, a := got.At(5, 15).RGBA() // transparent in the input
				if tt.keepsAlpha && a != 0 {
					t.Fatalf("%s: a transparent pixel came back with alpha %d", name, a>>8)
				}
				if !tt.keepsAlpha && (a != 0xffff || !near(r, tt.bg[0]) || !near(g, tt.bg[1]) || !near(b, tt.bg[2])) {
					t.Fatalf("%s: a transparent pixel came back %d,%d,%d,%d, want the background %v", name, r>>8, g>>8, b>>8, a>>8, tt.bg)
				}
				if r, g, b, a := got.At(30, 15).RGBA(); a != 0xffff || !near(r, 200) || !near(g, 60) || !near(b, 30) {
					t.Fatalf("%s: an opaque pixel came back %d,%d,%d,%d, want about 200,60,30,255", name, r>>8, g>>8, b>>8, a>>8)
				}
			}
			// The job's result metadata and the download say the same content type.
			id := jobLine.FindStringSubmatch(r.stdout)[1]
			job := getJSON[ingest.JobV2](t, api+"/v2/jobs/"+id, token)
			for _, res := range job.Results {
				if res.Name != "image" && res.Name != "thumbnail" {
					continue
				}
				if res.ContentType != tt.ctype || !strings.HasSuffix(res.URL, tt.ext) {
					t.Fatalf("result %s: content type %q, url %s; want %s, *%s", res.Name, res.ContentType, res.URL, tt.ctype, tt.ext)
				}
				req, _ := http.NewRequest(http.MethodGet, api+res.URL, nil)
				req.Header.Set("Authorization", "Bearer "+token)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != tt.ctype || !strings.HasSuffix(resp.Header.Get("Content-Disposition"), tt.ext+`"`) && !strings.HasSuffix(resp.Header.Get("Content-Disposition"), tt.ext) {
					t.Fatalf("GET %s: %s, Content-Type %q, Content-Disposition %q", res.URL, resp.Status, resp.Header.Get("Content-Type"), resp.Header.Get("Content-Disposition"))
				}
			}
		})
	}

	refused := []struct {
		name string
		args []string
		want []string
	}{
		{name: "an unknown format", args: []string{"--format", "gif"}, want: []string{"422", "params.format", "png, jpeg, webp"}},
		{name: "a quality with png", args: []string{"--quality", "85"}, want: []string{"422", "params.quality", "jpeg or webp"}},
		{name: "a quality out of range", args: []string{"--format", "jpeg", "--quality", "0"}, want: []string{"422", "params.quality", ">= 1"}},
		{name: "a background that is no colour", args: []string{"--format", "jpeg", "--background", "white"}, want: []string{"422", "params.background"}},
	}
	for _, tt := range refused {
		t.Run("refuses "+tt.name, func(t *testing.T) {
			args := append([]string{"submit", "--task", "style-transfer", "--timeout", "1m", "-o", t.TempDir()}, tt.args...)
			r := studio(t, env, append(args, input)...)
			if r.code != 1 {
				t.Fatalf("exit status %d, want 1\n%s", r.code, r)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stderr, w) {
					t.Fatalf("stderr lacks %q\n%s", w, r)
				}
			}
		})
	}
}

// getJSON GETs url with a bearer token and decodes the JSON answer.
func getJSON[T any](t *testing.T, url, token string) T {
	t.Helper()
	var v T
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return v
}
