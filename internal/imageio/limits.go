package imageio

// Defaults for Limits. 40 megapixels covers every current phone camera;
// decoded as NRGBA it is 160 MB, which bounds the memory one request can take.
const (
	DefaultMaxBytes  int64 = 10 << 20
	DefaultMaxPixels int64 = 40_000_000
	DefaultMaxSide         = 12000
	// DefaultMaxProfileBytes bounds an embedded ICC profile. Camera and
	// display profiles are a few KB; the largest printer (CMYK LUT) profiles
	// are 1-3 MB. More than this is not a colour profile worth converting.
	DefaultMaxProfileBytes int64 = 4 << 20
	// DefaultMaxScans bounds the scans of a JPEG. A baseline JPEG has one scan per
	// component at most, the usual progressive encodings (libjpeg, mozjpeg) 10 or so;
	// past 100 a file only adds decoding work (see jpegScans).
	DefaultMaxScans = 100
	// DefaultMaxChunks bounds the chunks of a PNG or the RIFF chunks of a WebP. libpng
	// writes 8 KiB IDAT chunks, so a 10 MiB PNG has about 1,300; more only adds work.
	DefaultMaxChunks = 4096
	// DefaultMaxMetadataBytes bounds a PNG's ancillary chunks or a WebP's chunks other
	// than image data: room for the largest colour profile and EXIF/XMP besides.
	DefaultMaxMetadataBytes = DefaultMaxProfileBytes + 2<<20
	// decodedBytesPerPixel gives the default of Limits.MaxDecodedBytes: 8-bit RGBA at
	// the pixel limit with its filter bytes fits; 16-bit samples or interlacing halve
	// the pixels allowed.
	decodedBytesPerPixel = 5
)

// Limits bounds what Inspect and Decode accept. A zero or negative field
// means its default, so the zero Limits is the default policy.
type Limits struct {
	MaxBytes  int64 // file size in bytes
	MaxPixels int64 // width × height
	MaxSide   int   // longest side in pixels
	// MaxProfileBytes bounds the embedded ICC profile, decompressed.
	MaxProfileBytes int64
	MaxScans        int // scans (SOS segments) of a JPEG; the decoding work is pixels × scans
	// MaxChunks bounds the chunks of a PNG and the RIFF chunks of a WebP.
	MaxChunks int
	// MaxMetadataBytes bounds PNG ancillary chunks and WebP non-image chunks, in bytes.
	MaxMetadataBytes int64
	// MaxDecodedBytes bounds what a PNG's IDAT stream inflates to (every scanline of
	// every interlace pass), counted twice when interlaced; default 5 × MaxPixels.
	MaxDecodedBytes int64
}

// DefaultLimits returns the limits used for zero fields.
func DefaultLimits() Limits {
	return Limits{MaxBytes: DefaultMaxBytes, MaxPixels: DefaultMaxPixels, MaxSide: DefaultMaxSide, MaxProfileBytes: DefaultMaxProfileBytes, MaxScans: DefaultMaxScans,
		MaxChunks: DefaultMaxChunks, MaxMetadataBytes: DefaultMaxMetadataBytes, MaxDecodedBytes: decodedBytesPerPixel * DefaultMaxPixels}
}

func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	if l.MaxPixels <= 0 {
		l.MaxPixels = DefaultMaxPixels
	}
	if l.MaxSide <= 0 {
		l.MaxSide = DefaultMaxSide
	}
	if l.MaxProfileBytes <= 0 {
		l.MaxProfileBytes = DefaultMaxProfileBytes
	}
	if l.MaxScans <= 0 {
		l.MaxScans = DefaultMaxScans
	}
	if l.MaxChunks <= 0 {
		l.MaxChunks = DefaultMaxChunks
	}
	if l.MaxMetadataBytes <= 0 {
		l.MaxMetadataBytes = DefaultMaxMetadataBytes
	}
	if l.MaxDecodedBytes <= 0 {
		l.MaxDecodedBytes = decodedBytesPerPixel * l.MaxPixels
	}
	return l
}
