package imageio

import (
	"encoding/binary"
	"fmt"
	"hash"
	"hash/adler32"
	"hash/crc32"
	"image"
	"io"
	"sync"

	"github.com/klauspost/compress/flate"
)

// This file is a PNG encoder for the image types the pipeline produces
// (*image.NRGBA, *image.RGBA, *image.Gray). It writes the colour types that
// image/png writes, but filters every row with one fixed filter instead of
// trying all five per row and keeping the one with the smallest sum of
// absolute values, which is more than half of image/png's time at BestSpeed.
//
// The filter is Average. Time and size on one core, zlib at BestSpeed for
// all, the filters still plain byte loops; "x4" is a scikit-image photo
// scaled up with Resize, as smooth as an upscaler's output, and photoImage
// the noisy synthetic test image:
//
//	filter              astronaut x4 2048x2048  coffee x4 2400x1600  coffee 600x400  photoImage 2048x2048
//	image/png (all 5)   212 ms  4.10 MB         216 ms  4.39 MB      20 ms  468 KB   294 ms  8.56 MB
//	None                111 ms  8.94 MB         104 ms  9.04 MB     4.2 ms  673 KB    34 ms 12.04 MB
//	Sub                 106 ms  4.79 MB         108 ms  4.81 MB     7.9 ms  478 KB   130 ms  8.23 MB
//	Up                   99 ms  4.29 MB         104 ms  4.67 MB     7.8 ms  485 KB   122 ms  8.36 MB
//	Average             102 ms  4.17 MB         106 ms  4.46 MB     8.1 ms  468 KB   107 ms  8.70 MB
//	Paeth               138 ms  4.10 MB         143 ms  4.39 MB      11 ms  475 KB   145 ms  8.82 MB
//	Up or Sub per row   141 ms  4.32 MB         147 ms  4.63 MB      12 ms  476 KB   188 ms  8.30 MB
//
// Most of the time is deflate's. Average costs what Up costs and on real
// photos comes within 0-2% of image/png's size; Paeth gains at most another
// 2% for a third more time, and choosing per row costs more than it saves.
// Average also runs eight bytes at a time in plain 64-bit arithmetic
// (filterAverage), which Paeth does not.
//
// The table used compress/zlib. The encoder uses klauspost/compress's zlib
// (already in the build through nats-server) at BestSpeed: on the four test
// photos, at their size and scaled x4, it writes files from 6% smaller to 6%
// larger than image/png in a third to a sixth of the time (astronaut x4:
// 4.06 MB in 67 ms against 4.10 MB in 219 ms). Synthetic noise compresses
// worse with it (photoImage 2048x2048 11.7 MB against 8.6 MB); real results
// are not noise.
//
// HuffmanOnly (no match search, a Huffman table per 32 KiB block) is faster
// still on photos and, as their filtered bytes hold few long matches, writes
// files as small or smaller; but it cannot bring flat areas (masks, cut-out
// backgrounds, graphics) below an eighth of their size, where BestSpeed shrinks
// them to almost nothing. So the encoder deflates bands of about 64 KiB of
// filtered rows, each through the writer that suits it (deflateBand): a band
// with an eighth or more of it in zero runs through BestSpeed, the rest through
// HuffmanOnly. On the real Real-ESRGAN x4 results of the four benchmark photos
// (thread CPU, loaded machine, medians of 3, against BestSpeed throughout):
// 0.53-0.82x the time, files 0.85-1.006x the size (rocket 4.09 MB against
// 4.81 MB, chelsea 2.457 against 2.442); their remove-background cut-outs
// 0.36-0.70x, 0.96-0.98x the size. Masks (grey) and images under 512 KiB of
// scanlines (thumbnails) keep BestSpeed throughout: a chelsea mask grew 31%
// under the band test, for no time worth saving.

// PNG colour types (PNG specification, section 11.2.2).
const (
	ctGray      = 0
	ctTrueColor = 2
	ctGrayAlpha = 4
	ctRGBA      = 6
)

// ftAverage is the Average filter type (section 9.2).
const ftAverage = 3

// idatMax bounds the data in one IDAT chunk, and so the buffer that holds it.
const idatMax = 256 << 10

const pngSignature = "\x89PNG\r\n\x1a\n"

// pngState is what one encode needs besides the image: the zlib writer (its
// deflate state is hundreds of KB), the IDAT buffer and the row buffers. It is
// pooled so that steady-state encodes allocate next to nothing.
type pngState struct {
	hdr  [len(pngSignature) + 12 + 13]byte // signature and IHDR chunk
	fast *flate.Writer                     // BestSpeed, for bands with flat areas
	huff *flate.Writer                     // HuffmanOnly, for the rest
	zw   *flate.Writer                     // the one writing now: fast, huff or nil
	sum  hash.Hash32                       // the zlib stream's Adler-32
	idat idatWriter
	band []byte // filtered rows (each with its filter type byte) not yet deflated
	tmp  [4]byte
	// allFast sends every band through BestSpeed: for grey images (masks, whose soft
	// edges leave too few zero runs for the test but compress far better with matches)
	// and small ones (thumbnails), where the time saved is next to nothing.
	allFast bool

	cur, prev []byte // converted rows, for sources whose bytes need changing
	zero      []byte // the row above the first, zero as the specification says
}

var pngStates sync.Pool

// pngLayout says how to turn the rows of an image into PNG scanlines.
type pngLayout struct {
	pix       []byte // from the first pixel of the first row
	stride    int
	srcLen    int // bytes of one source row
	colorType byte
	bpp       int                   // bytes per PNG pixel
	convert   func(dst, src []byte) // nil when source rows are scanlines as they are
}

// pngLayoutOf describes img for writePNG; ok is false for the types it does
// not handle. Like image/png, it writes opaque colour images as RGB.
func pngLayoutOf(img image.Image) (l pngLayout, ok bool) {
	switch m := img.(type) {
	case *image.NRGBA:
		l = pngLayout{pix: m.Pix[m.PixOffset(m.Rect.Min.X, m.Rect.Min.Y):], stride: m.Stride, srcLen: 4 * m.Rect.Dx()}
		if l.opaque(m.Rect.Dy()) {
			l.colorType, l.bpp, l.convert = ctTrueColor, 3, dropAlpha
		} else {
			l.colorType, l.bpp = ctRGBA, 4
		}
	case *image.RGBA:
		l = pngLayout{pix: m.Pix[m.PixOffset(m.Rect.Min.X, m.Rect.Min.Y):], stride: m.Stride, srcLen: 4 * m.Rect.Dx()}
		if l.opaque(m.Rect.Dy()) {
			l.colorType, l.bpp, l.convert = ctTrueColor, 3, dropAlpha
		} else {
			l.colorType, l.bpp, l.convert = ctRGBA, 4, unpremultiplyRow
		}
	case *image.Gray:
		l = pngLayout{pix: m.Pix[m.PixOffset(m.Rect.Min.X, m.Rect.Min.Y):], stride: m.Stride, srcLen: m.Rect.Dx()}
		l.colorType, l.bpp = ctGray, 1
	default:
		return l, false
	}
	return l, true
}

// grayLayoutOf describes the NRGBA image m, whose R, G and B are equal, as
// a grey PNG (grey+alpha unless opaque), taking grey from the red byte.
func grayLayoutOf(m *image.NRGBA) pngLayout {
	l := pngLayout{pix: m.Pix[m.PixOffset(m.Rect.Min.X, m.Rect.Min.Y):], stride: m.Stride, srcLen: 4 * m.Rect.Dx()}
	if l.opaque(m.Rect.Dy()) {
		l.colorType, l.bpp, l.convert = ctGray, 1, redOnly
	} else {
		l.colorType, l.bpp, l.convert = ctGrayAlpha, 2, redAlpha
	}
	return l
}

func redOnly(dst, src []byte) {
	for i := 0; i < len(dst) && 4*i < len(src); i++ {
		dst[i] = src[4*i]
	}
}

func redAlpha(dst, src []byte) {
	for i := 0; 2*i+1 < len(dst) && 4*i+3 < len(src); i++ {
		dst[2*i], dst[2*i+1] = src[4*i], src[4*i+3]
	}
}

// opaque reports whether the alpha byte of every 4-byte pixel in the first
// h rows is 0xff.
func (l pngLayout) opaque(h int) bool {
	for y := range h {
		row := l.pix[y*l.stride : y*l.stride+l.srcLen]
		for i := 3; i < len(row); i += 4 {
			if row[i] != 0xff {
				return false
			}
		}
	}
	return true
}

// writePNG encodes the image of bounds b, described by l, as a
// non-interlaced 8-bit PNG.
func writePNG(w io.Writer, b image.Rectangle, l pngLayout, extra []byte) error {
	width, height := b.Dx(), b.Dy()
	if width <= 0 || height <= 0 || int64(width) > 1<<31-1 || int64(height) > 1<<31-1 {
		return fmt.Errorf("invalid image size %dx%d", width, height)
	}

	s, _ := pngStates.Get().(*pngState)
	if s == nil {
		s = &pngState{idat: idatWriter{buf: make([]byte, 8, 8+idatMax+4)}, sum: adler32.New()}
		s.fast, _ = flate.NewWriter(&s.idat, flate.BestSpeed)   // the level is valid
		s.huff, _ = flate.NewWriter(&s.idat, flate.HuffmanOnly) // and so is this
	}
	s.zw = nil
	s.sum.Reset()
	s.idat.w, s.idat.err = w, nil
	defer func() {
		s.idat.w = nil // do not keep the caller's writer alive
		pngStates.Put(s)
	}()

	hdr := s.hdr[:]
	copy(hdr, pngSignature)
	ihdr := hdr[len(pngSignature):]
	binary.BigEndian.PutUint32(ihdr[0:], 13)
	copy(ihdr[4:], "IHDR")
	binary.BigEndian.PutUint32(ihdr[8:], uint32(width))
	binary.BigEndian.PutUint32(ihdr[12:], uint32(height))
	ihdr[16], ihdr[17] = 8, l.colorType    // bit depth, colour type
	ihdr[18], ihdr[19], ihdr[20] = 0, 0, 0 // deflate, the five standard filters, no interlace
	binary.BigEndian.PutUint32(ihdr[21:], crc32.ChecksumIEEE(ihdr[4:21]))
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	if len(extra) > 0 { // ancillary chunks that belong before IDAT
		if _, err := w.Write(extra); err != nil {
			return err
		}
	}

	// The zlib stream (RFC 1950): its header (deflate, 32 KiB window, the fastest
	// level), the deflate data of the bands, the Adler-32 of the scanlines.
	s.tmp = [4]byte{0x78, 0x01}
	if _, err := s.idat.Write(s.tmp[:2]); err != nil {
		return err
	}
	n := l.bpp * width
	s.allFast = l.bpp == 1 || int64(height)*int64(1+n) < pngBandedMin
	bandMax := max(pngBandBytes, 1+n)
	s.band = grow(s.band, bandMax)[:0]
	s.zero = grow(s.zero, n)
	clear(s.zero)
	if l.convert != nil {
		s.cur, s.prev = grow(s.cur, n), grow(s.prev, n)
	}
	prev := s.zero
	for y := range height {
		row := l.pix[y*l.stride : y*l.stride+l.srcLen]
		if l.convert != nil {
			l.convert(s.cur, row)
			row = s.cur
			s.cur, s.prev = s.prev, s.cur
		}
		if len(s.band)+1+n > bandMax {
			if err := s.deflateBand(); err != nil {
				return err
			}
		}
		k := len(s.band)
		s.band = s.band[:k+1+n]
		filterAverage(s.band[k:], row, prev, l.bpp)
		prev = row
	}
	if err := s.deflateBand(); err != nil {
		return err
	}
	if err := s.zw.Close(); err != nil {
		return err
	}
	binary.BigEndian.PutUint32(s.tmp[:], s.sum.Sum32())
	if _, err := s.idat.Write(s.tmp[:]); err != nil {
		return err
	}
	if err := s.idat.flush(); err != nil {
		return err
	}
	const iend = "\x00\x00\x00\x00IEND\xae\x42\x60\x82"
	_, err := io.WriteString(w, iend)
	return err
}

// pngBandBytes is about how many bytes of filtered rows go to deflate at a time, each
// band through the deflate writer that suits it (deflateBand).
const pngBandBytes = 64 << 10

// pngBandedMin is the fewest bytes of scanlines for which writePNG picks a deflate
// writer per band; smaller images take BestSpeed throughout.
const pngBandedMin = 512 << 10

// deflateBand compresses the band of filtered rows collected so far. A band whose
// rows are flat in places (a 32nd or more of it in zero runs of 32 bytes: a cut-out's
// transparent background, a mask, graphics) goes through BestSpeed, whose
// matches shrink runs to almost nothing; a band without (a photo) through HuffmanOnly,
// which costs about two thirds of BestSpeed's time there for a file within a few per
// cent of its size, as a photo's filtered bytes hold few matches. Changing writers
// ends the deflate block with a sync flush and starts the other writer afresh, so the
// stream stays one valid deflate stream.
func (s *pngState) deflateBand() error {
	if len(s.band) == 0 {
		return nil
	}
	s.sum.Write(s.band)
	zw := s.huff
	if s.allFast || zeroBlocks(s.band)*32 >= len(s.band)/8 {
		zw = s.fast
	}
	if zw != s.zw {
		if s.zw != nil {
			if err := s.zw.Flush(); err != nil {
				return err
			}
		}
		zw.Reset(&s.idat)
		s.zw = zw
	}
	_, err := s.zw.Write(s.band)
	s.band = s.band[:0]
	return err
}

// zeroBlocks counts the aligned 32-byte blocks of b that are all zero: runs that
// BestSpeed's matches take to almost nothing and HuffmanOnly to one bit a byte at best.
func zeroBlocks(b []byte) int {
	n := 0
	le := binary.LittleEndian
	for len(b) >= 32 {
		if le.Uint64(b)|le.Uint64(b[8:])|le.Uint64(b[16:])|le.Uint64(b[24:]) == 0 {
			n++
		}
		b = b[32:]
	}
	return n
}

// grow returns b resized to n bytes, reallocating only when it is too small.
func grow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}

// dropAlpha packs the 4-byte pixels of src into 3-byte RGB ones in dst.
func dropAlpha(dst, src []byte) {
	n := min(len(src)/4, len(dst)/3)
	dst, src = dst[:3*n], src[:4*n]
	le := binary.LittleEndian
	// Four pixels at a time: two 8-byte loads, one 8-byte and one 4-byte store.
	for len(src) >= 16 {
		p, q := le.Uint64(src), le.Uint64(src[8:])
		le.PutUint64(dst, p&0xffffff|p>>32&0xffffff<<24|q<<48)
		le.PutUint32(dst[8:], uint32(q>>16&0xff|q>>32&0xffffff<<8))
		dst, src = dst[12:], src[16:]
	}
	for len(src) >= 4 {
		dst[0], dst[1], dst[2] = src[0], src[1], src[2]
		dst, src = dst[3:], src[4:]
	}
}

// filterAverage writes the Average filter type and then row filtered against
// prev, the unfiltered row above, into dst: each byte minus the mean, rounded
// down, of the byte bpp to its left (0 for the first pixel) and the byte
// above. It works on eight bytes at a time in a uint64.
func filterAverage(dst, row, prev []byte, bpp int) {
	const (
		hi = 0x8080808080808080
		lo = 0x7f7f7f7f7f7f7f7f
	)
	dst[0] = ftAverage
	dst = dst[1 : len(row)+1]
	prev = prev[:len(row)]
	i := 0
	for ; i < bpp && i < len(row); i++ {
		dst[i] = row[i] - prev[i]/2
	}
	le := binary.LittleEndian
	for ; i+8 <= len(row); i += 8 {
		x, a, b := le.Uint64(row[i:]), le.Uint64(row[i-bpp:]), le.Uint64(prev[i:])
		mean := (a & b) + ((a ^ b) >> 1 & lo)                    // bytewise (a+b)/2
		le.PutUint64(dst[i:], ((x|hi)-(mean&lo))^((x^^mean)&hi)) // bytewise x - mean
	}
	for ; i < len(row); i++ {
		dst[i] = row[i] - uint8((uint(row[i-bpp])+uint(prev[i]))/2)
	}
}

// idatWriter collects zlib output into IDAT chunks of at most idatMax bytes.
type idatWriter struct {
	w   io.Writer
	buf []byte // 8 bytes for length and type, then the data; cap leaves room for the CRC
	err error
}

func (c *idatWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 && c.err == nil {
		k := min(len(p), 8+idatMax-len(c.buf))
		c.buf = append(c.buf, p[:k]...)
		p = p[k:]
		if len(c.buf) == 8+idatMax {
			c.flush()
		}
	}
	if c.err != nil {
		return 0, c.err
	}
	return n, nil
}

// flush writes the buffered data, if any, as one IDAT chunk.
func (c *idatWriter) flush() error {
	if c.err != nil || len(c.buf) == 8 {
		return c.err
	}
	binary.BigEndian.PutUint32(c.buf, uint32(len(c.buf)-8))
	copy(c.buf[4:], "IDAT")
	c.buf = binary.BigEndian.AppendUint32(c.buf, crc32.ChecksumIEEE(c.buf[4:]))
	_, c.err = c.w.Write(c.buf)
	c.buf = c.buf[:8]
	return c.err
}
