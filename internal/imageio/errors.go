package imageio

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error from this package wraps exactly one of them;
// all of them are permanent: retrying the same bytes gives the same result.
var (
	// ErrEmpty means the upload had no bytes at all.
	ErrEmpty = errors.New("imageio: empty file")
	// ErrUnsupportedFormat means the bytes are a recognised format that the
	// service does not accept (GIF, PDF, BMP, TIFF, HEIC, AVIF, SVG, ...).
	ErrUnsupportedFormat = errors.New("imageio: unsupported image format")
	// ErrNotImage means the bytes are not a recognised image format.
	ErrNotImage = errors.New("imageio: not an image")
	// ErrTooLarge means the file, its pixel dimensions or its decoding work (JPEG
	// scans) exceed the Limits.
	ErrTooLarge = errors.New("imageio: image too large")
	// ErrCorrupt means the file claims a supported format but is damaged or
	// truncated.
	ErrCorrupt = errors.New("imageio: image is damaged")
)

// inputError carries a message for the person who sent the file, the
// sentinel that classifies it and, optionally, the underlying decoder error.
type inputError struct {
	kind  error
	msg   string
	cause error
}

func (e *inputError) Error() string { return e.msg }

func (e *inputError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.cause}
}

func newError(kind error, format string, args ...any) error {
	return &inputError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// corrupt reports a damaged file; the decoder's own words go in brackets
// because they help whoever reads the logs, not the uploader.
func corrupt(f Format, cause error) error {
	return &inputError{
		kind:  ErrCorrupt,
		msg:   fmt.Sprintf("the %s file is damaged or incomplete (%v): re-save or re-export the image and upload it again", f.name(), cause),
		cause: cause,
	}
}
