package imageio

import (
	"image"

	"golang.org/x/image/draw"
)

// ResizeBilinear scales src to exactly w x h, ignoring aspect ratio, with
// draw.BiLinear's filter. Unlike ApproxBiLinear, BiLinear widens its filter
// when shrinking, so large downscales do not alias (moiré on fabric, jagged
// text); this matches the antialiased resize that model preprocessing
// assumes. It does draw's arithmetic in fixed point, several times faster,
// and gives its results but for a level in a few pixels
// (TestResizeBilinearMatchesDraw). A src other than *image.NRGBA is
// converted with ToNRGBA first. Non-positive w or h give an empty image, an
// empty src a transparent w x h one.
func ResizeBilinear(src image.Image, w, h int) *image.NRGBA {
	if w <= 0 || h <= 0 {
		return image.NewNRGBA(image.Rectangle{})
	}
	n, ok := src.(*image.NRGBA)
	if !ok {
		n = ToNRGBA(src)
	}
	return resizeNRGBA(n, w, h)
}

// Thumbnail scales src down so that its longer side is maxSide, keeping the
// aspect ratio, with draw.CatmullRom (sharper than bilinear, worth it for
// images people look at). An *image.NRGBA src at least four times the
// thumbnail's size on both axes is first shrunk by averaging blocks of
// pixels, which is much cheaper and looks the same. It never enlarges: a src that already fits is
// copied. A non-positive maxSide or empty src gives an empty image.
func Thumbnail(src image.Image, maxSide int) *image.NRGBA {
	b := src.Bounds()
	w, h := b.Dx(), b.Dy()
	if maxSide <= 0 || w <= 0 || h <= 0 {
		return image.NewNRGBA(image.Rectangle{})
	}
	if w <= maxSide && h <= maxSide {
		return ToNRGBA(src)
	}
	tw, th := maxSide, maxSide
	if w >= h {
		th = int((int64(h)*int64(maxSide) + int64(w)/2) / int64(w))
	} else {
		tw = int((int64(w)*int64(maxSide) + int64(h)/2) / int64(h))
	}
	tw, th = max(tw, 1), max(th, 1)
	// The kernel widens with the scale factor, so scaling straight from a
	// large source costs in proportion to its area: 65 ms from 2048x2048 to
	// 256x256. Averaging k x k blocks first costs a few adds a pixel, and
	// leaving the kernel at least a 2x reduction keeps its antialiasing and
	// sharpness: results stay within half a level on average of scaling
	// straight (TestThumbnailBoxFilterStaysCloseToKernelOnly) in a fifth of
	// the time (BenchmarkThumbnail).
	if n, ok := src.(*image.NRGBA); ok {
		if k := min(w/(2*tw), h/(2*th)); k >= 2 {
			src = boxShrink(n, k)
		}
	}
	return scale(draw.CatmullRom, src, tw, th)
}

// boxShrink returns src reduced k times on both axes, each pixel the mean of
// a k x k block. It averages premultiplied colour, as the kernel scalers do,
// so that transparent pixels, whatever colour they hold, do not bleed into
// their neighbours. The rows and columns left over when a side is not a
// multiple of k (fewer than k) are dropped evenly from both edges.
func boxShrink(src *image.NRGBA, k int) *image.RGBA {
	w, h := src.Rect.Dx()/k, src.Rect.Dy()/k
	x0, y0 := src.Rect.Min.X+src.Rect.Dx()%k/2, src.Rect.Min.Y+src.Rect.Dy()%k/2
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	// Sums are divided by multiplying with 32-bit fixed-point reciprocals:
	// colour sums are of c*a, up to 255*255 per pixel, alpha sums of a.
	n := uint64(k * k)
	invA, invC := (1<<32+n/2)/n, (1<<32+255*n/2)/(255*n)
	sums := make([]uint64, 4*w)
	for y := range h {
		clear(sums)
		for sy := range k {
			row := src.Pix[src.PixOffset(x0, y0+y*k+sy):][:4*k*w]
			for x := range w {
				var r, g, b, a uint64
				for p := row[4*k*x : 4*k*(x+1)]; len(p) >= 4; p = p[4:] {
					pa := uint64(p[3])
					r += uint64(p[0]) * pa
					g += uint64(p[1]) * pa
					b += uint64(p[2]) * pa
					a += pa
				}
				s := sums[4*x : 4*x+4 : 4*x+4]
				s[0] += r
				s[1] += g
				s[2] += b
				s[3] += a
			}
		}
		out := dst.Pix[y*dst.Stride : y*dst.Stride+4*w]
		for x := range w {
			s := sums[4*x : 4*x+4 : 4*x+4]
			d := out[4*x : 4*x+4 : 4*x+4]
			a := min((s[3]*invA+1<<31)>>32, 0xff)
			// Rounding can put colour one above alpha, which premultiplied
			// colour must never be.
			d[0] = uint8(min((s[0]*invC+1<<31)>>32, a))
			d[1] = uint8(min((s[1]*invC+1<<31)>>32, a))
			d[2] = uint8(min((s[2]*invC+1<<31)>>32, a))
			d[3] = uint8(a)
		}
	}
	return dst
}

func scale(k *draw.Kernel, src image.Image, w, h int) *image.NRGBA {
	if w <= 0 || h <= 0 {
		return image.NewNRGBA(image.Rectangle{})
	}
	dst := image.NewNRGBA(image.Rect(0, 0, w, h))
	// x/image/draw is fast only for *image.RGBA destinations (an NRGBA one
	// goes through SetRGBA64 per pixel), and it filters premultiplied colour,
	// which is what keeps transparent edges from bleeding dark fringes. So
	// scale into an RGBA view of dst and un-premultiply in place.
	if !kernelScale(k, rgbaView(dst), src) {
		k.Scale(rgbaView(dst), dst.Rect, src, src.Bounds(), draw.Src, nil)
	}
	unpremultiplyRow(dst.Pix, dst.Pix)
	return dst
}

// Resize scales src to exactly w x h with draw.CatmullRom: sharper than bilinear, for
// images people look at (an x4 model output brought down to x2, a style-transfer
// output brought back to the input's size).
func Resize(src image.Image, w, h int) *image.NRGBA {
	return scale(draw.CatmullRom, src, w, h)
}
