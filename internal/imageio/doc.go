// Package imageio accepts untrusted image uploads safely: it identifies the
// format from magic bytes, refuses oversized or unsupported files from the
// header alone before any pixel memory is allocated, decodes JPEG, PNG and
// WebP into upright *image.NRGBA (EXIF orientation applied), and resizes and
// encodes images for the model pipeline.
//
// Every error returned to callers wraps one of the Err* sentinels, so an HTTP
// handler can map it to a status code with errors.Is, and its message is
// written for the person who uploaded the file: it says what is wrong and
// what to do about it.
//
// All functions are safe for concurrent use; none of them keeps state between
// calls apart from a pool of PNG encoder buffers.
package imageio
