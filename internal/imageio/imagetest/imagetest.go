// Package imagetest makes deterministic test images for the pipeline's tests and
// benchmarks, so they need no assets.
package imagetest

import (
	"image"
	"math/rand/v2"
)

// Photo is a w x h opaque image that compresses and resizes like a photo: a smooth
// gradient per channel with a little noise. The same size always gives the same pixels.
func Photo(w, h int) *image.NRGBA {
	rng := rand.New(rand.NewPCG(7, 11))
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			i := img.PixOffset(x, y)
			n := uint8(rng.IntN(24))
			img.Pix[i] = uint8(x*200/w) + n
			img.Pix[i+1] = uint8(y*200/h) + n
			img.Pix[i+2] = uint8((x+y)*100/(w+h)) + n
			img.Pix[i+3] = 255
		}
	}
	return img
}
