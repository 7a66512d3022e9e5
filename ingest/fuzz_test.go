package ingest

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"testing"

	"github.com/creativeai-studio/studio/internal/imageio"
	"github.com/creativeai-studio/studio/schemas"
)

// The corpora live in testdata/fuzz/<Fuzz name>/; `go test -fuzz=FuzzX ./ingest`
// extends them, and plain `go test` replays every committed entry.

var fuzzLimits = imageio.Limits{MaxBytes: 1 << 20, MaxPixels: 1 << 16, MaxSide: 1024}

func seedJPEG(t testing.TB) []byte {
	img := image.NewNRGBA(image.Rect(0, 0, 8, 6))
	for i := range img.Pix {
		img.Pix[i] = byte(i * 7)
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, nil); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	exif := exifOrientationSegment(6)
	comment := []byte{0xFF, 0xFE, 0, 7, 'h', 'e', 'l', 'l', 'o'}
	return append(append(append([]byte{0xFF, 0xD8}, exif...), comment...), b[2:]...)
}

func seedPNG(t testing.TB) []byte {
	img := image.NewGray(image.Rect(0, 0, 5, 3))
	img.SetGray(1, 1, color.Gray{200})
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return append(buf.Bytes(), "trailing"...)
}

// FuzzUploadValidator feeds arbitrary bytes to the upload checks (imageio.Inspect, the
// header-only validator) and to metadata stripping. Whatever the input: no panic; a
// refusal maps to a 4xx problem; an accepted file, once stripped, is accepted again
// with the same format, size and orientation, carries no metadata segment, and
// stripping it again changes nothing.
func FuzzUploadValidator(f *testing.F) {
	f.Add(seedJPEG(f))
	f.Add(seedPNG(f))
	f.Add([]byte("RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00\x2f\x00\x00\x00\x10\x07\x10\x11\x11\x88\x88\xfe\x07\x00"))
	f.Add([]byte("GIF89a\x01\x00\x01\x00\x00\x00\x00;"))
	f.Add([]byte{0xFF, 0xD8, 0xFF})
	f.Fuzz(func(t *testing.T, data []byte) {
		hdr, err := imageio.Inspect(data, fuzzLimits)
		if err != nil {
			p := imageProblem(err, "image")
			if p.Status < 400 || p.Status > 499 || p.Code == "" || len(p.Errors) != 1 {
				t.Fatalf("refusal %v became problem %+v", err, p)
			}
			return
		}
		out := stripMetadata(data, hdr)
		again, err := imageio.Inspect(out, fuzzLimits)
		if err != nil {
			t.Fatalf("stripping made an accepted %s unreadable: %v", hdr.Format, err)
		}
		if again != hdr {
			t.Fatalf("stripping changed the header: %+v -> %+v", hdr, again)
		}
		if twice := stripMetadata(out, again); !bytes.Equal(twice, out) {
			t.Fatalf("stripping is not idempotent (%d -> %d bytes)", len(out), len(twice))
		}
		if len(out) > len(data)+len(exifOrientationSegment(1))+8 {
			t.Fatalf("stripping grew the file from %d to %d bytes", len(data), len(out))
		}
		if seg := metadataLeft(out, hdr); seg != "" {
			t.Fatalf("metadata survived: %s", seg)
		}
	})
}

// metadataLeft names a metadata segment still in a stripped file, or "".
func metadataLeft(b []byte, h imageio.Header) string {
	switch h.Format {
	case imageio.FormatJPEG:
		for i := 2; i+4 <= len(b) && b[i] == 0xFF; {
			m := b[i+1]
			if m == 0xDA || m == 0xD9 || m == 0x01 || (m >= 0xD0 && m <= 0xD7) {
				return ""
			}
			n := int(binary.BigEndian.Uint16(b[i+2:]))
			if n < 2 || i+2+n > len(b) {
				return ""
			}
			body := b[i+4 : i+2+n]
			if m == 0xE1 && !bytes.Equal(b[i:i+2+n], exifOrientationSegment(h.Orientation)) {
				return "an APP1 segment other than the orientation"
			}
			if m != 0xE1 && !keepJPEGSegment(m, body) {
				return fmt.Sprintf("JPEG marker 0x%02X", m)
			}
			i += 2 + n
		}
	case imageio.FormatPNG:
		for i := 8; i+12 <= len(b); {
			n := int(binary.BigEndian.Uint32(b[i:]))
			if n > len(b)-i-12 {
				return ""
			}
			typ := string(b[i+4 : i+8])
			if !(typ[0] >= 'A' && typ[0] <= 'Z') && !pngKeep[typ] {
				return "PNG chunk " + typ
			}
			i += 12 + n
		}
	case imageio.FormatWebP:
		for i := 12; i+8 <= len(b); {
			n := int(binary.LittleEndian.Uint32(b[i+4:]))
			typ := string(b[i : i+4])
			if !webpKeep[typ] {
				return "WebP chunk " + typ
			}
			i += 8 + n + n&1
		}
	}
	return ""
}

// FuzzDecodeJobRequest feeds arbitrary bytes to the JSON job request decoder used by
// POST /v1/jobs and the NATS entry. No panic; a refusal is a problem with a 4xx status
// and a detail; an accepted request has an image, parameters the task accepts, and
// survives a round trip through its own encoding.
func FuzzDecodeJobRequest(f *testing.F) {
	f.Add([]byte(`{"task":"remove-background","image":{"data":"iVBORw0KGgo="},"params":{"threshold":0.5}}`), "")
	f.Add([]byte(`{"image":{"key":"uploads/acme/a.png"},"tenant":"acme","idempotency_key":"k1"}`), "remove-background")
	f.Add([]byte(`{"task":"upscale","image":{"key":"uploads/a/b"},"params":{"scale":9}}`), "upscale")
	f.Add([]byte(`{"task":"ocr","image":{"key":"x","data":"AA=="}}`), "ocr")
	f.Add([]byte(`{"task": 12, "image": null}`), "")
	f.Add([]byte(`[1,2,3]`), "generate")
	f.Add([]byte(`{"image":{"data":"***"}}`), "remove-background")
	f.Fuzz(func(t *testing.T, data []byte, subject string) {
		subjectTask := schemas.Task(subject)
		if subject != "" && schemas.ValidToken(subject) != nil {
			subjectTask = "" // subjects carry valid tokens only
		}
		jr, p := decodeJobRequest(data, subjectTask)
		if p != nil {
			if p.Status < 400 || p.Status > 499 || p.Code == "" || p.Detail == "" {
				t.Fatalf("bad problem %+v", p)
			}
			var pe *Problem
			if !errors.As(error(p), &pe) {
				t.Fatal("a problem is an error")
			}
			return
		}
		if jr.Image == nil || (jr.Image.Key == "") == (jr.Image.Data == nil) {
			t.Fatalf("accepted a request without exactly one image source: %s", data)
		}
		if subjectTask != "" && jr.Task != subjectTask {
			t.Fatalf("task %q accepted on subject %q", jr.Task, subjectTask)
		}
		if errs := schemas.ValidateParams(jr.Task, jr.Params); len(errs) > 0 {
			t.Fatalf("the schema accepted params the server refuses: %v", errs)
		}
		re, err := json.Marshal(jr)
		if err != nil {
			t.Fatal(err)
		}
		again, p := decodeJobRequest(re, subjectTask)
		if p != nil {
			t.Fatalf("an accepted request does not decode after re-encoding: %+v\n%s", p, re)
		}
		if jr.Task != again.Task || !bytes.Equal(jr.Image.Data, again.Image.Data) || jr.Image.Key != again.Image.Key {
			t.Fatal("round trip changed the request")
		}
	})
}

// TestDecodeJobRequestDecodesInlineImagesOnce checks the inline images, which
// decodeJobRequest sets aside while it validates the rest: they come out byte for
// byte, bad base64 names its own field, and an empty one is still refused by the
// schema.
func TestDecodeJobRequestDecodesInlineImagesOnce(t *testing.T) {
	img, style := bytes.Repeat([]byte{0x89, 'P', 'N', 'G', 0, 0xff}, 5000), []byte("style bytes")
	body, _ := json.Marshal(map[string]any{"task": "style-transfer", "image": map[string]any{"data": img}, "style": map[string]any{"data": style}})
	jr, p := decodeJobRequest(body, "")
	if p != nil {
		t.Fatalf("a valid request was refused: %+v", p)
	}
	if !bytes.Equal(jr.Image.Data, img) || !bytes.Equal(jr.Style.Data, style) {
		t.Fatalf("inline images changed: image %d bytes, style %q", len(jr.Image.Data), jr.Style.Data)
	}
	for _, tc := range []struct {
		body, code, field, constraint string
	}{
		{`{"task":"style-transfer","image":{"data":"AA=="},"style":{"data":"***"}}`, "invalid_image", "style.data", "contentEncoding"},
		{`{"task":"style-transfer","image":{"data":"A==="}}`, "invalid_image", "image.data", "contentEncoding"},
		{`{"task":"style-transfer","image":{"data":""}}`, "invalid_image", "image.data", "minLength"},
		{`{"task":"style-transfer","image":{"data":"AA==","key":"uploads/local/x"}}`, "invalid_image", "image", "oneOf"},
	} {
		_, p := decodeJobRequest([]byte(tc.body), "")
		if p == nil || p.Code != tc.code || len(p.Errors) == 0 || p.Errors[0].Field != tc.field || p.Errors[0].Constraint != tc.constraint {
			t.Errorf("%s: got %+v, want %s on %s (%s)", tc.body, p, tc.code, tc.field, tc.constraint)
		}
	}
}
