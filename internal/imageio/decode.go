package imageio

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
	"io"

	"golang.org/x/image/webp"

	ljpeg "github.com/creativeai-studio/studio/internal/imageio/jpeg"
)

var decoders = map[Format]func(r io.Reader) (image.Image, error){
	FormatJPEG: ljpeg.Decode, // libjpeg-turbo's arithmetic, as model references decode
	FormatPNG:  png.Decode,
	FormatWebP: webp.Decode,
}

// Decode inspects data against lim (see Inspect), decodes it and returns the
// upright image: the EXIF orientation is applied, so the result is
// Header.Width x Header.Height with its origin at (0, 0). A damaged or
// truncated file gives ErrCorrupt, never a panic. Memory use is bounded by
// lim.MaxPixels: at peak about 10 bytes per pixel, for a rotated JPEG.
func Decode(data []byte, lim Limits) (*image.NRGBA, Header, error) {
	return DecodeContext(context.Background(), data, lim)
}

// DecodeContext is Decode that gives up when ctx ends: the codecs read their input in
// chunks (of at most 512 bytes here), and each read checks ctx, so a decode past its deadline stops
// within one chunk's work and returns ctx's error (wrapped, not ErrCorrupt). Go's
// codecs take no context; this is how a stage deadline reaches them.
func DecodeContext(ctx context.Context, data []byte, lim Limits) (*image.NRGBA, Header, error) {
	if err := ctx.Err(); err != nil {
		return nil, Header{}, fmt.Errorf("imageio: decode not started: %w", err)
	}
	h, err := Inspect(data, lim)
	if err != nil {
		return nil, Header{}, err
	}
	if h.Format == FormatPNG {
		if err := checkPNGData(data, lim.withDefaults()); err != nil {
			return nil, Header{}, err
		}
	}
	var img image.Image
	if h.Format == FormatPNG {
		// The common PNGs decode faster on their own path (pngdecode.go); the rest,
		// damaged ones included, and any panic go to image/png.
		var fast *image.NRGBA
		err = safely(func() error {
			var err error
			fast, err = decodePNGFast(ctx, data)
			return err
		})
		if cerr := ctx.Err(); err != nil && cerr != nil {
			return nil, Header{}, fmt.Errorf("imageio: %s decode stopped: %w", h.Format.name(), cerr)
		}
		if err == nil {
			img = fast
		}
	}
	if img == nil {
		err = safely(func() error {
			var err error
			img, err = decoders[h.Format](ctxReader{ctx: ctx, r: bytes.NewReader(data)})
			return err
		})
	}
	if cerr := ctx.Err(); err != nil && cerr != nil {
		return nil, Header{}, fmt.Errorf("imageio: %s decode stopped: %w", h.Format.name(), cerr)
	}
	if err != nil {
		return nil, Header{}, corrupt(h.Format, err)
	}
	w, ht := h.Width, h.Height
	if swapsAxes(h.Orientation) {
		w, ht = ht, w
	}
	// The codecs re-read the header they were given, so this only fires if
	// a codec and its DecodeConfig disagree; checking is cheap insurance.
	if b := img.Bounds(); b.Dx() != w || b.Dy() != ht {
		return nil, Header{}, corrupt(h.Format, fmt.Errorf("header says %dx%d but pixel data is %dx%d", w, ht, b.Dx(), b.Dy()))
	}
	out, err := toSRGB(img, h)
	if err != nil {
		return nil, Header{}, err
	}
	return orient(out, h.Orientation), h, nil
}

// toSRGB converts decoded pixels to sRGB NRGBA through the embedded profile,
// if any. A CMYK JPEG with a profile is converted from its CMYK values
// directly; without one, image/jpeg's naive CMYK to RGB formula applies.
func toSRGB(img image.Image, h Header) (*image.NRGBA, error) {
	if h.Profile == nil {
		return toNRGBA(img, true), nil
	}
	var out *image.NRGBA
	var err error
	if c, ok := img.(*image.CMYK); ok {
		out, err = h.Profile.CMYKToSRGB(c)
	} else {
		out = toNRGBA(img, true)
		err = h.Profile.ToSRGB(out)
	}
	if err != nil {
		return nil, &inputError{kind: ErrCorrupt, cause: err,
			msg: fmt.Sprintf("the %s file's pixels cannot be converted from its colour profile %q (%v): convert the image to sRGB and upload it again", h.Format.name(), h.Profile.Name(), err)}
	}
	return out, nil
}

// orient returns src transformed as EXIF orientation o prescribes; for o == 1
// (or an unknown value) it returns src itself.
//
// Every orientation maps source pixel (x, y) to a destination byte offset
// that is linear in x and y, so one loop with per-case strides handles all
// eight: dst = base + x*dx + y*dy.
func orient(src *image.NRGBA, o int) *image.NRGBA {
	if o <= orientNormal || o > orientRotate270 {
		return src
	}
	w, h := src.Rect.Dx(), src.Rect.Dy()
	dw, dh := w, h
	if swapsAxes(o) {
		dw, dh = h, w
	}
	dst := image.NewNRGBA(image.Rect(0, 0, dw, dh))
	s := dst.Stride // 4*dw
	var base, dx, dy int
	switch o {
	case orientFlipH: // (x, y) -> (w-1-x, y)
		base, dx, dy = 4*(w-1), -4, s
	case orientRotate180: // (x, y) -> (w-1-x, h-1-y)
		base, dx, dy = (h-1)*s+4*(w-1), -4, -s
	case orientFlipV: // (x, y) -> (x, h-1-y)
		base, dx, dy = (h-1)*s, 4, -s
	case orientTranspose: // (x, y) -> (y, x)
		base, dx, dy = 0, s, 4
	case orientRotate90: // (x, y) -> (h-1-y, x)
		base, dx, dy = 4*(h-1), s, -4
	case orientTransverse: // (x, y) -> (h-1-y, w-1-x)
		base, dx, dy = (w-1)*s+4*(h-1), -s, -4
	case orientRotate270: // (x, y) -> (y, w-1-x)
		base, dx, dy = (w-1)*s, -s, 4
	}
	for y := 0; y < h; y++ {
		row := src.Pix[y*src.Stride : y*src.Stride+4*w]
		d := base + y*dy
		for i := 0; i < len(row); i += 4 {
			p := dst.Pix[d : d+4 : d+4]
			p[0], p[1], p[2], p[3] = row[i], row[i+1], row[i+2], row[i+3]
			d += dx
		}
	}
	return dst
}

// ctxChunk is the most one read hands a codec. The codecs ask for 4 KiB; a progressive
// JPEG scan can be 12 bytes, so 4 KiB can hold hundreds of scans of decoding work
// between two checks of ctx, 512 bytes a few dozen. Short reads cost the codecs nothing
// measurable (they buffer anyway).
const ctxChunk = 512

// ctxReader fails its reads once ctx has ended.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	if len(p) > ctxChunk {
		p = p[:ctxChunk]
	}
	return c.r.Read(p)
}
