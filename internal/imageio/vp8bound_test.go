package imageio_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/image/webp"

	"github.com/creativeai-studio/studio/internal/imageio"
	"github.com/creativeai-studio/studio/internal/imageio/imagetest"
)

// A lossy WebP of 2.4 KB declaring 12000x3333 pixels (under the 40-megapixel limit):
// golang.org/x/image/vp8 would reconstruct all 156,750 macroblocks from zeros read past
// its 377-byte first partition before reporting the truncation. The first partition
// must hold at least a bit per macroblock, so Inspect (admission) and Decode
// (preprocess) refuse it from the frame header.
func TestALossyWebPDeclaringMoreMacroblocksThanItsDataCanHoldIsRefused(t *testing.T) {
	real := imagetest.LossyWebP()
	img, err := webp.Decode(bytes.NewReader(real))
	require.NoError(t, err, "the file the attack is made from is a valid lossy WebP")
	require.Equal(t, 150, img.Bounds().Dx())
	h, err := imageio.Inspect(real, imageio.Limits{})
	require.NoError(t, err)
	require.Equal(t, imageio.FormatWebP, h.Format)
	_, _, err = imageio.Decode(real, imageio.Limits{})
	require.NoError(t, err)

	crafted := imagetest.LossyWebPDeclaring(12000, 3333)
	start := time.Now()
	_, err = imageio.Inspect(crafted, imageio.Limits{})
	require.ErrorIs(t, err, imageio.ErrCorrupt)
	require.Contains(t, err.Error(), "12000x3333, 156750 macroblocks")
	require.Contains(t, err.Error(), "first partition of 377 bytes")
	require.Contains(t, err.Error(), "re-export it")
	_, _, err = imageio.Decode(crafted, imageio.Limits{})
	require.ErrorIs(t, err, imageio.ErrCorrupt)
	require.Less(t, time.Since(start), time.Second, "refusing reads a frame header, not pixels")

	// The bound is one bit per macroblock: 377 bytes hold the modes of 3016 of them.
	_, err = imageio.Inspect(imagetest.LossyWebPDeclaring(16*58, 16*52), imageio.Limits{}) // 3016 macroblocks
	require.NoError(t, err, "a frame at the bound passes the header check")
	_, err = imageio.Inspect(imagetest.LossyWebPDeclaring(16*58, 16*52+1), imageio.Limits{}) // 3074
	require.ErrorIs(t, err, imageio.ErrCorrupt)
}
