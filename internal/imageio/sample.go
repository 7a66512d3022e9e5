package imageio

import (
	"errors"
	"fmt"
	"image"
	"math"
)

// Kernel names the interpolation of a Resampling.
type Kernel string

// The kernels a Resampling implements.
const (
	// KernelNearest copies the source pixel whose area holds the sample point.
	KernelNearest Kernel = "nearest"
	// KernelBilinear is the triangle kernel: without antialiasing, the two-tap
	// interpolation between the four source pixels around the sample point.
	KernelBilinear Kernel = "bilinear"
	// KernelBicubic is Keys' cubic convolution with a = -0.5 (as PIL).
	KernelBicubic Kernel = "bicubic"
	// KernelArea averages the source area each destination pixel covers,
	// weighting partly covered source pixels by the covered fraction.
	KernelArea Kernel = "area"
)

// Coordinates is how a destination pixel index maps to a source position.
type Coordinates string

// The coordinate conventions, as ONNX Resize names them (x is a destination
// index, scale = source size / destination size, n and m the source and
// destination sizes).
const (
	// AlignCorners maps x to x*(n-1)/(m-1): the corner pixels' centres meet.
	AlignCorners Coordinates = "align_corners"
	// HalfPixel maps pixel centres: (x+0.5)*scale - 0.5, clamped at 0 for
	// the two-tap bilinear (as PyTorch and OpenCV do).
	HalfPixel Coordinates = "half_pixel"
	// Asymmetric maps x to x*scale: the top-left corners meet and the image
	// shifts by half a pixel (what TensorFlow 1 and @imgly's resize do).
	Asymmetric Coordinates = "asymmetric"
)

// Rounding is how an interpolated value becomes an 8-bit level.
type Rounding string

// The roundings: both clamp to 0..255 first.
const (
	// Round goes to the nearest level, halves up (JavaScript's Math.round).
	Round Rounding = "round"
	// Truncate drops the fraction (a JavaScript Uint8Array store).
	Truncate Rounding = "truncate"
)

// Resampling is one exactly specified resize: the kernel, where destination
// pixels sample the source, whether the kernel widens when shrinking, and
// how results become 8-bit levels. Its zero value is invalid; Validate says
// why. Methods are safe for concurrent use and run on the calling
// goroutine.
//
// Arithmetic is float64, so results are the conventions' own, not
// approximations: the two-tap bilinear (bilinear without antialias)
// evaluates (1-dx)(1-dy)p1 + dx(1-dy)p2 + (1-dx)dy p3 + dx dy p4 in that
// order, which gives the bit-exact levels of @imgly/background-removal's
// tensorResizeBilinear under Asymmetric and Round. The other kernels filter
// one axis, then the other. Source indexes beyond an edge repeat the edge
// pixel, except with Antialias, where taps off the edge are dropped and the
// rest renormalised (as PIL and PyTorch's antialias do).
type Resampling struct {
	Kernel      Kernel
	Coordinates Coordinates
	// Antialias widens bilinear and bicubic kernels by the scale factor when
	// shrinking, so every source pixel counts.
	Antialias bool
	Rounding  Rounding
}

// ErrBadResampling is wrapped by Validate's errors.
var ErrBadResampling = errors.New("bad resampling")

// Validate reports an unknown kernel, convention or rounding, and
// combinations that mean nothing: antialias with nearest or area, and area
// with other than half_pixel coordinates.
func (r Resampling) Validate() error {
	switch r.Kernel {
	case KernelNearest, KernelBilinear, KernelBicubic, KernelArea:
	default:
		return fmt.Errorf("%w: kernel %q: use nearest, bilinear, bicubic or area", ErrBadResampling, r.Kernel)
	}
	switch r.Coordinates {
	case AlignCorners, HalfPixel, Asymmetric:
	default:
		return fmt.Errorf("%w: coordinates %q: use align_corners, half_pixel or asymmetric", ErrBadResampling, r.Coordinates)
	}
	switch r.Rounding {
	case Round, Truncate:
	default:
		return fmt.Errorf("%w: rounding %q: use round or truncate", ErrBadResampling, r.Rounding)
	}
	if r.Antialias && (r.Kernel == KernelNearest || r.Kernel == KernelArea) {
		return fmt.Errorf("%w: antialias applies to bilinear and bicubic, not %s: set it false", ErrBadResampling, r.Kernel)
	}
	if r.Kernel == KernelArea && r.Coordinates != HalfPixel {
		return fmt.Errorf("%w: area averages the area under each pixel, so its coordinates are half_pixel, not %s", ErrBadResampling, r.Coordinates)
	}
	return nil
}

// String is the convention in manifest words, e.g. "bilinear/asymmetric/antialias=false/round".
func (r Resampling) String() string {
	return fmt.Sprintf("%s/%s/antialias=%t/%s", r.Kernel, r.Coordinates, r.Antialias, r.Rounding)
}

// ResizeNRGBA scales src to exactly w x h, every channel alike (colour is
// not premultiplied: what a model sees is the stored colour). It panics on
// an invalid Resampling; non-positive w or h or an empty src give an empty
// image.
func (r Resampling) ResizeNRGBA(src *image.NRGBA, w, h int) *image.NRGBA {
	r.mustValidate()
	sw, sh := src.Rect.Dx(), src.Rect.Dy()
	if w <= 0 || h <= 0 || sw <= 0 || sh <= 0 {
		return image.NewNRGBA(image.Rectangle{})
	}
	dst := image.NewNRGBA(image.Rect(0, 0, w, h))
	r.resample(plane{src.Pix[src.PixOffset(src.Rect.Min.X, src.Rect.Min.Y):], src.Stride, sw, sh}, plane{dst.Pix, dst.Stride, w, h}, 4)
	return dst
}

// ResizePlanes scales src to exactly w x h as ResizeNRGBA does and writes
// its red, green and blue levels to r, g and b, each w*h bytes in rows of w:
// the channel planes a model's [1,3,H,W] input is made of, alpha dropped.
// The levels are ResizeNRGBA's, bit for bit; the two-tap bilinear of exact
// binary fractions (IS-Net's 1024x1024) writes the planes straight, without
// the interleaved image or its alpha channel. It panics on an invalid
// Resampling or planes shorter than w*h; an empty src gives zero levels.
func (r Resampling) ResizePlanes(src *image.NRGBA, w, h int, red, green, blue []byte) {
	r.mustValidate()
	if w <= 0 || h <= 0 {
		return
	}
	if len(red) < w*h || len(green) < w*h || len(blue) < w*h {
		panic(fmt.Sprintf("imageio: ResizePlanes to %dx%d needs planes of %d bytes", w, h, w*h))
	}
	sw, sh := src.Rect.Dx(), src.Rect.Dy()
	if sw <= 0 || sh <= 0 {
		for _, p := range [][]byte{red, green, blue} {
			clear(p[:w*h])
		}
		return
	}
	sp := plane{src.Pix[src.PixOffset(src.Rect.Min.X, src.Rect.Min.Y):], src.Stride, sw, sh}
	if r.Kernel == KernelBilinear && !r.Antialias {
		tx, ty := taps(r.Coordinates, sw, w), taps(r.Coordinates, sh, h)
		if fx, fy := fixedTaps(tx), fixedTaps(ty); fx != nil && fy != nil {
			outs := []chanOut{{red, w, 1}, {green, w, 1}, {blue, w, 1}}
			twoTapFixed(sp, 4, outs, tx, ty, fx, fy, r.Rounding)
			return
		}
	}
	dst := image.NewNRGBA(image.Rect(0, 0, w, h))
	r.resample(sp, plane{dst.Pix, dst.Stride, w, h}, 4)
	for i := range w * h {
		p := dst.Pix[4*i : 4*i+3 : 4*i+3]
		red[i], green[i], blue[i] = p[0], p[1], p[2]
	}
}

// ResizeGray scales src, an 8-bit plane such as a mask, to exactly w x h.
// It panics on an invalid Resampling; non-positive w or h or an empty src
// give an empty image.
func (r Resampling) ResizeGray(src *image.Gray, w, h int) *image.Gray {
	r.mustValidate()
	sw, sh := src.Rect.Dx(), src.Rect.Dy()
	if w <= 0 || h <= 0 || sw <= 0 || sh <= 0 {
		return image.NewGray(image.Rectangle{})
	}
	dst := image.NewGray(image.Rect(0, 0, w, h))
	r.resample(plane{src.Pix[src.PixOffset(src.Rect.Min.X, src.Rect.Min.Y):], src.Stride, sw, sh}, plane{dst.Pix, dst.Stride, w, h}, 1)
	return dst
}

func (r Resampling) mustValidate() {
	if err := r.Validate(); err != nil {
		panic(err)
	}
}

// plane is interleaved 8-bit pixels: w x h of c channels, rows stride apart.
type plane struct {
	pix    []byte
	stride int
	w, h   int
}

func (r Resampling) resample(src, dst plane, c int) {
	switch {
	case r.Kernel == KernelNearest:
		nearest(src, dst, c, r.Coordinates)
	case r.Kernel == KernelBilinear && !r.Antialias:
		twoTap(src, dst, c, r.Coordinates, r.Rounding)
	default:
		r.separable(src, dst, c)
	}
}

// position returns the source position (in pixel-index units, pixel i's
// centre at i) that destination index x samples, for n source and m
// destination pixels. The asymmetric one is computed as @imgly does:
// x * (n/m), the quotient rounded first.
func position(conv Coordinates, x, n, m int) float64 {
	switch conv {
	case AlignCorners:
		if m == 1 {
			return 0
		}
		return float64(x) * float64(n-1) / float64(m-1)
	case HalfPixel:
		return (float64(x)+0.5)*(float64(n)/float64(m)) - 0.5
	default:
		return float64(x) * (float64(n) / float64(m))
	}
}

// level turns an interpolated value into an 8-bit level.
func level(v float64, rnd Rounding) byte {
	if !(v > 0) {
		return 0
	}
	if v >= 255 {
		return 255
	}
	f := math.Floor(v)
	if rnd == Round && v-f >= 0.5 {
		f++
	}
	return byte(f)
}

// nearest copies, for each destination pixel, the source pixel whose area
// [i, i+1) holds the sample point: x*scale (asymmetric), (x+0.5)*scale
// (half_pixel), or the nearest centre, halves up (align_corners).
func nearest(src, dst plane, c int, conv Coordinates) {
	idx := func(x, n, m int) int {
		p := position(conv, x, n, m) + 0.5
		if conv == Asymmetric {
			p -= 0.5
		}
		return min(max(int(math.Floor(p)), 0), n-1)
	}
	xs := make([]int, dst.w)
	for x := range xs {
		xs[x] = c * idx(x, src.w, dst.w)
	}
	for y := range dst.h {
		srow := src.pix[idx(y, src.h, dst.h)*src.stride:]
		drow := dst.pix[y*dst.stride : y*dst.stride+c*dst.w]
		for x, sx := range xs {
			copy(drow[c*x:c*x+c], srow[sx:sx+c])
		}
	}
}

// tap is where a destination index samples along one axis for the two-tap
// bilinear: between source pixels i1 and i2 at fraction d from i1.
type tap struct {
	i1, i2 int
	d, e   float64 // d and 1-d
}

func taps(conv Coordinates, n, m int) []tap {
	t := make([]tap, m)
	for x := range t {
		p := position(conv, x, n, m)
		if conv == HalfPixel {
			p = max(p, 0)
		}
		i1 := max(int(math.Floor(p)), 0)
		i2 := min(int(math.Ceil(p)), n-1)
		d := p - float64(i1)
		t[x] = tap{i1, i2, d, 1 - d}
	}
	return t
}

// twoTap is bilinear interpolation between the four source pixels around
// each sample point, evaluated per pixel in @imgly's order of operations.
// The explicit float64 conversions forbid fused multiply-adds, which would
// change the last bit on some CPUs.
func twoTap(src, dst plane, c int, conv Coordinates, rnd Rounding) {
	tx, ty := taps(conv, src.w, dst.w), taps(conv, src.h, dst.h)
	if fx, fy := fixedTaps(tx), fixedTaps(ty); fx != nil && fy != nil {
		twoTapFixed(src, c, interleaved(dst, c), tx, ty, fx, fy, rnd)
		return
	}
	twoTapFloat(src, dst, c, tx, ty, rnd)
}

// twoTapFloat is twoTap's float64 evaluation, for any taps.
func twoTapFloat(src, dst plane, c int, tx, ty []tap, rnd Rounding) {
	up := 0.0 // added before truncation: Round's halves go up
	if rnd == Round {
		up = 1
	}
	for y, v := range ty {
		r1 := src.pix[v.i1*src.stride:]
		r2 := src.pix[v.i2*src.stride:]
		drow := dst.pix[y*dst.stride : y*dst.stride+c*dst.w]
		for x, u := range tx {
			a := float64(u.e * v.e)
			b := float64(u.d * v.e)
			cc := float64(u.e * v.d)
			d := float64(u.d * v.d)
			o1, o2 := c*u.i1, c*u.i2
			p1, p2 := r1[o1:o1+c:o1+c], r1[o2:o2+c:o2+c]
			p3, p4 := r2[o1:o1+c:o1+c], r2[o2:o2+c:o2+c]
			out := drow[c*x : c*x+c : c*x+c]
			for k := range out {
				s := float64(a*float64(p1[k])) + float64(b*float64(p2[k]))
				s = float64(s + float64(cc*float64(p3[k])))
				s = float64(s + float64(d*float64(p4[k])))
				out[k] = blend8(s, up)
			}
		}
	}
}

// fixedBits is the fraction bits of twoTapFixed's weights. With every
// fraction d a multiple of 2^-fixedBits, the float64 evaluation of twoTap is
// exact: a weight product has at most 2*fixedBits fraction bits, times an
// 8-bit level and summed four times it stays under 2^53. So the integer sum
// of the same products, scaled by 2^(2*fixedBits), is that float value
// exactly, and rounds the same.
const fixedBits = 21

// fixedTaps returns each tap's fraction d scaled to an integer of fixedBits
// fraction bits, or nil when some fraction is not such a multiple (then only
// the float evaluation gives the convention's levels). Destinations of a
// power-of-two size under Asymmetric, such as IS-Net's 1024x1024, always
// qualify: n/m and x*(n/m) are exact binary fractions.
func fixedTaps(t []tap) []uint32 {
	out := make([]uint32, len(t))
	for i, v := range t {
		s := v.d * (1 << fixedBits)
		if !(s >= 0 && s <= 1<<fixedBits) || s != math.Trunc(s) {
			return nil
		}
		out[i] = uint32(s)
	}
	return out
}

// chanOut is where twoTapFixed writes one channel: destination pixel (x, y)
// at pix[y*stride+x*step].
type chanOut struct {
	pix          []byte
	stride, step int
}

// interleaved returns the chanOuts of dst's c interleaved channels.
func interleaved(dst plane, c int) []chanOut {
	outs := make([]chanOut, c)
	for k := range outs {
		outs[k] = chanOut{dst.pix[k:], dst.stride, c}
	}
	return outs
}

// twoTapFixed is twoTap in integer arithmetic for taps whose fractions
// fixedTaps scaled: bit for bit the same levels (see fixedBits). It filters
// each source row in use once, horizontally, into one row per channel, then
// blends two such rows per destination row. It writes src's first
// len(outs) channels (of c) to outs, w pixels a row.
func twoTapFixed(src plane, c int, outs []chanOut, tx, ty []tap, fx, fy []uint32, rnd Rounding) {
	const one = 1 << fixedBits
	w, n := len(tx), len(outs)
	var half uint64 // added before the shift: Round's halves go up
	if rnd == Round {
		half = 1 << (2*fixedBits - 1)
	}
	// Two cached horizontal passes: source rows ia and ib.
	bufA, bufB := make([]uint32, n*w), make([]uint32, n*w)
	ia, ib := -1, -1
	hpass := func(y int, out []uint32) {
		srow := src.pix[y*src.stride : y*src.stride+c*src.w]
		if c == 4 && n >= 3 {
			q0, q1, q2 := out[:w], out[w:2*w], out[2*w:3*w]
			for x, u := range tx {
				d := fx[x]
				e := one - d
				p1 := srow[4*u.i1 : 4*u.i1+3 : 4*u.i1+3]
				p2 := srow[4*u.i2 : 4*u.i2+3 : 4*u.i2+3]
				q0[x] = e*uint32(p1[0]) + d*uint32(p2[0])
				q1[x] = e*uint32(p1[1]) + d*uint32(p2[1])
				q2[x] = e*uint32(p1[2]) + d*uint32(p2[2])
			}
			if n == 3 {
				return
			}
		}
		for k := range n {
			if c == 4 && k < 3 {
				continue
			}
			q := out[k*w : (k+1)*w]
			for x, u := range tx {
				d := fx[x]
				q[x] = (one-d)*uint32(srow[c*u.i1+k]) + d*uint32(srow[c*u.i2+k])
			}
		}
	}
	// row returns source row y filtered, evicting the cached row of lower
	// index (rows only move down), never the one of index keep.
	row := func(y, keep int) []uint32 {
		switch {
		case y == ia:
			return bufA
		case y == ib:
			return bufB
		case ib != keep && (ia == keep || ib < ia):
			ib = y
			hpass(y, bufB)
			return bufB
		}
		ia = y
		hpass(y, bufA)
		return bufA
	}
	for y, v := range ty {
		d := uint64(fy[y])
		e := one - d
		r1 := row(v.i1, -1)
		r2 := row(v.i2, v.i1)
		for k, o := range outs {
			a, b := r1[k*w:(k+1)*w], r2[k*w:(k+1)*w]
			if o.step == 1 {
				drow := o.pix[y*o.stride : y*o.stride+w]
				for x := range drow {
					drow[x] = byte(min((e*uint64(a[x])+d*uint64(b[x])+half)>>(2*fixedBits), 255))
				}
				continue
			}
			drow := o.pix[y*o.stride:]
			for x := range w {
				drow[x*o.step] = byte(min((e*uint64(a[x])+d*uint64(b[x])+half)>>(2*fixedBits), 255))
			}
		}
	}
}

// blend8 is level for a weighted mean of 8-bit values, which never leaves
// 0..255 by more than rounding: the fraction is dropped, and with up = 1 a
// fraction of at least one half rounds up (v - trunc(v) is exact).
func blend8(v, up float64) byte {
	i := int(v)
	if up != 0 && v-float64(i) >= 0.5 {
		i++
	}
	return byte(min(max(i, 0), 255))
}

// weights is one destination index's filter along an axis: source pixel
// idx[k] weighs w[k].
type weights struct {
	idx []int
	w   []float64
}

// kernelAt evaluates the kernel at distance t (in kernel units).
func kernelAt(k Kernel, t float64) float64 {
	t = math.Abs(t)
	switch k {
	case KernelBilinear:
		if t < 1 {
			return 1 - t
		}
	case KernelBicubic:
		const a = -0.5
		switch {
		case t < 1:
			return ((a+2)*t-(a+3))*t*t + 1
		case t < 2:
			return ((a*t-5*a)*t+8*a)*t - 4*a
		}
	}
	return 0
}

// filter returns each destination index's weights along an axis of n
// source and m destination pixels.
func (r Resampling) filter(n, m int) []weights {
	scale := float64(n) / float64(m)
	out := make([]weights, m)
	if r.Kernel == KernelArea {
		// Destination pixel x covers source [x*scale, (x+1)*scale).
		for x := range out {
			lo, hi := float64(x)*scale, float64(x+1)*scale
			for i := max(int(math.Floor(lo)), 0); i < n && float64(i) < hi; i++ {
				if ov := math.Min(hi, float64(i+1)) - math.Max(lo, float64(i)); ov > 0 {
					out[x].idx = append(out[x].idx, i)
					out[x].w = append(out[x].w, ov/scale)
				}
			}
		}
		return out
	}
	radius := 1.0
	if r.Kernel == KernelBicubic {
		radius = 2
	}
	fs := 1.0
	if r.Antialias && scale > 1 {
		fs = scale
	}
	support := radius * fs
	for x := range out {
		p := position(r.Coordinates, x, n, m)
		lo, hi := int(math.Floor(p-support)), int(math.Ceil(p+support))
		total := 0.0
		for i := lo; i <= hi; i++ {
			wt := kernelAt(r.Kernel, (float64(i)-p)/fs)
			if wt == 0 {
				continue
			}
			j := i
			if j < 0 || j >= n {
				if r.Antialias {
					continue // dropped, the rest renormalised
				}
				j = min(max(j, 0), n-1)
			}
			out[x].idx = append(out[x].idx, j)
			out[x].w = append(out[x].w, wt)
			total += wt
		}
		if r.Antialias && total != 0 {
			for k := range out[x].w {
				out[x].w[k] /= total
			}
		}
	}
	return out
}

// separable filters rows into a float buffer of dst.w x src.h, then columns
// into dst, rounding once at the end. Only the source rows some destination
// row reads are filtered.
func (r Resampling) separable(src, dst plane, c int) {
	fx, fy := r.filter(src.w, dst.w), r.filter(src.h, dst.h)
	rowLen := c * dst.w
	need := make([]bool, src.h)
	for _, f := range fy {
		for _, i := range f.idx {
			need[i] = true
		}
	}
	tmp := make([]float64, rowLen*src.h)
	for y := range src.h {
		if !need[y] {
			continue
		}
		srow := src.pix[y*src.stride : y*src.stride+c*src.w]
		trow := tmp[y*rowLen : (y+1)*rowLen]
		for x, f := range fx {
			out := trow[c*x : c*x+c : c*x+c]
			if c == 4 {
				var s0, s1, s2, s3 float64
				for j, i := range f.idx {
					w, p := f.w[j], srow[4*i:4*i+4:4*i+4]
					s0 += w * float64(p[0])
					s1 += w * float64(p[1])
					s2 += w * float64(p[2])
					s3 += w * float64(p[3])
				}
				out[0], out[1], out[2], out[3] = s0, s1, s2, s3
				continue
			}
			for k := range out {
				s := 0.0
				for j, i := range f.idx {
					s += f.w[j] * float64(srow[c*i+k])
				}
				out[k] = s
			}
		}
	}
	acc := make([]float64, rowLen)
	for y, f := range fy {
		clear(acc)
		for j, i := range f.idx {
			wt := f.w[j]
			for k, v := range tmp[i*rowLen : (i+1)*rowLen] {
				acc[k] += wt * v
			}
		}
		drow := dst.pix[y*dst.stride : y*dst.stride+rowLen]
		for k, v := range acc {
			drow[k] = level(v, r.Rounding)
		}
	}
}
