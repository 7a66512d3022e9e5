package jpeg

import (
	"bytes"
	"image"
	"image/color"
	stdjpeg "image/jpeg"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestIslowOfADCOnlyBlockIsFlat(t *testing.T) {
	var b block
	b[0] = 80 // pass 1: 80<<2 = 320; pass 2: (320 + 16) >> 5 = 10; level shift: 138
	dst := make([]byte, 64)
	islow(&b, dst, 8)
	for i, v := range dst {
		if v != 138 {
			t.Fatalf("pixel %d = %d, want 138", i, v)
		}
	}
}

// TestIslowIsWithinALevelOfTheTrueIDCT: jidctint is an accurate IDCT, so on
// every block its result is the rounded real-valued IDCT, give or take one.
func TestIslowIsWithinALevelOfTheTrueIDCT(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for range 2000 {
		var b block
		for i := range b {
			if rng.IntN(4) == 0 {
				b[i] = int32(rng.IntN(401) - 200)
			}
		}
		dst := make([]byte, 64)
		islow(&b, dst, 8)
		for y := range 8 {
			for x := range 8 {
				s := 0.0
				for v := range 8 {
					for u := range 8 {
						cu, cv := 1.0, 1.0
						if u == 0 {
							cu = 1 / math.Sqrt2
						}
						if v == 0 {
							cv = 1 / math.Sqrt2
						}
						s += cu * cv * float64(b[8*v+u]) * math.Cos(float64(2*x+1)*float64(u)*math.Pi/16) * math.Cos(float64(2*y+1)*float64(v)*math.Pi/16)
					}
				}
				want := min(max(math.Round(s/4)+128, 0), 255)
				if d := math.Abs(float64(dst[8*y+x]) - want); d > 1 {
					t.Fatalf("block %v: pixel (%d,%d) = %d, true IDCT %v", b, x, y, dst[8*y+x], want)
				}
			}
		}
	}
}

func TestRangeLimitWrapsAsLibjpegsTable(t *testing.T) {
	for _, tt := range []struct {
		in   int64
		want uint8
	}{{0, 128}, {-128, 0}, {127, 255}, {-129, 0}, {511, 255}, {-512, 0}, {512, 0}, {-600, 255}} {
		if got := rangeLimit(tt.in); got != tt.want {
			t.Errorf("rangeLimit(%d) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

func TestFancyUpsampling(t *testing.T) {
	// h2v1: 0, (0*3+100+2)>>2, (100*3+0+1)>>2, 100.
	dst := make([]byte, 4)
	h2v1([]byte{0, 100}, dst)
	if want := []byte{0, 25, 75, 100}; !slices.Equal(dst, want) {
		t.Errorf("h2v1 = %v, want %v", dst, want)
	}
	// h2v2 column sums 0 and 400: (0+8)>>4, (0+400+7)>>4, (1200+0+8)>>4, (1600+7)>>4.
	h2v2([]byte{0, 100}, []byte{0, 100}, dst, make([]byte, 4))
	if want := []byte{0, 25, 75, 100}; !slices.Equal(dst, want) {
		t.Errorf("h2v2 = %v, want %v", dst, want)
	}
	// An odd width drops the last doubled sample.
	dst = make([]byte, 3)
	h2v1([]byte{0, 100}, dst)
	if want := []byte{0, 25, 75}; !slices.Equal(dst, want) {
		t.Errorf("h2v1 to width 3 = %v, want %v", dst, want)
	}
}

func TestYCbCrToRGBUsesLibjpegsTables(t *testing.T) {
	m := image.NewYCbCr(image.Rect(0, 0, 2, 1), image.YCbCrSubsampleRatio444)
	copy(m.Y, []byte{128, 100})
	copy(m.Cb, []byte{128, 128})
	copy(m.Cr, []byte{128, 228})
	got := ycbcrToNRGBA(m).Pix
	// R = 100 + (91881*100 + 32768) >> 16 = 240; G = 100 + (32768 - 46802*100) >> 16 = 29.
	if want := []byte{128, 128, 128, 255, 240, 29, 100, 255}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// TestDecodeStaysCloseToTheStandardLibrary: the same file, decoded with
// another IDCT, colour conversion and chroma upsampling (image/jpeg repeats
// chroma samples of a 4:2:0 file, libjpeg blends them), differs by a few
// levels at most on smooth content. Bit-exactness with libjpeg-turbo itself
// is checked against sharp by processors' parity test (hubble_deep_field.jpg).
func TestDecodeStaysCloseToTheStandardLibrary(t *testing.T) {
	src := image.NewNRGBA(image.Rect(0, 0, 67, 45))
	for y := range 45 {
		for x := range 67 {
			src.Set(x, y, color.NRGBA{uint8(3 * x), uint8(5 * y), uint8(2 * (x + y)), 255})
		}
	}
	for _, gray := range []bool{false, true} {
		var img image.Image = src
		if gray {
			g := image.NewGray(src.Rect)
			for i := range g.Pix {
				g.Pix[i] = src.Pix[4*i]
			}
			img = g
		}
		var buf bytes.Buffer
		if err := stdjpeg.Encode(&buf, img, &stdjpeg.Options{Quality: 90}); err != nil {
			t.Fatal(err)
		}
		ours, err := Decode(bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		std, err := stdjpeg.Decode(bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		worst := 0
		for y := range 45 {
			for x := range 67 {
				a := color.NRGBAModel.Convert(ours.At(x, y)).(color.NRGBA)
				b := color.NRGBAModel.Convert(std.At(x, y)).(color.NRGBA)
				for _, d := range []int{int(a.R) - int(b.R), int(a.G) - int(b.G), int(a.B) - int(b.B)} {
					worst = max(worst, max(d, -d))
				}
			}
		}
		if worst > 6 {
			t.Errorf("gray %t: differs from image/jpeg by up to %d levels, want at most 6", gray, worst)
		}
	}
}
