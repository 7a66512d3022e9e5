package postprocess

import (
	"image"
	"testing"

	"github.com/creativeai-studio/studio/internal/imageio"
)

func TestThresholdMakesTheMaskBinary(t *testing.T) {
	m := image.NewGray(image.Rect(0, 0, 4, 1))
	copy(m.Pix, []uint8{0, 127, 128, 255})
	Threshold(m, 0.5)
	want := []uint8{0, 0, 255, 255}
	for i, v := range m.Pix {
		if v != want[i] {
			t.Fatalf("mask = %v, want %v", m.Pix, want)
		}
	}
}

func TestScaleMask(t *testing.T) {
	m := image.NewGray(image.Rect(0, 0, 1024, 1024))
	for y := range 1024 {
		for x := range 1024 {
			if x >= 256 { // an edge at 1/4 of the width
				m.Pix[y*m.Stride+x] = 255
			}
		}
	}
	r := imageio.Resampling{Kernel: imageio.KernelBilinear, Coordinates: imageio.Asymmetric, Rounding: imageio.Round}
	if got := ScaleMask(m, 1024, 1024, r); got != m {
		t.Error("a mask already the right size is copied, want it returned as is")
	}
	got := ScaleMask(m, 640, 427, r)
	if got.Rect != image.Rect(0, 0, 640, 427) {
		t.Fatalf("bounds = %v, want (0,0)-(640,427)", got.Rect)
	}
	for _, tt := range []struct{ x, y, lo, hi int }{
		{0, 0, 0, 0}, {150, 200, 0, 0}, {170, 200, 255, 255}, {639, 426, 255, 255},
		// Column 160 samples source 160*1024/640 = 256 exactly: already opaque
		// under the asymmetric convention; 159 samples 254.4, still clear.
		{160, 213, 255, 255}, {159, 213, 0, 0},
	} {
		if v := int(got.GrayAt(tt.x, tt.y).Y); v < tt.lo || v > tt.hi {
			t.Errorf("(%d, %d) = %d, want %d..%d", tt.x, tt.y, v, tt.lo, tt.hi)
		}
	}
}
