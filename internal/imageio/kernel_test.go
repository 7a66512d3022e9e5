package imageio

import (
	"bytes"
	"image"
	"math/rand/v2"
	"testing"

	"golang.org/x/image/draw"
)

// TestKernelScaleIsDraws checks kernelScale against x/image/draw's own Scale, byte for
// byte: NRGBA and premultiplied RGBA sources with random colour and alpha (fully
// transparent and opaque runs among them), sub-images, shrinking by whole and odd
// factors, enlarging, and one-pixel sides.
func TestKernelScaleIsDraws(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	sizes := [][4]int{
		{512, 512, 256, 256}, {2048, 1366, 256, 171}, {451, 300, 256, 170}, {600, 400, 256, 171},
		{97, 13, 40, 7}, {40, 7, 97, 13}, {1, 1, 3, 5}, {5, 3, 1, 1}, {300, 451, 170, 256}, {256, 256, 256, 256},
	}
	for _, sz := range sizes {
		parent := image.NewNRGBA(image.Rect(0, 0, sz[0]+3, sz[1]+2))
		for i := range parent.Pix {
			parent.Pix[i] = byte(rng.IntN(256))
		}
		for i := 3; i < len(parent.Pix); i += 4 {
			switch i / 4 / 50 % 3 { // runs of transparent and opaque pixels
			case 0:
				parent.Pix[i] = 0
			case 1:
				parent.Pix[i] = 255
			}
		}
		nrgba := parent.SubImage(image.Rect(2, 1, sz[0]+2, sz[1]+1)).(*image.NRGBA)
		rgba := image.NewRGBA(image.Rect(0, 0, sz[0], sz[1]))
		draw.Draw(rgba, rgba.Rect, nrgba, nrgba.Rect.Min, draw.Src) // premultiplied
		for _, src := range []image.Image{nrgba, rgba} {
			want := image.NewRGBA(image.Rect(0, 0, sz[2], sz[3]))
			draw.CatmullRom.Scale(want, want.Rect, src, src.Bounds(), draw.Src, nil)
			got := image.NewRGBA(want.Rect)
			if !kernelScale(draw.CatmullRom, got, src) {
				t.Fatalf("%T was not taken", src)
			}
			if !bytes.Equal(got.Pix, want.Pix) {
				i := 0
				for got.Pix[i] == want.Pix[i] {
					i++
				}
				t.Fatalf("%T %dx%d to %dx%d: byte %d is %d, draw gives %d", src, sz[0], sz[1], sz[2], sz[3], i, got.Pix[i], want.Pix[i])
			}
		}
	}
	if kernelScale(draw.CatmullRom, image.NewRGBA(image.Rect(0, 0, 2, 2)), image.NewGray(image.Rect(0, 0, 4, 4))) {
		t.Error("a Gray source was taken; only NRGBA and RGBA are")
	}
}
