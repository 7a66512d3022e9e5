package imageio

import (
	"bytes"
	"compress/zlib"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/internal/assets"
)

// stdDecode is what Decode returned for a PNG before the fast path: image/png's
// image, converted by toNRGBA.
func stdDecode(data []byte) (*image.NRGBA, error) {
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	return toNRGBA(img, true), nil
}

// requireFastIsStd decodes data on the fast path, which must take it, and with
// image/png, and requires the same pixels.
func requireFastIsStd(t *testing.T, data []byte, msgAndArgs ...any) {
	t.Helper()
	want, err := stdDecode(data)
	require.NoError(t, err, msgAndArgs...)
	got, err := decodePNGFast(context.Background(), data)
	require.NoError(t, err, msgAndArgs...)
	require.Equal(t, want.Rect, got.Rect, msgAndArgs...)
	if !bytes.Equal(want.Pix, got.Pix) {
		for i := range want.Pix {
			if want.Pix[i] != got.Pix[i] {
				p := i / 4
				require.FailNow(t, fmt.Sprintf("pixel (%d, %d) byte %d: image/png %d, fast path %d", p%want.Rect.Dx(), p/want.Rect.Dx(), i%4, want.Pix[i], got.Pix[i]), msgAndArgs...)
			}
		}
	}
}

// filteredPNG writes an 8-bit PNG of colour type ct, w x h, whose row y is filtered
// with filter(y), from pixel bytes px (channels per pixel as ct says), with the zlib
// stream split into IDAT chunks of idatSize bytes.
func filteredPNG(t *testing.T, w, h int, ct byte, px []byte, filter func(y int) byte, idatSize int) []byte {
	t.Helper()
	bpp := pngChannels(ct)
	n := bpp * w
	var z bytes.Buffer
	zw, err := zlib.NewWriterLevel(&z, zlib.BestSpeed)
	require.NoError(t, err)
	prev := make([]byte, n)
	out := make([]byte, 1+n)
	for y := range h {
		row := px[y*n : (y+1)*n]
		ft := filter(y)
		out[0] = ft
		for i := range n {
			var a, b, c int
			if i >= bpp {
				a, c = int(row[i-bpp]), int(prev[i-bpp])
			}
			b = int(prev[i])
			var p int
			switch ft {
			case 1:
				p = a
			case 2:
				p = b
			case 3:
				p = (a + b) / 2
			case 4:
				q := a + b - c
				pa, pb, pc := abs(q-a), abs(q-b), abs(q-c)
				switch {
				case pa <= pb && pa <= pc:
					p = a
				case pb <= pc:
					p = b
				default:
					p = c
				}
			}
			out[1+i] = row[i] - uint8(p)
		}
		_, err := zw.Write(out)
		require.NoError(t, err)
		prev = row
	}
	require.NoError(t, zw.Close())
	ihdr := binary.BigEndian.AppendUint32(nil, uint32(w))
	ihdr = binary.BigEndian.AppendUint32(ihdr, uint32(h))
	ihdr = append(ihdr, 8, ct, 0, 0, 0)
	b := []byte(pngSignature)
	b = append(b, pngChunk("IHDR", ihdr)...)
	b = append(b, pngChunk("tEXt", []byte("Comment\x00filtered test image"))...)
	zs := z.Bytes()
	for len(zs) > 0 {
		k := min(len(zs), idatSize)
		b = append(b, pngChunk("IDAT", zs[:k])...)
		zs = zs[k:]
	}
	return append(b, pngChunk("IEND", nil)...)
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// TestDecodePNGFastIsImagePNG: every filter type, on every row position, for every
// colour type and bytes per pixel the fast path takes, on noise (which exercises every
// Paeth branch and every wrap-around) and on smooth content, gives image/png's pixels.
func TestDecodePNGFastIsImagePNG(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, ct := range []byte{ctGray, ctGrayAlpha, ctTrueColor, ctRGBA} {
		for _, w := range []int{1, 2, 3, 7, 8, 9, 33, 257} {
			h := 11
			bpp := pngChannels(ct)
			noise := make([]byte, w*h*bpp)
			for i := range noise {
				noise[i] = uint8(rng.Uint32())
			}
			smooth := make([]byte, w*h*bpp)
			for i := range smooth {
				x, y := (i/bpp)%w, i/(bpp*w)
				smooth[i] = uint8(x*7 + y*3 + i%bpp*40)
			}
			for name, px := range map[string][]byte{"noise": noise, "smooth": smooth} {
				for ft := range byte(5) {
					data := filteredPNG(t, w, h, ct, px, func(int) byte { return ft }, 1<<20)
					requireFastIsStd(t, data, "colour type %d, %d wide, %s, filter %d", ct, w, name, ft)
				}
				// Every filter after every other one, in small IDAT chunks.
				data := filteredPNG(t, w, h, ct, px, func(y int) byte { return byte(y*3) % 5 }, 7)
				requireFastIsStd(t, data, "colour type %d, %d wide, %s, mixed filters", ct, w, name)
			}
		}
	}
}

// TestDecodePNGFastTakesWhatEncodersWrite: the files of image/png at every level (its
// per-row filter choice, 32 KiB IDAT chunks) and of EncodePNG, for every image kind the
// pipeline writes, decode on the fast path to image/png's pixels.
func TestDecodePNGFastTakesWhatEncodersWrite(t *testing.T) {
	images := map[string]image.Image{
		"photo RGB":        photoImage(300, 200),
		"translucent RGBA": translucent(129, 65),
		"grey":             grayImage(77, 50),
		"large RGB":        photoImage(1024, 700),
	}
	for name, img := range images {
		for _, level := range []png.CompressionLevel{png.NoCompression, png.BestSpeed, png.DefaultCompression, png.BestCompression} {
			var buf bytes.Buffer
			require.NoError(t, (&png.Encoder{CompressionLevel: level}).Encode(&buf, img))
			requireFastIsStd(t, buf.Bytes(), "%s, image/png level %d", name, level)
		}
		var buf bytes.Buffer
		require.NoError(t, EncodePNG(&buf, img))
		requireFastIsStd(t, buf.Bytes(), "%s, EncodePNG", name)
	}
}

// TestDecodePNGFastRealPhotos: the cached benchmark photos, and each of them re-encoded
// by image/png (its five filters chosen per row) and by EncodePNG, give image/png's
// pixels on the fast path.
func TestDecodePNGFastRealPhotos(t *testing.T) {
	n := 0
	for _, a := range assets.Groups["photos"] {
		data, err := os.ReadFile(filepath.Join(assets.DefaultDir(), a.Path))
		if err != nil {
			t.Skipf("cached photos absent (run `studio fetch photos`): %v", err)
		}
		f, err := Sniff(data)
		require.NoError(t, err)
		if f == FormatPNG {
			requireFastIsStd(t, data, "%s as cached", a.Path)
			n++
		}
		img, _, err := Decode(data, Limits{})
		require.NoError(t, err)
		var buf bytes.Buffer
		require.NoError(t, png.Encode(&buf, img))
		requireFastIsStd(t, buf.Bytes(), "%s through image/png", a.Path)
		buf.Reset()
		require.NoError(t, EncodePNG(&buf, img))
		requireFastIsStd(t, buf.Bytes(), "%s through EncodePNG", a.Path)
	}
	require.NotZero(t, n, "the photos include PNGs")
}

// TestDecodePNGFastLeavesTheRestToImagePNG: PNGs the fast path does not take, and
// damaged ones, go to image/png, and Decode gives what it gave before.
func TestDecodePNGFastLeavesTheRestToImagePNG(t *testing.T) {
	ok := encodePNG(t, photoImage(40, 30))
	palette := image.NewPaletted(image.Rect(0, 0, 20, 10), color.Palette{red, green, color.NRGBA{0, 0, 255, 128}})
	for i := range palette.Pix {
		palette.Pix[i] = uint8(i % 3)
	}
	gray16 := image.NewGray16(image.Rect(0, 0, 9, 9))
	for i := range gray16.Pix {
		gray16.Pix[i] = uint8(i * 31)
	}
	cases := map[string][]byte{
		"palette with transparency": encodePNG(t, palette),
		"16-bit grey":               encodePNG(t, gray16),
		"16-bit RGBA":               encodePNG(t, image.NewNRGBA64(image.Rect(0, 0, 5, 5))),
		"interlaced":                interlacedPNG(t),
		"bad chunk CRC":             flipByte(ok, len(ok)-20),
		"bad zlib checksum":         badAdler(t, ok),
		"truncated in IEND":         ok[:len(ok)-6],
		"no IEND":                   ok[:len(ok)-12],
		"garbage after the stream":  withIDATTail(t, ok, []byte("junk")),
		"bad filter type":           filteredPNG(t, 5, 4, ctRGBA, make([]byte, 80), func(y int) byte { return byte(y * 2) }, 100),
		"tRNS on RGB":               withChunkBeforeIDAT(t, encodePNG(t, photoImage(8, 8)), pngChunk("tRNS", []byte{0, 1, 0, 2, 0, 3})),
		"IDAT split by a chunk":     splitIDAT(t, ok),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := decodePNGFast(context.Background(), data)
			require.ErrorIs(t, err, errPNGFallback)
			want, wantErr := stdDecode(data)
			got, _, err := Decode(data, Limits{})
			if wantErr != nil {
				require.Error(t, err)
				require.ErrorIs(t, err, ErrCorrupt)
				require.Contains(t, err.Error(), wantErr.Error(), "image/png's words are in the message")
				return
			}
			require.NoError(t, err)
			require.Equal(t, want, got)
		})
	}
}

func flipByte(b []byte, i int) []byte {
	b = bytes.Clone(b)
	b[i] ^= 0x40
	return b
}

// pngChunksOf splits a PNG into its chunks (type and data).
func pngChunksOf(t *testing.T, b []byte) (types []string, bodies [][]byte) {
	t.Helper()
	for i := len(pngSignature); i+12 <= len(b); {
		n := int(binary.BigEndian.Uint32(b[i:]))
		types = append(types, string(b[i+4:i+8]))
		bodies = append(bodies, b[i+8:i+8+n])
		i += 12 + n
	}
	return types, bodies
}

// rebuildPNG writes chunks back as a PNG, with correct CRCs.
func rebuildPNG(types []string, bodies [][]byte) []byte {
	b := []byte(pngSignature)
	for i := range types {
		b = append(b, pngChunk(types[i], bodies[i])...)
	}
	return b
}

// idatStream is the PNG's zlib stream, its IDAT data joined.
func idatStream(t *testing.T, b []byte) []byte {
	types, bodies := pngChunksOf(t, b)
	var z []byte
	for i, typ := range types {
		if typ == "IDAT" {
			z = append(z, bodies[i]...)
		}
	}
	return z
}

// withIDAT replaces the PNG's IDAT chunks with one holding z.
func withIDAT(t *testing.T, b, z []byte) []byte {
	types, bodies := pngChunksOf(t, b)
	var ot []string
	var ob [][]byte
	done := false
	for i, typ := range types {
		if typ == "IDAT" {
			if !done {
				ot, ob = append(ot, "IDAT"), append(ob, z)
				done = true
			}
			continue
		}
		ot, ob = append(ot, typ), append(ob, bodies[i])
	}
	return rebuildPNG(ot, ob)
}

func badAdler(t *testing.T, b []byte) []byte {
	z := bytes.Clone(idatStream(t, b))
	z[len(z)-1] ^= 1
	return withIDAT(t, b, z)
}

func withIDATTail(t *testing.T, b, tail []byte) []byte {
	return withIDAT(t, b, append(bytes.Clone(idatStream(t, b)), tail...))
}

func withChunkBeforeIDAT(t *testing.T, b, chunk []byte) []byte {
	i := bytes.Index(b, []byte("IDAT")) - 4
	return append(append(bytes.Clone(b[:i]), chunk...), b[i:]...)
}

// splitIDAT puts a tEXt chunk between two halves of the zlib stream.
func splitIDAT(t *testing.T, b []byte) []byte {
	z := idatStream(t, b)
	types, bodies := pngChunksOf(t, b)
	var ot []string
	var ob [][]byte
	for i, typ := range types {
		if typ == "IDAT" {
			continue
		}
		if typ == "IEND" {
			ot = append(ot, "IDAT", "tEXt", "IDAT")
			ob = append(ob, z[:len(z)/2], []byte("a\x00b"), z[len(z)/2:])
		}
		ot, ob = append(ot, typ), append(ob, bodies[i])
	}
	return rebuildPNG(ot, ob)
}

// interlacedPNG is a 3x3 Adam7 PNG, all rows filter None, one RGB pixel per pass.
func interlacedPNG(t *testing.T) []byte {
	var raw []byte
	// Pass sizes for 3x3: 1x1, 0, 1x1, 0 (width 0), 2x1, 1x1... build generically.
	for _, p := range adam7 {
		pw := (3 - p[0] + p[2] - 1) / p[2]
		ph := (3 - p[1] + p[3] - 1) / p[3]
		if pw <= 0 || ph <= 0 {
			continue
		}
		for range ph {
			raw = append(raw, 0)
			for x := range pw {
				raw = append(raw, uint8(x*50), 100, 200)
			}
		}
	}
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	_, err := zw.Write(raw)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	ihdr := binary.BigEndian.AppendUint32(nil, 3)
	ihdr = binary.BigEndian.AppendUint32(ihdr, 3)
	ihdr = append(ihdr, 8, ctTrueColor, 0, 0, 1)
	return rebuildPNG([]string{"IHDR", "IDAT", "IEND"}, [][]byte{ihdr, z.Bytes(), nil})
}

// TestDecodePNGFastStopsAtItsDeadline: a cancelled context stops the fast path, and
// Decode says so rather than calling the file damaged.
func TestDecodePNGFastStopsAtItsDeadline(t *testing.T) {
	data := encodePNG(t, photoImage(64, 64))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := decodePNGFast(ctx, data)
	require.ErrorIs(t, err, context.Canceled)
	require.False(t, errors.Is(err, errPNGFallback))
	_, _, err = DecodeContext(ctx, data, Limits{})
	require.ErrorIs(t, err, context.Canceled)
	require.False(t, errors.Is(err, ErrCorrupt))
}

// FuzzDecodePNGFast: whatever the fast path accepts, image/png accepts with the same
// pixels. Seeds: a small PNG of each colour type it takes.
func FuzzDecodePNGFast(f *testing.F) {
	for _, img := range []image.Image{photoImage(5, 3), translucent(4, 4), grayImage(3, 5)} {
		f.Add(encodePNG(f, img))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := Inspect(data, fuzzLimits); err != nil {
			return
		}
		if checkPNGData(data, fuzzLimits.withDefaults()) != nil {
			return
		}
		var got *image.NRGBA
		if safely(func() error {
			var err error
			got, err = decodePNGFast(context.Background(), data)
			return err
		}) != nil {
			return
		}
		want, err := stdDecode(data)
		require.NoError(t, err, "the fast path accepted a file image/png refuses")
		require.Equal(t, want.Rect, got.Rect)
		require.True(t, bytes.Equal(want.Pix, got.Pix), "pixels differ")
	})
}

// BenchmarkDecodePNGPaths is Decode's PNG path against image/png plus toNRGBA (what
// Decode did before), on a photo-like RGB image and, when cached, the benchmark photos.
func BenchmarkDecodePNGPaths(b *testing.B) {
	files := map[string][]byte{"photoImage 1024x1024 RGB": encodePNG(b, photoImage(1024, 1024))}
	for _, a := range assets.Groups["photos"] {
		if data, err := os.ReadFile(filepath.Join(assets.DefaultDir(), a.Path)); err == nil {
			if f, _ := Sniff(data); f == FormatPNG {
				files[filepath.Base(a.Path)] = data
			}
		}
	}
	for name, data := range files {
		b.Run(name+"/fast", func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := decodePNGFast(context.Background(), data); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/image-png", func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := stdDecode(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestDecodePNGFastConcurrentSizes: pooled decoder state moves between decodes of
// different sizes and colour types at once.
func TestDecodePNGFastConcurrentSizes(t *testing.T) {
	var files [][]byte
	var wants []*image.NRGBA
	for _, img := range []image.Image{photoImage(300, 7), translucent(5, 40), grayImage(64, 64), photoImage(1, 1), translucent(600, 200)} {
		var buf bytes.Buffer
		require.NoError(t, EncodePNG(&buf, img))
		want, err := stdDecode(buf.Bytes())
		require.NoError(t, err)
		files, wants = append(files, buf.Bytes()), append(wants, want)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 20 {
				k := (g + i) % len(files)
				got, _, err := Decode(files[k], Limits{})
				if !assert.NoError(t, err) {
					return
				}
				assert.Equal(t, wants[k].Pix, got.Pix)
			}
		})
	}
	wg.Wait()
}
