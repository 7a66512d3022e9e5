package imageio

import (
	"bytes"
	"encoding/binary"
)

// Format is an accepted image format, named as Go's image package names it.
type Format string

// The formats the service accepts.
const (
	FormatJPEG Format = "jpeg"
	FormatPNG  Format = "png"
	FormatWebP Format = "webp"
)

// ContentType returns the MIME type to use in Content-Type headers, or
// application/octet-stream for an unknown Format.
func (f Format) ContentType() string {
	switch f {
	case FormatJPEG:
		return "image/jpeg"
	case FormatPNG:
		return "image/png"
	case FormatWebP:
		return "image/webp"
	}
	return "application/octet-stream"
}

// name is how people write the format in prose.
func (f Format) name() string {
	switch f {
	case FormatJPEG:
		return "JPEG"
	case FormatPNG:
		return "PNG"
	case FormatWebP:
		return "WebP"
	}
	return "image"
}

// sniffLen is how much of the head Sniff ever looks at; only SVG with a
// long XML prolog needs more than the first few dozen bytes.
const sniffLen = 512

// Sniff identifies the format from the first bytes of a file (the first 512
// are always enough); file names and declared content types are not trusted.
// It returns ErrEmpty, ErrUnsupportedFormat (naming the detected type) or
// ErrNotImage.
func Sniff(head []byte) (Format, error) {
	if len(head) == 0 {
		return "", newError(ErrEmpty, "the file is empty (0 bytes): choose an image file and upload it again")
	}
	if len(head) > sniffLen {
		head = head[:sniffLen]
	}
	switch {
	case bytes.HasPrefix(head, []byte{0xFF, 0xD8, 0xFF}):
		return FormatJPEG, nil
	case bytes.HasPrefix(head, []byte("\x89PNG\r\n\x1a\n")):
		return FormatPNG, nil
	case len(head) >= 12 && string(head[:4]) == "RIFF" && string(head[8:12]) == "WEBP":
		// The decoder skips ANIM/ANMF frames and then fails, so refuse
		// animations here with an honest message rather than "damaged".
		const animationBit = 1 << 1
		if len(head) >= 21 && string(head[12:16]) == "VP8X" && head[20]&animationBit != 0 {
			return "", unsupported("animated WebP images")
		}
		return FormatWebP, nil
	}
	if name := otherFormat(head); name != "" {
		return "", unsupported(name)
	}
	return "", newError(ErrNotImage, "the file is not an image we recognise: send a JPEG, PNG or WebP image")
}

// unsupported takes a plural noun phrase such as "GIF images".
func unsupported(what string) error {
	return newError(ErrUnsupportedFormat, "%s are not supported: send JPEG, PNG or WebP", what)
}

// otherFormat names, as a plural noun phrase, formats that people commonly
// upload by mistake, so the error can tell them what they sent; "" means not
// recognised.
func otherFormat(h []byte) string {
	has := func(prefix string) bool { return bytes.HasPrefix(h, []byte(prefix)) }
	switch {
	case has("GIF87a"), has("GIF89a"):
		return "GIF images"
	case has("%PDF-"):
		return "PDF documents"
	case has("II*\x00"), has("MM\x00*"), has("II+\x00"), has("MM\x00+"):
		return "TIFF images"
	case has("8BPS"):
		return "Photoshop (PSD) files"
	case has("\xFF\x0A"), has("\x00\x00\x00\x0CJXL \r\n\x87\n"):
		return "JPEG XL images"
	case has("\x00\x00\x00\x0CjP  \r\n\x87\n"), has("\xFF\x4F\xFF\x51"):
		return "JPEG 2000 images"
	case isBMP(h):
		return "BMP images"
	case isICO(h):
		return "ICO icons"
	}
	if name := isoBMFF(h); name != "" {
		return name
	}
	return markup(h)
}

// isBMP also checks the reserved header words because "BM" alone is too
// common a start for text files.
func isBMP(h []byte) bool {
	return len(h) >= 14 && h[0] == 'B' && h[1] == 'M' && binary.LittleEndian.Uint32(h[6:10]) == 0
}

func isICO(h []byte) bool {
	return len(h) >= 6 && bytes.HasPrefix(h, []byte{0, 0, 1, 0}) && binary.LittleEndian.Uint16(h[4:6]) != 0
}

// isoBMFF recognises HEIC/HEIF, AVIF and MP4/MOV by their ftyp box brands.
func isoBMFF(h []byte) string {
	if len(h) < 12 || string(h[4:8]) != "ftyp" {
		return ""
	}
	end := int(binary.BigEndian.Uint32(h[:4]))
	if end > len(h) || end < 12 {
		end = len(h)
	}
	// Major brand at 8, minor version at 12, compatible brands from 16.
	heif := false
	for i := 8; i+4 <= end; i += 4 {
		if i == 12 {
			continue
		}
		switch string(h[i : i+4]) {
		case "avif", "avis":
			return "AVIF images"
		case "heic", "heix", "hevc", "hevx", "heim", "heis", "hevm", "hevs", "mif1", "msf1":
			heif = true
		}
	}
	if heif {
		return "HEIC images"
	}
	return "MP4/MOV videos"
}

// markup recognises SVG and other XML, allowing a byte-order mark and
// leading whitespace as XML does.
func markup(h []byte) string {
	h = bytes.TrimPrefix(h, []byte("\xEF\xBB\xBF"))
	h = bytes.TrimLeft(h, " \t\r\n")
	switch {
	case bytes.HasPrefix(h, []byte("<svg")):
		return "SVG images"
	case bytes.HasPrefix(h, []byte("<?xml")), bytes.HasPrefix(h, []byte("<!DOCTYPE svg")):
		if bytes.Contains(h, []byte("<svg")) || bytes.HasPrefix(h, []byte("<!DOCTYPE svg")) {
			return "SVG images"
		}
		return "XML documents"
	}
	return ""
}
