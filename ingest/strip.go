package ingest

import (
	"bytes"
	"encoding/binary"

	"github.com/creativeai-studio/studio/internal/imageio"
)

// stripMetadata returns the file without EXIF, XMP, IPTC, comments and other metadata,
// by dropping container segments, never by re-encoding: the pixels stay bit-exact and
// a JPEG is not recompressed. What the decoder needs stays: for JPEG the JFIF header,
// the ICC profile and Adobe's colour-transform marker; for PNG the critical and colour
// chunks; for WebP the image, alpha, animation and ICC chunks. A JPEG's EXIF orientation
// is the one tag kept: it is written back as a minimal EXIF segment, so the image is
// shown (and processed by preprocess) upright. PNG eXIf and WebP EXIF orientations are
// dropped with the rest, as the pipeline does not apply them either.
//
// Damage past the header is not repaired: the walk stops at the first malformed
// segment and keeps nothing after it, so damaged files still fail in preprocess with
// corrupt_image as before, and hidden trailing data never survives.
func stripMetadata(data []byte, h imageio.Header) []byte {
	switch h.Format {
	case imageio.FormatJPEG:
		return stripJPEG(data, h.Orientation)
	case imageio.FormatPNG:
		return stripPNG(data)
	case imageio.FormatWebP:
		return stripWebP(data)
	}
	return data
}

// --- JPEG ---

func stripJPEG(data []byte, orientation int) []byte {
	if len(data) < 2 || data[0] != 0xFF || data[1] != 0xD8 {
		return data
	}
	out := make([]byte, 0, len(data))
	out = append(out, 0xFF, 0xD8)
	orientationWritten := orientation <= 1
	writeOrientation := func() {
		if !orientationWritten {
			out = append(out, exifOrientationSegment(orientation)...)
			orientationWritten = true
		}
	}
	first := true
	i := 2
	for i < len(data) {
		// Between segments, bytes other than a marker are dropped, as decoders skip
		// them (libjpeg, image/jpeg); so are fill bytes and "FF 00".
		if data[i] != 0xFF {
			i++
			continue
		}
		j := i + 1
		for j < len(data) && data[j] == 0xFF {
			j++
		}
		if j >= len(data) {
			break
		}
		marker := data[j]
		switch {
		case marker == 0x00:
			i = j + 1
			continue
		case marker == 0xD9: // EOI: whatever follows is not part of the image
			writeOrientation()
			return append(out, 0xFF, 0xD9)
		case marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7):
			out = append(out, 0xFF, marker)
			i = j + 1
			continue
		}
		if j+3 > len(data) {
			break
		}
		n := int(binary.BigEndian.Uint16(data[j+1:]))
		if n < 2 {
			break
		}
		if j+1+n > len(data) {
			// A truncated segment ends the file. Decoders read what they can of it
			// (a scan header is enough for a size check), so a segment that is not
			// metadata is kept as it is; metadata is dropped.
			if keepJPEGSegment(marker, data[min(j+3, len(data)):]) {
				writeOrientation()
				out = append(append(out, 0xFF, marker), data[j+1:]...)
			}
			break
		}
		body := data[j+3 : j+1+n]
		keep := keepJPEGSegment(marker, body)
		switch {
		case !keep:
		case marker == 0xE0 && first:
			// JFIF comes first; the orientation segment follows it.
			out = append(append(out, 0xFF, marker), data[j+1:j+1+n]...)
			writeOrientation()
		default:
			writeOrientation()
			out = append(append(out, 0xFF, marker), data[j+1:j+1+n]...)
		}
		first = false
		i = j + 1 + n
		if marker == 0xDA {
			// Entropy-coded data runs to the next marker other than a stuffed
			// "FF 00" or a restart marker; it is copied as it is.
			k := i
			for k < len(data) {
				if data[k] == 0xFF && k+1 < len(data) {
					if m := data[k+1]; m != 0x00 && (m < 0xD0 || m > 0xD7) && m != 0xFF {
						break
					}
					if data[k+1] == 0xFF {
						k++
						continue
					}
					k += 2
					continue
				}
				k++
			}
			out = append(out, data[i:k]...)
			i = k
		}
	}
	writeOrientation()
	return out
}

// keepJPEGSegment keeps everything the decoder reads (tables, frame headers, restart
// intervals), JFIF, the ICC profile and Adobe's APP14; it drops APP1 (EXIF, XMP),
// APP13 (IPTC), comments and every other application segment.
func keepJPEGSegment(marker byte, body []byte) bool {
	switch {
	case marker == 0xFE: // COM
		return false
	case marker == 0xE0:
		return bytes.HasPrefix(body, []byte("JFIF\x00")) || bytes.HasPrefix(body, []byte("JFXX\x00"))
	case marker == 0xE2:
		return bytes.HasPrefix(body, []byte("ICC_PROFILE\x00"))
	case marker == 0xEE: // Adobe: says whether the data is YCbCr or RGB/CMYK
		return true
	case marker >= 0xE1 && marker <= 0xEF:
		return false
	}
	return true
}

// exifOrientationSegment is an APP1 EXIF segment holding only tag 0x0112.
func exifOrientationSegment(o int) []byte {
	tiff := []byte{
		'M', 'M', 0, 42, 0, 0, 0, 8, // big-endian TIFF header, IFD0 at offset 8
		0, 1, // one entry
		0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, byte(o), 0, 0, // Orientation, SHORT, count 1, value
		0, 0, 0, 0, // no next IFD
	}
	body := append([]byte("Exif\x00\x00"), tiff...)
	seg := []byte{0xFF, 0xE1, 0, 0}
	binary.BigEndian.PutUint16(seg[2:], uint16(len(body)+2))
	return append(seg, body...)
}

// --- PNG ---

var pngSignature = []byte("\x89PNG\r\n\x1a\n")

// pngKeep lists the ancillary chunks that affect how pixels look or are decoded.
var pngKeep = map[string]bool{
	"tRNS": true, "cHRM": true, "gAMA": true, "iCCP": true, "sBIT": true, "sRGB": true,
	"cICP": true, "mDCV": true, "cLLI": true, "bKGD": true, "pHYs": true, "hIST": true, "sPLT": true,
	"acTL": true, "fcTL": true, "fdAT": true,
}

func stripPNG(data []byte) []byte {
	if !bytes.HasPrefix(data, pngSignature) {
		return data
	}
	// out stays nil while every chunk is kept: the result is then data[:i], no copy.
	var out []byte
	i := len(pngSignature)
	for i+12 <= len(data) {
		n := int(binary.BigEndian.Uint32(data[i:]))
		if n < 0 || n > len(data)-i-12 {
			break
		}
		typ := string(data[i+4 : i+8])
		chunk := data[i : i+12+n]
		critical := typ[0] >= 'A' && typ[0] <= 'Z'
		switch keep := critical || pngKeep[typ]; {
		case !keep && out == nil:
			out = append(make([]byte, 0, len(data)), data[:i]...)
		case keep && out != nil:
			out = append(out, chunk...)
		}
		i += 12 + n
		if typ == "IEND" {
			break // whatever follows is not part of the image
		}
	}
	if out == nil {
		return data[:i]
	}
	return out
}

// --- WebP ---

// webpKeep lists the RIFF chunks of the image itself.
var webpKeep = map[string]bool{"VP8 ": true, "VP8L": true, "VP8X": true, "ALPH": true, "ANIM": true, "ANMF": true, "ICCP": true}

func stripWebP(data []byte) []byte {
	if len(data) < 12 || string(data[:4]) != "RIFF" || string(data[8:12]) != "WEBP" {
		return data
	}
	end := len(data)
	if riff := int(binary.LittleEndian.Uint32(data[4:])); riff >= 4 && 8+riff < end {
		end = 8 + riff // trailing bytes after the RIFF container are dropped
	}
	body := make([]byte, 0, end)
	body = append(body, "WEBP"...)
	vp8x := -1
	var declared uint32
walk:
	for i := 12; i+8 <= end; {
		n := int(binary.LittleEndian.Uint32(data[i+4:]))
		padded := n + n&1
		rest := end - i - 8
		var chunk []byte
		switch {
		case padded <= rest:
			chunk = data[i : i+8+padded]
		case n == rest: // the last chunk lacks its pad byte; add it
			chunk = append(append([]byte(nil), data[i:i+8+n]...), 0)
		default:
			// A truncated chunk ends the file: decoders read what they can of it,
			// so image chunks are kept as they are, and the container keeps its
			// declared size; other chunks are dropped.
			if webpKeep[string(data[i:i+4])] {
				body = append(body, data[i:end]...)
				declared = binary.LittleEndian.Uint32(data[4:])
			}
			break walk
		}
		if typ := string(data[i : i+4]); webpKeep[typ] {
			if typ == "VP8X" && n >= 1 {
				vp8x = len(body) + 8
			}
			body = append(body, chunk...)
		}
		i += 8 + padded
	}
	if vp8x >= 0 {
		body[vp8x] &^= 0x08 | 0x04 // EXIF and XMP flags
	}
	if declared == 0 {
		declared = uint32(len(body))
	}
	out := make([]byte, 0, 8+len(body))
	out = append(out, "RIFF"...)
	out = binary.LittleEndian.AppendUint32(out, declared)
	return append(out, body...)
}
