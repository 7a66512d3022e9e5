// Package colour converts pixels between an image's embedded ICC profile and
// sRGB, the colour space the models are trained on and browsers assume.
//
// The conversions are done by Little CMS 2 (lcms2, MIT licence) through cgo:
// it reads every ICC v2 and v4 profile a camera, scanner or design tool
// writes (matrix/TRC RGB, grey TRC, LUT-based RGB and CMYK), which a hand-written
// matrix-and-gamma converter would not. Conversions use the relative
// colorimetric intent with black point compensation, Photoshop's default:
// in-gamut colours keep their appearance and the darkest black of the source
// maps to the darkest black of the destination.
//
// Built without cgo, Parse returns ErrUnavailable: a profiled image is then
// refused rather than silently read as sRGB.
//
// Profiles are immutable and safe for concurrent use. Transforms are built
// once per profile and kind and kept in a bounded, thread-safe LRU cache.
package colour

import "errors"

// Sentinel errors; every error from this package wraps one of them.
var (
	// ErrInvalid means the profile bytes are not a readable ICC profile.
	ErrInvalid = errors.New("colour: damaged ICC profile")
	// ErrUnsupported means the profile is readable but describes a colour
	// space or device class the service does not convert (Lab, XYZ,
	// multichannel, device links, ...), or does not fit the image.
	ErrUnsupported = errors.New("colour: unsupported ICC profile")
	// ErrUnavailable means this build has no colour management (built
	// without cgo, so without Little CMS).
	ErrUnavailable = errors.New("colour: colour management not available in this build (built without cgo)")
)

// Space is the colour space of a profile's device side.
type Space int

// The device colour spaces the package converts.
const (
	SpaceRGB Space = iota + 1
	SpaceGray
	SpaceCMYK
)

func (s Space) String() string {
	switch s {
	case SpaceRGB:
		return "RGB"
	case SpaceGray:
		return "grey"
	case SpaceCMYK:
		return "CMYK"
	}
	return "unknown"
}

// XY is a CIE 1931 chromaticity.
type XY struct{ X, Y float64 }

// Lab is a CIE L*a*b* colour relative to D50, the ICC connection space.
type Lab struct{ L, A, B float64 }

// ToneCurve is the ICC parametric curve of type 4 (IEC 61966-2.1 form):
// y = (a*x+b)^Gamma for x >= D, else C*x. A pure power curve has A=1, B=0,
// C=0, D=0.
type ToneCurve struct{ Gamma, A, B, C, D float64 }

// Gamma returns the pure power curve y = x^g.
func Gamma(g float64) ToneCurve { return ToneCurve{Gamma: g, A: 1} }

// SRGBCurve is the sRGB transfer function, also used by Display P3.
var SRGBCurve = ToneCurve{Gamma: 2.4, A: 1 / 1.055, B: 0.055 / 1.055, C: 1 / 12.92, D: 0.04045}

// Well-known white points and primaries, for NewRGB and NewGray.
var (
	D65 = XY{0.3127, 0.3290}
	D50 = XY{0.3457, 0.3585}
)
