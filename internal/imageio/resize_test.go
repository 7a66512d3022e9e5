package imageio

import (
	"image"
	"image/color"
	"testing"

	"github.com/stretchr/testify/assert"
	"golang.org/x/image/draw"
)

func TestResizeBilinear(t *testing.T) {
	flat := func(c color.NRGBA) image.Image {
		m := image.NewNRGBA(image.Rect(10, 10, 110, 60))
		for i := 0; i < len(m.Pix); i += 4 {
			m.Pix[i], m.Pix[i+1], m.Pix[i+2], m.Pix[i+3] = c.R, c.G, c.B, c.A
		}
		return m
	}
	translucent := color.NRGBA{200, 100, 50, 128}
	tests := []struct {
		name     string
		src      image.Image
		w, h     int
		wantRect image.Rectangle
		at       image.Point // where to check the colour; the centre if zero
		want     color.NRGBA
	}{
		{name: "downscaling to a different aspect gives exactly the requested size", src: flat(red), w: 7, h: 33,
			wantRect: image.Rect(0, 0, 7, 33), want: red},
		{name: "upscaling gives exactly the requested size", src: flat(blue), w: 300, h: 300,
			wantRect: image.Rect(0, 0, 300, 300), want: blue},
		{name: "translucent colour keeps straight alpha", src: flat(translucent), w: 33, h: 17,
			wantRect: image.Rect(0, 0, 33, 17), want: translucent},
		{name: "a decoded JPEG (YCbCr) is scaled through its fast path", src: ycbcrOf(gridImage()), w: 12, h: 8,
			wantRect: image.Rect(0, 0, 12, 8), at: image.Pt(6, 6), want: magenta}, // well inside the magenta block
		{name: "zero width gives an empty image", src: flat(red), w: 0, h: 10},
		{name: "negative height gives an empty image", src: flat(red), w: 10, h: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ResizeBilinear(tt.src, tt.w, tt.h)
			assert.Equal(t, tt.wantRect, got.Rect)
			if got.Rect.Empty() {
				return
			}
			at := tt.at
			if at == (image.Point{}) {
				at = image.Pt(tt.w/2, tt.h/2)
			}
			assertNear(t, tt.want, got.NRGBAAt(at.X, at.Y), 8)
		})
	}
}

func TestThumbnail(t *testing.T) {
	tests := []struct {
		name    string
		w, h    int
		maxSide int
		want    image.Rectangle
	}{
		{name: "a landscape photo is bounded by its width", w: 4000, h: 3000, maxSide: 1024, want: image.Rect(0, 0, 1024, 768)},
		{name: "a portrait photo is bounded by its height", w: 300, h: 4000, maxSide: 1024, want: image.Rect(0, 0, 77, 1024)},
		{name: "a square stays square", w: 500, h: 500, maxSide: 64, want: image.Rect(0, 0, 64, 64)},
		{name: "a sliver keeps at least one pixel", w: 4000, h: 1, maxSide: 100, want: image.Rect(0, 0, 100, 1)},
		{name: "an image that already fits is not enlarged", w: 640, h: 480, maxSide: 1024, want: image.Rect(0, 0, 640, 480)},
		{name: "a non-positive bound gives an empty image", w: 640, h: 480, maxSide: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := image.NewGray(image.Rect(0, 0, tt.w, tt.h))
			assert.Equal(t, tt.want, Thumbnail(src, tt.maxSide).Rect)
			// NRGBA sources are box-filtered first when much larger.
			assert.Equal(t, tt.want, Thumbnail(image.NewNRGBA(src.Rect), tt.maxSide).Rect, "NRGBA")
		})
	}
	t.Run("an image that already fits is copied, not shared", func(t *testing.T) {
		src := image.NewNRGBA(image.Rect(0, 0, 4, 4))
		Thumbnail(src, 10).Pix[0] = 1
		assert.Zero(t, src.Pix[0])
	})
}

func ycbcrOf(src *image.NRGBA) *image.YCbCr {
	b := src.Bounds()
	m := image.NewYCbCr(b, image.YCbCrSubsampleRatio444)
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := src.NRGBAAt(x, y)
			yy, cb, cr := color.RGBToYCbCr(c.R, c.G, c.B)
			m.Y[m.YOffset(x, y)], m.Cb[m.COffset(x, y)], m.Cr[m.COffset(x, y)] = yy, cb, cr
		}
	}
	return m
}

func TestThumbnailBoxFilterStaysCloseToKernelOnly(t *testing.T) {
	edges := image.NewNRGBA(image.Rect(0, 0, 2050, 1366)) // not a multiple of the box
	for y := range edges.Rect.Dy() {
		for x := range edges.Rect.Dx() {
			if x > 1001 || (x+y)%700 < 350 { // a vertical edge and diagonal stripes
				edges.SetNRGBA(x, y, color.NRGBA{255, 255, 255, 255})
			} else {
				edges.SetNRGBA(x, y, color.NRGBA{0, 0, 0, 255})
			}
		}
	}
	cutout := photoImage(1600, 900) // transparent left third, soft edge, opaque right
	for y := range cutout.Rect.Dy() {
		for x := range cutout.Rect.Dx() {
			cutout.Pix[cutout.PixOffset(x, y)+3] = uint8(min(max(x-533, 0), 255))
		}
	}
	srcs := map[string]*image.NRGBA{
		"photo-like":         photoImage(2048, 2048),
		"hard edges":         edges,
		"sub-image":          photoImage(2100, 1400).SubImage(image.Rect(37, 11, 2037, 1393)).(*image.NRGBA),
		"cut-out":            cutout,
		"moderately smaller": photoImage(700, 600),
	}
	t.Run("real photos scaled up x4", func(t *testing.T) {
		for name, img := range cachedPhotos(t) {
			b := img.Bounds()
			srcs[name+" x4"] = Resize(img, 4*b.Dx(), 4*b.Dy())
		}
	})
	for name, src := range srcs {
		t.Run(name, func(t *testing.T) {
			got := Thumbnail(src, 256)
			b := src.Bounds()
			want := Thumbnail(ToNRGBA(src), 256) // same path, origin at (0, 0)
			assert.Equal(t, want.Pix, got.Pix, "independent of the origin and stride")
			want = scale(draw.CatmullRom, src, got.Rect.Dx(), got.Rect.Dy())
			var sum int
			for i := range got.Pix {
				sum += max(int(got.Pix[i])-int(want.Pix[i]), int(want.Pix[i])-int(got.Pix[i]))
			}
			mean := float64(sum) / float64(len(got.Pix))
			t.Logf("%v: mean absolute difference from kernel-only scaling %.2f levels", b, mean)
			assert.Less(t, mean, 1.0)
		})
	}
}

// fringeCases are an opaque square on a transparent background of the opposite
// colour: a filter that ignores alpha shows the background's colour at the edges.
var fringeCases = []struct {
	name       string
	square, bg color.NRGBA // bg has alpha 0
}{
	{"white on transparent black", color.NRGBA{255, 255, 255, 255}, color.NRGBA{}},
	{"black on transparent white", color.NRGBA{0, 0, 0, 255}, color.NRGBA{255, 255, 255, 0}},
}

// squareOn returns a side x side image of bg with square filling r.
func squareOn(side int, r image.Rectangle, square, bg color.NRGBA) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, side, side))
	for y := range side {
		for x := range side {
			c := bg
			if image.Pt(x, y).In(r) {
				c = square
			}
			img.SetNRGBA(x, y, c)
		}
	}
	return img
}

// assertNoFringe checks that every visible pixel of got has the square's colour (only
// the square is visible) and that some are translucent (the edges were filtered).
func assertNoFringe(t *testing.T, got *image.NRGBA, square color.NRGBA) {
	t.Helper()
	w := got.Bounds().Dx()
	var edge int
	for i := 0; i < len(got.Pix); i += 4 {
		c := color.NRGBA{got.Pix[i], got.Pix[i+1], got.Pix[i+2], got.Pix[i+3]}
		if c.A == 0 {
			continue
		}
		if c.A < 255 {
			edge++
		}
		if c.R != square.R || c.G != square.G || c.B != square.B {
			t.Fatalf("pixel (%d, %d) is %v, want the colour of %v", i/4%w, i/4/w, c, square)
		}
	}
	assert.Positive(t, edge, "the square's edges are translucent")
}

func TestThumbnailHasNoFringesAtTransparentEdges(t *testing.T) {
	for _, tt := range fringeCases {
		t.Run(tt.name, func(t *testing.T) {
			// The square's edges are off the box filter's grid.
			src := squareOn(2048, image.Rect(517, 509, 1531, 1529), tt.square, tt.bg)
			assertNoFringe(t, Thumbnail(src, 256), tt.square)
		})
	}
}
