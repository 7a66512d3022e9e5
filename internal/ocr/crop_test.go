package ocr

import (
	"image"
	"image/color"
	"math"
	"testing"
)

// gradient is an image whose pixel (x, y) has R = x and G = y, so a crop's pixels say
// where they came from.
func gradient(w, h int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.SetNRGBA(x, y, color.NRGBA{uint8(x), uint8(y), 0, 255})
		}
	}
	return img
}

func TestCrop(t *testing.T) {
	img := gradient(200, 120)
	tests := []struct {
		name       string
		q          Quad
		w, h       int
		at         func(x, y int) (r, g float64) // where output (x, y) comes from
		tolerance  float64
		rotatedCCW bool
	}{
		{
			name: "an axis-aligned box is cut out as it is",
			q:    Quad{{20, 30}, {120, 30}, {120, 60}, {20, 60}}, w: 100, h: 30,
			at: func(x, y int) (float64, float64) { return float64(20 + x), float64(30 + y) }, tolerance: 0.5,
		},
		{
			name: "a box turned 30 degrees comes out upright",
			q: func() Quad {
				s, c := math.Sincos(30 * math.Pi / 180)
				o := Point{60, 20}
				return Quad{o, {o.X + 80*c, o.Y + 80*s}, {o.X + 80*c - 20*s, o.Y + 80*s + 20*c}, {o.X - 20*s, o.Y + 20*c}}
			}(), w: 80, h: 20,
			at: func(x, y int) (float64, float64) {
				s, c := math.Sincos(30 * math.Pi / 180)
				return 60 + float64(x)*c - float64(y)*s, 20 + float64(x)*s + float64(y)*c
			}, tolerance: 1,
		},
		{
			name: "a tall box is turned anticlockwise as vertical text",
			q:    Quad{{50, 10}, {70, 10}, {70, 100}, {50, 100}}, w: 90, h: 20, rotatedCCW: true,
			// Output (x, y) of the turned crop is input crop (w0-1-y, x) with w0 = 20.
			at: func(x, y int) (float64, float64) { return float64(50 + 19 - y), float64(10 + x) }, tolerance: 0.5,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Crop(img, tt.q)
			if c.Bounds().Dx() != tt.w || c.Bounds().Dy() != tt.h {
				t.Fatalf("crop is %v, want %dx%d", c.Bounds(), tt.w, tt.h)
			}
			for y := 1; y < tt.h-1; y += 3 {
				for x := 1; x < tt.w-1; x += 7 {
					p := c.NRGBAAt(x, y)
					wr, wg := tt.at(x, y)
					if math.Abs(float64(p.R)-wr) > tt.tolerance || math.Abs(float64(p.G)-wg) > tt.tolerance {
						t.Fatalf("crop (%d,%d) = (%d,%d), want source (%.1f,%.1f)", x, y, p.R, p.G, wr, wg)
					}
				}
			}
		})
	}
}

func TestRot180IsItsOwnInverse(t *testing.T) {
	img := gradient(7, 3)
	r := rot180(img)
	if p := r.NRGBAAt(0, 0); p.R != 6 || p.G != 2 {
		t.Errorf("rot180 top left = (%d,%d), want the bottom right (6,2)", p.R, p.G)
	}
	back := rot180(r)
	for i := range img.Pix {
		if back.Pix[i] != img.Pix[i] {
			t.Fatal("rot180 twice differs from the original")
		}
	}
}

func TestNormalizeCrops(t *testing.T) {
	wide := image.NewNRGBA(image.Rect(0, 0, 96, 24)) // ratio 4: 192 wide at height 48
	for i := range wide.Pix {
		wide.Pix[i] = 255
	}
	narrow := image.NewNRGBA(image.Rect(0, 0, 24, 24)) // black, 48 wide
	for i := 3; i < len(narrow.Pix); i += 4 {
		narrow.Pix[i] = 255
	}
	x := NormalizeCrops([]*image.NRGBA{wide, narrow}, 320)
	if want := []int64{2, 3, 48, 320}; len(x.Shape) != 4 || x.Shape[0] != want[0] || x.Shape[3] != want[3] {
		t.Fatalf("shape %v, want %v", x.Shape, want)
	}
	plane := 48 * 320
	at := func(n, c, y, xx int) float32 { return x.Data[n*3*plane+c*plane+y*320+xx] }
	tests := []struct {
		name       string
		n, c, y, x int
		want       float32
	}{
		{"white scales to 1", 0, 0, 10, 100, 1},
		{"the padding right of a resized crop is 0", 0, 1, 10, 200, 0},
		{"black scales to -1", 1, 2, 30, 40, -1},
		{"a square crop fills 48 columns", 1, 0, 30, 48, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := at(tt.n, tt.c, tt.y, tt.x); got != tt.want {
				t.Errorf("value %g, want %g", got, tt.want)
			}
		})
	}
	if w := RecWidth([]*image.NRGBA{wide}); w != 320 {
		t.Errorf("RecWidth of a 4:1 crop = %d, want the 320 minimum", w)
	}
	if w := RecWidth([]*image.NRGBA{image.NewNRGBA(image.Rect(0, 0, 300, 20))}); w != 720 {
		t.Errorf("RecWidth of a 15:1 crop = %d, want 720", w)
	}
}

func TestResizeLinearMatchesOpenCVsHalfPixelMapping(t *testing.T) {
	src := image.NewNRGBA(image.Rect(0, 0, 4, 1))
	for x, v := range []uint8{0, 100, 200, 255} {
		src.SetNRGBA(x, 0, color.NRGBA{v, v, v, 255})
	}
	// cv2.resize(np.array([[0,100,200,255]], np.uint8), (2,1)) averages pairs
	// (source x 0.5 and 2.5); (8,1) clamps the ends and interpolates at x/2-0.25.
	tests := []struct {
		name string
		w    int
		want []uint8
	}{
		{"halving averages pairs", 2, []uint8{50, 228}},
		{"doubling interpolates at quarter pixels and clamps the edges", 8, []uint8{0, 25, 75, 125, 175, 214, 241, 255}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := ResizeLinear(src, tt.w, 1)
			for x, w := range tt.want {
				if got := out.NRGBAAt(x, 0).R; got != w {
					t.Errorf("x=%d: %d, want %d", x, got, w)
				}
			}
		})
	}
}
