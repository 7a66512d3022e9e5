package colour

// Reference profiles built from their published definitions, for tests,
// benchmarks and callers that need a well-known profile's bytes.

// AdobeRGB returns an Adobe RGB (1998) profile: D65, primaries from the
// Adobe RGB (1998) specification, gamma 563/256.
func AdobeRGB() ([]byte, error) {
	return NewRGB("Adobe RGB (1998)", D65, XY{0.64, 0.33}, XY{0.21, 0.71}, XY{0.15, 0.06}, Gamma(563.0/256))
}

// DisplayP3 returns a Display P3 profile: D65, DCI-P3 primaries, the sRGB
// transfer function.
func DisplayP3() ([]byte, error) {
	return NewRGB("Display P3", D65, XY{0.680, 0.320}, XY{0.265, 0.690}, XY{0.150, 0.060}, SRGBCurve)
}

// ProPhotoRGB returns a ProPhoto (ROMM) RGB profile: D50, ROMM primaries,
// gamma 1.8 (ignoring ROMM's short linear toe).
func ProPhotoRGB() ([]byte, error) {
	return NewRGB("ProPhoto RGB", D50, XY{0.7347, 0.2653}, XY{0.1596, 0.8404}, XY{0.0366, 0.0001}, Gamma(1.8))
}

// GrayGamma22 returns a grey profile with a D50 white and gamma 2.2, what
// Photoshop calls "Gray Gamma 2.2".
func GrayGamma22() ([]byte, error) { return NewGray("Gray Gamma 2.2", D50, Gamma(2.2)) }

// DotGain20 returns a grey profile shaped like Photoshop's "Dot Gain 20%":
// a print curve in which a 50% dot prints as about 70% ink, modelled as a
// power curve of 2.6 with a linear toe. It is an approximation of the shape,
// not Adobe's table.
func DotGain20() ([]byte, error) {
	return NewGray("Dot Gain 20% (approximation)", D50, ToneCurve{Gamma: 2.6, A: 1 / 1.02, B: 0.02 / 1.02, C: 1 / 30.0, D: 0.03})
}
