package imageio

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"

	"golang.org/x/image/webp"

	"github.com/creativeai-studio/studio/internal/colour"
)

// Header describes an image as read from its header, without decoding pixels.
type Header struct {
	Format Format
	// Width and Height are the upright size, after Orientation is applied:
	// the size a viewer shows and the size Decode returns.
	Width, Height int
	// Orientation is the EXIF orientation tag as stored (1..8); 1 when the
	// file has none or is not a JPEG.
	Orientation int
	// Profile is the embedded ICC colour profile, checked and ready to
	// convert; nil when the file has none (its pixels are taken as sRGB).
	// Decode has already converted the pixels it returns to sRGB.
	Profile *colour.Profile
}

// Inspect identifies the format and reads only the header: it checks the file
// size and pixel dimensions against lim before any pixel memory is allocated,
// so a small file that claims a huge image is refused cheaply with
// ErrTooLarge. A JPEG with more than lim.MaxScans scans is refused the same way, as
// its decoding work is pixels × scans; a PNG or WebP over lim's chunk, metadata or
// decoded-bytes bounds too (see chunks.go). It does not verify the pixel data; Decode does.
func Inspect(data []byte, lim Limits) (Header, error) {
	lim = lim.withDefaults()
	f, err := Sniff(data)
	if err != nil {
		return Header{}, err
	}
	// Sniff first so that a 50 MB GIF is told to change format, not to shrink.
	if n := int64(len(data)); n > lim.MaxBytes {
		return Header{}, newError(ErrTooLarge,
			"the file is %s, larger than the %s limit: compress the image or reduce its size and upload it again",
			humanBytes(n), humanBytes(lim.MaxBytes))
	}

	var cfg image.Config
	err = safely(func() error {
		var err error
		cfg, err = configDecoders[f](bytes.NewReader(data))
		return err
	})
	if err != nil {
		return Header{}, corrupt(f, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return Header{}, corrupt(f, fmt.Errorf("header declares %dx%d pixels", cfg.Width, cfg.Height))
	}
	h := Header{Format: f, Width: cfg.Width, Height: cfg.Height, Orientation: orientNormal}
	if f == FormatJPEG {
		if n := jpegScans(data, lim.MaxScans); n > lim.MaxScans {
			return Header{}, newError(ErrTooLarge,
				"the JPEG has more than %d scans (progressive passes), which only makes it slow to decode: re-save it as a baseline (non-progressive) JPEG or with standard progressive settings and upload it again",
				lim.MaxScans)
		}
		h.Orientation = jpegOrientation(data)
	}
	if swapsAxes(h.Orientation) {
		h.Width, h.Height = h.Height, h.Width
	}
	// Checked on the upright size so the message matches what people see.
	if err := checkSize(h.Width, h.Height, lim); err != nil {
		return Header{}, err
	}
	switch f {
	case FormatPNG:
		err = checkPNGWork(data, lim)
	case FormatWebP:
		err = checkWebPWork(data, lim)
	}
	if err != nil {
		return Header{}, err
	}
	if h.Profile, err = parseProfile(f, data, pixelSpace(f, data, cfg), lim.MaxProfileBytes); err != nil {
		return Header{}, err
	}
	return h, nil
}

var configDecoders = map[Format]func(r *bytes.Reader) (image.Config, error){
	FormatJPEG: func(r *bytes.Reader) (image.Config, error) { return jpeg.DecodeConfig(r) },
	FormatPNG:  func(r *bytes.Reader) (image.Config, error) { return png.DecodeConfig(r) },
	FormatWebP: func(r *bytes.Reader) (image.Config, error) { return webp.DecodeConfig(r) },
}

// pixelSpace says whether the file stores grey, RGB or CMYK pixels, which
// its embedded profile must match.
func pixelSpace(f Format, data []byte, cfg image.Config) colour.Space {
	switch f {
	case FormatJPEG:
		switch cfg.ColorModel {
		case color.GrayModel:
			return colour.SpaceGray
		case color.CMYKModel:
			return colour.SpaceCMYK
		}
	case FormatPNG:
		// Grey and grey+alpha colour types; Go decodes the latter to NRGBA.
		if len(data) > 25 && (data[25] == ctGray || data[25] == ctGrayAlpha) {
			return colour.SpaceGray
		}
	}
	return colour.SpaceRGB
}

func checkSize(w, h int, lim Limits) error {
	if w > lim.MaxSide || h > lim.MaxSide || int64(w)*int64(h) > lim.MaxPixels {
		return newError(ErrTooLarge,
			"the image is %dx%d pixels; the limit is %d pixels on the longest side and %s in total: resize it and upload it again",
			w, h, lim.MaxSide, humanPixels(lim.MaxPixels))
	}
	return nil
}

// safely runs a decoder and turns a panic into an error: the codecs are
// well fuzzed, but a crafted upload must never take the process down.
func safely(decode func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("decoder panic: %v", r)
		}
	}()
	return decode()
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

func humanPixels(n int64) string {
	if n >= 1_000_000 {
		return fmt.Sprintf("%.1f megapixels", float64(n)/1e6)
	}
	return fmt.Sprintf("%d pixels", n)
}
