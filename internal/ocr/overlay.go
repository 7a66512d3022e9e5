package ocr

import (
	"image"
	"image/color"
	"math"

	"github.com/creativeai-studio/studio/schemas"
)

// Overlay returns a copy of img, made opaque, with every line's box outlined.
func Overlay(img *image.NRGBA, lines []schemas.OCRLine) *image.NRGBA {
	b := img.Bounds()
	out := image.NewNRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	copy(out.Pix, img.Pix)
	for i := 3; i < len(out.Pix); i += 4 {
		out.Pix[i] = 255
	}
	thick := max(1, min(b.Dx(), b.Dy())/300)
	ink := color.NRGBA{R: 230, G: 20, B: 90, A: 255}
	for _, l := range lines {
		for k := range 4 {
			a, c := l.Box[k], l.Box[(k+1)%4]
			line(out, float64(a[0]), float64(a[1]), float64(c[0]), float64(c[1]), thick, ink)
		}
	}
	return out
}

// line draws a segment thick pixels wide.
func line(img *image.NRGBA, x0, y0, x1, y1 float64, thick int, c color.NRGBA) {
	n := int(math.Max(math.Abs(x1-x0), math.Abs(y1-y0))) + 1
	r := thick / 2
	for i := 0; i <= n; i++ {
		t := float64(i) / float64(n)
		cx, cy := int(math.Round(x0+(x1-x0)*t)), int(math.Round(y0+(y1-y0)*t))
		for dy := -r; dy <= thick-1-r; dy++ {
			for dx := -r; dx <= thick-1-r; dx++ {
				if p := (image.Point{cx + dx, cy + dy}); p.In(img.Rect) {
					img.SetNRGBA(p.X, p.Y, c)
				}
			}
		}
	}
}
