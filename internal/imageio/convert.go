package imageio

import (
	"image"
	"image/color"

	"golang.org/x/image/draw"
)

// ToNRGBA returns a new *image.NRGBA copy of src with its origin moved to
// (0, 0). src is never shared with the result.
func ToNRGBA(src image.Image) *image.NRGBA { return toNRGBA(src, false) }

// toNRGBA converts src; with reuse set, an *image.NRGBA that is already
// tightly packed at (0, 0) is returned as is, which saves a full copy for
// decoded PNGs.
func toNRGBA(src image.Image, reuse bool) *image.NRGBA {
	b := src.Bounds()
	if n, ok := src.(*image.NRGBA); ok && reuse && b.Min == (image.Point{}) && n.Stride == 4*b.Dx() {
		return n
	}
	w, h := b.Dx(), b.Dy()
	dst := image.NewNRGBA(image.Rect(0, 0, w, h))
	if w == 0 || h == 0 {
		return dst
	}
	switch s := src.(type) {
	case *image.NRGBA:
		for y := 0; y < h; y++ {
			copy(dst.Pix[y*dst.Stride:(y+1)*dst.Stride], s.Pix[s.PixOffset(b.Min.X, b.Min.Y+y):])
		}
	case *image.RGBA:
		for y := 0; y < h; y++ {
			off := s.PixOffset(b.Min.X, b.Min.Y+y)
			unpremultiplyRow(dst.Pix[y*dst.Stride:(y+1)*dst.Stride], s.Pix[off:off+4*w])
		}
	case *image.YCbCr, *image.Gray, *image.CMYK:
		// Opaque, so premultiplied and straight alpha are the same bytes: let
		// image/draw's tuned RGBA fast paths write straight into dst.Pix.
		draw.Draw(rgbaView(dst), dst.Rect, src, b.Min, draw.Src)
	case *image.NYCbCrA:
		// WebP with alpha. Its colour channels are not premultiplied, so
		// convert the YCbCr part as opaque and then copy alpha in; going
		// through color.Color would premultiply and round twice.
		draw.Draw(rgbaView(dst), dst.Rect, &s.YCbCr, b.Min, draw.Src)
		for y := 0; y < h; y++ {
			a := s.A[s.AOffset(b.Min.X, b.Min.Y+y):]
			row := dst.Pix[y*dst.Stride:]
			for x := 0; x < w; x++ {
				row[4*x+3] = a[x]
			}
		}
	case *image.Paletted:
		var lut [256][4]byte // indices past the palette decode as transparent
		for i, c := range s.Palette {
			if i == len(lut) {
				break
			}
			if c != nil {
				n := color.NRGBAModel.Convert(c).(color.NRGBA)
				lut[i] = [4]byte{n.R, n.G, n.B, n.A}
			}
		}
		for y := 0; y < h; y++ {
			idx := s.Pix[s.PixOffset(b.Min.X, b.Min.Y+y):][:w]
			row := dst.Pix[y*dst.Stride:][:4*w]
			for x, i := range idx {
				copy(row[4*x:4*x+4], lut[i][:])
			}
		}
	default:
		// 16-bit PNGs and rarer types: slower, but correct.
		draw.Draw(dst, dst.Rect, src, b.Min, draw.Src)
	}
	return dst
}

// rgbaView shares n's pixels as an *image.RGBA, for code that has fast paths
// only for RGBA destinations. Bytes written through it are premultiplied.
func rgbaView(n *image.NRGBA) *image.RGBA {
	return &image.RGBA{Pix: n.Pix, Stride: n.Stride, Rect: n.Rect}
}

// unpremultiplyRow converts premultiplied RGBA bytes to straight alpha with
// the same rounding as color.NRGBAModel. dst and src may be the same slice.
func unpremultiplyRow(dst, src []byte) {
	for i := 0; i+4 <= len(src) && i+4 <= len(dst); i += 4 {
		s := src[i : i+4 : i+4]
		d := dst[i : i+4 : i+4]
		switch a := uint32(s[3]); a {
		case 0xff:
			d[0], d[1], d[2], d[3] = s[0], s[1], s[2], 0xff
		case 0:
			d[0], d[1], d[2], d[3] = 0, 0, 0, 0
		default:
			d[0] = uint8(uint32(s[0]) * 0xffff / a >> 8)
			d[1] = uint8(uint32(s[1]) * 0xffff / a >> 8)
			d[2] = uint8(uint32(s[2]) * 0xffff / a >> 8)
			d[3] = uint8(a)
		}
	}
}
