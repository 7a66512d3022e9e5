package imageio

import (
	"encoding/binary"
	"errors"
	"image"
	"testing"
)

// fuzzLimits keep each fuzz iteration small; the property under test is that
// limits hold and nothing panics, not throughput.
var fuzzLimits = Limits{MaxBytes: 1 << 20, MaxPixels: 1 << 16, MaxSide: 1024}

// FuzzDecode checks that Decode never panics, classifies every failure with
// a sentinel, and on success returns exactly the upright size within limits.
// Seeds live in testdata/fuzz/FuzzDecode; generated ones are added here.
func FuzzDecode(f *testing.F) {
	jpg := encodeJPEG(f, photoImage(16, 8))
	f.Add(spliceAfterSOI(jpg, exifAPP1(orientationTIFF(binary.LittleEndian, 5))))
	f.Add(encodePNG(f, photoImage(3, 2)))
	f.Add(losslessWebP(5, 3, func(x, y int) bool { return x < y }))
	f.Add(vp8xWebP(4, 4, 0))
	f.Add(pngHeaderOnly(100_000, 100_000))

	sentinels := []error{ErrEmpty, ErrUnsupportedFormat, ErrNotImage, ErrTooLarge, ErrCorrupt}
	f.Fuzz(func(t *testing.T, data []byte) {
		img, h, err := Decode(data, fuzzLimits)
		if err != nil {
			if img != nil || h != (Header{}) {
				t.Fatalf("error %v came with a result", err)
			}
			for _, s := range sentinels {
				if errors.Is(err, s) {
					return
				}
			}
			t.Fatalf("error %q wraps no sentinel", err)
		}
		if img.Rect != image.Rect(0, 0, h.Width, h.Height) {
			t.Fatalf("image bounds %v, header says %dx%d", img.Rect, h.Width, h.Height)
		}
		if int64(h.Width)*int64(h.Height) > fuzzLimits.MaxPixels || max(h.Width, h.Height) > fuzzLimits.MaxSide {
			t.Fatalf("%dx%d passed limits %+v", h.Width, h.Height, fuzzLimits)
		}
		if h.Orientation < 1 || h.Orientation > 8 {
			t.Fatalf("orientation %d", h.Orientation)
		}
		if ih, err := Inspect(data, fuzzLimits); err != nil || ih != h {
			t.Fatalf("Inspect says %+v, %v; Decode said %+v", ih, err, h)
		}
	})
}

// FuzzOrientation feeds arbitrary bytes to the EXIF parser both as a bare
// TIFF structure and wrapped in a JPEG APP1 segment.
func FuzzOrientation(f *testing.F) {
	f.Add(orientationTIFF(binary.LittleEndian, 6))
	f.Add(orientationTIFF(binary.BigEndian, 8))
	f.Add(buildTIFF(binary.LittleEndian, ifdEntry{tag: 0x0112, typ: 4, count: 1, value: 3}))
	f.Add(spliceAfterSOI([]byte{0xFF, 0xD8, 0xFF, 0xD9}, exifAPP1(orientationTIFF(binary.BigEndian, 7))))

	f.Fuzz(func(t *testing.T, data []byte) {
		if o, ok := tiffOrientation(data); ok != (o >= 1 && o <= 8) {
			t.Fatalf("tiffOrientation = %d, %v", o, ok)
		}
		if len(data) > 0xFFFF-8 {
			data = data[:0xFFFF-8]
		}
		for _, jpg := range [][]byte{data, append([]byte{0xFF, 0xD8}, exifAPP1(data)...)} {
			if o := jpegOrientation(jpg); o < 1 || o > 8 {
				t.Fatalf("jpegOrientation = %d", o)
			}
		}
	})
}
