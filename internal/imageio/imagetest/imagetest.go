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

// ManyScanJPEG is a valid progressive grayscale JPEG of w x h pixels (w*h/64 a multiple
// of 16384, e.g. 1024x1024 or 4096x4096) made of scans AC scans: each scan says "every
// block is empty" with one end-of-band run per 16384 blocks, two to a few dozen bytes.
// It decodes to flat grey, but a decoder walks every block in every scan, so its work is
// pixels × scans in a file of about 40 bytes per scan: the decoding-work attack that
// imageio.Limits.MaxScans stops.
func ManyScanJPEG(w, h, scans int) []byte {
	blocks := (w / 8) * (h / 8)
	if w%8 != 0 || h%8 != 0 || blocks%16384 != 0 {
		panic("imagetest: ManyScanJPEG needs w and h multiples of 8 and w*h/64 a multiple of 16384")
	}
	b := []byte{0xFF, 0xD8}
	seg := func(marker byte, body ...byte) {
		n := len(body) + 2
		b = append(b, 0xFF, marker, byte(n>>8), byte(n))
		b = append(b, body...)
	}
	dqt := make([]byte, 65) // table 0, 8-bit, every step 1
	for i := 1; i < len(dqt); i++ {
		dqt[i] = 1
	}
	seg(0xDB, dqt...)
	// SOF2: 8-bit precision, h, w, one component (id 1, 1x1 sampling, table 0).
	seg(0xC2, 8, byte(h>>8), byte(h), byte(w>>8), byte(w), 1, 1, 0x11, 0)
	// AC table 0 with one code, "0", for the symbol 0xE0: an end-of-band run of
	// 2^14 + (14 more bits) blocks.
	dht := append([]byte{0x10, 1}, make([]byte, 15)...)
	seg(0xC4, append(dht, 0xE0)...)
	// Each run is the code (1 bit) and 14 zero bits: 16384 blocks. 15 bits per run,
	// padded with ones to a whole byte.
	runs := blocks / 16384
	bits := runs * 15
	data := make([]byte, (bits+7)/8)
	if pad := len(data)*8 - bits; pad > 0 {
		data[len(data)-1] = byte(1<<pad - 1)
	}
	for range scans {
		// One component (id 1, tables 0/0), spectral selection 1..63, no approximation.
		seg(0xDA, 1, 1, 0x00, 1, 63, 0x00)
		b = append(b, data...)
	}
	return append(b, 0xFF, 0xD9)
}
