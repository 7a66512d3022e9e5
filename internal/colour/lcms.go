//go:build cgo

package colour

/*
#cgo LDFLAGS: -llcms2
#include <stdlib.h>
#include <lcms2.h>

// Pixel layouts. Grey pixels live in the first byte of a 4-byte RGBA pixel,
// so one NRGBA buffer serves every conversion in place; bytes lcms does not
// own (alpha, the unused G and B of grey) are left as they are.
#define FMT_RGBA  TYPE_RGBA_8
#define FMT_GRAYX (COLORSPACE_SH(PT_GRAY)|CHANNELS_SH(1)|EXTRA_SH(3)|BYTES_SH(1))
#define FMT_CMYK  TYPE_CMYK_8
#define FMT_LAB   TYPE_Lab_DBL

static cmsUInt32Number fmt_rgba(void)  { return FMT_RGBA; }
static cmsUInt32Number fmt_grayx(void) { return FMT_GRAYX; }
static cmsUInt32Number fmt_cmyk(void)  { return FMT_CMYK; }
static cmsUInt32Number fmt_lab(void)   { return FMT_LAB; }
static cmsUInt32Number fmt_rgb_dbl(void) { return TYPE_RGB_DBL; }

static cmsHPROFILE new_rgb(const char *desc, double wx, double wy, const double xy[6], const double curve[5]) {
	cmsCIExyY white = {wx, wy, 1};
	cmsCIExyYTRIPLE prim = {{xy[0], xy[1], 1}, {xy[2], xy[3], 1}, {xy[4], xy[5], 1}};
	cmsToneCurve *c = cmsBuildParametricToneCurve(NULL, 4, curve);
	if (c == NULL) return NULL;
	cmsToneCurve *trc[3] = {c, c, c};
	cmsHPROFILE h = cmsCreateRGBProfile(&white, &prim, trc);
	cmsFreeToneCurve(c);
	if (h == NULL) return NULL;
	cmsMLU *mlu = cmsMLUalloc(NULL, 1);
	cmsMLUsetASCII(mlu, "en", "US", desc);
	cmsWriteTag(h, cmsSigProfileDescriptionTag, mlu);
	cmsMLUfree(mlu);
	return h;
}

static cmsHPROFILE new_gray(const char *desc, double wx, double wy, const double curve[5]) {
	cmsCIExyY white = {wx, wy, 1};
	cmsToneCurve *c = cmsBuildParametricToneCurve(NULL, 4, curve);
	if (c == NULL) return NULL;
	cmsHPROFILE h = cmsCreateGrayProfile(&white, c);
	cmsFreeToneCurve(c);
	if (h == NULL) return NULL;
	cmsMLU *mlu = cmsMLUalloc(NULL, 1);
	cmsMLUsetASCII(mlu, "en", "US", desc);
	cmsWriteTag(h, cmsSigProfileDescriptionTag, mlu);
	cmsMLUfree(mlu);
	return h;
}
*/
import "C"

import (
	"fmt"
	"image"
	"runtime"
	"sync"
	"unsafe"
)

// intent and flags of every pixel conversion; see the package doc.
const (
	intent = C.INTENT_RELATIVE_COLORIMETRIC
	flags  = C.cmsFLAGS_BLACKPOINTCOMPENSATION
)

// Parse reads an ICC profile and checks that it can be converted to sRGB: it
// returns ErrInvalid for bytes lcms cannot read and ErrUnsupported for a
// colour space other than RGB, grey and CMYK or a profile that cannot be
// used as a source (device links, abstract and named-colour profiles). The
// transform it builds to check this is cached for the conversions that
// follow. The bytes are kept, not copied; the caller must not modify them.
func Parse(icc []byte) (*Profile, error) {
	if len(icc) < 132 { // header (128 bytes) and tag count
		return nil, fmt.Errorf("%w: %d bytes is too short for an ICC profile", ErrInvalid, len(icc))
	}
	h := C.cmsOpenProfileFromMem(unsafe.Pointer(&icc[0]), C.cmsUInt32Number(len(icc)))
	if h == nil {
		return nil, fmt.Errorf("%w: Little CMS cannot read it", ErrInvalid)
	}
	defer C.cmsCloseProfile(h)
	var space Space
	switch cs := C.cmsGetColorSpace(h); cs {
	case C.cmsSigRgbData:
		space = SpaceRGB
	case C.cmsSigGrayData:
		space = SpaceGray
	case C.cmsSigCmykData:
		space = SpaceCMYK
	default:
		return nil, fmt.Errorf("%w: device colour space %q; only RGB, grey and CMYK profiles are converted", ErrUnsupported, sigString(uint32(cs)))
	}
	switch cl := C.cmsGetDeviceClass(h); cl {
	case C.cmsSigInputClass, C.cmsSigDisplayClass, C.cmsSigOutputClass, C.cmsSigColorSpaceClass:
	default:
		return nil, fmt.Errorf("%w: profile class %q cannot describe an image's pixels", ErrUnsupported, sigString(uint32(cl)))
	}
	p := newProfile(icc, space, description(h))
	if _, err := transforms.get(p, toSRGB); err != nil {
		return nil, err
	}
	return p, nil
}

// sigString turns an ICC signature such as 'Lab ' into text.
func sigString(s uint32) string {
	return string([]byte{byte(s >> 24), byte(s >> 16), byte(s >> 8), byte(s)})
}

func description(h C.cmsHPROFILE) string {
	var buf [256]C.char
	lang, country := C.CString("en"), C.CString("US")
	defer C.free(unsafe.Pointer(lang))
	defer C.free(unsafe.Pointer(country))
	n := C.cmsGetProfileInfoASCII(h, C.cmsInfoDescription, lang, country, &buf[0], C.cmsUInt32Number(len(buf)))
	if n == 0 {
		return ""
	}
	return C.GoString(&buf[0])
}

var srgb = sync.OnceValues(func() (*Profile, error) {
	h := C.cmsCreate_sRGBProfile()
	if h == nil {
		return nil, fmt.Errorf("colour: Little CMS cannot build the sRGB profile")
	}
	defer C.cmsCloseProfile(h)
	b, err := save(h)
	if err != nil {
		return nil, err
	}
	return newProfile(b, SpaceRGB, description(h)), nil
})

// SRGB returns Little CMS's built-in sRGB (IEC 61966-2.1) profile.
func SRGB() (*Profile, error) { return srgb() }

func save(h C.cmsHPROFILE) ([]byte, error) {
	var n C.cmsUInt32Number
	if C.cmsSaveProfileToMem(h, nil, &n) == 0 || n == 0 {
		return nil, fmt.Errorf("colour: Little CMS cannot serialise the profile")
	}
	buf := C.malloc(C.size_t(n))
	defer C.free(buf)
	if C.cmsSaveProfileToMem(h, buf, &n) == 0 {
		return nil, fmt.Errorf("colour: Little CMS cannot serialise the profile")
	}
	return C.GoBytes(buf, C.int(n)), nil
}

func curveParams(t ToneCurve) [5]C.double {
	return [5]C.double{C.double(t.Gamma), C.double(t.A), C.double(t.B), C.double(t.C), C.double(t.D)}
}

// NewRGB builds a matrix/TRC RGB profile (ICC v4) from its white point,
// primaries and one tone curve for all three channels, and returns its
// bytes: Adobe RGB (1998) is NewRGB("Adobe RGB (1998)", D65, XY{0.64, 0.33},
// XY{0.21, 0.71}, XY{0.15, 0.06}, Gamma(563.0/256)).
func NewRGB(desc string, white, red, green, blue XY, trc ToneCurve) ([]byte, error) {
	cdesc := C.CString(desc)
	defer C.free(unsafe.Pointer(cdesc))
	xy := [6]C.double{C.double(red.X), C.double(red.Y), C.double(green.X), C.double(green.Y), C.double(blue.X), C.double(blue.Y)}
	curve := curveParams(trc)
	h := C.new_rgb(cdesc, C.double(white.X), C.double(white.Y), &xy[0], &curve[0])
	if h == nil {
		return nil, fmt.Errorf("colour: Little CMS cannot build RGB profile %q", desc)
	}
	defer C.cmsCloseProfile(h)
	return save(h)
}

// NewGray builds a grey TRC profile from its white point and tone curve and
// returns its bytes.
func NewGray(desc string, white XY, trc ToneCurve) ([]byte, error) {
	cdesc := C.CString(desc)
	defer C.free(unsafe.Pointer(cdesc))
	curve := curveParams(trc)
	h := C.new_gray(cdesc, C.double(white.X), C.double(white.Y), &curve[0])
	if h == nil {
		return nil, fmt.Errorf("colour: Little CMS cannot build grey profile %q", desc)
	}
	defer C.cmsCloseProfile(h)
	return save(h)
}

// ToSRGB converts img, whose pixels are in p's colour space, to sRGB in
// place. For a grey profile the grey value is read from the red byte and
// written to all three. Alpha is kept. It returns ErrUnsupported for a CMYK
// profile (use CMYKToSRGB).
func (p *Profile) ToSRGB(img *image.NRGBA) error {
	if p.space == SpaceCMYK {
		return fmt.Errorf("%w: a CMYK profile converts CMYK pixels; use CMYKToSRGB", ErrUnsupported)
	}
	pix := img.Pix[img.PixOffset(img.Rect.Min.X, img.Rect.Min.Y):]
	return p.run(toSRGB, pix, img.Stride, img.Rect.Dx(), img.Rect.Dy(), pix, img.Stride)
}

// FromSRGB converts img from sRGB to p's colour space in place: the inverse
// of ToSRGB, for writing a result in the colour space its input came in.
// For a grey profile all three bytes get the grey value. Alpha is kept. It
// returns ErrUnsupported for a CMYK profile: results are never CMYK.
func (p *Profile) FromSRGB(img *image.NRGBA) error {
	if p.space == SpaceCMYK {
		return fmt.Errorf("%w: results are not written in CMYK", ErrUnsupported)
	}
	pix := img.Pix[img.PixOffset(img.Rect.Min.X, img.Rect.Min.Y):]
	w, h := img.Rect.Dx(), img.Rect.Dy()
	if err := p.run(fromSRGB, pix, img.Stride, w, h, pix, img.Stride); err != nil {
		return err
	}
	if p.space == SpaceGray {
		for y := range h {
			row := pix[y*img.Stride : y*img.Stride+4*w]
			for i := 0; i < len(row); i += 4 {
				row[i+1], row[i+2] = row[i], row[i]
			}
		}
	}
	return nil
}

// CMYKToSRGB converts a CMYK image in p's colour space to a new opaque sRGB
// image.
func (p *Profile) CMYKToSRGB(src *image.CMYK) (*image.NRGBA, error) {
	if p.space != SpaceCMYK {
		return nil, fmt.Errorf("%w: a %s profile does not describe CMYK pixels", ErrUnsupported, p.space)
	}
	w, h := src.Rect.Dx(), src.Rect.Dy()
	dst := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := 3; i < len(dst.Pix); i += 4 {
		dst.Pix[i] = 0xff
	}
	if w == 0 || h == 0 {
		return dst, nil
	}
	err := p.run(toSRGB, src.Pix[src.PixOffset(src.Rect.Min.X, src.Rect.Min.Y):], src.Stride, w, h, dst.Pix, dst.Stride)
	return dst, err
}

// run converts h rows of w pixels, splitting large images across the CPUs
// (a transform is safe for concurrent use).
func (p *Profile) run(k kind, in []byte, inStride, w, h int, out []byte, outStride int) error {
	if w == 0 || h == 0 {
		return nil
	}
	const rowsPerPart = 64
	parts := min(runtime.GOMAXPROCS(0), (h+rowsPerPart-1)/rowsPerPart)
	if parts <= 1 {
		return p.runRows(k, in, inStride, w, h, out, outStride)
	}
	per := (h + parts - 1) / parts
	errs := make([]error, parts)
	var wg sync.WaitGroup
	for i := range parts {
		y0, y1 := i*per, min(h, (i+1)*per)
		if y0 >= y1 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = p.runRows(k, in[y0*inStride:], inStride, w, y1-y0, out[y0*outStride:], outStride)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func (p *Profile) runRows(k kind, in []byte, inStride, w, h int, out []byte, outStride int) error {
	for {
		x, err := transforms.get(p, k)
		if err != nil {
			return err
		}
		if x.identity && &in[0] == &out[0] {
			return nil // an sRGB profile under another name: nothing to do
		}
		x.mu.RLock()
		if x.h == nil { // evicted between get and lock: build it again
			x.mu.RUnlock()
			continue
		}
		C.cmsDoTransformLineStride(x.h, unsafe.Pointer(&in[0]), unsafe.Pointer(&out[0]),
			C.cmsUInt32Number(w), C.cmsUInt32Number(h),
			C.cmsUInt32Number(inStride), C.cmsUInt32Number(outStride), 0, 0)
		x.mu.RUnlock()
		return nil
	}
}

// ToLab converts the device values of img to CIE Lab (D50) in double
// precision, with no 8-bit shortcuts. img is an *image.NRGBA for RGB and
// grey profiles (grey read from the red byte) or an *image.CMYK for CMYK
// ones; the result is in row-major order.
func (p *Profile) ToLab(img image.Image) ([]Lab, error) {
	return p.lab(img, false)
}

// SRGBReference is the colour an exact conversion of img to sRGB gives, as
// Lab: device values to sRGB in double precision, clipped to the sRGB gamut
// (as any sRGB pixel must be), then to Lab. It is the reference that tests
// and benchmarks measure the 8-bit conversions against; img is as for ToLab.
func (p *Profile) SRGBReference(img image.Image) ([]Lab, error) {
	return p.lab(img, true)
}

func (p *Profile) lab(img image.Image, viaSRGB bool) ([]Lab, error) {
	var pix []byte
	var stride, w, h int
	var format C.cmsUInt32Number
	switch m := img.(type) {
	case *image.NRGBA:
		pix, stride, w, h = m.Pix[m.PixOffset(m.Rect.Min.X, m.Rect.Min.Y):], m.Stride, m.Rect.Dx(), m.Rect.Dy()
		switch p.space {
		case SpaceRGB:
			format = C.fmt_rgba()
		case SpaceGray:
			format = C.fmt_grayx()
		default:
			return nil, fmt.Errorf("%w: NRGBA pixels for a %s profile", ErrUnsupported, p.space)
		}
	case *image.CMYK:
		if p.space != SpaceCMYK {
			return nil, fmt.Errorf("%w: CMYK pixels for a %s profile", ErrUnsupported, p.space)
		}
		pix, stride, w, h, format = m.Pix[m.PixOffset(m.Rect.Min.X, m.Rect.Min.Y):], m.Stride, m.Rect.Dx(), m.Rect.Dy(), C.fmt_cmyk()
	default:
		return nil, fmt.Errorf("%w: image type %T", ErrUnsupported, img)
	}
	out := make([]Lab, w*h)
	if len(out) == 0 {
		return out, nil
	}
	src := C.cmsOpenProfileFromMem(unsafe.Pointer(&p.data[0]), C.cmsUInt32Number(len(p.data)))
	if src == nil {
		return nil, fmt.Errorf("%w: Little CMS cannot read it", ErrInvalid)
	}
	defer C.cmsCloseProfile(src)
	lab := C.cmsCreateLab4Profile(nil)
	defer C.cmsCloseProfile(lab)
	const exact = flags | C.cmsFLAGS_NOOPTIMIZE | C.cmsFLAGS_NOCACHE
	// Lab and [3]float64 are three float64s, the layouts of TYPE_Lab_DBL and
	// TYPE_RGB_DBL.
	if !viaSRGB {
		x := C.cmsCreateTransform(src, format, lab, C.fmt_lab(), intent, exact)
		if x == nil {
			return nil, fmt.Errorf("%w: no transform to Lab", ErrUnsupported)
		}
		defer C.cmsDeleteTransform(x)
		C.cmsDoTransformLineStride(x, unsafe.Pointer(&pix[0]), unsafe.Pointer(&out[0]),
			C.cmsUInt32Number(w), C.cmsUInt32Number(h), C.cmsUInt32Number(stride), C.cmsUInt32Number(24*w), 0, 0)
		return out, nil
	}
	s := C.cmsCreate_sRGBProfile()
	defer C.cmsCloseProfile(s)
	toRGB := C.cmsCreateTransform(src, format, s, C.fmt_rgb_dbl(), intent, exact)
	if toRGB == nil {
		return nil, fmt.Errorf("%w: no transform to sRGB", ErrUnsupported)
	}
	defer C.cmsDeleteTransform(toRGB)
	toLab := C.cmsCreateTransform(s, C.fmt_rgb_dbl(), lab, C.fmt_lab(), intent, exact)
	if toLab == nil {
		return nil, fmt.Errorf("%w: no transform from sRGB to Lab", ErrUnsupported)
	}
	defer C.cmsDeleteTransform(toLab)
	rgb := make([][3]float64, w*h)
	C.cmsDoTransformLineStride(toRGB, unsafe.Pointer(&pix[0]), unsafe.Pointer(&rgb[0]),
		C.cmsUInt32Number(w), C.cmsUInt32Number(h), C.cmsUInt32Number(stride), C.cmsUInt32Number(24*w), 0, 0)
	for i := range rgb {
		for c := range 3 {
			rgb[i][c] = max(0, min(1, rgb[i][c]))
		}
	}
	C.cmsDoTransform(toLab, unsafe.Pointer(&rgb[0]), unsafe.Pointer(&out[0]), C.cmsUInt32Number(len(rgb)))
	return out, nil
}

// build makes the transform of kind k for p.
func build(p *Profile, k kind) (C.cmsHTRANSFORM, error) {
	dev := C.cmsOpenProfileFromMem(unsafe.Pointer(&p.data[0]), C.cmsUInt32Number(len(p.data)))
	if dev == nil {
		return nil, fmt.Errorf("%w: Little CMS cannot read it", ErrInvalid)
	}
	defer C.cmsCloseProfile(dev)
	s := C.cmsCreate_sRGBProfile()
	defer C.cmsCloseProfile(s)
	var devFmt C.cmsUInt32Number
	switch p.space {
	case SpaceRGB:
		devFmt = C.fmt_rgba()
	case SpaceGray:
		devFmt = C.fmt_grayx()
	case SpaceCMYK:
		devFmt = C.fmt_cmyk()
	}
	var x C.cmsHTRANSFORM
	if k == toSRGB {
		x = C.cmsCreateTransform(dev, devFmt, s, C.fmt_rgba(), intent, flags)
	} else {
		x = C.cmsCreateTransform(s, C.fmt_rgba(), dev, devFmt, intent, flags)
	}
	if x == nil {
		dir := "to sRGB"
		if k == fromSRGB {
			dir = "from sRGB"
		}
		return nil, fmt.Errorf("%w: Little CMS cannot build a conversion %s with it (missing or damaged tags)", ErrInvalid, dir)
	}
	return x, nil
}

// xform is one cached transform. The read lock is held while converting;
// eviction takes the write lock, so a transform is never freed in use.
type xform struct {
	mu sync.RWMutex
	h  C.cmsHTRANSFORM // nil once freed
	// identity is set when the transform maps every probe colour to itself:
	// the profile is sRGB (most phone and web images carry one), so in-place
	// conversions are skipped.
	identity bool
}

// isIdentity runs an RGBA transform over probe colours (every grey, every
// level of each primary, a 9-level cube) and reports whether each comes out
// unchanged.
func isIdentity(h C.cmsHTRANSFORM) bool {
	var probe []byte
	for v := range 256 {
		probe = append(probe, byte(v), byte(v), byte(v), 255, byte(v), 0, 0, 255, 0, byte(v), 0, 255, 0, 0, byte(v), 255)
	}
	for r := 0; r <= 256; r += 32 {
		for g := 0; g <= 256; g += 32 {
			for b := 0; b <= 256; b += 32 {
				probe = append(probe, byte(min(r, 255)), byte(min(g, 255)), byte(min(b, 255)), 255)
			}
		}
	}
	out := make([]byte, len(probe))
	C.cmsDoTransform(h, unsafe.Pointer(&probe[0]), unsafe.Pointer(&out[0]), C.cmsUInt32Number(len(probe)/4))
	for i := range probe {
		if i%4 != 3 && probe[i] != out[i] {
			return false
		}
	}
	return true
}

func (x *xform) close() {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.h != nil {
		C.cmsDeleteTransform(x.h)
		x.h = nil
	}
}

var transforms = newCache[*xform](maxTransforms, func(p *Profile, k kind) (*xform, error) {
	h, err := build(p, k)
	if err != nil {
		return nil, err
	}
	return &xform{h: h, identity: p.space == SpaceRGB && isIdentity(h)}, nil
}, (*xform).close)
