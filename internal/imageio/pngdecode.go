package imageio

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"io"
	"sync"

	"github.com/klauspost/compress/zlib"
)

// This file decodes the PNGs most uploads are, 8-bit grey, grey+alpha, RGB and RGBA
// without interlacing, straight into the *image.NRGBA that Decode returns: it inflates
// with klauspost/compress (faster than compress/zlib, which image/png is bound to) and
// unfilters each row in place, in the destination's own row for RGBA. image/png would
// decode RGB into an *image.RGBA and grey into an *image.Gray that toNRGBA then copies.
//
// The pixels are image/png's, byte for byte (TestDecodePNGFastIsImagePNG). So is every
// decision to accept a file: the fast path takes only files whose every chunk CRC, zlib
// checksum and length it has verified, laid out as it expects (IHDR first; one run of
// IDAT chunks holding exactly the zlib stream of the declared scanlines; no PLTE or
// tRNS; IEND), and hands anything else, damaged files included, to image/png, whose
// verdict and error message then stand. The decoding-work bounds are Inspect's and
// checkPNGData's, applied before either decoder runs, and the inflate stops after the
// declared scanlines plus one byte, as image/png does.

// errPNGFallback says the fast path does not take this file: image/png decodes it.
var errPNGFallback = errors.New("not a PNG the fast path decodes")

// pngRowsPerCtxCheck is how many rows the fast path decodes between two checks of ctx:
// at most 64 KiB of scanlines at the widest image, a fraction of a millisecond.
const pngRowsPerCtxCheck = 16

// pngFastState is one fast decode's reusable state: the zlib reader (its inflate state
// and window are tens of KB), the IDAT concatenation and the row buffers.
type pngFastState struct {
	zr        io.ReadCloser
	br        bytes.Reader
	idat      []byte
	cur, prev []byte
}

var pngFastStates sync.Pool

// decodePNGFast decodes data, a PNG that Inspect and checkPNGData have passed, or
// returns errPNGFallback (wrapped) when image/png should decode it instead. Any other
// error is ctx's.
func decodePNGFast(ctx context.Context, data []byte) (*image.NRGBA, error) {
	l, err := pngFastLayout(data)
	if err != nil {
		return nil, err
	}
	s, _ := pngFastStates.Get().(*pngFastState)
	if s == nil {
		s = &pngFastState{}
	}
	defer pngFastStates.Put(s)

	stream := l.idat[0]
	if len(l.idat) > 1 {
		s.idat = s.idat[:0]
		for _, c := range l.idat {
			s.idat = append(s.idat, c...)
		}
		stream = s.idat
	}
	s.br.Reset(stream)
	if s.zr == nil {
		if s.zr, err = zlib.NewReader(&s.br); err != nil {
			return nil, fmt.Errorf("%w: %w", errPNGFallback, err)
		}
	} else if err := s.zr.(zlib.Resetter).Reset(&s.br, nil); err != nil {
		return nil, fmt.Errorf("%w: %w", errPNGFallback, err)
	}

	w, h, ch := l.width, l.height, l.channels
	n := ch * w // bytes of one unfiltered row
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	s.cur, s.prev = grow(s.cur, 1+n), grow(s.prev, 1+n)
	clear(s.prev)
	cur, prev := s.cur, s.prev // each the filter byte, then the row
	for y := range h {
		if y%pngRowsPerCtxCheck == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		dst := img.Pix[y*img.Stride : y*img.Stride+4*w]
		var row, above []byte
		if ch == 4 {
			// RGBA rows are NRGBA rows: unfilter in place, against the row above.
			row, above = dst, prev[1:]
			if y > 0 {
				above = img.Pix[(y-1)*img.Stride : (y-1)*img.Stride+4*w]
			}
			if _, err := io.ReadFull(s.zr, cur[:1]); err != nil {
				return nil, fmt.Errorf("%w: %w", errPNGFallback, err)
			}
			if _, err := io.ReadFull(s.zr, row); err != nil {
				return nil, fmt.Errorf("%w: %w", errPNGFallback, err)
			}
		} else {
			row, above = cur[1:], prev[1:]
			if _, err := io.ReadFull(s.zr, cur); err != nil { // the filter byte and the row
				return nil, fmt.Errorf("%w: %w", errPNGFallback, err)
			}
		}
		if !unfilter(cur[0], row, above, ch) {
			return nil, fmt.Errorf("%w: bad filter type %d", errPNGFallback, cur[0])
		}
		switch ch {
		case 1:
			grayToNRGBA(dst, row)
		case 2:
			grayAlphaToNRGBA(dst, row)
		case 3:
			rgbToNRGBA(dst, row)
		}
		if ch != 4 {
			cur, prev = prev, cur
		}
	}
	// The stream must end here (the zlib checksum is checked on reaching its end) and
	// the IDAT data with it, as image/png requires.
	var one [1]byte
	k, err := 0, error(nil)
	for i := 0; k == 0 && err == nil; i++ {
		if i == 100 {
			return nil, fmt.Errorf("%w: %w", errPNGFallback, io.ErrNoProgress)
		}
		k, err = s.zr.Read(one[:])
	}
	if k != 0 || err != io.EOF || s.br.Len() != 0 {
		return nil, fmt.Errorf("%w: pixel data does not end with the image (%v)", errPNGFallback, err)
	}
	return img, nil
}

// pngFastFile is what the fast path needs from a PNG's chunks.
type pngFastFile struct {
	width, height, channels int
	idat                    [][]byte // the data of each IDAT chunk, in order
}

// pngFastLayout walks data's chunks as image/png does, verifying each CRC, and says
// whether the fast path decodes it: errPNGFallback (wrapped) if not.
func pngFastLayout(data []byte) (pngFastFile, error) {
	var f pngFastFile
	fallback := func(why string, args ...any) (pngFastFile, error) {
		return pngFastFile{}, fmt.Errorf("%w: "+why, append([]any{errPNGFallback}, args...)...)
	}
	if len(data) < len(pngSignature) || string(data[:len(pngSignature)]) != pngSignature {
		return fallback("no PNG signature")
	}
	seenIDAT, idatRunOver := false, false
	for i, first := len(pngSignature), true; ; first = false {
		if len(data)-i < 12 {
			return fallback("the file ends before IEND")
		}
		n := binary.BigEndian.Uint32(data[i:])
		if n > 0x7fffffff || int64(n) > int64(len(data)-i-12) {
			return fallback("chunk length %d", n)
		}
		typ := string(data[i+4 : i+8])
		body := data[i+8 : i+8+int(n)]
		if crc32.ChecksumIEEE(data[i+4:i+8+int(n)]) != binary.BigEndian.Uint32(data[i+8+int(n):]) {
			return fallback("%q chunk CRC", typ)
		}
		i += 12 + int(n)
		if first != (typ == pngIHDR) {
			return fallback("IHDR is not the first chunk")
		}
		if typ != pngIDAT && seenIDAT {
			idatRunOver = true
		}
		switch typ {
		case pngIHDR:
			if len(body) != 13 {
				return fallback("IHDR length %d", len(body))
			}
			w, h := binary.BigEndian.Uint32(body), binary.BigEndian.Uint32(body[4:])
			depth, ct := body[8], body[9]
			f.channels = pngChannels(ct)
			if w == 0 || h == 0 || w > 1<<24 || h > 1<<24 || depth != 8 || ct == 3 || f.channels == 0 ||
				body[10] != 0 || body[11] != 0 || body[12] != 0 {
				return fallback("%dx%d, %d bits, colour type %d, methods %d %d %d", w, h, depth, ct, body[10], body[11], body[12])
			}
			f.width, f.height = int(w), int(h)
		case pngIDAT:
			if idatRunOver {
				return fallback("IDAT chunks after other chunks that follow IDAT")
			}
			seenIDAT = true
			f.idat = append(f.idat, body)
		case pngIEND:
			if !seenIDAT || n != 0 {
				return fallback("IEND of length %d, after IDAT %v", n, seenIDAT)
			}
			return f, nil
		case "PLTE", "tRNS":
			return fallback("%s chunk", typ)
		}
		// Other chunks, ancillary or not, image/png skips once their CRC is right.
	}
}

// unfilter reverses filter type ft (PNG specification, section 9.2) on row, given the
// unfiltered row above (zeros for the first) and bpp bytes per pixel. It reports false
// for an unknown filter type.
func unfilter(ft byte, row, above []byte, bpp int) bool {
	above = above[:len(row)]
	switch ft {
	case 0: // None
	case 1: // Sub
		for i := bpp; i < len(row); i++ {
			row[i] += row[i-bpp]
		}
	case 2: // Up
		const (
			hi = 0x8080808080808080
			lo = 0x7f7f7f7f7f7f7f7f
		)
		le := binary.LittleEndian
		i := 0
		for ; i+8 <= len(row); i += 8 {
			x, a := le.Uint64(row[i:]), le.Uint64(above[i:])
			le.PutUint64(row[i:], ((x&lo)+(a&lo))^((x^a)&hi)) // bytewise x + a
		}
		for ; i < len(row); i++ {
			row[i] += above[i]
		}
	case 3: // Average
		switch bpp {
		case 3:
			unfilterAverage3(row, above)
		case 4:
			unfilterAverage4(row, above)
		default:
			i := 0
			for ; i < bpp && i < len(row); i++ {
				row[i] += above[i] / 2
			}
			for ; i < len(row); i++ {
				row[i] += uint8((uint(row[i-bpp]) + uint(above[i])) / 2)
			}
		}
	case 4: // Paeth
		switch bpp {
		case 3:
			unfilterPaeth3(row, above)
		case 4:
			unfilterPaeth4(row, above)
		default:
			unfilterPaeth(row, above, bpp)
		}
	default:
		return false
	}
	return true
}

// paeth is the Paeth predictor of a byte from its left (a), above (b) and upper left
// (c) neighbours: whichever is closest to a + b - c, preferring a, then b. Written
// to compile to conditional moves.
func paeth(a, b, c int) int {
	pa, pb := b-c, a-c
	pc := pa + pb
	if pa < 0 {
		pa = -pa
	}
	if pb < 0 {
		pb = -pb
	}
	if pc < 0 {
		pc = -pc
	}
	if pb > pc { // b becomes the closer of b and c, pb its distance
		b, pb = c, pc
	}
	if pa > pb {
		return b
	}
	return a
}

// unfilterPaeth reverses the Paeth filter for any bytes per pixel, one channel at a
// time.
func unfilterPaeth(row, above []byte, bpp int) {
	for i := 0; i < bpp && i < len(row); i++ {
		row[i] += above[i] // a = c = 0, so b is the closest
	}
	for k := 0; k < bpp; k++ {
		a, c := int(row[k]), int(above[k])
		for i := k + bpp; i < len(row); i += bpp {
			b := int(above[i])
			a = int(row[i] + uint8(paeth(a, b, c)))
			row[i] = uint8(a)
			c = b
		}
	}
}

// unfilterPaeth3 is unfilterPaeth for 3 bytes per pixel, the channels side by side so
// that their three dependency chains overlap, the left pixel kept in registers.
func unfilterPaeth3(row, above []byte) {
	n := len(row) / 3 * 3
	if n == 0 {
		return
	}
	row, above = row[:n], above[:n]
	row[0] += above[0]
	row[1] += above[1]
	row[2] += above[2]
	a0, a1, a2 := int(row[0]), int(row[1]), int(row[2])
	c0, c1, c2 := int(above[0]), int(above[1]), int(above[2])
	for i := 3; i+3 <= n; i += 3 {
		r, u := row[i:i+3:i+3], above[i:i+3:i+3]
		b0, b1, b2 := int(u[0]), int(u[1]), int(u[2])
		a0 = int(r[0] + uint8(paeth(a0, b0, c0)))
		a1 = int(r[1] + uint8(paeth(a1, b1, c1)))
		a2 = int(r[2] + uint8(paeth(a2, b2, c2)))
		r[0], r[1], r[2] = uint8(a0), uint8(a1), uint8(a2)
		a0, a1, a2 = a0&0xff, a1&0xff, a2&0xff
		c0, c1, c2 = b0, b1, b2
	}
}

// unfilterPaeth4 is unfilterPaeth3 for 4 bytes per pixel.
func unfilterPaeth4(row, above []byte) {
	n := len(row) / 4 * 4
	if n == 0 {
		return
	}
	row, above = row[:n], above[:n]
	for k := range 4 {
		row[k] += above[k]
	}
	a0, a1, a2, a3 := int(row[0]), int(row[1]), int(row[2]), int(row[3])
	c0, c1, c2, c3 := int(above[0]), int(above[1]), int(above[2]), int(above[3])
	for i := 4; i+4 <= n; i += 4 {
		r, u := row[i:i+4:i+4], above[i:i+4:i+4]
		b0, b1, b2, b3 := int(u[0]), int(u[1]), int(u[2]), int(u[3])
		a0 = int(r[0]+uint8(paeth(a0, b0, c0))) & 0xff
		a1 = int(r[1]+uint8(paeth(a1, b1, c1))) & 0xff
		a2 = int(r[2]+uint8(paeth(a2, b2, c2))) & 0xff
		a3 = int(r[3]+uint8(paeth(a3, b3, c3))) & 0xff
		r[0], r[1], r[2], r[3] = uint8(a0), uint8(a1), uint8(a2), uint8(a3)
		c0, c1, c2, c3 = b0, b1, b2, b3
	}
}

// unfilterAverage3 reverses the Average filter for 3 bytes per pixel, the left pixel
// kept in registers.
func unfilterAverage3(row, above []byte) {
	n := len(row) / 3 * 3
	if n == 0 {
		return
	}
	row, above = row[:n], above[:n]
	var a0, a1, a2 uint
	for i := 0; i+3 <= n; i += 3 {
		r, u := row[i:i+3:i+3], above[i:i+3:i+3]
		a0 = uint(r[0]+uint8((a0+uint(u[0]))/2)) & 0xff
		a1 = uint(r[1]+uint8((a1+uint(u[1]))/2)) & 0xff
		a2 = uint(r[2]+uint8((a2+uint(u[2]))/2)) & 0xff
		r[0], r[1], r[2] = uint8(a0), uint8(a1), uint8(a2)
	}
}

// unfilterAverage4 is unfilterAverage3 for 4 bytes per pixel.
func unfilterAverage4(row, above []byte) {
	n := len(row) / 4 * 4
	row, above = row[:n], above[:n]
	var a0, a1, a2, a3 uint
	for i := 0; i+4 <= n; i += 4 {
		r, u := row[i:i+4:i+4], above[i:i+4:i+4]
		a0 = uint(r[0]+uint8((a0+uint(u[0]))/2)) & 0xff
		a1 = uint(r[1]+uint8((a1+uint(u[1]))/2)) & 0xff
		a2 = uint(r[2]+uint8((a2+uint(u[2]))/2)) & 0xff
		a3 = uint(r[3]+uint8((a3+uint(u[3]))/2)) & 0xff
		r[0], r[1], r[2], r[3] = uint8(a0), uint8(a1), uint8(a2), uint8(a3)
	}
}

func grayToNRGBA(dst, src []byte) {
	dst = dst[:4*len(src)]
	for i, v := range src {
		binary.LittleEndian.PutUint32(dst[4*i:], uint32(v)*0x010101|0xff<<24)
	}
}

func grayAlphaToNRGBA(dst, src []byte) {
	n := len(src) / 2
	dst, src = dst[:4*n], src[:2*n]
	for i := range n {
		v, a := src[2*i], src[2*i+1]
		binary.LittleEndian.PutUint32(dst[4*i:], uint32(v)*0x010101|uint32(a)<<24)
	}
}

func rgbToNRGBA(dst, src []byte) {
	n := min(len(src)/3, len(dst)/4)
	dst, src = dst[:4*n], src[:3*n]
	le := binary.LittleEndian
	const opaque = 0xff<<24 | 0xff<<56
	// Four pixels at a time: one 8-byte and one 4-byte load, two 8-byte stores.
	for len(src) >= 12 && len(dst) >= 16 {
		p, q := le.Uint64(src), uint64(le.Uint32(src[8:]))
		le.PutUint64(dst, p&0xffffff|p>>24&0xffffff<<32|opaque)
		le.PutUint64(dst[8:], p>>48|q&0xff<<16|q>>8<<32|opaque)
		dst, src = dst[16:], src[12:]
	}
	for len(src) >= 3 && len(dst) >= 4 {
		dst[0], dst[1], dst[2], dst[3] = src[0], src[1], src[2], 0xff
		dst, src = dst[4:], src[3:]
	}
}
