//go:build cgo

package imageio

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	ljpeg "github.com/creativeai-studio/studio/internal/imageio/jpeg"

	"github.com/stretchr/testify/require"
	"golang.org/x/image/webp"

	"github.com/creativeai-studio/studio/internal/assets"
	"github.com/creativeai-studio/studio/internal/colour"
	"github.com/creativeai-studio/studio/internal/imageio/imagetest"
)

// Colour tests: real profiled files, made here with Little CMS's profiles,
// decoded and compared with the double-precision reference conversion of
// the file's own pixels (CIEDE2000).

type testProfile struct {
	name string
	make func() ([]byte, error)
}

var rgbProfiles = []testProfile{
	{"Adobe RGB (1998)", colour.AdobeRGB},
	{"Display P3", colour.DisplayP3},
	{"ProPhoto RGB", colour.ProPhotoRGB},
}

var grayProfiles = []testProfile{
	{"Gray Gamma 2.2", colour.GrayGamma22},
	{"Dot Gain 20% (approximation)", colour.DotGain20},
}

func parsed(t testing.TB, make func() ([]byte, error)) *colour.Profile {
	t.Helper()
	b, err := make()
	require.NoError(t, err)
	p, err := colour.Parse(b)
	require.NoError(t, err)
	return p
}

// inProfile returns the test photo as the profile encodes it: what a camera
// or design tool would write into a file tagged with that profile.
func inProfile(t testing.TB, p *colour.Profile, w, h int) *image.NRGBA {
	t.Helper()
	img := imagetest.Photo(w, h)
	require.NoError(t, p.FromSRGB(img))
	return img
}

// rawPixels decodes data with the codecs Decode uses (libjpeg-turbo's
// arithmetic for JPEG), ignoring any profile: the device values stored in the
// file, as the product reads them.
func rawPixels(t testing.TB, data []byte) *image.NRGBA {
	t.Helper()
	var img image.Image
	var err error
	switch {
	case bytes.HasPrefix(data, []byte{0xFF, 0xD8}):
		img, err = ljpeg.Decode(bytes.NewReader(data))
	case bytes.HasPrefix(data, []byte(pngSignature)):
		img, err = png.Decode(bytes.NewReader(data))
	default:
		img, err = webp.Decode(bytes.NewReader(data))
	}
	require.NoError(t, err)
	return ToNRGBA(img)
}

// deltaE compares decoded sRGB pixels with the reference conversion of the
// file's raw pixels through p.
func deltaE(t testing.TB, p *colour.Profile, file []byte, got *image.NRGBA) colour.DeltaEStats {
	t.Helper()
	want, err := p.SRGBReference(rawPixels(t, file))
	require.NoError(t, err)
	s, err := colour.SRGB()
	require.NoError(t, err)
	gotLab, err := s.ToLab(got)
	require.NoError(t, err)
	return colour.CompareLab(gotLab, want)
}

func profiledJPEG(t testing.TB, img image.Image, icc []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, jpeg.Encode(&buf, img, &jpeg.Options{Quality: 92}))
	out, err := EmbedProfile(FormatJPEG, buf.Bytes(), icc)
	require.NoError(t, err)
	return out
}

func profiledPNG(t testing.TB, img image.Image, p *colour.Profile) []byte {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, EncodePNGTagged(&buf, img, p))
	return buf.Bytes()
}

// paletteWebP is a lossless WebP whose pixels take, per channel, lo or hi
// as bits(x, y) says (bit 2 red, 1 green, 0 blue): eight colours, enough to
// measure a conversion, with an encoder small enough to live in a test.
func paletteWebP(w, h int, lo, hi [3]uint8, bits func(x, y int) uint8) []byte {
	var bw bitWriter
	bw.write(0x2f, 8)
	bw.write(uint32(w-1), 14)
	bw.write(uint32(h-1), 14)
	bw.write(0, 1)                   // alpha hint
	bw.write(0, 3)                   // version
	bw.write(0, 1)                   // no transforms
	bw.write(0, 1)                   // no colour cache
	bw.write(0, 1)                   // no meta prefix codes
	twoSymbols := func(a, b uint8) { // simple code, two 8-bit symbols, a < b
		bw.write(1, 1)
		bw.write(1, 1)
		bw.write(1, 1)
		bw.write(uint32(a), 8)
		bw.write(uint32(b), 8)
	}
	oneSymbol := func(v uint32) {
		bw.write(1, 1)
		bw.write(0, 1)
		bw.write(1, 1)
		bw.write(v, 8)
	}
	twoSymbols(lo[1], hi[1]) // green
	twoSymbols(lo[0], hi[0]) // red
	twoSymbols(lo[2], hi[2]) // blue
	oneSymbol(255)           // alpha
	oneSymbol(0)             // distance
	for y := range h {
		for x := range w {
			b := bits(x, y)
			bw.write(uint32(b>>1&1), 1)
			bw.write(uint32(b>>2&1), 1)
			bw.write(uint32(b&1), 1)
		}
	}
	return riffWebP("VP8L", bw.bytes())
}

func profiledWebP(t testing.TB, icc []byte) []byte {
	t.Helper()
	data := paletteWebP(64, 48, [3]uint8{40, 90, 60}, [3]uint8{210, 170, 230}, func(x, y int) uint8 { return uint8((x/8 + y/6*3) % 8) })
	out, err := EmbedProfile(FormatWebP, data, icc)
	require.NoError(t, err)
	return out
}

// padded returns icc grown to n bytes (header size updated), so that it
// spans several JPEG APP2 segments; Little CMS ignores the padding.
func padded(icc []byte, n int) []byte {
	b := append(bytes.Clone(icc), make([]byte, n-len(icc))...)
	binary.BigEndian.PutUint32(b, uint32(n))
	return b
}

func TestDecodeConvertsEmbeddedProfilesToSRGB(t *testing.T) {
	type tc struct {
		name    string
		profile testProfile
		file    func(t testing.TB, p *colour.Profile) []byte
	}
	var tests []tc
	for _, pr := range rgbProfiles {
		tests = append(tests,
			tc{"a JPEG in " + pr.name, pr, func(t testing.TB, p *colour.Profile) []byte {
				return profiledJPEG(t, inProfile(t, p, 320, 240), p.Bytes())
			}},
			tc{"a PNG in " + pr.name, pr, func(t testing.TB, p *colour.Profile) []byte {
				return profiledPNG(t, inProfile(t, p, 320, 240), p)
			}},
			tc{"a lossless WebP in " + pr.name, pr, func(t testing.TB, p *colour.Profile) []byte {
				return profiledWebP(t, p.Bytes())
			}},
		)
	}
	for _, pr := range grayProfiles {
		tests = append(tests,
			tc{"a grey JPEG in " + pr.name, pr, func(t testing.TB, p *colour.Profile) []byte {
				g := image.NewGray(image.Rect(0, 0, 320, 240))
				src := imagetest.Photo(320, 240)
				for i := range g.Pix {
					g.Pix[i] = src.Pix[4*i+1]
				}
				return profiledJPEG(t, g, p.Bytes())
			}},
			tc{"a grey PNG in " + pr.name, pr, func(t testing.TB, p *colour.Profile) []byte {
				return profiledPNG(t, inProfile(t, p, 320, 240), p)
			}},
		)
	}
	for _, tt := range tests {
		t.Run(tt.name+" decodes to sRGB within ΔE2000 mean 1, max 3", func(t *testing.T) {
			p := parsed(t, tt.profile.make)
			file := tt.file(t, p)
			hdr, err := Inspect(file, Limits{})
			require.NoError(t, err)
			require.NotNil(t, hdr.Profile)
			require.Equal(t, tt.profile.name, hdr.Profile.Description())

			img, hdr, err := Decode(file, Limits{})
			require.NoError(t, err)
			require.Equal(t, p.Bytes(), hdr.Profile.Bytes(), "the header carries the embedded profile byte for byte")
			st := deltaE(t, p, file, img)
			t.Logf("%s: ΔE2000 mean %.3f p99 %.2f max %.2f", tt.name, st.Mean, st.P99, st.Max)
			require.Less(t, st.Mean, 1.0)
			require.Less(t, st.Max, 3.0)
			raw := deltaEUnconverted(t, p, file)
			t.Logf("%s read as sRGB (no conversion): ΔE2000 mean %.3f p99 %.2f max %.2f", tt.name, raw.Mean, raw.P99, raw.Max)
			if p.Space() == colour.SpaceRGB {
				// The conversion did something: the raw pixels are off by more.
				require.Greater(t, raw.Mean, 3*st.Mean+0.5, "reading the file as sRGB would be visibly wrong")
			}
		})
	}
}

// deltaEUnconverted is the error of reading the file's pixels as sRGB, as
// the service did before it converted profiles.
func deltaEUnconverted(t testing.TB, p *colour.Profile, file []byte) colour.DeltaEStats {
	t.Helper()
	return deltaE(t, p, file, rawPixels(t, file))
}

func TestMultiSegmentJPEGProfilesAreReassembled(t *testing.T) {
	p := parsed(t, colour.AdobeRGB)
	big := padded(p.Bytes(), 150_000) // three APP2 segments
	file := profiledJPEG(t, inProfile(t, p, 64, 64), big)
	require.Equal(t, 3, bytes.Count(file, iccJPEGHeader))
	_, hdr, err := Decode(file, Limits{})
	require.NoError(t, err)
	require.Equal(t, big, hdr.Profile.Bytes())
}

func TestDamagedOrAbsurdProfilesAreRefusedClearly(t *testing.T) {
	p := parsed(t, colour.AdobeRGB)
	photo := inProfile(t, p, 64, 64)
	big := padded(p.Bytes(), 150_000)
	threeSegments := profiledJPEG(t, photo, big)
	// Drop the second ICC_PROFILE segment.
	second := bytes.Index(threeSegments, append(append([]byte{}, iccJPEGHeader...), 2, 3)) - 4
	segLen := int(binary.BigEndian.Uint16(threeSegments[second+2:]))
	missing := append(bytes.Clone(threeSegments[:second]), threeSegments[second+2+segLen:]...)

	gray := parsed(t, colour.GrayGamma22)
	var zeros bytes.Buffer
	zeros.Write(make([]byte, 8<<20)) // compresses to a few KB: a decompression bomb
	tests := []struct {
		name string
		file []byte
		lim  Limits
		want error
		says string
	}{
		{"a JPEG with a missing profile segment is damaged", missing, Limits{}, ErrCorrupt, "segment 2 of 3 is missing"},
		{"a JPEG whose profile is not a profile is damaged", profiledJPEG(t, photo, bytes.Repeat([]byte("junk"), 100)), Limits{}, ErrCorrupt, "colour profile"},
		{"a grey profile on a colour JPEG is damaged", profiledJPEG(t, photo, gray.Bytes()), Limits{}, ErrCorrupt, "grey profile"},
		{"a JPEG profile over the limit is too large", threeSegments, Limits{MaxProfileBytes: 100_000}, ErrTooLarge, "colour profile"},
		{"a PNG profile that inflates past the limit is too large", mustEmbed(t, FormatPNG, encodePNG(t, photo), zeros.Bytes()), Limits{}, ErrTooLarge, "colour profile"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Decode(tt.file, tt.lim)
			require.ErrorIs(t, err, tt.want)
			require.Contains(t, err.Error(), tt.says)
			require.Contains(t, err.Error(), "upload it again")
		})
	}
}

func mustEmbed(t testing.TB, f Format, data, icc []byte) []byte {
	t.Helper()
	out, err := EmbedProfile(f, data, icc)
	require.NoError(t, err)
	return out
}

func TestKeepingTheProfileRoundTripsPixelsAndProfileBytes(t *testing.T) {
	for _, pr := range append(append([]testProfile{}, rgbProfiles...), grayProfiles...) {
		t.Run(pr.name+" comes back embedded byte for byte, pixels within ΔE2000 mean 1", func(t *testing.T) {
			p := parsed(t, pr.make)
			file := profiledJPEG(t, inProfile(t, p, 160, 120), p.Bytes())
			if p.Space() == colour.SpaceGray {
				file = profiledPNG(t, inProfile(t, p, 160, 120), p)
			}
			img, hdr, err := Decode(file, Limits{})
			require.NoError(t, err)
			// What postprocess does for color=keep: back to the input's profile.
			require.NoError(t, hdr.Profile.FromSRGB(img))
			out := profiledPNG(t, img, hdr.Profile)
			back, hdr2, err := Decode(out, Limits{})
			require.NoError(t, err)
			require.Equal(t, hdr.Profile.Bytes(), hdr2.Profile.Bytes())
			want, err := p.SRGBReference(rawPixels(t, file))
			require.NoError(t, err)
			s, _ := colour.SRGB()
			got, err := s.ToLab(back)
			require.NoError(t, err)
			st := colour.CompareLab(got, want)
			t.Logf("%s round trip: ΔE2000 mean %.3f max %.2f", pr.name, st.Mean, st.Max)
			require.Less(t, st.Mean, 1.0)
			require.Less(t, st.Max, 3.0)
		})
	}
}

func TestSRGBOutputsAreTaggedAndUntouched(t *testing.T) {
	img := imagetest.Photo(64, 48)
	out := profiledPNG(t, img, nil)
	for _, chunk := range []string{"sRGB", "gAMA", "cHRM"} {
		require.Contains(t, string(out[:200]), chunk)
	}
	got, hdr, err := Decode(out, Limits{})
	require.NoError(t, err)
	require.Nil(t, hdr.Profile)
	require.Equal(t, img.Pix, got.Pix)
}

func TestGreyProfiledOutputsAreGreyPNGs(t *testing.T) {
	p := parsed(t, colour.GrayGamma22)
	img := inProfile(t, p, 32, 32)
	img.Pix[3] = 10 // some transparency: grey+alpha
	out := profiledPNG(t, img, p)
	require.Equal(t, byte(ctGrayAlpha), out[25])
	cfg, err := png.DecodeConfig(bytes.NewReader(out))
	require.NoError(t, err)
	require.Equal(t, 32, cfg.Width)
}

// rocket.jpg (scikit-image) is a real camera JPEG tagged with Adobe's own Adobe RGB
// (1998) profile (560 bytes, v2).
func TestARealAdobeRGBPhotoDecodesWithinBounds(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(assets.DefaultDir(), "photos", "rocket.jpg"))
	if err != nil {
		t.Skipf("cached photos absent (run `studio fetch photos`): %v", err)
	}
	img, hdr, err := Decode(data, Limits{})
	require.NoError(t, err)
	require.NotNil(t, hdr.Profile)
	require.Equal(t, "Adobe RGB (1998)", hdr.Profile.Description())
	st := deltaE(t, hdr.Profile, data, img)
	raw := deltaE(t, hdr.Profile, data, rawPixels(t, data))
	t.Logf("rocket.jpg: ΔE2000 mean %.3f p99 %.2f max %.2f; read as sRGB: mean %.3f p99 %.2f max %.2f", st.Mean, st.P99, st.Max, raw.Mean, raw.P99, raw.Max)
	require.Less(t, st.Mean, 1.0)
	require.Less(t, st.Max, 3.0)
}
