package postprocess

import (
	"bytes"
	"image"
	"testing"

	"github.com/creativeai-studio/studio/internal/imageio"
	"github.com/creativeai-studio/studio/internal/models"
	"github.com/creativeai-studio/studio/processors/artifact"
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

func TestImageFromPixelsInterleavesThePlanes(t *testing.T) {
	// 3x2, planes R, G, B (or B, G, R for a BGR model).
	p := artifact.Pixels{Shape: []int64{1, 3, 2, 3}, Data: []byte{
		1, 2, 3, 4, 5, 6,
		10, 20, 30, 40, 50, 60,
		100, 110, 120, 130, 140, 150,
	}}
	for _, tt := range []struct {
		color string
		want  []byte
	}{
		{"RGB", []byte{1, 10, 100, 255, 2, 20, 110, 255, 3, 30, 120, 255, 4, 40, 130, 255, 5, 50, 140, 255, 6, 60, 150, 255}},
		{"BGR", []byte{100, 10, 1, 255, 110, 20, 2, 255, 120, 30, 3, 255, 130, 40, 4, 255, 140, 50, 5, 255, 150, 60, 6, 255}},
	} {
		img, err := ImageFromPixels(p, models.Tensor{Color: tt.color})
		if err != nil {
			t.Fatal(err)
		}
		if img.Rect != image.Rect(0, 0, 3, 2) || !bytes.Equal(img.Pix, tt.want) {
			t.Errorf("%s: got %v %v, want (0,0)-(3,2) %v", tt.color, img.Rect, img.Pix, tt.want)
		}
	}
	if _, err := ImageFromPixels(artifact.Pixels{Shape: []int64{1, 3, 2, 3}, Data: p.Data[:17]}, models.Tensor{}); err == nil {
		t.Error("pixels shorter than their shape were accepted")
	}
}
