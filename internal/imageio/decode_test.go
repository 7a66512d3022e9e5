package imageio

import (
	"encoding/binary"
	"fmt"
	"image"
	"image/color"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDecodeEveryFormat(t *testing.T) {
	grid := gridImage()
	translucent := image.NewNRGBA(image.Rect(0, 0, 3, 2))
	translucent.SetNRGBA(0, 0, color.NRGBA{10, 20, 30, 40})
	translucent.SetNRGBA(2, 1, color.NRGBA{200, 100, 50, 255})
	paletted := image.NewPaletted(image.Rect(0, 0, 2, 2), color.Palette{red, color.NRGBA{0, 0, 255, 128}})
	paletted.SetColorIndex(1, 1, 1)
	gray16 := image.NewGray16(image.Rect(0, 0, 2, 1))
	gray16.SetGray16(1, 0, color.Gray16{Y: 0xFFFF})
	diagonal := func(x, y int) bool { return x == y }

	tests := []struct {
		name   string
		data   []byte
		format Format
		w, h   int
		pixels map[image.Point]color.NRGBA
		tol    uint8 // per channel, for lossy formats
	}{
		{name: "a JPEG decodes to its colours", data: encodeJPEG(t, grid), format: FormatJPEG, w: 48, h: 32, tol: 24,
			pixels: map[image.Point]color.NRGBA{{8, 8}: red, {40, 8}: blue, {8, 24}: yellow, {40, 24}: cyan}},
		{name: "a grayscale JPEG decodes to opaque grey", data: encodeJPEG(t, image.NewGray(image.Rect(0, 0, 8, 8))), format: FormatJPEG, w: 8, h: 8, tol: 2,
			pixels: map[image.Point]color.NRGBA{{3, 3}: {0, 0, 0, 255}}},
		{name: "an RGBA PNG keeps straight alpha exactly", data: encodePNG(t, translucent), format: FormatPNG, w: 3, h: 2,
			pixels: map[image.Point]color.NRGBA{{0, 0}: {10, 20, 30, 40}, {2, 1}: {200, 100, 50, 255}, {1, 0}: {}}},
		{name: "a paletted PNG decodes through its palette", data: encodePNG(t, paletted), format: FormatPNG, w: 2, h: 2,
			pixels: map[image.Point]color.NRGBA{{0, 0}: red, {1, 1}: {0, 0, 255, 128}}},
		{name: "a 16-bit grey PNG decodes to 8-bit", data: encodePNG(t, gray16), format: FormatPNG, w: 2, h: 1,
			pixels: map[image.Point]color.NRGBA{{0, 0}: {0, 0, 0, 255}, {1, 0}: {255, 255, 255, 255}}},
		{name: "a lossless WebP decodes exactly", data: losslessWebP(5, 3, diagonal), format: FormatWebP, w: 5, h: 3,
			pixels: map[image.Point]color.NRGBA{{0, 0}: green, {1, 0}: {0, 0, 0, 255}, {2, 2}: green, {4, 2}: {0, 0, 0, 255}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img, h, err := Decode(tt.data, Limits{})
			require.NoError(t, err)
			assert.Equal(t, Header{Format: tt.format, Width: tt.w, Height: tt.h, Orientation: 1}, h)
			assert.Equal(t, image.Rect(0, 0, tt.w, tt.h), img.Rect)
			for p, want := range tt.pixels {
				assertNear(t, want, img.NRGBAAt(p.X, p.Y), tt.tol, "pixel %v", p)
			}
		})
	}
}

func TestDecodeAppliesEXIFOrientation(t *testing.T) {
	// Expected upright layouts of gridImage (R G B / Y M C) under each EXIF
	// orientation, written out from the specification's wording ("the 0th row
	// is the visual right-hand side", ...) rather than computed, so the test
	// does not share a mistake with the code.
	R, G, B, Y, M, C := red, green, blue, yellow, magenta, cyan
	want := map[uint16][][]color.NRGBA{
		1: {{R, G, B}, {Y, M, C}},
		2: {{B, G, R}, {C, M, Y}},
		3: {{C, M, Y}, {B, G, R}},
		4: {{Y, M, C}, {R, G, B}},
		5: {{R, Y}, {G, M}, {B, C}},
		6: {{Y, R}, {M, G}, {C, B}},
		7: {{C, B}, {M, G}, {Y, R}},
		8: {{B, C}, {G, M}, {R, Y}},
	}
	jpg := encodeJPEG(t, gridImage())
	for o := uint16(1); o <= 8; o++ {
		for _, bo := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
			t.Run(fmt.Sprintf("orientation %d in %v EXIF is shown upright", o, bo), func(t *testing.T) {
				data := spliceAfterSOI(jpg, exifAPP1(orientationTIFF(bo, o)))
				img, h, err := Decode(data, Limits{})
				require.NoError(t, err)

				layout := want[o]
				wantW, wantH := len(layout[0])*gridBlock, len(layout)*gridBlock
				assert.Equal(t, Header{Format: FormatJPEG, Width: wantW, Height: wantH, Orientation: int(o)}, h)
				require.Equal(t, image.Rect(0, 0, wantW, wantH), img.Rect)
				for row, colours := range layout {
					for col, c := range colours {
						x, y := col*gridBlock+gridBlock/2, row*gridBlock+gridBlock/2
						assertNear(t, c, img.NRGBAAt(x, y), 24, "block at row %d column %d", row, col)
					}
				}
			})
		}
	}
}

func TestOrientRoundTrips(t *testing.T) {
	// An odd, non-square size catches off-by-one strides that a square hides.
	src := photoImage(7, 5)
	inverse := map[int]int{1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 8, 7: 7, 8: 6}
	for o, inv := range inverse {
		t.Run(fmt.Sprintf("orientation %d undone by %d restores every pixel", o, inv), func(t *testing.T) {
			got := orient(orient(src, o), inv)
			assert.Equal(t, src.Rect, got.Rect)
			assert.Equal(t, src.Pix, got.Pix)
		})
	}
	t.Run("orientation 6 moves the top-left pixel to the top-right", func(t *testing.T) {
		got := orient(src, 6)
		assert.Equal(t, src.NRGBAAt(0, 0), got.NRGBAAt(4, 0))
		assert.Equal(t, src.NRGBAAt(6, 4), got.NRGBAAt(0, 6))
	})
}

func TestDecodeRejectsBadInput(t *testing.T) {
	photo := encodeJPEG(t, photoImage(256, 256))
	png := encodePNG(t, photoImage(64, 64))
	webp := losslessWebP(64, 64, func(x, y int) bool { return (x^y)&1 == 1 })
	tests := []struct {
		name    string
		data    []byte
		wantErr error
		wantMsg string
	}{
		{name: "random bytes are not an image", data: randomBytes(4096), wantErr: ErrNotImage,
			wantMsg: "the file is not an image we recognise: send a JPEG, PNG or WebP image"},
		{name: "a JPEG cut in half is damaged", data: photo[:len(photo)/2], wantErr: ErrCorrupt,
			wantMsg: "the JPEG file is damaged or incomplete ("},
		{name: "a JPEG cut just after its header is damaged", data: photo[:700], wantErr: ErrCorrupt},
		{name: "a PNG cut in half is damaged", data: png[:len(png)/2], wantErr: ErrCorrupt, wantMsg: "the PNG file is damaged"},
		{name: "a lossless WebP cut in half is damaged", data: webp[:len(webp)/2], wantErr: ErrCorrupt, wantMsg: "the WebP file is damaged"},
		{name: "a 0-byte file is empty", data: nil, wantErr: ErrEmpty,
			wantMsg: "the file is empty (0 bytes): choose an image file and upload it again"},
		{name: "a PNG whose header claims 100000x100000 is too large", data: pngHeaderOnly(100_000, 100_000), wantErr: ErrTooLarge},
		{name: "a GIF renamed to .jpg is unsupported", data: encodeGIF(t), wantErr: ErrUnsupportedFormat,
			wantMsg: "GIF images are not supported: send JPEG, PNG or WebP"},
		{name: "a PDF is unsupported", data: []byte("%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\n%%EOF\n"), wantErr: ErrUnsupportedFormat,
			wantMsg: "PDF documents are not supported: send JPEG, PNG or WebP"},
		{name: "a BMP is unsupported", data: bmpBytes(), wantErr: ErrUnsupportedFormat, wantMsg: "BMP images are not supported"},
		{name: "a JPEG with its scan data zeroed is damaged", data: zeroTail(photo, 700), wantErr: ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img, h, err := Decode(tt.data, Limits{})
			require.ErrorIs(t, err, tt.wantErr)
			assert.Nil(t, img)
			assert.Equal(t, Header{}, h)
			assert.Contains(t, err.Error(), tt.wantMsg)
			assertTellsWhatToDo(t, err)
		})
	}
}

func TestDecodeKeepsTheDecoderCause(t *testing.T) {
	photo := encodeJPEG(t, photoImage(64, 64))
	_, _, err := Decode(photo[:len(photo)/2], Limits{})
	require.ErrorIs(t, err, ErrCorrupt)
	var cause interface{ Unwrap() []error }
	require.ErrorAs(t, err, &cause)
	assert.Len(t, cause.Unwrap(), 2, "the sentinel and the codec's own error, for logs")
}

// zeroTail keeps the first n bytes of a file and zeroes the rest, leaving a
// valid header in front of garbage.
func zeroTail(b []byte, n int) []byte {
	out := make([]byte, len(b))
	copy(out, b[:n])
	return out
}

func assertNear(t *testing.T, want, got color.NRGBA, tol uint8, msgAndArgs ...any) {
	t.Helper()
	diff := func(a, b uint8) uint8 { return max(a, b) - min(a, b) }
	if diff(want.R, got.R) > tol || diff(want.G, got.G) > tol || diff(want.B, got.B) > tol || diff(want.A, got.A) > tol {
		assert.Fail(t, fmt.Sprintf("colour %v is not within %d of %v", got, tol, want), msgAndArgs...)
	}
}

func TestDecodeIsSafeForConcurrentUse(t *testing.T) {
	data := spliceAfterSOI(encodeJPEG(t, photoImage(64, 48)), exifAPP1(orientationTIFF(binary.BigEndian, 8)))
	want, _, err := Decode(data, Limits{})
	require.NoError(t, err)
	t.Run("parallel decodes agree", func(t *testing.T) {
		for i := range 4 {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				t.Parallel()
				got, _, err := Decode(data, Limits{})
				require.NoError(t, err)
				assert.Equal(t, want.Pix, got.Pix)
			})
		}
	})
}
