//go:build cgo

package app

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"image/jpeg"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/creativeai-studio/studio/ingest"
	"github.com/creativeai-studio/studio/internal/colour"
	"github.com/creativeai-studio/studio/internal/imageio"
	"github.com/creativeai-studio/studio/internal/imageio/imagetest"
	"github.com/creativeai-studio/studio/internal/models"
	"github.com/creativeai-studio/studio/schemas"
)

// identityModel writes a 1x1 convolution with identity weights (a synthetic graph, not a
// real model) as an any-size style-transfer model "colour-identity@v1": what comes out is
// what went in, so any colour shift is the pipeline's.
func identityModel(t *testing.T, dir string) {
	t.Helper()
	param := "7767517\n2 2\nInput input 0 1 data 0=0 1=0 2=3\nConvolution conv 1 1 data out 0=3 1=1 5=1 6=9\n"
	var bin bytes.Buffer
	_ = binary.Write(&bin, binary.LittleEndian, uint32(0))
	for o := range 3 {
		for i := range 3 {
			w := float32(0)
			if o == i {
				w = 1
			}
			_ = binary.Write(&bin, binary.LittleEndian, math.Float32bits(w))
		}
	}
	for range 3 {
		_ = binary.Write(&bin, binary.LittleEndian, math.Float32bits(0))
	}
	pp, bp := filepath.Join(dir, "identity.param"), filepath.Join(dir, "identity.bin")
	if err := os.WriteFile(pp, []byte(param), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bp, bin.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	onnx, err := models.ConvertNCNN(pp, bp)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "colour-identity.onnx"), onnx, 0o644); err != nil {
		t.Fatal(err)
	}
	m := models.ImageManifest("colour-identity", "v1", string(schemas.TaskStyleTransfer), 1, "colour-identity.onnx", onnx, "test-only")
	m = strings.Replace(m, "tile:\n  size: 256\n  overlap: 16\n", "", 1)
	if err := os.WriteFile(filepath.Join(dir, "colour-identity.yaml"), []byte(m), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestProfiledInputsComeBackInTheirColourSpace(t *testing.T) {
	realAssets(t)
	dir := t.TempDir()
	identityModel(t, dir)
	api, _ := startUp(t, func(c *Config) { c.ModelDir = dir })

	icc, err := colour.AdobeRGB()
	if err != nil {
		t.Fatal(err)
	}
	adobe, err := colour.Parse(icc)
	if err != nil {
		t.Fatal(err)
	}
	// A photo as an Adobe RGB camera JPEG would hold it.
	photo := imagetest.Photo(96, 64)
	if err := adobe.FromSRGB(photo); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, photo, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	input, err := imageio.EmbedProfile(imageio.FormatJPEG, buf.Bytes(), icc)
	if err != nil {
		t.Fatal(err)
	}
	// What the input looks like: its pixels converted to sRGB.
	want, _, err := imageio.Decode(input, imageio.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	srgb, err := colour.SRGB()
	if err != nil {
		t.Fatal(err)
	}
	wantLab, err := srgb.ToLab(want)
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, params string
		profile      []byte // the profile the result must carry; nil means tagged sRGB
	}{
		{"by default the result is in Adobe RGB with the input's profile embedded", "", icc},
		{"color=keep writes the input's profile", `{"color":"keep"}`, icc},
		{"color=srgb writes sRGB, tagged sRGB", `{"color":"srgb"}`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fields := map[string]string{"task": "style-transfer", "model": "colour-identity", "version": "v1"}
			if tc.params != "" {
				fields["params"] = tc.params
			}
			resp, body := submit(t, api, "adobe.jpg", input, fields)
			if resp.StatusCode != http.StatusAccepted {
				t.Fatalf("POST = %s %s", resp.Status, body)
			}
			var j ingest.JobResponse
			_ = json.Unmarshal(body, &j)
			final := waitFinal(t, api, j.ID, 2*time.Minute)
			if final.Status != schemas.StatusSucceeded {
				t.Fatalf("job: %s %+v", final.Status, final.Error)
			}
			out := download(t, api, final.Downloads["image"])
			got, hdr, err := imageio.Decode(out, imageio.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.profile == nil && hdr.Profile != nil:
				t.Errorf("result carries profile %q, want sRGB", hdr.Profile.Name())
			case tc.profile == nil && !bytes.Contains(out[:100], []byte("sRGB")):
				t.Error("result has no sRGB chunk")
			case tc.profile != nil && (hdr.Profile == nil || !bytes.Equal(hdr.Profile.Bytes(), tc.profile)):
				t.Error("result does not carry the input's profile byte for byte")
			}
			gotLab, err := srgb.ToLab(got)
			if err != nil {
				t.Fatal(err)
			}
			st := colour.CompareLab(gotLab, wantLab)
			t.Logf("%s: ΔE2000 mean %.3f p99 %.2f max %.2f", tc.name, st.Mean, st.P99, st.Max)
			if st.Mean > 1 || st.Max > 3 {
				t.Errorf("colours moved: ΔE2000 mean %.3f max %.2f, want under 1 and 3", st.Mean, st.Max)
			}
		})
	}

	t.Run("an unknown colour choice is refused at admission", func(t *testing.T) {
		resp, body := submit(t, api, "adobe.jpg", input, map[string]string{"task": "style-transfer", "model": "colour-identity", "version": "v1", "params": `{"color":"cmyk"}`})
		if resp.StatusCode != http.StatusUnprocessableEntity || !bytes.Contains(body, []byte("keep, srgb")) {
			t.Errorf("POST = %s %s, want 422 naming keep and srgb", resp.Status, body)
		}
	})
	t.Run("a damaged profile is refused at admission", func(t *testing.T) {
		bad, err := imageio.EmbedProfile(imageio.FormatJPEG, buf.Bytes(), bytes.Repeat([]byte("junk"), 100))
		if err != nil {
			t.Fatal(err)
		}
		resp, body := submit(t, api, "bad.jpg", bad, map[string]string{"task": "style-transfer", "model": "colour-identity", "version": "v1"})
		if resp.StatusCode < 400 || resp.StatusCode >= 500 || !bytes.Contains(body, []byte("colour profile")) {
			t.Errorf("POST = %s %s, want a client error about the colour profile", resp.Status, fmt.Sprint(string(body)))
		}
	})
}
