package imageio

import "image"

// Orient returns img transformed as EXIF orientation o (1 to 8) prescribes:
// stored pixels become upright. For 1 or an unknown value it returns img
// itself.
func Orient(img *image.NRGBA, o int) *image.NRGBA { return orient(img, o) }

// Unorient undoes Orient: an upright image becomes the pixels as stored
// under orientation o. Decode returns upright images; a model whose
// reference never rotates (manifest input.orientation: stored) sees these.
func Unorient(img *image.NRGBA, o int) *image.NRGBA { return orient(img, inverseOrientation(o)) }

// OrientGray is Orient for an 8-bit plane such as a mask.
func OrientGray(m *image.Gray, o int) *image.Gray {
	if o <= orientNormal || o > orientRotate270 {
		return m
	}
	w, h := m.Rect.Dx(), m.Rect.Dy()
	// The alpha channel of an NRGBA view carries the plane through orient.
	tmp := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		row := m.Pix[m.PixOffset(m.Rect.Min.X, m.Rect.Min.Y+y):][:w]
		for x, v := range row {
			tmp.Pix[y*tmp.Stride+4*x+3] = v
		}
	}
	r := orient(tmp, o)
	out := image.NewGray(r.Rect)
	for i := range out.Pix {
		out.Pix[i] = r.Pix[4*i+3]
	}
	return out
}

// SwapsAxes reports whether EXIF orientation o exchanges width and height.
func SwapsAxes(o int) bool { return swapsAxes(o) }

// inverseOrientation returns the orientation that undoes o: the two
// quarter turns undo each other, every other transform undoes itself.
func inverseOrientation(o int) int {
	switch o {
	case orientRotate90:
		return orientRotate270
	case orientRotate270:
		return orientRotate90
	}
	return o
}
