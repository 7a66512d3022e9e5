package imageio

import (
	"image"
	"image/color"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestToNRGBAMatchesTheStandardColourModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	byte8 := func() uint8 { return uint8(rng.Uint32()) }
	// An odd rectangle away from the origin exercises stride and offset
	// handling in every fast path.
	r := image.Rect(3, 2, 3+13, 2+7)

	ycbcr := func(ratio image.YCbCrSubsampleRatio) image.Image {
		m := image.NewYCbCr(r, ratio)
		for _, p := range [][]byte{m.Y, m.Cb, m.Cr} {
			for i := range p {
				p[i] = byte8()
			}
		}
		return m
	}
	rgba := image.NewRGBA(r)
	for i := 0; i < len(rgba.Pix); i += 4 {
		a := byte8()
		upTo := func() uint8 { return uint8(rng.IntN(int(a) + 1)) } // valid premultiplied: channel <= alpha
		rgba.Pix[i], rgba.Pix[i+1], rgba.Pix[i+2], rgba.Pix[i+3] = upTo(), upTo(), upTo(), a
	}
	rgba.Pix[3], rgba.Pix[7] = 0, 255 // the two special cases
	nrgba := image.NewNRGBA(image.Rect(0, 0, 40, 40)).SubImage(r).(*image.NRGBA)
	gray := image.NewGray(r)
	cmyk := image.NewCMYK(r)
	paletted := image.NewPaletted(r, color.Palette{red, color.NRGBA{1, 2, 3, 4}, color.Alpha{128}})
	nrgba64 := image.NewNRGBA64(r)
	for _, p := range [][]byte{nrgba.Pix, gray.Pix, cmyk.Pix, nrgba64.Pix} {
		for i := range p {
			p[i] = byte8()
		}
	}
	for i := range paletted.Pix {
		paletted.Pix[i] = byte8() % 3
	}

	tests := []struct {
		name string
		src  image.Image
		tol  uint8
	}{
		{name: "YCbCr 4:2:0 (most JPEGs)", src: ycbcr(image.YCbCrSubsampleRatio420), tol: 1},
		{name: "YCbCr 4:4:4", src: ycbcr(image.YCbCrSubsampleRatio444), tol: 1},
		{name: "YCbCr 4:2:2", src: ycbcr(image.YCbCrSubsampleRatio422), tol: 1},
		{name: "YCbCr 4:1:1 without a fast path", src: ycbcr(image.YCbCrSubsampleRatio411), tol: 1},
		{name: "premultiplied RGBA with every alpha", src: rgba},
		{name: "an NRGBA sub-image", src: nrgba},
		{name: "grey", src: gray},
		{name: "CMYK", src: cmyk, tol: 1},
		{name: "paletted", src: paletted},
		{name: "16-bit NRGBA", src: nrgba64},
	}
	for _, tt := range tests {
		t.Run(tt.name+" converts like color.NRGBAModel", func(t *testing.T) {
			got := ToNRGBA(tt.src)
			require.Equal(t, image.Rect(0, 0, r.Dx(), r.Dy()), got.Rect)
			for y := r.Min.Y; y < r.Max.Y; y++ {
				for x := r.Min.X; x < r.Max.X; x++ {
					want := color.NRGBAModel.Convert(tt.src.At(x, y)).(color.NRGBA)
					assertNear(t, want, got.NRGBAAt(x-r.Min.X, y-r.Min.Y), tt.tol, "pixel (%d, %d)", x, y)
				}
			}
		})
	}
}

func TestToNRGBAKeepsWebPAlphaStraight(t *testing.T) {
	m := image.NewNYCbCrA(image.Rect(1, 1, 5, 4), image.YCbCrSubsampleRatio420)
	for i := range m.Y {
		m.Y[i] = uint8(i * 17)
	}
	for i := range m.Cb {
		m.Cb[i], m.Cr[i] = uint8(100+i), uint8(200-i)
	}
	for i := range m.A {
		m.A[i] = uint8(i * 20)
	}
	got := ToNRGBA(m)
	for y := 1; y < 4; y++ {
		for x := 1; x < 5; x++ {
			c := m.NYCbCrAAt(x, y)
			r, g, b := color.YCbCrToRGB(c.Y, c.Cb, c.Cr)
			assert.Equal(t, color.NRGBA{r, g, b, c.A}, got.NRGBAAt(x-1, y-1), "pixel (%d, %d)", x, y)
		}
	}
}

func TestToNRGBANeverSharesPixels(t *testing.T) {
	src := image.NewNRGBA(image.Rect(0, 0, 2, 2))
	got := ToNRGBA(src)
	got.Pix[0] = 99
	assert.Zero(t, src.Pix[0])
}

func TestToNRGBAOfAnEmptyImageIsEmpty(t *testing.T) {
	assert.True(t, ToNRGBA(image.NewYCbCr(image.Rectangle{}, image.YCbCrSubsampleRatio420)).Rect.Empty())
}
