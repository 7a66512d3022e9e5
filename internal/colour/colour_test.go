//go:build cgo

package colour

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// cube is an sRGB image with 32 levels of each channel, every combination
// once: saturated primaries, near-greys, darks and lights alike.
func cube() *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, 256, 128))
	i := 0
	for r := range 32 {
		for g := range 32 {
			for b := range 32 {
				p := img.Pix[4*i : 4*i+4]
				p[0], p[1], p[2], p[3] = uint8(r*255/31), uint8(g*255/31), uint8(b*255/31), uint8(255-i%7)
				i++
			}
		}
	}
	return img
}

func clone(m *image.NRGBA) *image.NRGBA {
	c := *m
	c.Pix = bytes.Clone(m.Pix)
	return &c
}

type named struct {
	name string
	make func() ([]byte, error)
}

var testProfiles = []named{
	{"Adobe RGB (1998)", AdobeRGB},
	{"Display P3", DisplayP3},
	{"ProPhoto RGB", ProPhotoRGB},
	{"Gray Gamma 2.2", GrayGamma22},
	{"Dot Gain 20% (approximation)", DotGain20},
}

func mustProfile(t testing.TB, make func() ([]byte, error)) *Profile {
	t.Helper()
	b, err := make()
	require.NoError(t, err)
	p, err := Parse(b)
	require.NoError(t, err)
	return p
}

func TestConversionToSRGBMatchesTheDoublePrecisionReference(t *testing.T) {
	s, err := SRGB()
	require.NoError(t, err)
	for _, tt := range testProfiles {
		t.Run(tt.name+" pixels convert to sRGB within ΔE2000 mean 1, max 3", func(t *testing.T) {
			p := mustProfile(t, tt.make)
			require.Equal(t, tt.name, p.Description())
			// The file's pixels: the cube as the profile encodes it.
			file := cube()
			require.NoError(t, p.FromSRGB(file))
			want, err := p.SRGBReference(file)
			require.NoError(t, err)

			got := clone(file)
			require.NoError(t, p.ToSRGB(got))
			gotLab, err := s.ToLab(got)
			require.NoError(t, err)
			st := CompareLab(gotLab, want)
			t.Logf("%s: ΔE2000 mean %.3f p99 %.2f max %.2f", tt.name, st.Mean, st.P99, st.Max)
			require.Less(t, st.Mean, 1.0)
			require.Less(t, st.Max, 3.0)
			for i := 3; i < len(got.Pix); i += 4 {
				require.Equal(t, file.Pix[i], got.Pix[i], "alpha must be kept")
			}
			if p.Space() == SpaceGray {
				for i := 0; i < len(got.Pix); i += 4 {
					require.True(t, got.Pix[i] == got.Pix[i+1] && got.Pix[i] == got.Pix[i+2], "grey converts to neutral sRGB")
				}
			}
		})
	}
}

func TestConvertingBackRestoresTheFilePixels(t *testing.T) {
	for _, tt := range testProfiles {
		t.Run(tt.name+" survives sRGB and back within ΔE2000 mean 1", func(t *testing.T) {
			p := mustProfile(t, tt.make)
			file := cube()
			require.NoError(t, p.FromSRGB(file))
			back := clone(file)
			require.NoError(t, p.ToSRGB(back))
			require.NoError(t, p.FromSRGB(back))
			a, err := p.ToLab(file)
			require.NoError(t, err)
			b, err := p.ToLab(back)
			require.NoError(t, err)
			st := CompareLab(b, a)
			t.Logf("%s round trip: ΔE2000 mean %.3f max %.2f", tt.name, st.Mean, st.Max)
			require.Less(t, st.Mean, 1.0)
			require.Less(t, st.Max, 5.0)
		})
	}
}

func TestParseRefusesWhatItCannotConvert(t *testing.T) {
	good, err := AdobeRGB()
	require.NoError(t, err)
	patch := func(off int, sig string) []byte {
		b := bytes.Clone(good)
		copy(b[off:], sig)
		return b
	}
	tests := []struct {
		name string
		icc  []byte
		want error
	}{
		{"no bytes are refused as damaged", nil, ErrInvalid},
		{"random bytes are refused as damaged", bytes.Repeat([]byte("not a profile "), 40), ErrInvalid},
		{"a profile cut in half is refused as damaged", good[:len(good)/2], ErrInvalid},
		{"a Lab profile is refused as unsupported", patch(16, "Lab "), ErrUnsupported},
		{"a device link is refused as unsupported", patch(12, "link"), ErrUnsupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.icc)
			require.ErrorIs(t, err, tt.want)
		})
	}
}

func TestCMYKProfilesConvertOnlyCMYKPixels(t *testing.T) {
	p := mustProfile(t, AdobeRGB)
	_, err := p.CMYKToSRGB(image.NewCMYK(image.Rect(0, 0, 2, 2)))
	require.ErrorIs(t, err, ErrUnsupported)
}

// Many goroutines convert with more distinct profiles than the cache holds,
// so transforms are evicted while others use them; -race and the results
// show that nothing is freed in use.
func TestTransformCacheIsBoundedAndSafeUnderEviction(t *testing.T) {
	const n = maxTransforms + 16
	profiles := make([]*Profile, n)
	want := make([][]byte, n)
	for i := range n {
		g := 1.6 + float64(i)/100
		b, err := NewRGB(fmt.Sprintf("gamma %.2f", g), D65, XY{0.64, 0.33}, XY{0.30, 0.60}, XY{0.15, 0.06}, Gamma(g))
		require.NoError(t, err)
		p, err := Parse(b)
		require.NoError(t, err)
		profiles[i] = p
		img := cube()
		require.NoError(t, p.ToSRGB(img))
		want[i] = img.Pix
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8*n)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range n {
				i := (j*7 + w*13) % n
				img := cube()
				if err := profiles[i].ToSRGB(img); err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(img.Pix, want[i]) {
					errs <- fmt.Errorf("profile %d converted differently under concurrency", i)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	require.LessOrEqual(t, transforms.len(), maxTransforms)
}

func TestErrorsWrapTheirSentinels(t *testing.T) {
	_, err := Parse([]byte("x"))
	require.True(t, errors.Is(err, ErrInvalid))
}

func TestSRGBProfilesAreRecognisedAndLeavePixelsAlone(t *testing.T) {
	s, err := SRGB()
	require.NoError(t, err)
	// The same colour space written by another tool: built from its definition.
	b, err := NewRGB("sRGB IEC61966-2.1 (rebuilt)", D65, XY{0.64, 0.33}, XY{0.30, 0.60}, XY{0.15, 0.06}, SRGBCurve)
	require.NoError(t, err)
	rebuilt, err := Parse(b)
	require.NoError(t, err)
	for _, p := range []*Profile{s, rebuilt} {
		x, err := transforms.get(p, toSRGB)
		require.NoError(t, err)
		require.True(t, x.identity, "%s is sRGB", p.Name())
		img := cube()
		want := bytes.Clone(img.Pix)
		require.NoError(t, p.ToSRGB(img))
		require.NoError(t, p.FromSRGB(img))
		require.Equal(t, want, img.Pix)
	}
	x, err := transforms.get(mustProfile(t, AdobeRGB), toSRGB)
	require.NoError(t, err)
	require.False(t, x.identity, "Adobe RGB is not sRGB")
}

// Builds without cgo accept sRGB profiles through looksSRGB; it must know
// sRGB when it sees it and nothing else.
func TestLooksSRGBRecognisesOnlySRGB(t *testing.T) {
	s, err := SRGB()
	require.NoError(t, err)
	rebuilt, err := NewRGB("sRGB", D65, XY{0.64, 0.33}, XY{0.30, 0.60}, XY{0.15, 0.06}, SRGBCurve)
	require.NoError(t, err)
	gamma22, err := NewRGB("sRGB-ish gamma 2.2", D65, XY{0.64, 0.33}, XY{0.30, 0.60}, XY{0.15, 0.06}, Gamma(2.2))
	require.NoError(t, err)
	tests := []struct {
		name string
		icc  func() ([]byte, error)
		want bool
	}{
		{"Little CMS's sRGB is sRGB", func() ([]byte, error) { return s.Bytes(), nil }, true},
		{"sRGB rebuilt from its definition is sRGB", func() ([]byte, error) { return rebuilt, nil }, true},
		{"sRGB primaries with a 2.2 gamma are not", func() ([]byte, error) { return gamma22, nil }, false},
		{"Adobe RGB is not", AdobeRGB, false},
		{"Display P3 is not", DisplayP3, false},
		{"a grey profile is not", GrayGamma22, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.icc()
			require.NoError(t, err)
			require.Equal(t, tt.want, looksSRGB(b))
		})
	}
	require.Equal(t, s.Description(), descriptionOf(s.Bytes()))
}
