package imageio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/klauspost/compress/zlib"
	"golang.org/x/image/webp"

	"github.com/creativeai-studio/studio/internal/colour"
)

// Embedded ICC colour profiles: where each format keeps one.
//
//   - JPEG: APP2 segments that start "ICC_PROFILE\0", then a 1-based
//     sequence number and the chunk count; a profile over 64 KB spans
//     several segments, reassembled in sequence order (ICC.1 annex B.4).
//   - PNG: one iCCP chunk before IDAT: a name, a NUL, compression method 0
//     and the zlib-compressed profile (PNG specification 11.3.3.3).
//   - WebP: an ICCP chunk after VP8X, whose flags have the ICC bit set
//     (RIFF container specification, "Extended file format").

var iccJPEGHeader = []byte("ICC_PROFILE\x00")

// maxJPEGChunk is the profile data one APP2 segment holds: 65535 less the
// length field, the identifier and the two sequence bytes.
const maxJPEGChunk = 65535 - 2 - 14

// webpICCFlag is the ICC bit of the VP8X flags byte; webpAlphaFlag the alpha bit.
const (
	webpICCFlag   = 1 << 5
	webpAlphaFlag = 1 << 4
)

// errNoProfile is how the readers say the file has no embedded profile.
var errNoProfile = errors.New("no embedded profile")

// readProfile returns the embedded ICC profile of data, errNoProfile when
// there is none, or an input error for a damaged or oversized one.
func readProfile(f Format, data []byte, max int64) ([]byte, error) {
	var icc []byte
	var err error
	switch f {
	case FormatJPEG:
		icc, err = jpegProfile(data, max)
	case FormatPNG:
		icc, err = pngProfile(data, max)
	case FormatWebP:
		icc, err = webpProfile(data)
	default:
		return nil, errNoProfile
	}
	if err != nil {
		return nil, err
	}
	if int64(len(icc)) > max {
		return nil, profileTooLarge(int64(len(icc)), max)
	}
	return icc, nil
}

func profileTooLarge(n, max int64) error {
	return newError(ErrTooLarge,
		"the embedded colour profile is %s, larger than the %s limit for profiles: re-export the image with a standard profile (sRGB, Display P3, Adobe RGB) and upload it again",
		humanBytes(n), humanBytes(max))
}

func badProfile(f Format, why string) error {
	return &inputError{
		kind:  ErrCorrupt,
		msg:   fmt.Sprintf("the embedded colour profile of the %s file is damaged (%s): re-export the image with its colour profile, or converted to sRGB, and upload it again", f.name(), why),
		cause: errors.New(why),
	}
}

// jpegSegments calls fn with the marker and payload of every marker segment
// before the first scan; fn returns false to stop.
func jpegSegments(data []byte, fn func(marker byte, seg []byte) bool) {
	i := 2
	for i+2 <= len(data) {
		if data[i] != 0xFF {
			return
		}
		marker := data[i+1]
		if marker == 0xFF {
			i++
			continue
		}
		i += 2
		switch {
		case marker == 0x01 || marker == 0xD8 || (marker >= 0xD0 && marker <= 0xD7):
			continue
		case marker == 0xDA || marker == 0xD9:
			return
		}
		if i+2 > len(data) {
			return
		}
		n := int(binary.BigEndian.Uint16(data[i:]))
		if n < 2 || n > len(data)-i {
			return
		}
		if !fn(marker, data[i+2:i+n]) {
			return
		}
		i += n
	}
}

func jpegProfile(data []byte, max int64) ([]byte, error) {
	var chunks [][]byte // by sequence number - 1
	count := 0
	var err error
	total := int64(0)
	jpegSegments(data, func(marker byte, seg []byte) bool {
		if marker != 0xE2 || !bytes.HasPrefix(seg, iccJPEGHeader) {
			return true
		}
		seg = seg[len(iccJPEGHeader):]
		if len(seg) < 2 {
			err = badProfile(FormatJPEG, "an ICC_PROFILE segment is truncated")
			return false
		}
		seq, n := int(seg[0]), int(seg[1])
		switch {
		case n == 0 || seq == 0 || seq > n:
			err = badProfile(FormatJPEG, fmt.Sprintf("ICC_PROFILE segment %d of %d", seq, n))
		case count != 0 && n != count:
			err = badProfile(FormatJPEG, fmt.Sprintf("ICC_PROFILE segments disagree on their count (%d and %d)", count, n))
		case count != 0 && chunks[seq-1] != nil:
			err = badProfile(FormatJPEG, fmt.Sprintf("ICC_PROFILE segment %d appears twice", seq))
		}
		if err != nil {
			return false
		}
		if count == 0 {
			count = n
			chunks = make([][]byte, n)
		}
		chunks[seq-1] = seg[2:]
		if total += int64(len(seg) - 2); total > max {
			err = profileTooLarge(total, max)
			return false
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	if count == 0 {
		return nil, errNoProfile
	}
	icc := make([]byte, 0, total)
	for i, c := range chunks {
		if c == nil {
			return nil, badProfile(FormatJPEG, fmt.Sprintf("ICC_PROFILE segment %d of %d is missing", i+1, count))
		}
		icc = append(icc, c...)
	}
	return icc, nil
}

// pngChunks calls fn with the type and payload of every chunk up to IDAT;
// fn returns false to stop.
func pngChunks(data []byte, fn func(typ string, payload []byte) bool) {
	i := len(pngSignature)
	for i+8 <= len(data) {
		n := int64(binary.BigEndian.Uint32(data[i:]))
		typ := string(data[i+4 : i+8])
		if typ == "IDAT" || n > int64(len(data)-i-12) {
			return
		}
		if !fn(typ, data[i+8:i+8+int(n)]) {
			return
		}
		i += 12 + int(n)
	}
}

func pngProfile(data []byte, max int64) ([]byte, error) {
	var icc []byte
	err := errNoProfile
	pngChunks(data, func(typ string, p []byte) bool {
		if typ != "iCCP" {
			return true
		}
		nul := bytes.IndexByte(p, 0)
		if nul < 1 || nul > 79 || nul+2 > len(p) || p[nul+1] != 0 {
			err = badProfile(FormatPNG, "the iCCP chunk has no valid name or compression method")
			return false
		}
		zr, zerr := zlib.NewReader(bytes.NewReader(p[nul+2:]))
		if zerr != nil {
			err = badProfile(FormatPNG, "the iCCP data is not zlib: "+zerr.Error())
			return false
		}
		defer zr.Close()
		// Read one byte past the limit to tell "at the limit" from "over".
		icc, zerr = io.ReadAll(io.LimitReader(zr, max+1))
		switch {
		case int64(len(icc)) > max:
			err = newError(ErrTooLarge,
				"the embedded colour profile is larger than the %s limit for profiles: re-export the image with a standard profile (sRGB, Display P3, Adobe RGB) and upload it again",
				humanBytes(max))
		case zerr != nil:
			err = badProfile(FormatPNG, "the iCCP data does not decompress: "+zerr.Error())
		default:
			err = nil
		}
		return false
	})
	return icc, err
}

// webpChunks calls fn with the FourCC and payload of every chunk of a RIFF
// WebP file; fn returns false to stop.
func webpChunks(data []byte, fn func(fourcc string, payload []byte) bool) {
	i := 12
	for i+8 <= len(data) {
		n := int64(binary.LittleEndian.Uint32(data[i+4:]))
		if n > int64(len(data)-i-8) {
			return
		}
		if !fn(string(data[i:i+4]), data[i+8:i+8+int(n)]) {
			return
		}
		i += 8 + int(n) + int(n&1)
	}
}

func webpProfile(data []byte) ([]byte, error) {
	var icc []byte
	err := errNoProfile
	first := true
	webpChunks(data, func(fourcc string, p []byte) bool {
		if first {
			first = false
			// Only the extended format (VP8X, with the ICC flag) has metadata.
			return fourcc == "VP8X" && len(p) >= 1 && p[0]&webpICCFlag != 0
		}
		if fourcc == "ICCP" {
			icc, err = bytes.Clone(p), nil // the profile outlives the file's bytes
			return false
		}
		return true
	})
	return icc, err
}

// EmbedProfile returns a copy of the encoded image data with icc as its
// embedded colour profile, replacing any profile (and, in PNG, any sRGB,
// gAMA or cHRM chunk, which the profile supersedes) it had: APP2 segments
// after the JFIF/EXIF ones in JPEG, an iCCP chunk after IHDR in PNG, an
// ICCP chunk after VP8X in WebP (a simple-format WebP becomes an extended
// one). The pixels are not touched: the caller converts them first.
func EmbedProfile(f Format, data, icc []byte) ([]byte, error) {
	if len(icc) == 0 {
		return nil, fmt.Errorf("imageio: embed profile: the profile is empty")
	}
	switch f {
	case FormatJPEG:
		return embedJPEG(data, icc)
	case FormatPNG:
		return embedPNG(data, icc, "ICC profile")
	case FormatWebP:
		return embedWebP(data, icc)
	}
	return nil, fmt.Errorf("imageio: embed profile: format %q has no profile container", f)
}

func embedJPEG(data, icc []byte) ([]byte, error) {
	if len(data) < 4 || data[0] != 0xFF || data[1] != 0xD8 {
		return nil, fmt.Errorf("imageio: embed profile: not a JPEG file")
	}
	n := (len(icc) + maxJPEGChunk - 1) / maxJPEGChunk
	if n > 255 {
		return nil, fmt.Errorf("imageio: embed profile: a %s profile does not fit in 255 JPEG segments", humanBytes(int64(len(icc))))
	}
	// Insert after SOI and the APP0/APP1 segments that readers expect first;
	// drop existing ICC_PROFILE segments.
	out := append(make([]byte, 0, len(data)+len(icc)+18*n), data[:2]...)
	i := 2
	inserted := false
	insert := func() {
		for k := range n {
			c := icc[k*maxJPEGChunk : min(len(icc), (k+1)*maxJPEGChunk)]
			out = append(out, 0xFF, 0xE2)
			out = binary.BigEndian.AppendUint16(out, uint16(2+len(iccJPEGHeader)+2+len(c)))
			out = append(out, iccJPEGHeader...)
			out = append(out, byte(k+1), byte(n))
			out = append(out, c...)
		}
		inserted = true
	}
	for i+4 <= len(data) && data[i] == 0xFF {
		marker := data[i+1]
		if marker == 0xDA || marker == 0xD9 || (marker >= 0xD0 && marker <= 0xD7) || marker == 0x01 {
			break
		}
		l := int(binary.BigEndian.Uint16(data[i+2:]))
		if l < 2 || i+2+l > len(data) {
			return nil, fmt.Errorf("imageio: embed profile: JPEG segment at %d is damaged", i)
		}
		seg := data[i : i+2+l]
		if !inserted && marker != 0xE0 && marker != 0xE1 {
			insert()
		}
		if marker != 0xE2 || !bytes.HasPrefix(seg[4:], iccJPEGHeader) {
			out = append(out, seg...)
		}
		i += 2 + l
	}
	if !inserted {
		insert()
	}
	return append(out, data[i:]...), nil
}

// pngChunk appends one chunk to b.
func appendPNGChunk(b []byte, typ string, payload []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(payload)))
	start := len(b)
	b = append(b, typ...)
	b = append(b, payload...)
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b[start:]))
}

// iccpChunk returns a complete iCCP chunk for icc named name.
func iccpChunk(name string, icc []byte) []byte {
	var z bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&z, zlib.BestCompression) // the level is valid
	zw.Write(icc)
	zw.Close()
	payload := append([]byte(pngProfileName(name)), 0, 0)
	return appendPNGChunk(nil, "iCCP", append(payload, z.Bytes()...))
}

// pngProfileName makes a profile description a valid iCCP keyword: 1-79
// printable Latin-1 characters, no leading, trailing or double spaces.
func pngProfileName(desc string) string {
	var b []byte
	for _, r := range desc {
		if r < 0x20 || (r > 0x7e && r < 0xa1) || r > 0xff || (r == ' ' && (len(b) == 0 || b[len(b)-1] == ' ')) {
			continue
		}
		b = append(b, byte(r))
		if len(b) == 79 {
			break
		}
	}
	b = bytes.TrimRight(b, " ")
	if len(b) == 0 {
		return "ICC profile"
	}
	return string(b)
}

func embedPNG(data, icc []byte, name string) ([]byte, error) {
	if !bytes.HasPrefix(data, []byte(pngSignature)) || len(data) < len(pngSignature)+25 || string(data[12:16]) != "IHDR" {
		return nil, fmt.Errorf("imageio: embed profile: not a PNG file")
	}
	ihdrEnd := len(pngSignature) + 25
	out := append(make([]byte, 0, len(data)+len(icc)+64), data[:ihdrEnd]...)
	out = append(out, iccpChunk(name, icc)...)
	i := ihdrEnd
	for i+12 <= len(data) {
		n := int(binary.BigEndian.Uint32(data[i:]))
		if n < 0 || i+12+n > len(data) {
			return nil, fmt.Errorf("imageio: embed profile: PNG chunk at %d is damaged", i)
		}
		switch string(data[i+4 : i+8]) {
		case "iCCP", "sRGB", "gAMA", "cHRM":
		default:
			out = append(out, data[i:i+12+n]...)
		}
		i += 12 + n
	}
	return out, nil
}

func embedWebP(data, icc []byte) ([]byte, error) {
	if len(data) < 20 || string(data[:4]) != "RIFF" || string(data[8:12]) != "WEBP" {
		return nil, fmt.Errorf("imageio: embed profile: not a WebP file")
	}
	type chunk struct {
		fourcc  string
		payload []byte
	}
	var chunks []chunk
	webpChunks(data, func(fourcc string, p []byte) bool {
		chunks = append(chunks, chunk{fourcc, p})
		return true
	})
	if len(chunks) == 0 {
		return nil, fmt.Errorf("imageio: embed profile: WebP file has no chunks")
	}
	var vp8x []byte
	rest := chunks
	if chunks[0].fourcc == "VP8X" && len(chunks[0].payload) == 10 {
		vp8x = bytes.Clone(chunks[0].payload)
		rest = chunks[1:]
	} else {
		cfg, err := webp.DecodeConfig(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("imageio: embed profile: %w", err)
		}
		vp8x = make([]byte, 10)
		w, h := cfg.Width-1, cfg.Height-1
		vp8x[4], vp8x[5], vp8x[6] = byte(w), byte(w>>8), byte(w>>16)
		vp8x[7], vp8x[8], vp8x[9] = byte(h), byte(h>>8), byte(h>>16)
		// A lossless image says in its header whether it uses alpha.
		if c := chunks[0]; c.fourcc == "VP8L" && len(c.payload) >= 5 && c.payload[4]&0x10 != 0 {
			vp8x[0] |= webpAlphaFlag
		}
	}
	vp8x[0] |= webpICCFlag
	body := []byte("WEBP")
	add := func(fourcc string, p []byte) {
		body = append(body, fourcc...)
		body = binary.LittleEndian.AppendUint32(body, uint32(len(p)))
		body = append(body, p...)
		if len(p)%2 == 1 {
			body = append(body, 0)
		}
	}
	add("VP8X", vp8x)
	add("ICCP", icc)
	for _, c := range rest {
		if c.fourcc != "ICCP" {
			add(c.fourcc, c.payload)
		}
	}
	out := binary.LittleEndian.AppendUint32([]byte("RIFF"), uint32(len(body)))
	return append(out, body...), nil
}

// parseProfile reads and checks the embedded profile of data for an image
// whose pixels are in space. It returns nil, nil when there is none.
func parseProfile(f Format, data []byte, space colour.Space, max int64) (*colour.Profile, error) {
	icc, err := readProfile(f, data, max)
	if errors.Is(err, errNoProfile) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	p, err := colour.Parse(icc)
	switch {
	case errors.Is(err, colour.ErrUnavailable):
		return nil, &inputError{kind: ErrUnsupportedFormat, cause: err,
			msg: "images with an embedded colour profile cannot be read by this server (it was built without colour management): convert the image to sRGB without a profile, or ask the operator for a build with cgo"}
	case errors.Is(err, colour.ErrUnsupported):
		return nil, &inputError{kind: ErrUnsupportedFormat, cause: err,
			msg: fmt.Sprintf("the %s file's embedded colour profile cannot be used (%v): convert the image to sRGB and upload it again", f.name(), err)}
	case err != nil:
		return nil, badProfile(f, err.Error())
	}
	// A grey profile cannot describe colour pixels, nor a CMYK one anything
	// but CMYK pixels. An RGB profile on grey pixels is fine: grey is R=G=B.
	if ps := p.Space(); ps != space && !(ps == colour.SpaceRGB && space == colour.SpaceGray) {
		return nil, badProfile(f, fmt.Sprintf("a %s profile (%s) on %s pixels", ps, p.Name(), space))
	}
	return p, nil
}
