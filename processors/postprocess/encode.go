package postprocess

import (
	"bytes"
	"fmt"
	"image"
	"image/jpeg"
	"io"

	"github.com/gen2brain/webp"

	"github.com/creativeai-studio/studio/internal/colour"
	"github.com/creativeai-studio/studio/internal/imageio"
	"github.com/creativeai-studio/studio/schemas"
)

// WebPMethod is libwebp's speed/size trade-off for webp results (0 fastest, 6
// smallest). 2 writes files within a few percent of the default 4's in about half
// its time (BENCHMARKS.md, Output formats).
const WebPMethod = 2

// Encode writes img, whose pixels are sRGB, as the job's output format says: on a
// copy, transparent pixels are first flattened onto out.Background when it is set
// (always for jpeg: it has no alpha channel), then the pixels are converted into
// profile's colour space and the profile is embedded; a nil profile leaves them sRGB
// (tagged so in PNG; untagged JPEG and WebP are sRGB by definition). A grey profile
// writes a grey JPEG; WebP has no grey, so a webp result with a grey profile is
// written sRGB. img itself is not changed.
func Encode(w io.Writer, img *image.NRGBA, out schemas.OutputFormat, profile *colour.Profile) error {
	if out.Format == schemas.FormatWebP && profile != nil && profile.Space() == colour.SpaceGray {
		profile = nil
	}
	if out.Format == schemas.FormatJPEG && out.Background == nil {
		white := [3]uint8{255, 255, 255}
		out.Background = &white
	}
	if out.Background != nil {
		img = Flatten(img, *out.Background)
	}
	if profile != nil {
		conv := imageio.ToNRGBA(img)
		if err := profile.FromSRGB(conv); err != nil {
			return fmt.Errorf("convert to the colour profile %q: %w", profile.Name(), err)
		}
		img = conv
	}
	switch out.Format {
	case schemas.FormatPNG, "":
		return imageio.EncodePNGTagged(w, img, profile)
	case schemas.FormatJPEG:
		return encodeJPEG(w, img, out.Quality, profile)
	case schemas.FormatWebP:
		return encodeWebP(w, img, out.Quality, profile)
	}
	return fmt.Errorf("no encoder for format %q: use png, jpeg or webp", out.Format)
}

// encodeJPEG writes an opaque image (Flatten) as a baseline 4:2:0 JPEG with
// image/jpeg.
func encodeJPEG(w io.Writer, img *image.NRGBA, quality int, profile *colour.Profile) error {
	var src image.Image = asRGBA(img) // opaque: the same bytes, and image/jpeg's fast path
	if profile != nil && profile.Space() == colour.SpaceGray {
		src = grayOf(img)
	}
	if profile == nil {
		if err := jpeg.Encode(w, src, &jpeg.Options{Quality: quality}); err != nil {
			return fmt.Errorf("encode JPEG: %w", err)
		}
		return nil
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, src, &jpeg.Options{Quality: quality}); err != nil {
		return fmt.Errorf("encode JPEG: %w", err)
	}
	tagged, err := imageio.EmbedProfile(imageio.FormatJPEG, buf.Bytes(), profile.Bytes())
	if err != nil {
		return fmt.Errorf("embed the colour profile in the JPEG: %w", err)
	}
	_, err = w.Write(tagged)
	return err
}

// encodeWebP writes lossy WebP (VP8, with a losslessly compressed alpha plane when the
// image has any transparency) through gen2brain/webp: libwebp, loaded from the system
// when libwebp.so is installed, else run as WebAssembly in wazero (no cgo either way).
func encodeWebP(w io.Writer, img *image.NRGBA, quality int, profile *colour.Profile) error {
	if img.Rect.Min != (image.Point{}) || img.Stride != 4*img.Rect.Dx() {
		img = imageio.ToNRGBA(img) // the encoder reads Pix as packed rows
	}
	var buf bytes.Buffer
	if err := webp.Encode(&buf, img, webp.Options{Quality: quality, Method: WebPMethod}); err != nil {
		return fmt.Errorf("encode WebP: %w", err)
	}
	data := buf.Bytes()
	if profile != nil {
		var err error
		if data, err = imageio.EmbedProfile(imageio.FormatWebP, data, profile.Bytes()); err != nil {
			return fmt.Errorf("embed the colour profile in the WebP: %w", err)
		}
	}
	_, err := w.Write(data)
	return err
}

// Flatten composites img over an opaque background colour (sRGB, in 8-bit sRGB
// values as browsers blend) and returns the opaque result; an opaque img is returned
// as is.
func Flatten(img *image.NRGBA, bg [3]uint8) *image.NRGBA {
	if !hasAlpha(img) {
		return img
	}
	b := img.Bounds()
	w := b.Dx()
	out := image.NewNRGBA(image.Rect(0, 0, w, b.Dy()))
	for y := range b.Dy() {
		src := img.Pix[(y)*img.Stride : y*img.Stride+4*w]
		dst := out.Pix[y*out.Stride : y*out.Stride+4*w]
		for x := 0; x < 4*w; x += 4 {
			a := uint32(src[x+3])
			for c := range 3 {
				dst[x+c] = uint8((uint32(src[x+c])*a + uint32(bg[c])*(255-a) + 127) / 255)
			}
			dst[x+3] = 255
		}
	}
	return out
}

// asRGBA views an opaque NRGBA image as RGBA (premultiplied and plain are the
// same bytes when every alpha is 255).
func asRGBA(img *image.NRGBA) *image.RGBA {
	return &image.RGBA{Pix: img.Pix, Stride: img.Stride, Rect: img.Rect}
}

// grayOf takes the red channel of an image whose channels are equal (pixels
// converted into a grey profile).
func grayOf(img *image.NRGBA) *image.Gray {
	b := img.Bounds()
	g := image.NewGray(image.Rect(0, 0, b.Dx(), b.Dy()))
	for y := range b.Dy() {
		row := img.Pix[y*img.Stride:]
		for x := range b.Dx() {
			g.Pix[y*g.Stride+x] = row[4*x]
		}
	}
	return g
}
