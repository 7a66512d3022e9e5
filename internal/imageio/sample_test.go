package imageio

import (
	"errors"
	"image"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func grayRow(v ...byte) *image.Gray {
	return &image.Gray{Pix: v, Stride: len(v), Rect: image.Rect(0, 0, len(v), 1)}
}

// TestResamplingHandComputed checks each convention against values worked
// out by hand (the arithmetic is in the comments).
func TestResamplingHandComputed(t *testing.T) {
	bil := func(c Coordinates, r Rounding) Resampling {
		return Resampling{Kernel: KernelBilinear, Coordinates: c, Rounding: r}
	}
	tests := []struct {
		name string
		r    Resampling
		src  []byte
		w    int
		want []byte
	}{
		// scale 1/2, positions 0, .5, 1, 1.5; the last clamps to pixel 1.
		{"asymmetric bilinear samples from the left edge", bil(Asymmetric, Round), []byte{10, 21}, 4, []byte{10, 16, 21, 21}},
		{"truncation drops the half", bil(Asymmetric, Truncate), []byte{10, 21}, 4, []byte{10, 15, 21, 21}},
		// positions -.25 (clamped to 0), .25, .75, 1.25: 10, 12.75, 18.25, 21.
		{"half-pixel bilinear samples pixel centres", bil(HalfPixel, Round), []byte{10, 21}, 4, []byte{10, 13, 18, 21}},
		// positions 0, 1/3, 2/3, 1: 10, 13.67, 17.33, 21.
		{"align-corners bilinear meets both ends", bil(AlignCorners, Round), []byte{10, 21}, 4, []byte{10, 14, 17, 21}},
		// sample points 0, 2 (asymmetric); 1, 3 (half-pixel); 0, 3 (corners).
		{"asymmetric nearest takes each block's first pixel", Resampling{KernelNearest, Asymmetric, false, Round}, []byte{10, 20, 30, 40}, 2, []byte{10, 30}},
		{"half-pixel nearest takes the pixel under each centre", Resampling{KernelNearest, HalfPixel, false, Round}, []byte{10, 20, 30, 40}, 2, []byte{20, 40}},
		{"align-corners nearest keeps both ends", Resampling{KernelNearest, AlignCorners, false, Round}, []byte{10, 20, 30, 40}, 2, []byte{10, 40}},
		// positions 0, .5, 1: the half goes up.
		{"align-corners nearest rounds halves up", Resampling{KernelNearest, AlignCorners, false, Round}, []byte{10, 20}, 3, []byte{10, 20, 20}},
		{"area averages pairs", Resampling{KernelArea, HalfPixel, false, Round}, []byte{10, 20, 30, 40}, 2, []byte{15, 35}},
		// [0,1.5): (0*1 + 30*.5)/1.5 = 10; [1.5,3): (30*.5 + 60*1)/1.5 = 50.
		{"area weighs partly covered pixels", Resampling{KernelArea, HalfPixel, false, Round}, []byte{0, 30, 60}, 2, []byte{10, 50}},
		// centre .5, kernel widened x2: taps -1 (dropped), 0, 1, 2 weigh .25, .75, .75, .25:
		// (7.5+15+7.5)/1.75 = 17.14; centre 2.5: (5+22.5+30)/1.75 = 32.86.
		{"antialiased bilinear widens and renormalises at edges", Resampling{KernelBilinear, HalfPixel, true, Round}, []byte{10, 20, 30, 40}, 2, []byte{17, 33}},
		// positions 0, .5, ..., 3; at 1.5 the taps weigh -.0625, .5625, .5625, -.0625:
		// .5*255 = 127.5; at .5 and 2.5 the overshoot clamps.
		{"bicubic clamps its overshoot", Resampling{KernelBicubic, AlignCorners, false, Round}, []byte{0, 0, 255, 255}, 7, []byte{0, 0, 0, 128, 255, 255, 255}},
		{"bicubic truncates the same half down", Resampling{KernelBicubic, AlignCorners, false, Truncate}, []byte{0, 0, 255, 255}, 7, []byte{0, 0, 0, 127, 255, 255, 255}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.r.ResizeGray(grayRow(tt.src...), tt.w, 1)
			if !slices.Equal(got.Pix, tt.want) {
				t.Errorf("%v of %v to %d: got %v, want %v", tt.r, tt.src, tt.w, got.Pix, tt.want)
			}
		})
	}
}

// TestTwoTapBilinearInTwoDimensions checks the four-pixel blend: 2x2 to 3x3,
// asymmetric, so positions are 0, 2/3 and 4/3 (clamped to pixel 1).
func TestTwoTapBilinearInTwoDimensions(t *testing.T) {
	src := &image.Gray{Pix: []byte{0, 100, 200, 255}, Stride: 2, Rect: image.Rect(0, 0, 2, 2)}
	got := Resampling{KernelBilinear, Asymmetric, false, Round}.ResizeGray(src, 3, 3)
	want := []byte{
		0, 67, 100, // 100*2/3 = 66.67
		133, 180, 203, // 200*2/3; (2*100 + 2*200 + 4*255)/9; x clamps: 100/3 + 255*2/3
		200, 237, 255, // y clamps to row 1: 200, 200/3 + 255*2/3 = 236.67, 255
	}
	if !slices.Equal(got.Pix, want) {
		t.Errorf("got %v, want %v", got.Pix, want)
	}
}

// imglyResize is tensorResizeBilinear of @imgly/background-removal-node
// 1.4.5 (dist/index.cjs), transcribed line for line: the reference the
// two-tap path must equal bit for bit.
func imglyResize(src []byte, sw, sh, c, w, h int) []byte {
	out := make([]byte, w*h*c)
	scaleX, scaleY := float64(sw)/float64(w), float64(sh)/float64(h)
	jsRound := func(v float64) float64 { // Math.round: halves towards +Inf
		f := math.Floor(v)
		if v-f >= 0.5 {
			return f + 1
		}
		return f
	}
	for y := range h {
		for x := range w {
			srcX, srcY := float64(x)*scaleX, float64(y)*scaleY
			x1 := max(int(math.Floor(srcX)), 0)
			x2 := min(int(math.Ceil(srcX)), sw-1)
			y1 := max(int(math.Floor(srcY)), 0)
			y2 := min(int(math.Ceil(srcY)), sh-1)
			dx, dy := srcX-float64(x1), srcY-float64(y1)
			for k := range c {
				p1 := float64(src[(y1*sw+x1)*c+k])
				p2 := float64(src[(y1*sw+x2)*c+k])
				p3 := float64(src[(y2*sw+x1)*c+k])
				p4 := float64(src[(y2*sw+x2)*c+k])
				v := float64(float64((1-dx)*(1-dy))*p1) + float64(float64(dx*(1-dy))*p2)
				v = float64(v + float64(float64((1-dx)*dy)*p3))
				v = float64(v + float64(float64(dx*dy)*p4))
				out[(y*w+x)*c+k] = byte(jsRound(v))
			}
		}
	}
	return out
}

// TestTwoTapEqualsImglyBitForBit runs both on random images of awkward
// sizes, up and down, both channel counts.
func TestTwoTapEqualsImglyBitForBit(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	r := Resampling{KernelBilinear, Asymmetric, false, Round}
	for _, sz := range [][4]int{{7, 5, 16, 16}, {451, 300, 64, 64}, {64, 64, 451, 300}, {3, 1000, 10, 7}, {1, 1, 5, 3}, {97, 13, 13, 97}} {
		sw, sh, w, h := sz[0], sz[1], sz[2], sz[3]
		n := image.NewNRGBA(image.Rect(0, 0, sw, sh))
		for i := range n.Pix {
			n.Pix[i] = byte(rng.IntN(256))
		}
		if got, want := r.ResizeNRGBA(n, w, h).Pix, imglyResize(n.Pix, sw, sh, 4, w, h); !slices.Equal(got, want) {
			t.Errorf("RGBA %dx%d to %dx%d differs from the reference", sw, sh, w, h)
		}
		g := &image.Gray{Pix: n.Pix[:sw*sh], Stride: sw, Rect: image.Rect(0, 0, sw, sh)}
		if got, want := r.ResizeGray(g, w, h).Pix, imglyResize(g.Pix, sw, sh, 1, w, h); !slices.Equal(got, want) {
			t.Errorf("gray %dx%d to %dx%d differs from the reference", sw, sh, w, h)
		}
	}
}

// TestAntialiasedBilinearMatchesTheFastPath: the fixed-point ResizeBilinear
// is this convention, give or take a level.
func TestAntialiasedBilinearMatchesTheFastPath(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	src := image.NewNRGBA(image.Rect(0, 0, 300, 200))
	for i := range src.Pix {
		src.Pix[i] = byte(rng.IntN(256))
		if i%4 == 3 {
			src.Pix[i] = 255 // opaque: the fast path filters premultiplied colour
		}
	}
	r := Resampling{KernelBilinear, HalfPixel, true, Round}
	for _, sz := range [][2]int{{97, 61}, {300, 200}, {640, 480}} {
		got, fast := r.ResizeNRGBA(src, sz[0], sz[1]), ResizeBilinear(src, sz[0], sz[1])
		worst := 0
		for i := range got.Pix {
			worst = max(worst, absInt(int(got.Pix[i])-int(fast.Pix[i])))
		}
		if worst > 1 {
			t.Errorf("to %dx%d: differs from ResizeBilinear by up to %d levels, want at most 1", sz[0], sz[1], worst)
		}
	}
}

func absInt(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func TestResamplingValidate(t *testing.T) {
	tests := []struct {
		name string
		r    Resampling
		ok   bool
	}{
		{"the imgly convention is valid", Resampling{KernelBilinear, Asymmetric, false, Truncate}, true},
		{"an unknown kernel is refused", Resampling{"lanczos", HalfPixel, false, Round}, false},
		{"an unknown convention is refused", Resampling{KernelBilinear, "pytorch_half_pixel", false, Round}, false},
		{"an empty rounding is refused", Resampling{KernelBilinear, HalfPixel, false, ""}, false},
		{"antialiased nearest is refused", Resampling{KernelNearest, HalfPixel, true, Round}, false},
		{"area with asymmetric coordinates is refused", Resampling{KernelArea, Asymmetric, false, Round}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.r.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok %t", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrBadResampling) {
				t.Errorf("%v does not wrap ErrBadResampling", err)
			}
		})
	}
}

func TestResamplingEmptyAndSubImages(t *testing.T) {
	r := Resampling{KernelBilinear, Asymmetric, false, Round}
	if got := r.ResizeGray(grayRow(1, 2), 0, 3); !got.Rect.Empty() {
		t.Errorf("width 0 gave %v", got.Rect)
	}
	big := image.NewGray(image.Rect(0, 0, 4, 4))
	for i := range big.Pix {
		big.Pix[i] = byte(i)
	}
	sub := big.SubImage(image.Rect(2, 2, 4, 4)).(*image.Gray)
	if got := r.ResizeGray(sub, 2, 2); !slices.Equal(got.Pix, []byte{10, 11, 14, 15}) {
		t.Errorf("a sub-image resized to its own size gave %v, want its pixels [10 11 14 15]", got.Pix)
	}
}

func TestOrientationRoundTrips(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	img := image.NewNRGBA(image.Rect(0, 0, 5, 3))
	for i := range img.Pix {
		img.Pix[i] = byte(rng.IntN(256))
	}
	for o := 1; o <= 8; o++ {
		if back := Unorient(Orient(img, o), o); !slices.Equal(back.Pix, img.Pix) || back.Rect != img.Rect {
			t.Errorf("orientation %d: Unorient(Orient(img)) is not img", o)
		}
		g := image.NewGray(img.Rect)
		for i := range g.Pix {
			g.Pix[i] = img.Pix[4*i+3]
		}
		og, on := OrientGray(g, o), Orient(img, o)
		for i := range og.Pix {
			if og.Pix[i] != on.Pix[4*i+3] {
				t.Fatalf("orientation %d: OrientGray differs from Orient at %d", o, i)
			}
		}
		if SwapsAxes(o) != (on.Rect.Dx() == 3) {
			t.Errorf("orientation %d: SwapsAxes %t but the result is %v", o, SwapsAxes(o), on.Rect)
		}
	}
}

// TestTwoTapFixedIsTheFloatEvaluation checks the integer two-tap bilinear
// against the float64 evaluation of the convention, level for level, on
// random pixels for every size pair whose taps it takes: IS-Net's 1024x1024
// from the benchmark photos' sizes and odd ones, its masks back from 1024 to
// sizes that divide evenly, and twofold upscales of any size.
func TestTwoTapFixedIsTheFloatEvaluation(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	type size struct{ sw, sh, w, h int }
	sizes := []size{
		{512, 512, 1024, 1024}, {600, 400, 1024, 1024}, {451, 300, 1024, 1024}, {640, 427, 1024, 1024},
		{1, 1, 1024, 1024}, {3000, 2001, 1024, 1024}, {1023, 1025, 1024, 1024}, {1024, 1024, 1024, 1024},
		{1024, 1024, 512, 512}, {1024, 1024, 256, 128}, {1024, 1024, 2048, 4096},
		{37, 91, 74, 182}, {5, 7, 10, 14}, {77, 3, 154, 6},
	}
	taken := 0
	for _, conv := range []Coordinates{Asymmetric, HalfPixel, AlignCorners} {
		for _, rnd := range []Rounding{Round, Truncate} {
			for _, sz := range sizes {
				for _, c := range []int{1, 4} {
					tx, ty := taps(conv, sz.sw, sz.w), taps(conv, sz.sh, sz.h)
					fx, fy := fixedTaps(tx), fixedTaps(ty)
					if conv == Asymmetric && sz.w == 1024 && sz.h == 1024 && (fx == nil || fy == nil) {
						t.Fatalf("%dx%d to 1024x1024: the asymmetric taps are exact binary fractions, yet fixedTaps refused them", sz.sw, sz.sh)
					}
					if fx == nil || fy == nil {
						continue
					}
					taken++
					src := plane{make([]byte, c*sz.sw*sz.sh+3), c*sz.sw + 3, sz.sw, sz.sh}
					for i := range src.pix {
						src.pix[i] = byte(rng.IntN(256))
					}
					if rng.IntN(2) == 0 { // flat regions and extremes, where rounding ties live
						for i := range src.pix {
							src.pix[i] = []byte{0, 255, 128, 127}[i/97%4]
						}
					}
					src.stride = c * sz.sw
					want := plane{make([]byte, c*sz.w*sz.h), c * sz.w, sz.w, sz.h}
					got := plane{make([]byte, c*sz.w*sz.h), c * sz.w, sz.w, sz.h}
					twoTapFloat(src, want, c, tx, ty, rnd)
					twoTapFixed(src, c, interleaved(got, c), tx, ty, fx, fy, rnd)
					if i := firstDiff(got.pix, want.pix); i >= 0 {
						t.Fatalf("%s/%s %dx%d to %dx%d, %d channels: byte %d is %d, the float evaluation gives %d",
							conv, rnd, sz.sw, sz.sh, sz.w, sz.h, c, i, got.pix[i], want.pix[i])
					}
				}
			}
		}
	}
	if taken < 40 {
		t.Fatalf("only %d size pairs took the integer path", taken)
	}
}

func firstDiff(a, b []byte) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

// TestResizePlanesIsResizeNRGBA checks that the planar resize gives ResizeNRGBA's
// levels for every kernel, the integer two-tap path included, from a sub-image.
func TestResizePlanesIsResizeNRGBA(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	parent := image.NewNRGBA(image.Rect(0, 0, 700, 450))
	for i := range parent.Pix {
		parent.Pix[i] = byte(rng.IntN(256))
	}
	src := parent.SubImage(image.Rect(5, 7, 605, 407)).(*image.NRGBA) // 600x400
	for _, r := range []Resampling{
		{KernelBilinear, Asymmetric, false, Round},
		{KernelBilinear, Asymmetric, false, Truncate},
		{KernelBilinear, HalfPixel, false, Round},
		{KernelBilinear, HalfPixel, true, Round},
		{KernelBicubic, AlignCorners, false, Round},
		{KernelNearest, Asymmetric, false, Round},
		{KernelArea, HalfPixel, false, Truncate},
	} {
		for _, sz := range [][2]int{{1024, 1024}, {333, 517}, {600, 400}} {
			w, h := sz[0], sz[1]
			want := r.ResizeNRGBA(src, w, h)
			planes := [3][]byte{make([]byte, w*h), make([]byte, w*h), make([]byte, w*h)}
			r.ResizePlanes(src, w, h, planes[0], planes[1], planes[2])
			for i := range w * h {
				for k := range 3 {
					if got := planes[k][i]; got != want.Pix[4*i+k] {
						t.Fatalf("%v to %dx%d: pixel %d channel %d is %d, ResizeNRGBA gives %d", r, w, h, i, k, got, want.Pix[4*i+k])
					}
				}
			}
		}
	}
}
