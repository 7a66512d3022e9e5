package imageio

import (
	"bytes"
	"encoding/binary"
)

// Orientation values from the EXIF/TIFF specification (tag 0x0112). The
// number says how the stored pixels must be transformed to display upright.
const (
	orientNormal     = 1 // as stored
	orientFlipH      = 2 // mirror left-right
	orientRotate180  = 3
	orientFlipV      = 4 // mirror top-bottom
	orientTranspose  = 5 // mirror along the top-left to bottom-right diagonal
	orientRotate90   = 6 // rotate 90° clockwise
	orientTransverse = 7 // mirror along the top-right to bottom-left diagonal
	orientRotate270  = 8 // rotate 90° counter-clockwise
)

var exifHeader = []byte("Exif\x00\x00")

// jpegOrientation returns the EXIF orientation of a JPEG file, or 1 when
// there is none or the metadata is malformed: a broken tag must never make
// an otherwise good photo fail. It reads only marker segments before the
// first scan and never allocates.
func jpegOrientation(data []byte) int {
	if len(data) < 2 || data[0] != 0xFF || data[1] != 0xD8 {
		return orientNormal
	}
	i := 2
	for i+2 <= len(data) {
		if data[i] != 0xFF {
			return orientNormal // lost marker sync: give up rather than guess
		}
		marker := data[i+1]
		if marker == 0xFF { // fill byte before a marker
			i++
			continue
		}
		i += 2
		switch {
		case marker == 0x01 || marker == 0xD8 || (marker >= 0xD0 && marker <= 0xD7):
			continue // standalone markers have no length
		case marker == 0xDA || marker == 0xD9:
			return orientNormal // EXIF must precede the first scan
		}
		if i+2 > len(data) {
			return orientNormal
		}
		n := int(binary.BigEndian.Uint16(data[i:]))
		if n < 2 || n > len(data)-i {
			return orientNormal
		}
		seg := data[i+2 : i+n]
		i += n
		// Only the first Exif APP1 counts, as in libjpeg-based viewers; XMP
		// also lives in APP1, so keep looking past non-Exif ones.
		if marker == 0xE1 && bytes.HasPrefix(seg, exifHeader) {
			if o, ok := tiffOrientation(seg[len(exifHeader):]); ok {
				return o
			}
			return orientNormal
		}
	}
	return orientNormal
}

// tiffOrientation reads tag 0x0112 from IFD0 of a TIFF structure in either
// byte order. ok is false when the structure is malformed or the tag is
// missing or out of range.
func tiffOrientation(b []byte) (orientation int, ok bool) {
	if len(b) < 8 {
		return 0, false
	}
	var bo binary.ByteOrder
	switch string(b[:2]) {
	case "II":
		bo = binary.LittleEndian
	case "MM":
		bo = binary.BigEndian
	default:
		return 0, false
	}
	if bo.Uint16(b[2:]) != 42 {
		return 0, false
	}
	// uint64 arithmetic so that offsets near 4 GiB cannot wrap.
	size := uint64(len(b))
	off := uint64(bo.Uint32(b[4:]))
	if off < 8 || off+2 > size {
		return 0, false
	}
	count := uint64(bo.Uint16(b[off:]))
	const entrySize = 12
	for p := off + 2; count > 0 && p+entrySize <= size; p, count = p+entrySize, count-1 {
		e := b[p : p+entrySize]
		if bo.Uint16(e) != 0x0112 {
			continue
		}
		if bo.Uint32(e[4:]) != 1 {
			return 0, false
		}
		var v uint32
		switch bo.Uint16(e[2:]) {
		case 3: // SHORT, the type the specification requires
			v = uint32(bo.Uint16(e[8:]))
		case 4: // LONG, written by a few broken encoders
			v = bo.Uint32(e[8:])
		default:
			return 0, false
		}
		if v < orientNormal || v > orientRotate270 {
			return 0, false
		}
		return int(v), true
	}
	return 0, false
}

// swapsAxes reports whether the orientation exchanges width and height.
func swapsAxes(o int) bool { return o >= orientTranspose && o <= orientRotate270 }
