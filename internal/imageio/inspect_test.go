package imageio

import (
	"encoding/binary"
	"image"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestInspect(t *testing.T) {
	jpg := encodeJPEG(t, gridImage())
	small := Limits{MaxBytes: 1 << 20, MaxPixels: 10_000, MaxSide: 200}
	tests := []struct {
		name    string
		data    []byte
		lim     Limits
		want    Header
		wantErr error
		wantMsg string
	}{
		{name: "a JPEG reports its size and no rotation", data: jpg,
			want: Header{Format: FormatJPEG, Width: 48, Height: 32, Orientation: 1}},
		{name: "a JPEG rotated by EXIF reports its upright size", data: spliceAfterSOI(jpg, exifAPP1(orientationTIFF(binary.LittleEndian, 6))),
			want: Header{Format: FormatJPEG, Width: 32, Height: 48, Orientation: 6}},
		{name: "a JPEG flipped by EXIF keeps its size", data: spliceAfterSOI(jpg, exifAPP1(orientationTIFF(binary.BigEndian, 2))),
			want: Header{Format: FormatJPEG, Width: 48, Height: 32, Orientation: 2}},
		{name: "a PNG reports its size", data: encodePNG(t, image.NewNRGBA(image.Rect(0, 0, 7, 5))),
			want: Header{Format: FormatPNG, Width: 7, Height: 5, Orientation: 1}},
		{name: "a lossless WebP reports its size", data: losslessWebP(9, 4, func(x, y int) bool { return true }),
			want: Header{Format: FormatWebP, Width: 9, Height: 4, Orientation: 1}},
		{name: "zero limits mean the defaults", data: pngHeaderOnly(DefaultMaxSide, 3000),
			want: Header{Format: FormatPNG, Width: DefaultMaxSide, Height: 3000, Orientation: 1}},

		{name: "a PNG claiming 100000x100000 is too large", data: pngHeaderOnly(100_000, 100_000),
			wantErr: ErrTooLarge, wantMsg: "the image is 100000x100000 pixels; the limit is 12000 pixels on the longest side and 40.0 megapixels in total: resize it"},
		{name: "a PNG over the pixel budget but within the side limit is too large", data: pngHeaderOnly(8000, 8000),
			wantErr: ErrTooLarge, wantMsg: "40.0 megapixels"},
		{name: "one pixel past the side limit is too large", data: pngHeaderOnly(201, 1), lim: small, wantErr: ErrTooLarge},
		{name: "exactly at the limits is accepted", data: pngHeaderOnly(200, 50), lim: small,
			want: Header{Format: FormatPNG, Width: 200, Height: 50, Orientation: 1}},
		{name: "a lossless WebP claiming 16384x16384 is too large", data: losslessWebPHeader(16384, 16384), wantErr: ErrTooLarge},
		{name: "an extended WebP claiming 20000x20000 is too large", data: vp8xWebP(20000, 20000, 0), wantErr: ErrTooLarge},
		{name: "a file over the byte limit is too large", data: jpg, lim: Limits{MaxBytes: 100},
			wantErr: ErrTooLarge, wantMsg: "larger than the 100 bytes limit: compress"},

		{name: "a PNG cut inside its header is damaged", data: pngHeaderOnly(10, 10)[:20],
			wantErr: ErrCorrupt, wantMsg: "the PNG file is damaged or incomplete"},
		{name: "a PNG header with a bad checksum is damaged", data: func() []byte { b := pngHeaderOnly(10, 10); b[29] ^= 0xFF; return b }(),
			wantErr: ErrCorrupt, wantMsg: "damaged"},
		{name: "a PNG claiming zero width is damaged", data: pngHeaderOnly(0, 10), wantErr: ErrCorrupt},
		{name: "a JPEG with only its magic bytes is damaged", data: []byte{0xFF, 0xD8, 0xFF}, wantErr: ErrCorrupt,
			wantMsg: "the JPEG file is damaged or incomplete"},
		{name: "a WebP with no image chunk is damaged", data: riffWebP("EXIF", []byte("II*\x00")), wantErr: ErrCorrupt,
			wantMsg: "the WebP file is damaged"},
		{name: "a GIF is unsupported before its size is considered", data: encodeGIF(t), lim: Limits{MaxBytes: 1},
			wantErr: ErrUnsupportedFormat},
		{name: "an empty file is empty", data: []byte{}, wantErr: ErrEmpty},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Inspect(tt.data, tt.lim)
			if tt.wantErr == nil {
				require.NoError(t, err)
				assert.Equal(t, tt.want, got)
				return
			}
			require.ErrorIs(t, err, tt.wantErr)
			assert.Equal(t, Header{}, got)
			assert.Contains(t, err.Error(), tt.wantMsg)
			assertTellsWhatToDo(t, err)
		})
	}
}

// losslessWebPHeader is just the VP8L header, enough for DecodeConfig.
func losslessWebPHeader(w, h int) []byte {
	var bw bitWriter
	bw.write(0x2f, 8)
	bw.write(uint32(w-1), 14)
	bw.write(uint32(h-1), 14)
	bw.write(0, 4)
	return riffWebP("VP8L", bw.bytes())
}

func TestHugePNGIsRefusedWithoutAllocatingPixels(t *testing.T) {
	data := pngHeaderOnly(100_000, 100_000) // 40 GB as NRGBA
	for _, decode := range []struct {
		name string
		run  func() error
	}{
		{name: "Inspect", run: func() error { _, err := Inspect(data, Limits{}); return err }},
		{name: "Decode", run: func() error { _, _, err := Decode(data, Limits{}); return err }},
	} {
		t.Run(decode.name+" refuses it with well under 1 MB allocated", func(t *testing.T) {
			require.ErrorIs(t, decode.run(), ErrTooLarge)

			const runs = 50
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			for range runs {
				_ = decode.run()
			}
			runtime.ReadMemStats(&after)
			perRun := (after.TotalAlloc - before.TotalAlloc) / runs
			assert.Less(t, perRun, uint64(1<<20), "bytes allocated per call")
			t.Logf("%d bytes and %.0f allocations per call", perRun, testing.AllocsPerRun(runs, func() { _ = decode.run() }))
		})
	}
}
