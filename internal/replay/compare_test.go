package replay_test

import (
	"bytes"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/internal/replay"
	"github.com/creativeai-studio/studio/schemas"
)

// disc is a w×h cut-out whose opaque pixels form a disc of radius r at (cx, cy).
func disc(w, h, cx, cy, r int) *image.NRGBA {
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			c := color.NRGBA{R: uint8(x * 7), G: uint8(y * 5), B: 90}
			if (x-cx)*(x-cx)+(y-cy)*(y-cy) <= r*r {
				c.A = 255
			}
			m.SetNRGBA(x, y, c)
		}
	}
	return m
}

// texture is a w×h opaque image with structure everywhere.
func texture(w, h int, shift uint8) *image.NRGBA {
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			m.SetNRGBA(x, y, color.NRGBA{R: uint8(x*x+y) + shift, G: uint8(3*x + 7*y), B: uint8(x ^ y), A: 255})
		}
	}
	return m
}

func TestMaskIoU(t *testing.T) {
	tests := []struct {
		name string
		a, b *image.NRGBA
		want float64
	}{
		{"identical masks overlap fully", disc(40, 40, 20, 20, 10), disc(40, 40, 20, 20, 10), 1},
		{"two empty masks are identical", disc(10, 10, 50, 50, 1), disc(10, 10, 60, 60, 1), 1},
		{"disjoint masks do not overlap", disc(60, 20, 10, 10, 5), disc(60, 20, 50, 10, 5), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := replay.MaskIoU(tt.a, tt.b)
			require.NoError(t, err)
			require.InDelta(t, tt.want, got, 1e-9)
		})
	}
	t.Run("a half-covering mask has the ratio of the areas", func(t *testing.T) {
		a := image.NewNRGBA(image.Rect(0, 0, 10, 10))
		b := image.NewNRGBA(image.Rect(0, 0, 10, 10))
		for y := range 10 {
			for x := range 10 {
				a.Pix[a.PixOffset(x, y)+3] = 255
				if x < 5 {
					b.Pix[b.PixOffset(x, y)+3] = 200
				}
			}
		}
		got, err := replay.MaskIoU(a, b)
		require.NoError(t, err)
		require.InDelta(t, 0.5, got, 1e-9)
	})
	t.Run("different sizes are refused", func(t *testing.T) {
		_, err := replay.MaskIoU(disc(10, 10, 5, 5, 2), disc(11, 10, 5, 5, 2))
		require.ErrorIs(t, err, replay.ErrSizeMismatch)
	})
}

func TestPSNRAndSSIM(t *testing.T) {
	a := texture(64, 48, 0)
	p, err := replay.PSNR(a, a)
	require.NoError(t, err)
	require.Equal(t, replay.MaxPSNR, p, "identical images")
	s, err := replay.SSIM(a, a)
	require.NoError(t, err)
	require.InDelta(t, 1, s, 1e-12)

	// Every colour channel off by 4: MSE 16, PSNR 10·log10(255²/16).
	b := image.NewNRGBA(a.Rect)
	copy(b.Pix, a.Pix)
	for i := range b.Pix {
		if i%4 != 3 {
			b.Pix[i] = uint8(int(b.Pix[i]+4) % 256)
			if a.Pix[i] > 251 {
				b.Pix[i] = a.Pix[i] - 4
			}
		}
	}
	p, err = replay.PSNR(a, b)
	require.NoError(t, err)
	require.InDelta(t, 10*math.Log10(255*255/16.0), p, 1e-9)

	// Unrelated structure scores far below a small brightness change.
	near, err := replay.SSIM(a, b)
	require.NoError(t, err)
	far, err := replay.SSIM(a, texture(64, 48, 97))
	require.NoError(t, err)
	require.Greater(t, near, 0.9)
	require.Less(t, far, near)
	require.Less(t, far, 0.9)

	t.Run("an image smaller than the window is compared whole", func(t *testing.T) {
		s, err := replay.SSIM(texture(4, 3, 0), texture(4, 3, 0))
		require.NoError(t, err)
		require.InDelta(t, 1, s, 1e-12)
	})
}

func TestCER(t *testing.T) {
	tests := []struct {
		name, ref, hyp string
		want           float64
	}{
		{"equal text has no errors", "Hello world", "Hello world", 0},
		{"one substitution in ten characters", "abcdefghij", "abcdefghiX", 0.1},
		{"a deletion and an insertion", "kitten", "sittin", 2.0 / 6},
		{"code points, not bytes", "naïve café", "naive café", 0.1},
		{"empty on both sides", "", "", 0},
		{"text where none was", "", "x", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.InDelta(t, tt.want, replay.CER(tt.ref, tt.hyp), 1e-12)
		})
	}
}

func pngBytes(t *testing.T, m image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, png.Encode(&buf, m))
	return buf.Bytes()
}

func ocrJSON(t *testing.T, text string) []byte {
	t.Helper()
	b, err := json.Marshal(schemas.OCRResult{Schema: schemas.SchemaOCRResult, Text: text})
	require.NoError(t, err)
	return b
}

func TestCompareUsesEachTasksMetric(t *testing.T) {
	cut := pngBytes(t, disc(30, 30, 15, 15, 8))
	img := pngBytes(t, texture(20, 20, 0))
	m, err := replay.Compare(schemas.TaskRemoveBackground, map[string][]byte{"cutout": cut}, map[string][]byte{"cutout": cut})
	require.NoError(t, err)
	require.Equal(t, "cutout", m.Output)
	require.Equal(t, 1.0, *m.IoU)
	require.Nil(t, m.PSNR)

	m, err = replay.Compare(schemas.TaskUpscale, map[string][]byte{"image": img}, map[string][]byte{"image": img})
	require.NoError(t, err)
	require.Equal(t, replay.MaxPSNR, *m.PSNR)
	require.InDelta(t, 1, *m.SSIM, 1e-12)
	require.Nil(t, m.IoU)

	m, err = replay.Compare(schemas.TaskOCR,
		map[string][]byte{"overlay": img, "text": ocrJSON(t, "INVOICE 42")},
		map[string][]byte{"overlay": img, "text": ocrJSON(t, "INVOICE 4Z")})
	require.NoError(t, err)
	require.Equal(t, "text", m.Output)
	require.False(t, *m.TextEqual)
	require.InDelta(t, 0.1, *m.CER, 1e-12)

	_, err = replay.Compare(schemas.TaskUpscale, map[string][]byte{"image": img}, map[string][]byte{"other": img})
	require.ErrorContains(t, err, "none of the original's results")
	_, err = replay.Compare(schemas.TaskUpscale, map[string][]byte{"image": img}, map[string][]byte{"image": pngBytes(t, texture(40, 40, 0))})
	require.ErrorIs(t, err, replay.ErrSizeMismatch)
}
