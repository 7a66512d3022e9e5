package imageio_test

import (
	"bytes"
	"image/png"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/image/webp"

	"github.com/creativeai-studio/studio/internal/imageio"
	"github.com/creativeai-studio/studio/internal/imageio/imagetest"
)

func TestTheCraftedPNGAndWebPFilesAreValidWhereTheyClaimToBe(t *testing.T) {
	for name, data := range map[string][]byte{
		"split into 5000 IDATs with 100 private chunks": imagetest.PNG(64, 64, 5000, 100, 3),
		"plain": imagetest.PNG(64, 64, 0, 0, 0),
	} {
		img, err := png.Decode(bytes.NewReader(data))
		require.NoError(t, err, "%s: the crafted file must be one a decoder accepts, or the bound proves nothing", name)
		assert.Equal(t, 64, img.Bounds().Dx())
	}
	for name, data := range map[string][]byte{
		"simple":           imagetest.WebP(imagetest.VP8L(40, 30)),
		"extended":         imagetest.WebP(imagetest.VP8X(40, 30, 0), imagetest.VP8L(40, 30)),
		"with 5000 chunks": imagetest.WebP(append([][]byte{imagetest.VP8X(40, 30, 0)}, append(repeat(imagetest.WebPChunk("prVt", nil), 5000), imagetest.VP8L(40, 30))...)...),
	} {
		img, err := webp.Decode(bytes.NewReader(data))
		require.NoError(t, err, "%s: the crafted file must be one a decoder accepts", name)
		assert.Equal(t, 40, img.Bounds().Dx())
	}
}

// Each crafted file costs a decoder far more than its size; Inspect (what admission
// runs) or Decode (what the preprocess stage runs) refuses it from the chunk headers,
// quickly, with a message that says what to do.
func TestPNGAndWebPDecodingWorkBounds(t *testing.T) {
	still := imagetest.VP8X(40, 30, 0)
	manyChunks := func(n int) []byte {
		return imagetest.WebP(append([][]byte{still}, append(repeat(imagetest.WebPChunk("prVt", nil), n), imagetest.VP8L(40, 30))...)...)
	}
	anmf := imagetest.WebPChunk("ANMF", make([]byte, 16))
	tests := []struct {
		name     string
		data     []byte
		lim      imageio.Limits
		inspect  bool // Inspect already refuses (admission); otherwise only Decode does
		want     error
		contains []string
	}{
		{name: "a PNG of 100,000 one-byte IDAT chunks is refused",
			data: imagetest.PNG(512, 512, 100_000, 0, 0), inspect: true, want: imageio.ErrTooLarge, contains: []string{"more than 4096 chunks", "re-save"}},
		{name: "a PNG of 200,000 empty ancillary chunks is refused",
			data: imagetest.PNG(16, 16, 1, 200_000, 0), inspect: true, want: imageio.ErrTooLarge, contains: []string{"more than 4096 chunks"}},
		{name: "a PNG one chunk over a lowered limit is refused",
			data: imagetest.PNG(16, 16, 9, 0, 0), lim: imageio.Limits{MaxChunks: 10}, inspect: true, want: imageio.ErrTooLarge, contains: []string{"more than 10 chunks"}},
		{name: "a PNG with 8 MiB of ancillary chunks is refused",
			data: imagetest.PNG(16, 16, 1, 8, 1<<20), inspect: true, want: imageio.ErrTooLarge, contains: []string{"8.0 MiB of metadata", "strip the metadata"}},
		{name: "a 36-megapixel PNG at 16 bits per sample is refused before inflating",
			data: imagetest.PNGHeader(6000, 6000, 16, 6, false), inspect: true, want: imageio.ErrTooLarge, contains: []string{"6000x6000 pixels at 16 bits per sample", "8 bits per sample"}},
		{name: "an interlaced 36-megapixel PNG is refused before inflating its seven passes",
			data: imagetest.PNGHeader(6000, 6000, 8, 6, true), inspect: true, want: imageio.ErrTooLarge, contains: []string{"interlaced", "without interlacing"}},
		{name: "a zlib bomb (a 64x64 PNG whose IDAT inflates to 64 MiB) fails at once as damaged",
			data: imagetest.InflateBombPNG(64, 64, 64<<20), want: imageio.ErrCorrupt, contains: []string{"too much pixel data"}},
		{name: "a PNG declaring 36 megapixels over 40 bytes of data is refused before inflating",
			data: imagetest.PNGHeader(6000, 6000, 8, 6, false), want: imageio.ErrCorrupt, contains: []string{"cannot inflate"}},
		{name: "a WebP of 100,000 empty RIFF chunks is refused",
			data: manyChunks(100_000), inspect: true, want: imageio.ErrTooLarge, contains: []string{"more than 4096 chunks"}},
		{name: "an animation without the VP8X animation flag is refused as unsupported, naming its frames",
			data:    imagetest.WebP(append([][]byte{still, imagetest.WebPChunk("ANIM", make([]byte, 6))}, repeat(anmf, 3000)...)...),
			inspect: true, want: imageio.ErrUnsupportedFormat, contains: []string{"3000 frames"}},
		{name: "an animation of more frames than chunks allowed is refused as too large",
			data: imagetest.WebP(append([][]byte{still}, repeat(anmf, 50_000)...)...), inspect: true, want: imageio.ErrTooLarge, contains: []string{"more than 4096 chunks"}},
		{name: "a WebP with 8 MiB of metadata chunks is refused",
			data: imagetest.WebP(still, imagetest.WebPChunk("EXIF", make([]byte, 8<<20)), imagetest.VP8L(40, 30)), inspect: true, want: imageio.ErrTooLarge, contains: []string{"of metadata"}},
		{name: "a WebP whose canvas is smaller than its image data is refused before decoding",
			data: imagetest.WebP(imagetest.VP8X(40, 30, 0), imagetest.VP8L(6000, 6000)), inspect: true, want: imageio.ErrCorrupt, contains: []string{"declared 40x30", "6000x6000"}},
		{name: "a WebP whose RIFF size is larger than the file is refused",
			data: truncate(imagetest.WebP(still, imagetest.VP8L(40, 30)), 6), inspect: true, want: imageio.ErrCorrupt, contains: []string{"RIFF header declares"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Logf("%d bytes on disk", len(tt.data))
			start := time.Now()
			_, err := imageio.Inspect(tt.data, tt.lim)
			if tt.inspect {
				require.ErrorIs(t, err, tt.want)
			} else {
				require.NoError(t, err, "the headers are within the limits")
			}
			_, _, err = imageio.Decode(tt.data, tt.lim)
			require.ErrorIs(t, err, tt.want)
			for _, s := range tt.contains {
				assert.Contains(t, err.Error(), s)
			}
			assert.Less(t, time.Since(start), 5*time.Second, "refusing is cheap: it reads chunk headers, not pixels")
		})
	}
}

func TestFilesWithinTheWorkBoundsDecode(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		lim  imageio.Limits
		w    int
	}{
		{name: "a PNG of 4000 IDAT chunks", data: imagetest.PNG(256, 256, 4000, 0, 0), w: 256},
		{name: "a PNG at a lowered chunk limit", data: imagetest.PNG(16, 16, 8, 0, 0), lim: imageio.Limits{MaxChunks: 10}, w: 16},
		{name: "a PNG with 5 MiB of ancillary chunks", data: imagetest.PNG(16, 16, 1, 5, 1<<20), w: 16},
		{name: "a WebP of 4000 chunks", data: imagetest.WebP(append([][]byte{imagetest.VP8X(40, 30, 0)}, append(repeat(imagetest.WebPChunk("prVt", nil), 4000), imagetest.VP8L(40, 30))...)...), w: 40},
		{name: "a 1000x1000 flat lossless WebP of a few bytes", data: imagetest.WebP(imagetest.VP8X(1000, 1000, 0), imagetest.VP8L(1000, 1000)), w: 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img, _, err := imageio.Decode(tt.data, tt.lim)
			require.NoError(t, err)
			assert.Equal(t, tt.w, img.Bounds().Dx())
		})
	}
	// 8-bit RGBA at the full pixel limit, not interlaced, stays within the decoded bytes.
	_, err := imageio.Inspect(imagetest.PNGHeader(imageio.DefaultMaxSide, int(imageio.DefaultMaxPixels)/imageio.DefaultMaxSide, 8, 6, false), imageio.Limits{})
	require.NoError(t, err)
}

func repeat(b []byte, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = b
	}
	return out
}

func truncate(b []byte, n int) []byte { return b[:len(b)-n] }
