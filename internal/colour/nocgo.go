//go:build !cgo

package colour

import (
	"fmt"
	"image"
)

// Parse returns ErrUnavailable: this build has no Little CMS, and treating a
// profiled image as sRGB would shift its colours silently.
func Parse(icc []byte) (*Profile, error) {
	return nil, fmt.Errorf("%w: rebuild with CGO_ENABLED=1 and liblcms2-dev installed", ErrUnavailable)
}

// SRGB returns ErrUnavailable in a build without cgo.
func SRGB() (*Profile, error) { return nil, unavailable() }

// NewRGB returns ErrUnavailable in a build without cgo.
func NewRGB(desc string, white, red, green, blue XY, trc ToneCurve) ([]byte, error) {
	return nil, unavailable()
}

// NewGray returns ErrUnavailable in a build without cgo.
func NewGray(desc string, white XY, trc ToneCurve) ([]byte, error) { return nil, unavailable() }

// ToSRGB returns ErrUnavailable in a build without cgo.
func (p *Profile) ToSRGB(img *image.NRGBA) error { return unavailable() }

// FromSRGB returns ErrUnavailable in a build without cgo.
func (p *Profile) FromSRGB(img *image.NRGBA) error { return unavailable() }

// CMYKToSRGB returns ErrUnavailable in a build without cgo.
func (p *Profile) CMYKToSRGB(src *image.CMYK) (*image.NRGBA, error) { return nil, unavailable() }

// SRGBReference returns ErrUnavailable in a build without cgo.
func (p *Profile) SRGBReference(img image.Image) ([]Lab, error) { return nil, unavailable() }

// ToLab returns ErrUnavailable in a build without cgo.
func (p *Profile) ToLab(img image.Image) ([]Lab, error) { return nil, unavailable() }

func unavailable() error {
	_, err := Parse(nil)
	return err
}
