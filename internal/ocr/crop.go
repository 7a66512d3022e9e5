package ocr

import (
	"image"
	"math"
)

// Crop cuts the quadrilateral q out of img as an upright rectangle, as PaddleOCR's
// get_rotate_crop_image does: the output is as wide as q's longer horizontal side and
// as tall as its longer vertical side (truncated), filled through the perspective
// transform that maps the rectangle onto q, sampled bicubically (OpenCV's INTER_CUBIC,
// a = -0.75) with edge pixels replicated. A crop at least 1.5 times taller than wide is
// turned 90 degrees anticlockwise: it is vertical text.
func Crop(img *image.NRGBA, q Quad) *image.NRGBA {
	w := int(math.Max(dist(q[0], q[1]), dist(q[2], q[3])))
	h := int(math.Max(dist(q[0], q[3]), dist(q[1], q[2])))
	w, h = max(w, 1), max(h, 1)
	dstPts := Quad{{0, 0}, {float64(w), 0}, {float64(w), float64(h)}, {0, float64(h)}}
	m, ok := perspective(dstPts, q)
	out := image.NewNRGBA(image.Rect(0, 0, w, h))
	if !ok {
		return out
	}
	for y := range h {
		for x := range w {
			fx, fy := float64(x), float64(y)
			d := m[6]*fx + m[7]*fy + m[8]
			if d == 0 {
				continue
			}
			sx := (m[0]*fx + m[1]*fy + m[2]) / d
			sy := (m[3]*fx + m[4]*fy + m[5]) / d
			cubic(img, sx, sy, out.Pix[y*out.Stride+4*x:y*out.Stride+4*x+4])
		}
	}
	if float64(h)/float64(w) >= 1.5 {
		out = rot90(out)
	}
	return out
}

// perspective returns the 3x3 homography (row-major) mapping the four points from onto
// the four points to, as cv2.getPerspectiveTransform solves it.
func perspective(from, to Quad) ([9]float64, bool) {
	var a [8][9]float64
	for i := range 4 {
		x, y, u, v := from[i].X, from[i].Y, to[i].X, to[i].Y
		a[i] = [9]float64{x, y, 1, 0, 0, 0, -x * u, -y * u, u}
		a[i+4] = [9]float64{0, 0, 0, x, y, 1, -x * v, -y * v, v}
	}
	// Gaussian elimination with partial pivoting.
	for c := range 8 {
		p := c
		for r := c + 1; r < 8; r++ {
			if math.Abs(a[r][c]) > math.Abs(a[p][c]) {
				p = r
			}
		}
		if math.Abs(a[p][c]) < 1e-12 {
			return [9]float64{}, false
		}
		a[c], a[p] = a[p], a[c]
		for r := range 8 {
			if r == c {
				continue
			}
			f := a[r][c] / a[c][c]
			for k := c; k < 9; k++ {
				a[r][k] -= f * a[c][k]
			}
		}
	}
	var m [9]float64
	for i := range 8 {
		m[i] = a[i][8] / a[i][i]
	}
	m[8] = 1
	return m, true
}

// cubicWeights are OpenCV's bicubic weights for a fractional offset t.
func cubicWeights(t float64) [4]float64 {
	const a = -0.75
	w0 := ((a*(t+1)-5*a)*(t+1)+8*a)*(t+1) - 4*a
	w1 := ((a+2)*t-(a+3))*t*t + 1
	w2 := ((a+2)*(1-t)-(a+3))*(1-t)*(1-t) + 1
	return [4]float64{w0, w1, w2, 1 - w0 - w1 - w2}
}

// cubic samples img at (sx, sy) bicubically, replicating the border, into px (RGBA).
func cubic(img *image.NRGBA, sx, sy float64, px []uint8) {
	b := img.Bounds()
	x0, y0 := int(math.Floor(sx)), int(math.Floor(sy))
	wx, wy := cubicWeights(sx-float64(x0)), cubicWeights(sy-float64(y0))
	var acc [4]float64
	for j := range 4 {
		yy := clampI(y0-1+j, 0, b.Dy()-1)
		row := img.Pix[yy*img.Stride:]
		for i := range 4 {
			xx := clampI(x0-1+i, 0, b.Dx()-1)
			wgt := wx[i] * wy[j]
			for c := range 4 {
				acc[c] += wgt * float64(row[4*xx+c])
			}
		}
	}
	for c := range 4 {
		px[c] = clamp8(float32(acc[c]))
	}
}

// rot90 turns img 90 degrees anticlockwise (numpy's rot90).
func rot90(img *image.NRGBA) *image.NRGBA {
	w, h := img.Bounds().Dx(), img.Bounds().Dy()
	out := image.NewNRGBA(image.Rect(0, 0, h, w))
	for y := range h {
		for x := range w {
			// (x, y) goes to (y, w-1-x).
			copy(out.Pix[(w-1-x)*out.Stride+4*y:(w-1-x)*out.Stride+4*y+4], img.Pix[y*img.Stride+4*x:y*img.Stride+4*x+4])
		}
	}
	return out
}

// rot180 turns img upside down (cv2.rotate with ROTATE_180).
func rot180(img *image.NRGBA) *image.NRGBA {
	w, h := img.Bounds().Dx(), img.Bounds().Dy()
	out := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			copy(out.Pix[(h-1-y)*out.Stride+4*(w-1-x):(h-1-y)*out.Stride+4*(w-1-x)+4], img.Pix[y*img.Stride+4*x:y*img.Stride+4*x+4])
		}
	}
	return out
}
