//go:build cgo

package imageio

import (
	"testing"

	"github.com/creativeai-studio/studio/internal/colour"
	"github.com/creativeai-studio/studio/internal/imageio/imagetest"
)

// BenchmarkDecodeProfiled compares, in one run, decoding a 2048x1536 JPEG without a
// profile, with an sRGB profile (recognised, no conversion) and with Adobe RGB and
// Display P3 profiles (converted to sRGB), so the cost of colour management reads as
// a ratio even on a loaded machine.
func BenchmarkDecodeProfiled(b *testing.B) {
	srgb, err := colour.SRGB()
	if err != nil {
		b.Fatal(err)
	}
	photo := imagetest.Photo(2048, 1536)
	plain := encodeJPEG(b, photo)
	cases := []struct {
		name string
		data []byte
	}{{"no profile", plain}, {"sRGB", mustEmbed(b, FormatJPEG, plain, srgb.Bytes())}}
	for _, pr := range rgbProfiles[:2] {
		icc, err := pr.make()
		if err != nil {
			b.Fatal(err)
		}
		cases = append(cases, struct {
			name string
			data []byte
		}{pr.name, mustEmbed(b, FormatJPEG, plain, icc)})
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, _, err := Decode(c.data, Limits{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
