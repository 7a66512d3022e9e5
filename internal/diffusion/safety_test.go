package diffusion_test

import (
	"math"
	"testing"

	"github.com/creativeai-studio/studio/internal/diffusion"
)

// TestCLIPInput checks the safety checker's preprocessing against values worked out by
// hand: a ramp along the long side of a 2:1 image. CLIPImageProcessor resizes the short
// side to 224 (the long side to 448) with PIL's bicubic filter, which reproduces a linear
// ramp exactly away from the borders, and keeps the centre 224 pixels (112..335), so
// output pixel x has the value 2*((112+x+0.5)*128/448 - 0.5) rounded to 8 bits before
// the rescale and CLIP's normalisation.
func TestCLIPInput(t *testing.T) {
	const long, short = 128, 64
	for _, portrait := range []bool{false, true} {
		name := "landscape, ramp along x"
		if portrait {
			name = "portrait, ramp along y"
		}
		t.Run(name, func(t *testing.T) {
			r := &diffusion.Result{N: 2, Width: long, Height: short}
			if portrait {
				r.Width, r.Height = short, long
			}
			plane := long * short
			r.Pixels = make([]byte, 2*3*plane)
			img := r.Pixels[3*plane:] // the second image: the first stays black
			for y := range r.Height {
				for x := range r.Width {
					j := x
					if portrait {
						j = y
					}
					k := y*r.Width + x
					img[k] = byte(2 * j)
					img[plane+k] = 100
					img[2*plane+k] = byte(255 - 2*j)
				}
			}
			got := diffusion.CLIPInput(r, 1)
			if len(got) != 3*224*224 {
				t.Fatalf("%d values, want 3x224x224", len(got))
			}
			norm := func(v float64, c int) float32 {
				return (float32(v)/255 - diffusion.CLIPMean[c]) / diffusion.CLIPStd[c]
			}
			bad := 0
			for c := range 3 {
				for y := range 224 {
					for x := range 224 {
						i := x
						if portrait {
							i = y
						}
						ramp := math.Round(2 * ((float64(112+i)+0.5)*long/448 - 0.5))
						want := [3]float32{norm(ramp, 0), norm(100, 1), norm(255-ramp, 2)}[c]
						if g := got[(c*224+y)*224+x]; math.Abs(float64(g-want)) > 1e-5 && bad < 5 {
							bad++
							t.Errorf("channel %d (%d,%d) = %v, want %v", c, x, y, g, want)
						}
					}
				}
			}
			black := diffusion.CLIPInput(r, 0)
			for c := range 3 {
				if want := norm(0, c); math.Abs(float64(black[c*224*224+5000]-want)) > 1e-6 {
					t.Errorf("black image channel %d = %v, want %v", c, black[c*224*224+5000], want)
				}
			}
		})
	}
	t.Run("a large square image shrinks to 224 with the filter widened (antialiased)", func(t *testing.T) {
		const side = 512
		r := &diffusion.Result{N: 1, Width: side, Height: side, Pixels: make([]byte, 3*side*side)}
		// A one-pixel checkerboard averages out to its mean under an antialiasing filter;
		// a plain 4-tap bicubic would alias it to far from the mean.
		for k := range side * side {
			x, y := k%side, k/side
			for c := range 3 {
				r.Pixels[c*side*side+k] = byte(200 * ((x + y) % 2))
			}
		}
		got := diffusion.CLIPInput(r, 0)
		for c := range 3 {
			lo, hi := (float32(90)/255-diffusion.CLIPMean[c])/diffusion.CLIPStd[c], (float32(110)/255-diffusion.CLIPMean[c])/diffusion.CLIPStd[c]
			for _, k := range []int{0, 224*112 + 112, 224*224 - 1, 224*50 + 173} {
				if v := got[c*224*224+k]; v < lo || v > hi {
					t.Errorf("channel %d pixel %d = %v, want the checkerboard's mean 100 (normalised %v..%v)", c, k, v, lo, hi)
				}
			}
		}
	})
}
