package imageio

import (
	"image"
	"math"
)

// The bilinear resampler applies draw.BiLinear's kernel in fixed point, one
// axis at a time: each source row is filtered horizontally into a small ring
// of uint16 rows, which keep 8 bits below the 8-bit level, and each
// destination row is then summed from the rows it needs. The ring holds only
// as many rows as one destination row reads, so the intermediate image stays
// in cache. Sums fit in int32: weights are non-negative and add up to
// 1<<weightBits, and every value summed is below 1<<16. Results are rounded
// to 8 bits as draw rounds them (see to8), so they are draw's, give or take
// a level in a few pixels.
//
// It runs on one goroutine on purpose: the pipeline's stages already keep the
// cores busy with several jobs at once, so splitting one resize across them
// would only add overhead.

// weightBits is the precision of the filter weights: each destination pixel's
// weights add up to exactly 1<<weightBits.
const weightBits = 13

// span is what one destination pixel reads along one axis: source pixel i+k
// weighs w[k].
type span struct {
	i int
	w []int32
}

// bilinearSpans returns the spans that scale an axis of n source pixels to m
// with draw.BiLinear's kernel: a triangle of radius one source pixel, widened
// by the scale factor when shrinking so that every source pixel counts. Pixel
// centres are at +0.5. Weights that would fall off either end are dropped and
// the rest renormalised, as draw.Kernel does. m and n must be positive.
func bilinearSpans(m, n int) []span {
	scale := float64(n) / float64(m)
	support, argScale := 1.0, 1.0
	if scale > 1 {
		support, argScale = scale, 1/scale
	}
	taps := 2 * int(math.Ceil(support)) // at most, for one destination pixel
	spans := make([]span, m)
	ends := make([]int, m)
	ws := make([]int32, 0, m*taps)
	f := make([]float64, 0, taps)
	for x := range spans {
		c := (float64(x)+0.5)*scale - 0.5
		lo := max(int(math.Floor(c-support)), 0)
		hi := min(int(math.Ceil(c+support)), n)
		f, spans[x].i = f[:0], -1
		total := 0.0
		for i := lo; i < hi; i++ {
			if t := math.Abs(c-float64(i)) * argScale; t < 1 {
				if spans[x].i < 0 {
					spans[x].i = i
				}
				f = append(f, 1-t)
				total += 1 - t
			}
		}
		// Round each weight and give what rounding lost or gained to the
		// largest, so that the weights add up exactly.
		big, sum := len(ws), int32(0)
		for _, v := range f {
			q := int32(math.Round(v / total * (1 << weightBits)))
			ws = append(ws, q)
			if q > ws[big] {
				big = len(ws) - 1
			}
			sum += q
		}
		ws[big] += 1<<weightBits - sum
		ends[x] = len(ws)
	}
	start := 0
	for x, end := range ends {
		spans[x].w = ws[start:end:end]
		start = end
	}
	return spans
}

// ResizeGray scales src to exactly w x h, ignoring aspect ratio, with the
// same filter as ResizeBilinear. Non-positive w or h give an empty image, an
// empty src a black w x h one.
func ResizeGray(src *image.Gray, w, h int) *image.Gray {
	if w <= 0 || h <= 0 {
		return image.NewGray(image.Rectangle{})
	}
	dst := image.NewGray(image.Rect(0, 0, w, h))
	b := src.Rect
	if b.Empty() {
		return dst
	}
	hs := bilinearSpans(w, b.Dx())
	resample(w, bilinearSpans(h, b.Dy()), func(row []uint16, y int) {
		filterRow1(row, src.Pix[src.PixOffset(b.Min.X, b.Min.Y+y):][:b.Dx()], hs)
	}, func(y int, sum []int32) {
		storeRow1(dst.Pix[y*dst.Stride:][:w], sum)
	})
	return dst
}

// resizeNRGBA scales src to w x h. It filters premultiplied colour, as the
// x/image/draw scalers do, so that transparent pixels, whatever colour they
// hold, do not bleed into their neighbours; opaque sources skip that work
// and filter colour alone. w and h must be positive.
func resizeNRGBA(src *image.NRGBA, w, h int) *image.NRGBA {
	dst := image.NewNRGBA(image.Rect(0, 0, w, h))
	b := src.Rect
	if b.Empty() {
		return dst
	}
	hs, vs := bilinearSpans(w, b.Dx()), bilinearSpans(h, b.Dy())
	srcRow := func(y int) []uint8 { return src.Pix[src.PixOffset(b.Min.X, b.Min.Y+y):][:4*b.Dx()] }
	dstRow := func(y int) []uint8 { return dst.Pix[y*dst.Stride:][:4*w] }
	if opaque(src) {
		lanes := make([]uint64, b.Dx())
		resample(3*w, vs, func(row []uint16, y int) {
			filterRow3(row, lanes, srcRow(y), hs)
		}, func(y int, sum []int32) {
			storeRow3(dstRow(y), sum)
		})
	} else {
		resample(4*w, vs, func(row []uint16, y int) {
			filterRow4Premul(row, srcRow(y), hs)
		}, func(y int, sum []int32) {
			storeRow4Unpremul(dstRow(y), sum)
		})
	}
	return dst
}

// opaque reports whether every pixel of src has alpha 255.
func opaque(src *image.NRGBA) bool {
	b := src.Rect
	for y := b.Min.Y; y < b.Max.Y; y++ {
		row := src.Pix[src.PixOffset(b.Min.X, y):][:4*b.Dx()]
		for i := 3; i < len(row); i += 4 {
			if row[i] != 0xff {
				return false
			}
		}
	}
	return true
}

// resample produces destination rows of n values: for row y, it sums the
// rows of horizontally filtered source that vs[y] reads, and store turns the
// sums into pixels. filter fills row with source row y filtered
// horizontally; it is called once for each source row that is read.
func resample(n int, vs []span, filter func(row []uint16, y int), store func(y int, sum []int32)) {
	size := 0
	for _, s := range vs {
		size = max(size, len(s.w))
	}
	ring := make([]uint16, size*n)
	sum := make([]int32, n)
	next := 0 // the next source row to filter
	for y, s := range vs {
		for ; next < s.i+len(s.w); next++ {
			filter(ring[next%size*n:][:n], next)
		}
		clear(sum)
		for k, w := range s.w {
			row := ring[(s.i+k)%size*n:][:n]
			for i, v := range row {
				sum[i] += int32(v) * w
			}
		}
		store(y, sum)
	}
}

// The horizontal filters write values with 8 fractional bits, rounded,
// except filterRow4Premul's colour.
const (
	fracShift = weightBits - 8
	fracHalf  = 1 << (fracShift - 1)
)

// filterRow1 filters a row of Gray pixels.
func filterRow1(dst []uint16, src []uint8, hs []span) {
	for x, s := range hs {
		p := src[s.i:][:len(s.w)]
		var v int32
		for k, w := range s.w {
			v += int32(p[k]) * w
		}
		dst[x] = uint16((v + fracHalf) >> fracShift)
	}
}

// filterRow3 filters the colour of a row of opaque NRGBA pixels, writing
// three values a pixel. It first spreads each source pixel's red, green and
// blue into 21-bit lanes of one word, so that one multiplication weighs all
// three; lanes holds a word for each source pixel.
func filterRow3(dst []uint16, lanes []uint64, src []uint8, hs []span) {
	const lane, mask = 21, 1<<21 - 1
	const _ = uint(mask - 0xff<<weightBits) // a lane's sum must not overflow
	for i := range lanes {
		q := src[4*i : 4*i+3 : 4*i+3]
		lanes[i] = uint64(q[0]) | uint64(q[1])<<lane | uint64(q[2])<<(2*lane)
	}
	for x, s := range hs {
		p := lanes[s.i:][:len(s.w)]
		var v uint64
		for k, w := range s.w {
			v += p[k] * uint64(w)
		}
		d := dst[3*x : 3*x+3 : 3*x+3]
		d[0] = uint16((v&mask + fracHalf) >> fracShift)
		d[1] = uint16((v>>lane&mask + fracHalf) >> fracShift)
		d[2] = uint16((v>>(2*lane) + fracHalf) >> fracShift)
	}
}

// filterRow4Premul filters a row of NRGBA pixels in premultiplied colour.
// Colour comes out as c*a (up to 255*255), alpha with 8 fractional bits.
func filterRow4Premul(dst []uint16, src []uint8, hs []span) {
	for x, s := range hs {
		p := src[4*s.i:][:4*len(s.w)]
		var r, g, b, a int32
		for k, w := range s.w {
			q := p[4*k : 4*k+4 : 4*k+4]
			aw := int32(q[3]) * w
			r += int32(q[0]) * aw
			g += int32(q[1]) * aw
			b += int32(q[2]) * aw
			a += aw
		}
		d := dst[4*x : 4*x+4 : 4*x+4]
		d[0] = uint16((r + 1<<(weightBits-1)) >> weightBits)
		d[1] = uint16((g + 1<<(weightBits-1)) >> weightBits)
		d[2] = uint16((b + 1<<(weightBits-1)) >> weightBits)
		d[3] = uint16((a + fracHalf) >> fracShift)
	}
}

// The vertical sums carry weightBits more fractional bits.
const sumShift = weightBits + 8

// to8 converts v, with sumShift fractional bits, to 8 bits as x/image/draw
// does: rounded to 16 bits, then truncated. That is up to half a level off
// rounding to nearest (down near black, up near white), but IS-Net's masks
// move by over a percent of IoU on some photos when it changes, so the
// pipeline keeps the model inputs it has always had. Whole levels, such as
// an unscaled or flat image, come out exact.
func to8(v int32) uint8 {
	return uint8((v + v>>8 + 1<<(sumShift-9)) >> sumShift) // v*257/256 + 1/512, rounded down
}

// storeRow1 converts the sums of filterRow1's values to Gray pixels.
func storeRow1(dst []uint8, sum []int32) {
	sum = sum[:len(dst)]
	for i, v := range sum {
		dst[i] = to8(v)
	}
}

// storeRow3 converts the sums of filterRow3's values to opaque NRGBA pixels.
func storeRow3(dst []uint8, sum []int32) {
	for i, j := 0, 0; i+4 <= len(dst) && j+3 <= len(sum); i, j = i+4, j+3 {
		s := sum[j : j+3 : j+3]
		d := dst[i : i+4 : i+4]
		d[0], d[1], d[2], d[3] = to8(s[0]), to8(s[1]), to8(s[2]), 0xff
	}
}

// storeRow4Unpremul converts the sums of filterRow4Premul's values to NRGBA
// pixels, dividing colour by alpha before rounding anything to 8 bits.
func storeRow4Unpremul(dst []uint8, sum []int32) {
	const full = 0xff << sumShift // the alpha sum of opaque pixels
	for i := 0; i+4 <= len(dst) && i+4 <= len(sum); i += 4 {
		s := sum[i : i+4 : i+4]
		d := dst[i : i+4 : i+4]
		a := s[3]
		if d[3] = to8(a); d[3] == 0 {
			d[0], d[1], d[2] = 0, 0, 0
			continue
		}
		// Colour sums carry weightBits fractional bits of c*a and alpha
		// sums sumShift of a, so straight colour with sumShift fractional
		// bits is s<<(weightBits+16)/a, here s*inv>>25 with inv 1<<54/a:
		// exact enough for whole levels to stay whole (s < 1<<29 and
		// inv < 1<<34, so the product fits).
		inv := uint64((1<<54 + full/2) / full)
		if a != full {
			inv = (1<<54 + uint64(a)/2) / uint64(a)
		}
		for c := range 3 {
			d[c] = to8(int32(min(uint64(s[c])*inv>>25, full)))
		}
	}
}
