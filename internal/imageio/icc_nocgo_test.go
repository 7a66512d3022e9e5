//go:build !cgo

package imageio

import (
	"testing"

	"github.com/stretchr/testify/require"

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
