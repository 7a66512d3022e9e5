package postprocess

import (
	"image"
	"testing"
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
