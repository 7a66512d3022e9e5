package imageio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/internal/assets"
	"github.com/creativeai-studio/studio/internal/colour"
)

// Test images are generated rather than committed so that every case says
// exactly which bytes it exercises.

var (
	red     = color.NRGBA{255, 0, 0, 255}
	green   = color.NRGBA{0, 255, 0, 255}
	blue    = color.NRGBA{0, 0, 255, 255}
	yellow  = color.NRGBA{255, 255, 0, 255}
	magenta = color.NRGBA{255, 0, 255, 255}
	cyan    = color.NRGBA{0, 255, 255, 255}
)

// gridBlock is the side of each colour block in gridImage: 16 keeps every
// block inside one 4:2:0 JPEG MCU, so colours survive compression.
const gridBlock = 16

// gridImage is a 3x2 grid of distinct colours, asymmetric under every flip
// and rotation:
//
//	R G B
//	Y M C
func gridImage() *image.NRGBA {
	layout := [][]color.NRGBA{{red, green, blue}, {yellow, magenta, cyan}}
	return gridFrom(layout)
}

func gridFrom(layout [][]color.NRGBA) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, len(layout[0])*gridBlock, len(layout)*gridBlock))
	for y := range img.Rect.Dy() {
		for x := range img.Rect.Dx() {
			img.SetNRGBA(x, y, layout[y/gridBlock][x/gridBlock])
		}
	}
	return img
}

// photoImage is a smooth gradient with noise, which compresses like a photo
// rather than like a flat test card.
func photoImage(w, h int) *image.NRGBA {
	rng := rand.New(rand.NewPCG(1, 2))
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			n := uint8(rng.IntN(32))
			img.SetNRGBA(x, y, color.NRGBA{uint8(x*255/w) ^ n, uint8(y*255/h) + n, uint8((x+y)*127/(w+h)) + n, 255})
		}
	}
	return img
}

// cachedPhotos returns the real test photos (scikit-image samples) decoded,
// by name, from the asset cache. It skips the test when they are not there:
// unit tests never download, `studio fetch photos` fills the cache.
func cachedPhotos(tb testing.TB) map[string]*image.NRGBA {
	tb.Helper()
	photos := map[string]*image.NRGBA{}
	for _, a := range assets.Groups["photos"] {
		data, err := os.ReadFile(filepath.Join(assets.DefaultDir(), a.Path))
		if err != nil {
			tb.Skipf("cached photos absent (run `studio fetch photos`): %v", err)
		}
		img, _, err := Decode(data, Limits{})
		if errors.Is(err, colour.ErrUnavailable) {
			continue // rocket.jpg is Adobe RGB: a build without cgo refuses it, as it should
		}
		require.NoError(tb, err, a.Path)
		photos[filepath.Base(a.Path)] = img
	}
	return photos
}

func encodeJPEG(tb testing.TB, img image.Image) []byte {
	tb.Helper()
	var buf bytes.Buffer
	require.NoError(tb, jpeg.Encode(&buf, img, &jpeg.Options{Quality: 95}))
	return buf.Bytes()
}

func encodePNG(tb testing.TB, img image.Image) []byte {
	tb.Helper()
	var buf bytes.Buffer
	require.NoError(tb, png.Encode(&buf, img))
	return buf.Bytes()
}

func encodeGIF(tb testing.TB) []byte {
	tb.Helper()
	img := image.NewPaletted(image.Rect(0, 0, 4, 4), color.Palette{color.Black, color.White})
	var buf bytes.Buffer
	require.NoError(tb, gif.Encode(&buf, img, nil))
	return buf.Bytes()
}

// ifdEntry is one IFD0 entry; value is stored left-justified in the 4-byte
// value field as the TIFF specification requires for SHORT.
type ifdEntry struct {
	tag, typ uint16
	count    uint32
	value    uint32
}

// buildTIFF returns a TIFF header and an IFD0 holding entries.
func buildTIFF(bo binary.ByteOrder, entries ...ifdEntry) []byte {
	b := make([]byte, 8+2+12*len(entries)+4)
	if bo == binary.ByteOrder(binary.LittleEndian) {
		copy(b, "II")
	} else {
		copy(b, "MM")
	}
	bo.PutUint16(b[2:], 42)
	bo.PutUint32(b[4:], 8)
	bo.PutUint16(b[8:], uint16(len(entries)))
	for i, e := range entries {
		p := b[10+12*i:]
		bo.PutUint16(p, e.tag)
		bo.PutUint16(p[2:], e.typ)
		bo.PutUint32(p[4:], e.count)
		if e.typ == 3 {
			bo.PutUint16(p[8:], uint16(e.value))
		} else {
			bo.PutUint32(p[8:], e.value)
		}
	}
	return b
}

func orientationTIFF(bo binary.ByteOrder, o uint16) []byte {
	return buildTIFF(bo,
		ifdEntry{tag: 0x010F, typ: 2, count: 4, value: 0x41424300}, // Make, before Orientation as in camera files
		ifdEntry{tag: 0x0112, typ: 3, count: 1, value: uint32(o)},
	)
}

// segment returns a JPEG marker segment.
func segment(marker byte, payload []byte) []byte {
	n := len(payload) + 2
	return append([]byte{0xFF, marker, byte(n >> 8), byte(n)}, payload...)
}

func exifAPP1(tiff []byte) []byte {
	return segment(0xE1, append([]byte("Exif\x00\x00"), tiff...))
}

// spliceAfterSOI inserts segments right after a JPEG's start-of-image marker,
// where cameras put APP1.
func spliceAfterSOI(jpg []byte, segs ...[]byte) []byte {
	out := append([]byte(nil), jpg[:2]...)
	for _, s := range segs {
		out = append(out, s...)
	}
	return append(out, jpg[2:]...)
}

func pngChunk(typ string, data []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
	b = append(b, typ...)
	b = append(b, data...)
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b[4:]))
}

// pngHeaderOnly is a PNG with a valid IHDR claiming w x h RGBA pixels and no
// pixel data: tiny on disk, enormous if anything trusted it.
func pngHeaderOnly(w, h uint32) []byte {
	ihdr := binary.BigEndian.AppendUint32(nil, w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	ihdr = append(ihdr, 8, 6, 0, 0, 0) // 8-bit RGBA, deflate, no interlace
	b := []byte("\x89PNG\r\n\x1a\n")
	b = append(b, pngChunk("IHDR", ihdr)...)
	b = append(b, pngChunk("IDAT", []byte{0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01})...)
	return append(b, pngChunk("IEND", nil)...)
}

// bitWriter packs bits least-significant first, as VP8L reads them.
type bitWriter struct {
	buf []byte
	acc uint64
	n   uint
}

func (w *bitWriter) write(v uint32, bits uint) {
	w.acc |= uint64(v) << w.n
	w.n += bits
	for w.n >= 8 {
		w.buf = append(w.buf, byte(w.acc))
		w.acc >>= 8
		w.n -= 8
	}
}

func (w *bitWriter) bytes() []byte {
	if w.n > 0 {
		return append(w.buf, byte(w.acc))
	}
	return w.buf
}

// losslessWebP encodes a two-colour lossless (VP8L) WebP: black where on
// returns false, green where it returns true. x/image has no WebP encoder;
// with "simple" prefix codes (one symbol for red, blue, alpha and distance,
// two one-bit symbols for green) each pixel costs exactly one bit, which
// keeps this encoder tiny while still allowing asymmetric patterns.
func losslessWebP(w, h int, on func(x, y int) bool) []byte {
	var bw bitWriter
	bw.write(0x2f, 8) // VP8L signature
	bw.write(uint32(w-1), 14)
	bw.write(uint32(h-1), 14)
	bw.write(0, 1) // alpha hint
	bw.write(0, 3) // version
	bw.write(0, 1) // no transforms
	bw.write(0, 1) // no colour cache
	bw.write(0, 1) // no meta prefix codes
	// Green: simple code, two symbols, 8-bit first symbol: 0 and 255.
	bw.write(1, 1)
	bw.write(1, 1)
	bw.write(1, 1)
	bw.write(0, 8)
	bw.write(255, 8)
	oneSymbol := func(v uint32) { // simple code, one 8-bit symbol
		bw.write(1, 1)
		bw.write(0, 1)
		bw.write(1, 1)
		bw.write(v, 8)
	}
	oneSymbol(0)   // red
	oneSymbol(0)   // blue
	oneSymbol(255) // alpha
	oneSymbol(0)   // distance
	for y := range h {
		for x := range w {
			if on(x, y) {
				bw.write(1, 1)
			} else {
				bw.write(0, 1)
			}
		}
	}
	return riffWebP("VP8L", bw.bytes())
}

func riffWebP(chunk string, payload []byte) []byte {
	body := []byte("WEBP" + chunk)
	body = binary.LittleEndian.AppendUint32(body, uint32(len(payload)))
	body = append(body, payload...)
	if len(payload)%2 == 1 {
		body = append(body, 0)
	}
	b := binary.LittleEndian.AppendUint32([]byte("RIFF"), uint32(len(body)))
	return append(b, body...)
}

// vp8xWebP is an extended-format WebP header claiming w x h with the given
// flags and no image data.
func vp8xWebP(w, h int, flags byte) []byte {
	p := []byte{flags, 0, 0, 0}
	p = append(p, byte(w-1), byte((w-1)>>8), byte((w-1)>>16))
	p = append(p, byte(h-1), byte((h-1)>>8), byte((h-1)>>16))
	return riffWebP("VP8X", p)
}

func bmpBytes() []byte {
	b := []byte("BM")
	b = binary.LittleEndian.AppendUint32(b, 58) // file size
	b = binary.LittleEndian.AppendUint32(b, 0)  // reserved
	b = binary.LittleEndian.AppendUint32(b, 54) // pixel data offset
	b = binary.LittleEndian.AppendUint32(b, 40) // BITMAPINFOHEADER
	b = binary.LittleEndian.AppendUint32(b, 1)
	b = binary.LittleEndian.AppendUint32(b, 1)
	b = binary.LittleEndian.AppendUint16(b, 1)
	b = binary.LittleEndian.AppendUint16(b, 24)
	b = append(b, make([]byte, 24)...)
	return append(b, 0, 0, 255, 0)
}

func randomBytes(n int) []byte {
	rng := rand.New(rand.NewPCG(3, 4))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}
