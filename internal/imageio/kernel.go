package imageio

import (
	"image"
	"math"

	"golang.org/x/image/draw"
)

// kernelScale is k.Scale(dst, dst.Rect, src, src.Bounds(), draw.Src, nil) for an
// *image.NRGBA or *image.RGBA src, with x/image/draw's arithmetic step for step, so
// the levels are its levels, bit for bit (TestKernelScaleIsDraws): the same weights
// (newDistrib), the same float64 sums in the same order, the same rounding. What
// differs is the work around them: each source pixel's premultiplied 16-bit value is
// computed once rather than once per tap, and the vertical pass runs along rows
// rather than down columns of the float buffer. It reports false, having done
// nothing, for other src types.
func kernelScale(k *draw.Kernel, dst *image.RGBA, src image.Image) bool {
	var pix []byte
	var stride int
	var premultiplied bool
	sr := src.Bounds()
	switch s := src.(type) {
	case *image.NRGBA:
		pix, stride = s.Pix[s.PixOffset(sr.Min.X, sr.Min.Y):], s.Stride
	case *image.RGBA:
		pix, stride, premultiplied = s.Pix[s.PixOffset(sr.Min.X, sr.Min.Y):], s.Stride, true
	default:
		return false
	}
	dw, dh, sw, sh := dst.Rect.Dx(), dst.Rect.Dy(), sr.Dx(), sr.Dy()
	if dw <= 0 || dh <= 0 || sw <= 0 || sh <= 0 {
		return true
	}
	hs, hc := newDistrib(k, dw, sw)
	vs, vc := newDistrib(k, dh, sh)

	// Horizontal: each source row into dw premultiplied float pixels.
	tmp := make([][4]float64, dw*sh)
	row := make([][4]float64, sw)
	for y := range sh {
		in := pix[y*stride : y*stride+4*sw]
		for x := range row {
			p := in[4*x : 4*x+4 : 4*x+4]
			if premultiplied {
				row[x] = [4]float64{float64(uint32(p[0]) * 0x101), float64(uint32(p[1]) * 0x101), float64(uint32(p[2]) * 0x101), float64(uint32(p[3]) * 0x101)}
				continue
			}
			pa := uint32(p[3]) * 0x101
			row[x] = [4]float64{float64(uint32(p[0]) * pa / 0xff), float64(uint32(p[1]) * pa / 0xff), float64(uint32(p[2]) * pa / 0xff), float64(pa)}
		}
		out := tmp[y*dw : (y+1)*dw]
		for x, s := range hs {
			var pr, pg, pb, pa float64
			for _, c := range hc[s.i:s.j] {
				p := &row[c.coord]
				pr += float64(p[0] * c.weight)
				pg += float64(p[1] * c.weight)
				pb += float64(p[2] * c.weight)
				pa += float64(p[3] * c.weight)
			}
			out[x] = [4]float64{pr * s.invFFFF, pg * s.invFFFF, pb * s.invFFFF, pa * s.invFFFF}
		}
	}

	// Vertical: each destination row from its contributing rows, summed per pixel
	// in contribution order, as draw does.
	acc := make([][4]float64, dw)
	for y, s := range vs {
		clear(acc)
		for _, c := range vc[s.i:s.j] {
			in := tmp[c.coord*dw : (c.coord+1)*dw]
			for x := range acc {
				p, a := &in[x], &acc[x]
				a[0] += float64(p[0] * c.weight)
				a[1] += float64(p[1] * c.weight)
				a[2] += float64(p[2] * c.weight)
				a[3] += float64(p[3] * c.weight)
			}
		}
		out := dst.Pix[y*dst.Stride : y*dst.Stride+4*dw]
		for x, a := range acc {
			pr, pg, pb, pa := a[0], a[1], a[2], a[3]
			if pr > pa {
				pr = pa
			}
			if pg > pa {
				pg = pa
			}
			if pb > pa {
				pb = pa
			}
			d := out[4*x : 4*x+4 : 4*x+4]
			d[0] = uint8(ftou(pr*s.inv) >> 8)
			d[1] = uint8(ftou(pg*s.inv) >> 8)
			d[2] = uint8(ftou(pb*s.inv) >> 8)
			d[3] = uint8(ftou(pa*s.inv) >> 8)
		}
	}
	return true
}

// kSource is one destination column's (or row's) range of contributions and their
// inverse total weight, plain and divided by 0xffff (x/image/draw's source).
type kSource struct {
	i, j         int
	inv, invFFFF float64
}

// kContrib is the weight of a source column or row (x/image/draw's contrib).
type kContrib struct {
	coord  int
	weight float64
}

// newDistrib is x/image/draw's newDistrib: how sw source columns (or rows) are
// distributed over dw destination ones under kernel q, the kernel widened when
// shrinking.
func newDistrib(q *draw.Kernel, dw, sw int) ([]kSource, []kContrib) {
	scale := float64(sw) / float64(dw)
	halfWidth, kernelArgScale := q.Support, 1.0
	if scale > 1 {
		halfWidth *= scale
		kernelArgScale = 1 / scale
	}
	sources := make([]kSource, dw)
	centers := make([]float64, dw)
	n := 0
	for x := range sources {
		center := float64((float64(x)+0.5)*scale) - 0.5
		i := int(int32(math.Floor(center - halfWidth)))
		i = max(i, 0)
		j := int(int32(math.Ceil(center + halfWidth)))
		if j > sw {
			j = max(sw, i)
		}
		sources[x], centers[x] = kSource{i: i, j: j}, center
		n += j - i
	}
	contribs := make([]kContrib, 0, n)
	for k, b := range sources {
		total := 0.0
		l := len(contribs)
		for coord := b.i; coord < b.j; coord++ {
			t := (centers[k] - float64(coord)) * kernelArgScale
			if t < 0 {
				t = -t
			}
			if t >= q.Support {
				continue
			}
			w := q.At(t)
			if w == 0 {
				continue
			}
			total += w
			contribs = append(contribs, kContrib{coord, w})
		}
		total = 1 / total
		sources[k] = kSource{i: l, j: len(contribs), inv: total, invFFFF: total / 0xffff}
	}
	return sources, contribs
}

// ftou is x/image/draw's conversion of [0, 1] to [0, 0xffff].
func ftou(f float64) uint16 {
	i := int32(float64(0xffff*f) + 0.5)
	if i > 0xffff {
		return 0xffff
	}
	if i > 0 {
		return uint16(i)
	}
	return 0
}
