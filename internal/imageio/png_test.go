package imageio

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"io"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// translucent returns a photo-like image whose alpha is random, with fully
// transparent and fully opaque pixels among the rest.
func translucent(w, h int) *image.NRGBA {
	img := photoImage(w, h)
	rng := rand.New(rand.NewPCG(5, 6))
	for i := 3; i < len(img.Pix); i += 4 {
		switch rng.IntN(4) {
		case 0:
			img.Pix[i] = 0
		case 1:
			img.Pix[i] = 0xff
		default:
			img.Pix[i] = uint8(rng.IntN(256))
		}
	}
	return img
}

// premultiplied converts n to a valid *image.RGBA (colour never above alpha).
func premultiplied(n *image.NRGBA) *image.RGBA {
	m := image.NewRGBA(n.Rect)
	for y := n.Rect.Min.Y; y < n.Rect.Max.Y; y++ {
		for x := n.Rect.Min.X; x < n.Rect.Max.X; x++ {
			m.Set(x, y, n.NRGBAAt(x, y))
		}
	}
	return m
}

func grayImage(w, h int) *image.Gray {
	src := photoImage(w, h)
	g := image.NewGray(src.Rect)
	for i := range g.Pix {
		g.Pix[i] = src.Pix[4*i+1]
	}
	return g
}

// subImage returns the inner part of m, one pixel in from every edge, so
// that Rect.Min is not zero and Stride is wider than the rows.
func subImage[T interface {
	image.Image
	SubImage(image.Rectangle) image.Image
}](m T) T {
	return m.SubImage(m.Bounds().Inset(1)).(T)
}

// chunk is a chunk as read back from an encoded PNG.
type chunk struct {
	typ  string
	data []byte
}

// readChunks splits a PNG into its chunks, failing on a bad signature, a
// truncated chunk or a wrong CRC.
func readChunks(t *testing.T, b []byte) []chunk {
	t.Helper()
	require.True(t, bytes.HasPrefix(b, []byte(pngSignature)), "signature")
	b = b[len(pngSignature):]
	var chunks []chunk
	for len(b) > 0 {
		require.GreaterOrEqual(t, len(b), 12, "chunk header")
		n := int(binary.BigEndian.Uint32(b))
		require.GreaterOrEqual(t, len(b), 12+n, "chunk data")
		c := chunk{typ: string(b[4:8]), data: b[8 : 8+n]}
		require.Equal(t, crc32.ChecksumIEEE(b[4:8+n]), binary.BigEndian.Uint32(b[8+n:]), "CRC of %s", c.typ)
		chunks = append(chunks, c)
		b = b[12+n:]
	}
	return chunks
}

func TestEncodePNGMatchesImagePNG(t *testing.T) {
	std := png.Encoder{CompressionLevel: png.BestSpeed}
	sizes := []image.Point{{1, 1}, {1, 9}, {9, 1}, {3, 5}, {7, 3}, {33, 17}, {200, 3}}
	kinds := []struct {
		name      string
		make      func(w, h int) image.Image
		colorType byte
	}{
		{"opaque NRGBA", func(w, h int) image.Image { return photoImage(w, h) }, ctTrueColor},
		{"NRGBA with alpha", func(w, h int) image.Image { return translucent(w, h) }, ctRGBA},
		{"opaque RGBA", func(w, h int) image.Image { return premultiplied(photoImage(w, h)) }, ctTrueColor},
		{"premultiplied RGBA with alpha", func(w, h int) image.Image { return premultiplied(translucent(w, h)) }, ctRGBA},
		{"Gray", func(w, h int) image.Image { return grayImage(w, h) }, ctGray},
		{"opaque NRGBA sub-image", func(w, h int) image.Image { return subImage(photoImage(w+2, h+2)) }, ctTrueColor},
		{"NRGBA sub-image with alpha", func(w, h int) image.Image { return subImage(translucent(w+2, h+2)) }, ctRGBA},
		{"RGBA sub-image", func(w, h int) image.Image { return subImage(premultiplied(translucent(w+2, h+2))) }, ctRGBA},
		{"Gray sub-image", func(w, h int) image.Image { return subImage(grayImage(w+2, h+2)) }, ctGray},
	}
	for _, k := range kinds {
		for _, size := range sizes {
			t.Run(fmt.Sprintf("%s %dx%d", k.name, size.X, size.Y), func(t *testing.T) {
				src := k.make(size.X, size.Y)
				require.Equal(t, size, src.Bounds().Size())
				var ours, theirs bytes.Buffer
				require.NoError(t, EncodePNG(&ours, src))
				require.NoError(t, std.Encode(&theirs, src))

				chunks := readChunks(t, ours.Bytes())
				require.Equal(t, "IHDR", chunks[0].typ)
				assert.Equal(t, k.colorType, chunks[0].data[9], "colour type")
				assert.Equal(t, theirs.Bytes()[len(pngSignature)+8+9], chunks[0].data[9], "colour type as image/png")

				got, err := png.Decode(&ours)
				require.NoError(t, err)
				want, err := png.Decode(&theirs)
				require.NoError(t, err)
				assert.Equal(t, want.ColorModel(), got.ColorModel())
				assert.Equal(t, ToNRGBA(want).Pix, ToNRGBA(got).Pix)
				if n, ok := src.(*image.NRGBA); ok {
					assert.Equal(t, ToNRGBA(n).Pix, ToNRGBA(got).Pix, "pixels as given")
				}
			})
		}
	}
}

func TestEncodePNGSplitsIDAT(t *testing.T) {
	// Random alpha does not compress, so this is about 3 MB of IDAT data.
	src := translucent(1024, 768)
	var buf bytes.Buffer
	require.NoError(t, EncodePNG(&buf, src))
	chunks := readChunks(t, buf.Bytes())
	require.Greater(t, len(chunks), 4)
	assert.Equal(t, "IHDR", chunks[0].typ)
	assert.Equal(t, "IEND", chunks[len(chunks)-1].typ)
	assert.Empty(t, chunks[len(chunks)-1].data)
	idat := chunks[1 : len(chunks)-1]
	for i, c := range idat {
		require.Equal(t, "IDAT", c.typ)
		if i < len(idat)-1 {
			assert.Len(t, c.data, idatMax, "IDAT %d", i)
		} else {
			assert.NotEmpty(t, c.data)
			assert.LessOrEqual(t, len(c.data), idatMax)
		}
	}
	got, err := png.Decode(&buf)
	require.NoError(t, err)
	assert.Equal(t, src.Pix, ToNRGBA(got).Pix)
}

func TestEncodePNGRealPhotos(t *testing.T) {
	for name, img := range cachedPhotos(t) {
		t.Run(name, func(t *testing.T) {
			cut := ToNRGBA(img) // with a translucent top half, to take the RGBA path
			for i := 3; i < len(cut.Pix)/2; i += 4 {
				cut.Pix[i] = uint8(i)
			}
			for _, src := range []image.Image{img, cut, premultiplied(cut)} {
				var buf bytes.Buffer
				require.NoError(t, EncodePNG(&buf, src))
				got, err := png.Decode(&buf)
				require.NoError(t, err)
				assert.Equal(t, ToNRGBA(src).Pix, ToNRGBA(got).Pix)
			}
		})
	}
}

func TestEncodePNGFallsBackForOtherTypes(t *testing.T) {
	src := image.NewPaletted(image.Rect(0, 0, 5, 3), color.Palette{color.Black, color.White, red})
	for i := range src.Pix {
		src.Pix[i] = uint8(i % 3)
	}
	var buf bytes.Buffer
	require.NoError(t, EncodePNG(&buf, src))
	got, err := png.Decode(&buf)
	require.NoError(t, err)
	assert.Equal(t, ToNRGBA(src).Pix, ToNRGBA(got).Pix)
}

func TestEncodePNGConcurrentSizes(t *testing.T) {
	// Pooled buffers move between encodes of different sizes and types.
	srcs := []image.Image{photoImage(300, 7), translucent(5, 40), grayImage(64, 64), premultiplied(translucent(129, 3)), photoImage(1, 1)}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 20 {
				src := srcs[(g+i)%len(srcs)]
				var buf bytes.Buffer
				if !assert.NoError(t, EncodePNG(&buf, src)) {
					return
				}
				got, err := png.Decode(&buf)
				if !assert.NoError(t, err) {
					return
				}
				assert.Equal(t, ToNRGBA(src).Pix, ToNRGBA(got).Pix)
			}
		})
	}
	wg.Wait()
}

func TestEncodePNGReportsLateWriteErrors(t *testing.T) {
	src := translucent(512, 512) // about 1 MB encoded: several IDAT chunks
	var full bytes.Buffer
	require.NoError(t, EncodePNG(&full, src))
	for _, after := range []int{0, len(pngSignature) + 25, 100, 3 * idatMax, full.Len() - 12} {
		t.Run(fmt.Sprint(after), func(t *testing.T) {
			err := EncodePNG(&limitedWriter{n: after}, src)
			require.ErrorIs(t, err, errDiskFull)
			assert.Contains(t, err.Error(), "encode PNG")
		})
	}
}

// limitedWriter accepts n bytes, then fails.
type limitedWriter struct{ n int }

func (w *limitedWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		k := w.n
		w.n = 0
		return k, errDiskFull
	}
	w.n -= len(p)
	return len(p), nil
}

func TestEncodePNGAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop buffers")
	}
	for _, src := range []image.Image{photoImage(256, 256), premultiplied(translucent(256, 256)), grayImage(256, 256)} {
		require.NoError(t, EncodePNG(io.Discard, src)) // fill the pool
		assert.Zero(t, testing.AllocsPerRun(20, func() { _ = EncodePNG(io.Discard, src) }), "%T", src)
	}
}

// TestEncodePNGBandsTakeTheWriterTheySuit: flat bands (runs of zeros once filtered) go
// through BestSpeed, so a flat image still shrinks to almost nothing, and photo bands
// through HuffmanOnly; an image that changes between them several times is one valid
// zlib stream that image/png (compress/zlib, checking the Adler-32) and the fast decoder
// both read back to the same pixels.
func TestEncodePNGBandsTakeTheWriterTheySuit(t *testing.T) {
	flat := image.NewNRGBA(image.Rect(0, 0, 1024, 1024)) // transparent: a cut-out's background
	var buf bytes.Buffer
	require.NoError(t, EncodePNG(&buf, flat))
	assert.Less(t, buf.Len(), 64<<10, "a flat 4 MiB image compresses as BestSpeed does (27 KB), not to an eighth (512 KB)")

	// Bands of 96 rows of 1024 RGBA pixels (384 KiB, several encoder bands each),
	// alternately photo and flat.
	mixed := translucent(1024, 96*6)
	for y := 96; y < mixed.Rect.Dy(); y += 192 {
		clear(mixed.Pix[y*mixed.Stride : (y+96)*mixed.Stride])
	}
	buf.Reset()
	require.NoError(t, EncodePNG(&buf, mixed))
	got, err := png.Decode(bytes.NewReader(buf.Bytes()))
	require.NoError(t, err)
	assert.Equal(t, mixed.Pix, ToNRGBA(got).Pix)
	fast, err := decodePNGFast(context.Background(), buf.Bytes())
	require.NoError(t, err)
	assert.Equal(t, mixed.Pix, fast.Pix)

	// The flat half costs next to nothing: the file is about the photo half's size.
	half := translucent(1024, 96*3)
	var halfBuf bytes.Buffer
	require.NoError(t, EncodePNG(&halfBuf, half))
	assert.Less(t, buf.Len(), halfBuf.Len()+halfBuf.Len()/20)
}

func TestZeroBlocks(t *testing.T) {
	b := make([]byte, 100)
	assert.Equal(t, 3, zeroBlocks(b), "whole aligned blocks only")
	b[40] = 1
	assert.Equal(t, 2, zeroBlocks(b))
	b[97] = 1
	assert.Equal(t, 2, zeroBlocks(b), "the tail past the last whole block does not count")
}
