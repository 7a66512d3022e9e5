package imagetest

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"hash/crc32"
)

// Crafted PNG and WebP files for the decoding-work bounds (imageio.Limits MaxChunks,
// MaxMetadataBytes, MaxDecodedBytes): each is small on disk and, without the bound,
// costs a decoder far more than its size suggests.

// PNGChunk returns one PNG chunk: length, type, data and CRC.
func PNGChunk(typ string, data []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
	b = append(b, typ...)
	b = append(b, data...)
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b[4:]))
}

// PNG is a valid 8-bit grey w x h PNG (mid grey) whose IDAT data is split into
// idatChunks chunks (at least 1) and which carries extra ancillary private chunks
// ("prVt") of extraSize bytes each, before the IDATs. The zero counts give a plain PNG.
func PNG(w, h, idatChunks, extra, extraSize int) []byte {
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	row := make([]byte, 1+w)
	for i := 1; i < len(row); i++ {
		row[i] = 128
	}
	for range h {
		_, _ = zw.Write(row)
	}
	_ = zw.Close()
	b := []byte("\x89PNG\r\n\x1a\n")
	b = append(b, PNGChunk("IHDR", ihdr(w, h, 8, 0, false))...)
	payload := make([]byte, extraSize)
	for range extra {
		b = append(b, PNGChunk("prVt", payload)...)
	}
	data := z.Bytes()
	idatChunks = max(idatChunks, 1)
	for i := range idatChunks {
		lo, hi := len(data)*i/idatChunks, len(data)*(i+1)/idatChunks
		b = append(b, PNGChunk("IDAT", data[lo:hi])...)
	}
	return append(b, PNGChunk("IEND", nil)...)
}

// PNGHeader is a PNG whose IHDR declares w x h pixels of the given bit depth, colour
// type (0 grey, 2 RGB, 4 grey+alpha, 6 RGBA) and interlacing, followed by an IDAT of
// a few bytes: a header that costs nothing to send and, if trusted, the declared
// decoding work to read.
func PNGHeader(w, h int, depth, colorType byte, interlaced bool) []byte {
	b := []byte("\x89PNG\r\n\x1a\n")
	b = append(b, PNGChunk("IHDR", ihdr(w, h, depth, colorType, interlaced))...)
	b = append(b, PNGChunk("IDAT", []byte{0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01})...)
	return append(b, PNGChunk("IEND", nil)...)
}

// InflateBombPNG is an 8-bit grey w x h PNG whose IDAT stream inflates to inflated
// bytes of zeros, far more than the w x h image needs when inflated is large: a zlib
// bomb of about inflated/1000 bytes on disk.
func InflateBombPNG(w, h int, inflated int64) []byte {
	var z bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&z, zlib.BestCompression)
	zero := make([]byte, 1<<20)
	for n := inflated; n > 0; n -= int64(len(zero)) {
		_, _ = zw.Write(zero[:min(n, int64(len(zero)))])
	}
	_ = zw.Close()
	b := []byte("\x89PNG\r\n\x1a\n")
	b = append(b, PNGChunk("IHDR", ihdr(w, h, 8, 0, false))...)
	b = append(b, PNGChunk("IDAT", z.Bytes())...)
	return append(b, PNGChunk("IEND", nil)...)
}

func ihdr(w, h int, depth, colorType byte, interlaced bool) []byte {
	p := binary.BigEndian.AppendUint32(nil, uint32(w))
	p = binary.BigEndian.AppendUint32(p, uint32(h))
	il := byte(0)
	if interlaced {
		il = 1
	}
	return append(p, depth, colorType, 0, 0, il)
}

// WebPChunk returns one RIFF chunk of a WebP, padded to an even size.
func WebPChunk(fourcc string, payload []byte) []byte {
	b := binary.LittleEndian.AppendUint32([]byte(fourcc), uint32(len(payload)))
	b = append(b, payload...)
	if len(payload)%2 == 1 {
		b = append(b, 0)
	}
	return b
}

// WebP wraps chunks in a RIFF WEBP container.
func WebP(chunks ...[]byte) []byte {
	body := []byte("WEBP")
	for _, c := range chunks {
		body = append(body, c...)
	}
	b := binary.LittleEndian.AppendUint32([]byte("RIFF"), uint32(len(body)))
	return append(b, body...)
}

// VP8X is the extended-format header chunk declaring a w x h canvas with flags.
func VP8X(w, h int, flags byte) []byte {
	p := []byte{flags, 0, 0, 0}
	p = append(p, byte(w-1), byte((w-1)>>8), byte((w-1)>>16))
	p = append(p, byte(h-1), byte((h-1)>>8), byte((h-1)>>16))
	return WebPChunk("VP8X", p)
}

// VP8L is a valid lossless image chunk of w x h opaque green pixels.
func VP8L(w, h int) []byte {
	var bw bitWriter
	bw.write(0x2f, 8) // signature
	bw.write(uint32(w-1), 14)
	bw.write(uint32(h-1), 14)
	bw.write(0, 1)                // alpha hint
	bw.write(0, 3)                // version
	bw.write(0, 1)                // no transforms
	bw.write(0, 1)                // no colour cache
	bw.write(0, 1)                // no meta prefix codes
	oneSymbol := func(v uint32) { // simple prefix code with one 8-bit symbol: 0 bits a pixel
		bw.write(1, 1)
		bw.write(0, 1)
		bw.write(1, 1)
		bw.write(v, 8)
	}
	oneSymbol(255) // green
	oneSymbol(0)   // red
	oneSymbol(0)   // blue
	oneSymbol(255) // alpha
	oneSymbol(0)   // distance
	return WebPChunk("VP8L", bw.bytes())
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
