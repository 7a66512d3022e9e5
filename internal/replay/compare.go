package replay

import (
	"errors"
	"fmt"
	"image"
	"math"
)

// ErrSizeMismatch is returned when two images that should be compared pixel by pixel
// differ in size: the shadow model changed the output's geometry.
var ErrSizeMismatch = errors.New("replay: the images differ in size")

// MaxPSNR is the PSNR reported for identical images (their true PSNR is infinite,
// which JSON and most dashboards cannot carry).
const MaxPSNR = 100.0

// MaskIoU is the intersection over union of two masks, each pixel in the mask when its
// alpha is at least half (128 of 255): the cut-out of remove-background. Two empty
// masks are identical (1).
func MaskIoU(a, b *image.NRGBA) (float64, error) {
	if err := sameSize(a, b); err != nil {
		return 0, err
	}
	var inter, union int
	w, h := a.Rect.Dx(), a.Rect.Dy()
	for y := range h {
		ra, rb := a.Pix[y*a.Stride:], b.Pix[y*b.Stride:]
		for x := range w {
			ina, inb := ra[4*x+3] >= 128, rb[4*x+3] >= 128
			if ina && inb {
				inter++
			}
			if ina || inb {
				union++
			}
		}
	}
	if union == 0 {
		return 1, nil
	}
	return float64(inter) / float64(union), nil
}

// PSNR is the peak signal-to-noise ratio of b against a over the colour channels, in
// dB (peak 255); identical images give MaxPSNR.
func PSNR(a, b *image.NRGBA) (float64, error) {
	if err := sameSize(a, b); err != nil {
		return 0, err
	}
	var sum float64
	w, h := a.Rect.Dx(), a.Rect.Dy()
	for y := range h {
		ra, rb := a.Pix[y*a.Stride:], b.Pix[y*b.Stride:]
		for x := range w {
			for c := range 3 {
				d := float64(ra[4*x+c]) - float64(rb[4*x+c])
				sum += d * d
			}
		}
	}
	n := float64(3 * w * h)
	if n == 0 || sum == 0 {
		return MaxPSNR, nil
	}
	return math.Min(MaxPSNR, 10*math.Log10(255*255/(sum/n))), nil
}

// SSIM is the mean structural similarity of the two images' luma (Rec. 601 weights),
// as Wang et al. (2004) define it: an 11×11 Gaussian window with σ 1.5, K1 0.01 and K2
// 0.03 on the 0..255 range, averaged over every position where the window fits (the
// whole image when it is smaller than the window). 1 means identical.
func SSIM(a, b *image.NRGBA) (float64, error) {
	if err := sameSize(a, b); err != nil {
		return 0, err
	}
	w, h := a.Rect.Dx(), a.Rect.Dy()
	if w == 0 || h == 0 {
		return 1, nil
	}
	x, y := luma(a), luma(b)
	xx, yy, xy := make([]float64, len(x)), make([]float64, len(x)), make([]float64, len(x))
	for i := range x {
		xx[i], yy[i], xy[i] = x[i]*x[i], y[i]*y[i], x[i]*y[i]
	}
	n := 11
	if m := min(w, h); m < n {
		n = m - (1 - m%2) // odd, and no larger than the image
	}
	k := gaussian(n, 1.5)
	mx, my := blur(x, w, h, k), blur(y, w, h, k)
	sxx, syy, sxy := blur(xx, w, h, k), blur(yy, w, h, k), blur(xy, w, h, k)
	const c1, c2 = (0.01 * 255) * (0.01 * 255), (0.03 * 255) * (0.03 * 255)
	var sum float64
	for i := range mx {
		vx, vy, cov := sxx[i]-mx[i]*mx[i], syy[i]-my[i]*my[i], sxy[i]-mx[i]*my[i]
		sum += (2*mx[i]*my[i] + c1) * (2*cov + c2) / ((mx[i]*mx[i] + my[i]*my[i] + c1) * (vx + vy + c2))
	}
	return sum / float64(len(mx)), nil
}

func sameSize(a, b *image.NRGBA) error {
	if a.Rect.Dx() != b.Rect.Dx() || a.Rect.Dy() != b.Rect.Dy() {
		return fmt.Errorf("%w: %dx%d and %dx%d", ErrSizeMismatch, a.Rect.Dx(), a.Rect.Dy(), b.Rect.Dx(), b.Rect.Dy())
	}
	return nil
}

func luma(m *image.NRGBA) []float64 {
	w, h := m.Rect.Dx(), m.Rect.Dy()
	out := make([]float64, w*h)
	for y := range h {
		r := m.Pix[y*m.Stride:]
		for x := range w {
			out[y*w+x] = 0.299*float64(r[4*x]) + 0.587*float64(r[4*x+1]) + 0.114*float64(r[4*x+2])
		}
	}
	return out
}

// gaussian is a normalised 1-D Gaussian kernel of n taps (n odd).
func gaussian(n int, sigma float64) []float64 {
	k := make([]float64, n)
	var sum float64
	for i := range k {
		d := float64(i - n/2)
		k[i] = math.Exp(-d * d / (2 * sigma * sigma))
		sum += k[i]
	}
	for i := range k {
		k[i] /= sum
	}
	return k
}

// blur filters v (w×h) with the separable kernel k and keeps only the positions where
// the whole window fits ("valid"): (w-len(k)+1)×(h-len(k)+1) values.
func blur(v []float64, w, h int, k []float64) []float64 {
	n := len(k)
	ow, oh := w-n+1, h-n+1
	rows := make([]float64, ow*h)
	for y := range h {
		for x := range ow {
			var s float64
			for i, kv := range k {
				s += kv * v[y*w+x+i]
			}
			rows[y*ow+x] = s
		}
	}
	out := make([]float64, ow*oh)
	for y := range oh {
		for x := range ow {
			var s float64
			for i, kv := range k {
				s += kv * rows[(y+i)*ow+x]
			}
			out[y*ow+x] = s
		}
	}
	return out
}

// CER is the character error rate of hyp against ref: the edit distance (insertions,
// deletions, substitutions of Unicode code points) over ref's length. An empty ref
// gives 0 when hyp is empty too, else 1.
func CER(ref, hyp string) float64 {
	r, h := []rune(ref), []rune(hyp)
	if len(r) == 0 {
		if len(h) == 0 {
			return 0
		}
		return 1
	}
	prev, cur := make([]int, len(h)+1), make([]int, len(h)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(r); i++ {
		cur[0] = i
		for j := 1; j <= len(h); j++ {
			sub := prev[j-1]
			if r[i-1] != h[j-1] {
				sub++
			}
			cur[j] = min(sub, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return float64(prev[len(h)]) / float64(len(r))
}
