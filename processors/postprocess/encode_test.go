package postprocess_test

import (
	"bytes"
	"image"
	_ "image/jpeg"
	_ "image/png"
	"testing"

	_ "golang.org/x/image/webp"

	"github.com/creativeai-studio/studio/processors/postprocess"
	"github.com/creativeai-studio/studio/schemas"
)

// halfTransparent is a 64x48 gradient whose left half is fully transparent and whose
// right half is opaque mid grey-green.
func halfTransparent() *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, 64, 48))
	for y := range 48 {
		for x := range 64 {
			i := img.PixOffset(x, y)
			img.Pix[i], img.Pix[i+1], img.Pix[i+2] = 100, 160, 90
			if x >= 32 {
				img.Pix[i+3] = 255
			}
		}
	}
	return img
}

// TestEncodeFormats encodes one half-transparent image in each output format and reads
// it back with the standard decoders: PNG and WebP keep the alpha channel, JPEG
// flattens onto the background (white by default), and a background set for PNG
// flattens it too.
func TestEncodeFormats(t *testing.T) {
	red := [3]uint8{255, 0, 0}
	tests := []struct {
		params     map[string]any
		wantFormat string
		// left is the expected colour of the transparent half: alpha 0, or opaque bg.
		wantAlpha bool
		bg        [3]uint8
	}{
		{params: nil, wantFormat: "png", wantAlpha: true},
		{params: map[string]any{"format": "webp", "quality": 80.0}, wantFormat: "webp", wantAlpha: true},
		{params: map[string]any{"format": "jpeg"}, wantFormat: "jpeg", bg: [3]uint8{255, 255, 255}},
		{params: map[string]any{"format": "jpeg", "quality": 95.0, "background": "#FF0000"}, wantFormat: "jpeg", bg: red},
		{params: map[string]any{"format": "png", "background": "#ff0000"}, wantFormat: "png", bg: red},
	}
	for _, tt := range tests {
		out, err := schemas.OutputFormatOf(tt.params)
		if err != nil {
			t.Fatal(err)
		}
		src := halfTransparent()
		var buf bytes.Buffer
		if err := postprocess.Encode(&buf, src, out, nil); err != nil {
			t.Fatalf("%v: %v", tt.params, err)
		}
		if src.Pix[3] != 0 {
			t.Fatalf("%v: Encode changed its input", tt.params)
		}
		img, format, err := image.Decode(&buf)
		if err != nil {
			t.Fatalf("%v: decode: %v", tt.params, err)
		}
		if format != tt.wantFormat || out.Ext() == "" || img.Bounds().Dx() != 64 || img.Bounds().Dy() != 48 {
			t.Fatalf("%v: decoded %s %v, want %s 64x48", tt.params, format, img.Bounds(), tt.wantFormat)
		}
		near := func(a, b uint32) bool { d := int(a>>8) - int(b); return d >= -10 && d <= 10 }
		r, g, b, a := img.At(5, 5).RGBA()
		switch {
		case tt.wantAlpha && a != 0:
			t.Fatalf("%v: transparent pixel has alpha %d, want 0", tt.params, a>>8)
		case !tt.wantAlpha && (a != 0xffff || !near(r, uint32(tt.bg[0])) || !near(g, uint32(tt.bg[1])) || !near(b, uint32(tt.bg[2]))):
			t.Fatalf("%v: transparent pixel became %d,%d,%d,%d, want the background %v", tt.params, r>>8, g>>8, b>>8, a>>8, tt.bg)
		}
		r, g, b, a = img.At(50, 20).RGBA()
		if a != 0xffff || !near(r, 100) || !near(g, 160) || !near(b, 90) {
			t.Fatalf("%v: opaque pixel became %d,%d,%d,%d, want about 100,160,90,255", tt.params, r>>8, g>>8, b>>8, a>>8)
		}
	}
}

// TestOutputFormatOf checks the defaults and extensions each format gets.
func TestOutputFormatOf(t *testing.T) {
	for _, tt := range []struct {
		params     map[string]any
		ext, ctype string
		quality    int
		flattens   bool
	}{
		{nil, ".png", "image/png", 0, false},
		{map[string]any{"format": "jpeg"}, ".jpg", "image/jpeg", schemas.DefaultQuality, true},
		{map[string]any{"format": "webp", "quality": 40.0}, ".webp", "image/webp", 40, false},
	} {
		o, err := schemas.OutputFormatOf(tt.params)
		if err != nil {
			t.Fatal(err)
		}
		if o.Ext() != tt.ext || o.ContentType() != tt.ctype || o.Quality != tt.quality || (o.Background != nil) != tt.flattens {
			t.Fatalf("%v: got %s %s q%d flatten=%v", tt.params, o.Ext(), o.ContentType(), o.Quality, o.Background != nil)
		}
	}
	if _, err := schemas.OutputFormatOf(map[string]any{"format": "gif"}); err == nil {
		t.Fatal("format gif was taken")
	}
}
