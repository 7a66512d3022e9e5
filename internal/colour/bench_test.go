//go:build cgo

package colour

import (
	"bytes"
	"encoding/binary"
	"image"
	"testing"
)

// photo is a w x h sRGB gradient with noise, opaque.
func photo(w, h int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	s := uint32(1)
	for i := 0; i < len(img.Pix); i += 4 {
		s = s*1664525 + 1013904223
		x, y := (i/4)%w, (i/4)/w
		n := uint8(s >> 27)
		img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = uint8(x*200/w)+n, uint8(y*200/h)+n, uint8((x+y)*100/(w+h))+n, 255
	}
	return img
}

// BenchmarkConvert measures the 8-bit conversions of a 2048x2048 image (4.2 MP), in
// place, with the transform cached: what Decode adds for a profiled input and what
// postprocess adds for color=keep.
func BenchmarkConvert(b *testing.B) {
	for _, pr := range testProfiles {
		p := mustProfile(b, pr.make)
		src := photo(2048, 2048)
		img := clone(src)
		b.Run("to sRGB/"+pr.name, func(b *testing.B) {
			b.SetBytes(int64(len(img.Pix)))
			for b.Loop() {
				copy(img.Pix, src.Pix)
				if err := p.ToSRGB(img); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("from sRGB/"+pr.name, func(b *testing.B) {
			b.SetBytes(int64(len(img.Pix)))
			for b.Loop() {
				copy(img.Pix, src.Pix)
				if err := p.FromSRGB(img); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("copy only (baseline)", func(b *testing.B) {
		src := photo(2048, 2048)
		img := clone(src)
		b.SetBytes(int64(len(img.Pix)))
		for b.Loop() {
			copy(img.Pix, src.Pix)
		}
	})
}

// BenchmarkParse measures Parse of a profile whose transform is cached (the
// steady state: every upload with the same profile) and of a new one (first
// sight: the sRGB transform is built).
func BenchmarkParse(b *testing.B) {
	icc, err := AdobeRGB()
	if err != nil {
		b.Fatal(err)
	}
	b.Run("cached", func(b *testing.B) {
		for b.Loop() {
			if _, err := Parse(icc); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("new profile", func(b *testing.B) {
		var p *Profile
		n := uint32(0)
		for b.Loop() {
			// A different hash each time: number the reserved header bytes.
			n++
			binary.BigEndian.PutUint32(icc[100:], n)
			if p, err = Parse(bytes.Clone(icc)); err != nil {
				b.Fatal(err)
			}
		}
		_ = p
	})
}
