//go:build !cgo

package imageio

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/internal/assets"
	"github.com/creativeai-studio/studio/internal/imageio/imagetest"
)

// Without Little CMS a profiled image must be refused, never read as sRGB.
func TestWithoutCgoProfiledImagesAreRefused(t *testing.T) {
	file, err := EmbedProfile(FormatPNG, encodePNG(t, imagetest.Photo(8, 8)), make([]byte, 600))
	require.NoError(t, err)
	_, _, err = Decode(file, Limits{})
	require.ErrorIs(t, err, ErrUnsupportedFormat)
	require.Contains(t, err.Error(), "colour management")

	// Files without a profile are unaffected.
	_, hdr, err := Decode(encodePNG(t, imagetest.Photo(8, 8)), Limits{})
	require.NoError(t, err)
	require.Nil(t, hdr.Profile)
}

// The common sRGB profile (astronaut.png carries the 3144-byte "sRGB IEC61966-2.1")
// is recognised without Little CMS, and its pixels are left as they are.
func TestWithoutCgoSRGBProfilesAreAccepted(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(assets.DefaultDir(), "photos", "astronaut.png"))
	if err != nil {
		t.Skipf("cached photos absent (run `studio fetch photos`): %v", err)
	}
	img, hdr, err := Decode(data, Limits{})
	require.NoError(t, err)
	require.NotNil(t, hdr.Profile)
	require.Contains(t, hdr.Profile.Description(), "sRGB")
	raw, err := png.Decode(bytes.NewReader(data))
	require.NoError(t, err)
	require.Equal(t, ToNRGBA(raw).Pix, img.Pix)
}
