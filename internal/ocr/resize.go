package ocr

import (
	"image"
	"math"
)

// PaddleOCR's detector input contract (tools/infer/utility.py defaults,
// DetResizeForTest with limit_type "max").
const (
	// DetLimitSide is the longest side the detector sees; larger images shrink to it,
	// smaller ones keep their size.
	DetLimitSide = 960
	// DetMultiple is what both sides are rounded to: the network downsamples by 32.
	DetMultiple = 32
)

// DetSize returns the detector input size for a w x h image, as PaddleOCR's
// resize_image_type0 computes it: scale so the longest side is at most limit (never
// up), truncate, then round each side to the nearest multiple (halves to even, as
// Python's round does), at least one multiple.
func DetSize(w, h, limit, multiple int) (int, int) {
	ratio := 1.0
	if m := max(w, h); m > limit {
		ratio = float64(limit) / float64(m)
	}
	rw, rh := int(float64(w)*ratio), int(float64(h)*ratio)
	round := func(v int) int {
		return max(int(math.RoundToEven(float64(v)/float64(multiple)))*multiple, multiple)
	}
	return round(rw), round(rh)
}

// ResizeLinear resizes src to w x h the way OpenCV's cv2.resize does with INTER_LINEAR,
// which every PaddleOCR preprocessing step uses: the source coordinate of output pixel
// x is (x+0.5)*srcW/w - 0.5 (half-pixel centres), two taps per axis, no antialiasing
// when shrinking, edges clamped. Values are rounded to the nearest level (OpenCV's
// fixed-point arithmetic may differ by one level).
func ResizeLinear(src *image.NRGBA, w, h int) *image.NRGBA {
	sb := src.Bounds()
	sw, sh := sb.Dx(), sb.Dy()
	dst := image.NewNRGBA(image.Rect(0, 0, w, h))
	if w <= 0 || h <= 0 || sw <= 0 || sh <= 0 {
		return dst
	}
	xs, xf := taps(sw, w)
	ys, yf := taps(sh, h)
	row0 := make([]float32, 4*w)
	row1 := make([]float32, 4*w)
	hpass := func(sy int, out []float32) {
		line := src.Pix[(sy)*src.Stride:]
		for x := range w {
			a, f := 4*xs[x], xf[x]
			b := a
			if xs[x]+1 < sw {
				b = a + 4
			}
			for c := range 4 {
				out[4*x+c] = float32(line[a+c])*(1-f) + float32(line[b+c])*f
			}
		}
	}
	for y := range h {
		sy, f := ys[y], yf[y]
		hpass(sy, row0)
		if sy+1 < sh && f > 0 {
			hpass(sy+1, row1)
		} else {
			copy(row1, row0)
		}
		out := dst.Pix[y*dst.Stride : y*dst.Stride+4*w]
		for i := range out {
			out[i] = clamp8(row0[i]*(1-f) + row1[i]*f)
		}
	}
	return dst
}

// taps returns, per output index, the first source index and the weight of the
// second, with OpenCV's half-pixel mapping and clamping.
func taps(srcN, dstN int) ([]int, []float32) {
	idx := make([]int, dstN)
	frac := make([]float32, dstN)
	scale := float64(srcN) / float64(dstN)
	for i := range dstN {
		f := (float64(i)+0.5)*scale - 0.5
		s := int(math.Floor(f))
		f -= float64(s)
		if s < 0 {
			s, f = 0, 0
		}
		if s >= srcN-1 {
			s, f = srcN-1, 0
		}
		idx[i], frac[i] = s, float32(f)
	}
	return idx, frac
}

func clamp8(v float32) uint8 {
	switch {
	case !(v > 0):
		return 0
	case v >= 255:
		return 255
	}
	return uint8(v + 0.5)
}
