package imageio

import (
	"fmt"
	"image"
	"image/color"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/image/draw"
)

// drawBiLinear is what ResizeBilinear did before it had its own resampler:
// x/image/draw's BiLinear into premultiplied RGBA, then un-premultiplied.
func drawBiLinear(src image.Image, w, h int) *image.NRGBA {
	return scale(draw.BiLinear, src, w, h)
}

// drawBiLinearGray is drawBiLinear for masks: the grey of its result.
func drawBiLinearGray(src *image.Gray, w, h int) *image.Gray {
	rgba := drawBiLinear(src, w, h)
	g := image.NewGray(rgba.Rect)
	for i := range g.Pix {
		g.Pix[i] = rgba.Pix[4*i]
	}
	return g
}

// maskImage is mask-like: a soft-edged ellipse, as IS-Net draws around hair,
// beside a hard-edged bar, as a thresholded mask has.
func maskImage(w, h int) *image.Gray {
	rng := rand.New(rand.NewPCG(5, 6))
	m := image.NewGray(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			dx, dy := float64(x-w/3)/float64(w/4), float64(y-h/2)/float64(h/3)
			v := min(max((1.1-dx*dx-dy*dy)*1000, 0), 255)
			if x > 3*w/4 && x < 7*w/8 && y > h/5 {
				v = 255
			}
			if v > 0 && v < 255 {
				v = min(max(v+float64(rng.IntN(9)-4), 0), 255)
			}
			m.Pix[m.PixOffset(x, y)] = uint8(v)
		}
	}
	return m
}

// absDiff returns the mean and largest absolute difference between a and b.
func absDiff(tb testing.TB, a, b []uint8) (mean float64, most int) {
	tb.Helper()
	require.Len(tb, b, len(a))
	sum := 0
	for i := range a {
		d := max(int(a[i])-int(b[i]), int(b[i])-int(a[i]))
		sum += d
		most = max(most, d)
	}
	return float64(sum) / float64(len(a)), most
}

func TestResizeBilinearMatchesDraw(t *testing.T) {
	type resize struct {
		src  *image.NRGBA
		w, h int
	}
	tests := map[string]resize{
		"photo-like 512x512 up to 1024x1024":    {photoImage(512, 512), 1024, 1024},
		"photo-like 600x400 up to 1024x1024":    {photoImage(600, 400), 1024, 1024},
		"photo-like 451x300 up to 1024x1024":    {photoImage(451, 300), 1024, 1024},
		"photo-like 1024x1024 down to 512x512":  {photoImage(1024, 1024), 512, 512},
		"photo-like 1024x1024 down to 640x427":  {photoImage(1024, 1024), 640, 427},
		"photo-like 1920x1080 to 1024x1024":     {photoImage(1920, 1080), 1024, 1024},
		"photo-like 2000x1500 down to 150x100":  {photoImage(2000, 1500), 150, 100},
		"photo-like 100x80 up 7.3x to 730x584":  {photoImage(100, 80), 730, 584},
		"photo-like 640x480 down 3x to 213x160": {photoImage(640, 480), 213, 160},
	}
	t.Run("real photos", func(t *testing.T) {
		for name, img := range cachedPhotos(t) {
			b := img.Bounds()
			tests[name+" to 1024x1024"] = resize{img, 1024, 1024}
			tests[name+" to half size"] = resize{img, b.Dx() / 2, b.Dy() / 2}
		}
	})
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, want := ResizeBilinear(tt.src, tt.w, tt.h), drawBiLinear(tt.src, tt.w, tt.h)
			assert.Equal(t, want.Rect, got.Rect)
			mean, most := absDiff(t, got.Pix, want.Pix)
			t.Logf("difference from draw.BiLinear: mean %.3f, max %d levels", mean, most)
			assert.Less(t, mean, 0.02, "rounds as draw does (see to8)")
			assert.LessOrEqual(t, most, 1)
		})
	}
}

func TestResizeGrayMatchesDraw(t *testing.T) {
	mask := maskImage(1024, 1024)
	for _, size := range []image.Point{{512, 512}, {640, 427}, {451, 300}, {1920, 1080}, {1024, 768}, {100, 100}} {
		t.Run(fmt.Sprintf("1024x1024 to %dx%d", size.X, size.Y), func(t *testing.T) {
			got, want := ResizeGray(mask, size.X, size.Y), drawBiLinearGray(mask, size.X, size.Y)
			assert.Equal(t, want.Rect, got.Rect)
			mean, most := absDiff(t, got.Pix, want.Pix)
			t.Logf("difference from draw.BiLinear: mean %.3f, max %d levels", mean, most)
			assert.Less(t, mean, 0.02, "rounds as draw does (see to8)")
			assert.LessOrEqual(t, most, 1)
		})
	}
}

func TestResizeBilinearTranslucentMatchesDraw(t *testing.T) {
	// A cut-out: transparent left, a soft edge, opaque right. draw rounds
	// premultiplied colour to 8 bits before un-premultiplying, so its colour
	// is coarse where alpha is low (ours divides before rounding); compare
	// alpha everywhere and colour where it is mostly opaque.
	src := photoImage(600, 400)
	for y := range 400 {
		for x := range 600 {
			src.Pix[src.PixOffset(x, y)+3] = uint8(min(max(x-200, 0), 255))
		}
	}
	for _, size := range []image.Point{{1024, 1024}, {300, 200}} {
		t.Run(fmt.Sprintf("600x400 to %dx%d", size.X, size.Y), func(t *testing.T) {
			got, want := ResizeBilinear(src, size.X, size.Y), drawBiLinear(src, size.X, size.Y)
			var ga, wa, gc, wc []uint8
			for i := 0; i < len(got.Pix); i += 4 {
				ga, wa = append(ga, got.Pix[i+3]), append(wa, want.Pix[i+3])
				if want.Pix[i+3] >= 128 {
					gc, wc = append(gc, got.Pix[i:i+3]...), append(wc, want.Pix[i:i+3]...)
				}
			}
			mean, most := absDiff(t, ga, wa)
			t.Logf("alpha: mean %.3f, max %d levels from draw.BiLinear", mean, most)
			assert.Less(t, mean, 0.02)
			assert.LessOrEqual(t, most, 1)
			mean, most = absDiff(t, gc, wc)
			t.Logf("colour where alpha >= 128: mean %.3f, max %d levels from draw.BiLinear", mean, most)
			assert.Less(t, mean, 0.5)
			assert.LessOrEqual(t, most, 2)
		})
	}
}

func TestResizeBilinearHasNoFringesAtTransparentEdges(t *testing.T) {
	for _, tt := range fringeCases {
		for _, size := range []int{1024, 173} {
			t.Run(fmt.Sprintf("%s 400 to %d", tt.name, size), func(t *testing.T) {
				src := squareOn(400, image.Rect(101, 99, 297, 303), tt.square, tt.bg)
				assertNoFringe(t, ResizeBilinear(src, size, size), tt.square)
			})
		}
	}
}

func TestResizeBilinearSameSizeKeepsPixels(t *testing.T) {
	src := photoImage(300, 200)
	got := ResizeBilinear(src, 300, 200)
	assert.Equal(t, src.Pix, got.Pix, "opaque")

	for i := 3; i < len(src.Pix); i += 4 {
		src.Pix[i] = uint8(1 + i%255) // translucent, never transparent
	}
	got = ResizeBilinear(src, 300, 200)
	assert.Equal(t, src.Pix, got.Pix, "translucent")

	mask := maskImage(300, 200)
	assert.Equal(t, mask.Pix, ResizeGray(mask, 300, 200).Pix, "gray")
}

func TestResizeBilinearThinImages(t *testing.T) {
	sizes := []image.Point{{1, 1}, {1, 7}, {7, 1}, {5, 3}, {1, 300}, {300, 1}}
	targets := []image.Point{{1, 1}, {1, 9}, {9, 1}, {4, 6}, {1, 1024}, {1024, 1}, {2, 2}}
	flat := color.NRGBA{200, 100, 50, 255}
	for _, s := range sizes {
		src := photoImage(s.X, s.Y)
		for _, d := range targets {
			t.Run(fmt.Sprintf("%dx%d to %dx%d", s.X, s.Y, d.X, d.Y), func(t *testing.T) {
				got, want := ResizeBilinear(src, d.X, d.Y), drawBiLinear(src, d.X, d.Y)
				assert.Equal(t, want.Rect, got.Rect)
				_, most := absDiff(t, got.Pix, want.Pix)
				assert.LessOrEqual(t, most, 1, "from draw.BiLinear")

				g := image.NewGray(src.Rect)
				for i := range g.Pix {
					g.Pix[i] = src.Pix[4*i+1]
				}
				_, most = absDiff(t, ResizeGray(g, d.X, d.Y).Pix, drawBiLinearGray(g, d.X, d.Y).Pix)
				assert.LessOrEqual(t, most, 1, "gray from draw.BiLinear")

				for i := 0; i < len(src.Pix); i += 4 {
					src.Pix[i], src.Pix[i+1], src.Pix[i+2], src.Pix[i+3] = flat.R, flat.G, flat.B, flat.A
				}
				got = ResizeBilinear(src, d.X, d.Y)
				for i := 0; i < len(got.Pix); i += 4 {
					require.Equal(t, flat, color.NRGBA{got.Pix[i], got.Pix[i+1], got.Pix[i+2], got.Pix[i+3]}, "flat colour stays exact")
				}
				src = photoImage(s.X, s.Y)
			})
		}
	}
}

func TestResizeBilinearSubImage(t *testing.T) {
	r := image.Rect(37, 11, 637, 411)
	src := photoImage(700, 500).SubImage(r).(*image.NRGBA) // offset, and a stride wider than the rectangle
	for i := 3; i < len(src.Pix); i += 40 {
		src.Pix[i] = 90 // some translucency, to take the premultiplied path
	}
	for _, size := range []image.Point{{1024, 1024}, {300, 200}} {
		assert.Equal(t, ResizeBilinear(ToNRGBA(src), size.X, size.Y).Pix, ResizeBilinear(src, size.X, size.Y).Pix, "NRGBA to %v", size)

		mask := maskImage(700, 500)
		sub := mask.SubImage(r).(*image.Gray)
		packed := image.NewGray(image.Rect(0, 0, r.Dx(), r.Dy()))
		for y := range r.Dy() {
			copy(packed.Pix[y*packed.Stride:], sub.Pix[sub.PixOffset(r.Min.X, r.Min.Y+y):][:r.Dx()])
		}
		assert.Equal(t, ResizeGray(packed, size.X, size.Y).Pix, ResizeGray(sub, size.X, size.Y).Pix, "Gray to %v", size)
	}
}

func TestResizeGrayEmpty(t *testing.T) {
	assert.Equal(t, image.Rectangle{}, ResizeGray(maskImage(10, 10), 0, 5).Rect)
	assert.Equal(t, image.Rectangle{}, ResizeGray(maskImage(10, 10), 5, -1).Rect)
	got := ResizeGray(image.NewGray(image.Rectangle{}), 3, 2)
	assert.Equal(t, image.Rect(0, 0, 3, 2), got.Rect)
	assert.Equal(t, make([]uint8, 6), got.Pix)
	assert.Equal(t, image.Rect(0, 0, 3, 2), ResizeBilinear(image.NewNRGBA(image.Rectangle{}), 3, 2).Rect)
}

func TestBilinearSpans(t *testing.T) {
	for _, n := range []int{1, 2, 3, 7, 100, 451, 1024, 1920} {
		for _, m := range []int{1, 2, 3, 5, 99, 512, 640, 1024, 4096} {
			spans := bilinearSpans(m, n)
			require.Len(t, spans, m)
			prevStart, prevEnd := 0, 0
			for x, s := range spans {
				var sum int32
				for _, w := range s.w {
					require.GreaterOrEqual(t, w, int32(0))
					sum += w
				}
				require.Equal(t, int32(1<<weightBits), sum, "%d to %d, pixel %d", n, m, x)
				end := s.i + len(s.w)
				// The resampler's ring of rows relies on spans moving
				// forward only.
				require.True(t, s.i >= prevStart && end >= prevEnd && s.i >= 0 && end <= n, "%d to %d, pixel %d: %d..%d", n, m, x, s.i, end)
				prevStart, prevEnd = s.i, end
			}
		}
	}
}
