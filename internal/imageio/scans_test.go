package imageio_test

import (
	"bytes"
	"context"
	"errors"
	"image/jpeg"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/internal/imageio"
	"github.com/creativeai-studio/studio/internal/imageio/imagetest"
)

func TestManyScanJPEGIsAValidProgressiveJPEG(t *testing.T) {
	data := imagetest.ManyScanJPEG(1024, 1024, 50)
	img, err := jpeg.Decode(bytes.NewReader(data))
	require.NoError(t, err, "the crafted file must be one a decoder accepts, or the bound proves nothing")
	assert.Equal(t, 1024, img.Bounds().Dx())
}

func TestJPEGScanBound(t *testing.T) {
	tests := []struct {
		name    string
		data    []byte
		lim     imageio.Limits
		refused bool
	}{
		{name: "a progressive JPEG with thousands of tiny scans is refused before decoding",
			data: imagetest.ManyScanJPEG(4096, 4096, 5000), refused: true},
		{name: "one scan over the limit is refused",
			data: imagetest.ManyScanJPEG(1024, 1024, 11), lim: imageio.Limits{MaxScans: 10}, refused: true},
		{name: "a JPEG at the limit is accepted",
			data: imagetest.ManyScanJPEG(1024, 1024, 10), lim: imageio.Limits{MaxScans: 10}},
		{name: "a baseline JPEG from the standard encoder is accepted",
			data: baselineJPEG(t)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			_, err := imageio.Inspect(tt.data, tt.lim)
			if !tt.refused {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, imageio.ErrTooLarge)
			assert.Contains(t, err.Error(), "scans")
			assert.Contains(t, err.Error(), "baseline", "the message says what to do")
			assert.Less(t, time.Since(start), 2*time.Second, "refusing is cheap: it reads markers, not pixels")
			_, _, err = imageio.Decode(tt.data, tt.lim)
			require.ErrorIs(t, err, imageio.ErrTooLarge, "Decode inspects first, so it refuses too")
		})
	}
}

func TestDecodeContextStopsASlowDecodeAtItsDeadline(t *testing.T) {
	// 2000 scans over 16.8 MP: about 10 s of decoding when allowed (5 ms a scan here).
	data := imagetest.ManyScanJPEG(4096, 4096, 2000)
	lim := imageio.Limits{MaxScans: 5000}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, _, err := imageio.DecodeContext(ctx, data, lim)
	took := time.Since(start)
	require.Error(t, err)
	assert.True(t, errors.Is(err, context.DeadlineExceeded), "the error says the deadline stopped it: %v", err)
	assert.False(t, errors.Is(err, imageio.ErrCorrupt), "a stopped decode is not a damaged file")
	assert.Less(t, took, 5*time.Second, "the decoder stopped within a chunk of its deadline")
}

func baselineJPEG(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, jpeg.Encode(&buf, imagetest.Photo(640, 480), &jpeg.Options{Quality: 85}))
	return buf.Bytes()
}
