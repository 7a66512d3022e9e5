package imageio

import (
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestTIFFOrientation(t *testing.T) {
	le, be := binary.LittleEndian, binary.BigEndian
	orientation := func(typ uint16, count, v uint32) ifdEntry {
		return ifdEntry{tag: 0x0112, typ: typ, count: count, value: v}
	}
	// broken returns a valid orientation-6 TIFF after damage.
	broken := func(damage func(b []byte) []byte) []byte {
		return damage(buildTIFF(le, orientation(3, 1, 6)))
	}
	tests := []struct {
		name   string
		tiff   []byte
		want   int
		wantOK bool
	}{
		{name: "little-endian SHORT is read", tiff: buildTIFF(le, orientation(3, 1, 6)), want: 6, wantOK: true},
		{name: "big-endian SHORT is read", tiff: buildTIFF(be, orientation(3, 1, 8)), want: 8, wantOK: true},
		{name: "the tag is found after other entries", tiff: orientationTIFF(be, 3), want: 3, wantOK: true},
		{name: "a LONG written by a broken encoder is tolerated", tiff: buildTIFF(le, orientation(4, 1, 5)), want: 5, wantOK: true},
		{name: "zero is out of range", tiff: buildTIFF(le, orientation(3, 1, 0))},
		{name: "nine is out of range", tiff: buildTIFF(be, orientation(3, 1, 9))},
		{name: "a count other than one is malformed", tiff: buildTIFF(le, orientation(3, 2, 6))},
		{name: "an ASCII type is malformed", tiff: buildTIFF(le, orientation(2, 1, 6))},
		{name: "a missing tag is reported as absent", tiff: buildTIFF(le, ifdEntry{tag: 0x010F, typ: 2, count: 1})},
		{name: "an unknown byte order is malformed", tiff: broken(func(b []byte) []byte { copy(b, "XX"); return b })},
		{name: "a wrong magic number is malformed", tiff: broken(func(b []byte) []byte { b[2] = 43; return b })},
		{name: "an IFD offset past the end is malformed", tiff: broken(func(b []byte) []byte { le.PutUint32(b[4:], 0xFFFFFFF0); return b })},
		{name: "an IFD offset inside the header is malformed", tiff: broken(func(b []byte) []byte { le.PutUint32(b[4:], 2); return b })},
		{name: "an entry count larger than the data stops at the end", tiff: broken(func(b []byte) []byte { le.PutUint16(b[8:], 0xFFFF); return b[:len(b)-6] })},
		{name: "a truncated header is malformed", tiff: []byte("II*\x00")},
		{name: "nothing is malformed", tiff: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := tiffOrientation(tt.tiff)
			assert.Equal(t, tt.wantOK, ok)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestJPEGOrientation(t *testing.T) {
	jpg := encodeJPEG(t, gridImage())
	exif6 := exifAPP1(orientationTIFF(binary.BigEndian, 6))
	jfif := segment(0xE0, []byte("JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"))
	xmp := segment(0xE1, []byte("http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta/>"))
	tests := []struct {
		name string
		data []byte
		want int
	}{
		{name: "a JPEG without EXIF is upright", data: jpg, want: 1},
		{name: "EXIF right after SOI is read", data: spliceAfterSOI(jpg, exif6), want: 6},
		{name: "EXIF after a JFIF APP0 is read", data: spliceAfterSOI(jpg, jfif, exif6), want: 6},
		{name: "EXIF after an XMP APP1 is read", data: spliceAfterSOI(jpg, xmp, exif6), want: 6},
		{name: "fill bytes before a marker are skipped", data: spliceAfterSOI(jpg, []byte{0xFF, 0xFF}, exif6), want: 6},
		{name: "only the first EXIF segment counts", data: spliceAfterSOI(jpg, exifAPP1(orientationTIFF(binary.LittleEndian, 3)), exif6), want: 3},
		{name: "a malformed first EXIF segment means upright", data: spliceAfterSOI(jpg, exifAPP1([]byte("garbage!")), exif6), want: 1},
		{name: "a segment length past the end means upright", data: append([]byte{0xFF, 0xD8}, exif6[:len(exif6)-4]...), want: 1},
		{name: "a segment length below two means upright", data: []byte{0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x01}, want: 1},
		{name: "lost marker sync means upright", data: append([]byte{0xFF, 0xD8, 0x00}, exif6...), want: 1},
		{name: "a file that is not a JPEG is upright", data: []byte("\x89PNG"), want: 1},
		{name: "just SOI is upright", data: []byte{0xFF, 0xD8}, want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, jpegOrientation(tt.data))
		})
	}
}

func TestJPEGOrientationIgnoresSegmentsAfterTheScan(t *testing.T) {
	jpg := encodeJPEG(t, gridImage())
	// Insert an EXIF segment just before EOI, i.e. after the entropy-coded data.
	late := append(append(append([]byte(nil), jpg[:len(jpg)-2]...), exifAPP1(orientationTIFF(binary.BigEndian, 6))...), 0xFF, 0xD9)
	assert.Equal(t, 1, jpegOrientation(late))
}
