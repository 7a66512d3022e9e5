package imageio

import (
	"image"

	"golang.org/x/image/draw"
)

// ResizeBilinear scales src to exactly w x h, ignoring aspect ratio, with
// draw.BiLinear. Unlike ApproxBiLinear, BiLinear widens its filter when
// shrinking, so large downscales do not alias (moiré on fabric, jagged text);
// this matches the antialiased resize that model preprocessing assumes.
// Non-positive w or h give an empty image.
func ResizeBilinear(src image.Image, w, h int) *image.NRGBA {
	return scale(draw.BiLinear, src, w, h)
}

// Thumbnail scales src down so that its longer side is maxSide, keeping the
// aspect ratio, with draw.CatmullRom (sharper than bilinear, worth it for
// images people look at). It never enlarges: a src that already fits is
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
	return scale(draw.CatmullRom, src, max(tw, 1), max(th, 1))
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
	k.Scale(rgbaView(dst), dst.Rect, src, src.Bounds(), draw.Src, nil)
	unpremultiplyRow(dst.Pix, dst.Pix)
	return dst
}

// Resize scales src to exactly w x h with draw.CatmullRom: sharper than bilinear, for
// images people look at (an x4 model output brought down to x2, a style-transfer
// output brought back to the input's size).
func Resize(src image.Image, w, h int) *image.NRGBA {
	return scale(draw.CatmullRom, src, w, h)
}
