package jpeg

import "image"

const blockSize = 8 * 8

// block is one 8x8 block of DCT coefficients in natural (not zig-zag) order.
type block [blockSize]int32

// Constants of libjpeg-turbo's jidctint.c: CONST_BITS-bit fixed-point
// cosines, and PASS1_BITS of extra precision between the two passes.
const (
	constBits = 13
	pass1Bits = 2

	fix0298631336 = 2446
	fix0390180644 = 3196
	fix0541196100 = 4433
	fix0765366865 = 6270
	fix0899976223 = 7373
	fix1175875602 = 9633
	fix1501321110 = 12299
	fix1847759065 = 15137
	fix1961570560 = 16069
	fix2053119869 = 16819
	fix2562915447 = 20995
	fix3072711026 = 25172
)

func descale(x int64, n uint) int64 { return (x + 1<<(n-1)) >> n }

// rangeLimit is libjpeg's post-IDCT range limiting: the level shift by 128
// and the clamp to 0..255 of its table lookup, including the table's
// wrap-around for values far out of range (index & 1023).
func rangeLimit(x int64) uint8 {
	switch i := x & 1023; {
	case i < 128:
		return uint8(128 + i)
	case i < 512:
		return 255
	case i < 896:
		return 0
	default:
		return uint8(i - 896)
	}
}

// islow is jpeg_idct_islow of libjpeg-turbo's jidctint.c: the inverse DCT of
// the dequantised block b, level shifted and clamped, written to dst.
func islow(b *block, dst []byte, stride int) {
	var ws [blockSize]int64
	// Pass 1: columns from b into ws, scaled up by 2^pass1Bits.
	for c := range 8 {
		in := func(r int) int64 { return int64(b[8*r+c]) }
		if b[8+c] == 0 && b[16+c] == 0 && b[24+c] == 0 && b[32+c] == 0 && b[40+c] == 0 && b[48+c] == 0 && b[56+c] == 0 {
			dc := in(0) << pass1Bits
			for r := range 8 {
				ws[8*r+c] = dc
			}
			continue
		}
		out := idct1(in(0), in(1), in(2), in(3), in(4), in(5), in(6), in(7), constBits-pass1Bits)
		for r := range 8 {
			ws[8*r+c] = out[r]
		}
	}
	// Pass 2: rows from ws into dst, scaled down by 8 and 2^pass1Bits.
	for r := range 8 {
		w := ws[8*r : 8*r+8 : 8*r+8]
		d := dst[r*stride : r*stride+8 : r*stride+8]
		if w[1] == 0 && w[2] == 0 && w[3] == 0 && w[4] == 0 && w[5] == 0 && w[6] == 0 && w[7] == 0 {
			v := rangeLimit(descale(w[0], pass1Bits+3))
			for i := range d {
				d[i] = v
			}
			continue
		}
		out := idct1(w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7], constBits+pass1Bits+3)
		for i := range d {
			d[i] = rangeLimit(out[i])
		}
	}
}

// idct1 is one 1-D pass of jidctint.c on inputs x0..x7, descaled by n bits.
func idct1(x0, x1, x2, x3, x4, x5, x6, x7 int64, n uint) [8]int64 {
	// Even part.
	z1 := (x2 + x6) * fix0541196100
	tmp2 := z1 + x6*-fix1847759065
	tmp3 := z1 + x2*fix0765366865
	tmp0 := (x0 + x4) << constBits
	tmp1 := (x0 - x4) << constBits
	tmp10, tmp13 := tmp0+tmp3, tmp0-tmp3
	tmp11, tmp12 := tmp1+tmp2, tmp1-tmp2
	// Odd part.
	t0, t1, t2, t3 := x7, x5, x3, x1
	z1 = t0 + t3
	z2 := t1 + t2
	z3 := t0 + t2
	z4 := t1 + t3
	z5 := (z3 + z4) * fix1175875602
	t0 *= fix0298631336
	t1 *= fix2053119869
	t2 *= fix3072711026
	t3 *= fix1501321110
	z1 *= -fix0899976223
	z2 *= -fix2562915447
	z3 *= -fix1961570560
	z4 *= -fix0390180644
	z3 += z5
	z4 += z5
	t0 += z1 + z3
	t1 += z2 + z4
	t2 += z2 + z3
	t3 += z1 + z4
	return [8]int64{
		descale(tmp10+t3, n), descale(tmp11+t2, n), descale(tmp12+t1, n), descale(tmp13+t0, n),
		descale(tmp13-t0, n), descale(tmp12-t1, n), descale(tmp11-t2, n), descale(tmp10-t3, n),
	}
}

// ycbcrToNRGBA converts as libjpeg-turbo does by default: chroma brought to
// full size by jdsample.c's fancy upsampling (4:2:2 and 4:2:0; other
// subsamplings repeat chroma samples), then jdcolor.c's fixed-point YCbCr to
// RGB.
func ycbcrToNRGBA(m *image.YCbCr) *image.NRGBA {
	b := m.Rect
	w, h := b.Dx(), b.Dy()
	out := image.NewNRGBA(image.Rect(0, 0, w, h))
	cb, cr := upsample(m, m.Cb), upsample(m, m.Cr)
	const oneHalf = 1 << 15
	fix := func(x float64) int32 { return int32(x*(1<<16) + 0.5) }
	rCr, bCb, gCr, gCb := fix(1.40200), fix(1.77200), -fix(0.71414), -fix(0.34414)
	for y := range h {
		yrow := m.Y[m.YOffset(b.Min.X, b.Min.Y+y):][:w]
		crow, rrow := cb[y*w:(y+1)*w], cr[y*w:(y+1)*w]
		o := out.Pix[y*out.Stride : y*out.Stride+4*w]
		for x, yv := range yrow {
			Y := int32(yv)
			u, v := int32(crow[x])-128, int32(rrow[x])-128
			p := o[4*x : 4*x+4 : 4*x+4]
			p[0] = clamp8(Y + (rCr*v+oneHalf)>>16)
			p[1] = clamp8(Y + (gCb*u+oneHalf+gCr*v)>>16)
			p[2] = clamp8(Y + (bCb*u+oneHalf)>>16)
			p[3] = 255
		}
	}
	return out
}

func clamp8(v int32) uint8 {
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// upsample returns chroma plane c of m at full size, w*h values.
func upsample(m *image.YCbCr, c []byte) []byte {
	b := m.Rect
	w, h := b.Dx(), b.Dy()
	out := make([]byte, w*h)
	// The chroma sample of (x, y) and the downsampled plane's size.
	cw, ch := w, h
	hs, vs := 1, 1
	switch m.SubsampleRatio {
	case image.YCbCrSubsampleRatio422:
		cw, hs = (w+1)/2, 2
	case image.YCbCrSubsampleRatio420:
		cw, ch, hs, vs = (w+1)/2, (h+1)/2, 2, 2
	case image.YCbCrSubsampleRatio440:
		ch, vs = (h+1)/2, 2
	case image.YCbCrSubsampleRatio411:
		cw, hs = (w+3)/4, 4
	case image.YCbCrSubsampleRatio410:
		cw, ch, hs, vs = (w+3)/4, (h+1)/2, 4, 2
	}
	row := func(cy int) []byte { return c[m.COffset(b.Min.X, b.Min.Y+cy*vs):][:cw] }
	fancy := hs == 2 && cw >= 2
	switch {
	case fancy && vs == 1: // h2v1_fancy_upsample
		for y := range h {
			h2v1(row(y), out[y*w:(y+1)*w])
		}
	case fancy && vs == 2 && ch >= 1: // h2v2_fancy_upsample
		tmp := make([]byte, 2*cw)
		for y := range h {
			cy := y / 2
			near := cy - 1 // the upper output row blends the row above
			if y%2 == 1 {
				near = cy + 1
			}
			near = min(max(near, 0), ch-1) // libjpeg repeats the edge rows
			h2v2(row(cy), row(near), out[y*w:(y+1)*w], tmp)
		}
	default:
		for y := range h {
			r := row(y / vs)
			o := out[y*w : (y+1)*w]
			for x := range o {
				o[x] = r[x/hs]
			}
		}
	}
	return out
}

// h2v1 doubles a row with jdsample.c's triangle filter (3/4 and 1/4 of the
// two nearest samples, alternately rounding up and down); dst is cut to the
// image's width.
func h2v1(in, dst []byte) {
	n := len(in)
	full := make([]byte, 2*n)
	v := int(in[0])
	full[0], full[1] = in[0], byte((v*3+int(in[1])+2)>>2)
	for i := 1; i < n-1; i++ {
		v := int(in[i]) * 3
		full[2*i] = byte((v + int(in[i-1]) + 1) >> 2)
		full[2*i+1] = byte((v + int(in[i+1]) + 2) >> 2)
	}
	v = int(in[n-1])
	full[2*n-2], full[2*n-1] = byte((v*3+int(in[n-2])+1)>>2), in[n-1]
	copy(dst, full)
}

// h2v2 is jdsample.c's h2v2_fancy_upsample for one output row: in0 is the
// nearest chroma row, in1 the next nearest (above for upper rows, below for
// lower ones).
func h2v2(in0, in1, dst, full []byte) {
	n := len(in0)
	col := func(i int) int { return int(in0[i])*3 + int(in1[i]) }
	this, next := col(0), col(1)
	full[0], full[1] = byte((this*4+8)>>4), byte((this*3+next+7)>>4)
	last := this
	this = next
	for i := 1; i < n-1; i++ {
		next = col(i + 1)
		full[2*i] = byte((this*3 + last + 8) >> 4)
		full[2*i+1] = byte((this*3 + next + 7) >> 4)
		last, this = this, next
	}
	full[2*n-2], full[2*n-1] = byte((this*3+last+8)>>4), byte((this*4+7)>>4)
	copy(dst, full[:len(dst)])
}
