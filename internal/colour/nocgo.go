//go:build !cgo

package colour

import (
	"fmt"
	"image"
)

// Parse accepts only sRGB profiles (recognised from their colorants and
// curves in pure Go; their pixels need no conversion) and returns
// ErrUnavailable for any other: this build has no Little CMS, and treating a
// profiled image as sRGB would shift its colours silently.
func Parse(icc []byte) (*Profile, error) {
	if looksSRGB(icc) {
		p := newProfile(icc, SpaceRGB, descriptionOf(icc))
		p.srgb = true
		return p, nil
	}
	return nil, unavailable()
}

// SRGB returns ErrUnavailable in a build without cgo.
func SRGB() (*Profile, error) { return nil, unavailable() }

// NewRGB returns ErrUnavailable in a build without cgo.
func NewRGB(desc string, white, red, green, blue XY, trc ToneCurve) ([]byte, error) {
	return nil, unavailable()
}

// NewGray returns ErrUnavailable in a build without cgo.
func NewGray(desc string, white XY, trc ToneCurve) ([]byte, error) { return nil, unavailable() }

// ToSRGB leaves the pixels of an sRGB profile as they are and returns
// ErrUnavailable for any other in a build without cgo.
func (p *Profile) ToSRGB(img *image.NRGBA) error { return p.identity() }

// FromSRGB leaves the pixels of an sRGB profile as they are and returns
// ErrUnavailable for any other in a build without cgo.
func (p *Profile) FromSRGB(img *image.NRGBA) error { return p.identity() }

func (p *Profile) identity() error {
	if p.srgb {
		return nil
	}
	return unavailable()
}

// CMYKToSRGB returns ErrUnavailable in a build without cgo.
func (p *Profile) CMYKToSRGB(src *image.CMYK) (*image.NRGBA, error) { return nil, unavailable() }

// SRGBReference returns ErrUnavailable in a build without cgo.
func (p *Profile) SRGBReference(img image.Image) ([]Lab, error) { return nil, unavailable() }

// ToLab returns ErrUnavailable in a build without cgo.
func (p *Profile) ToLab(img image.Image) ([]Lab, error) { return nil, unavailable() }

func unavailable() error {
	return fmt.Errorf("%w: rebuild with CGO_ENABLED=1 and liblcms2-dev installed", ErrUnavailable)
}
