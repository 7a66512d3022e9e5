package imagetest

import (
	_ "embed" // the lossy WebP below
	"encoding/binary"
	"slices"
)

// lossyWebP is a real 150x100 lossy WebP, golang.org/x/image's test image
// blue-purple-pink.lossy.webp (BSD licence, Copyright The Go Authors): one "VP8 "
// chunk at offset 12 whose key frame header holds the size at offsets 26 and 28, and
// a 377-byte first partition.
//
//go:embed testdata/blue-purple-pink.lossy.webp
var lossyWebP []byte

// LossyWebP returns the valid 150x100 lossy WebP (a fresh copy).
func LossyWebP() []byte { return slices.Clone(lossyWebP) }

// LossyWebPDeclaring returns LossyWebP with its VP8 frame header declaring w x h
// pixels and nothing else changed: for a large size, a few kilobytes whose first
// partition cannot hold the modes of the declared macroblocks, which a decoder that
// reads zeros past the end of its data reconstructs one by one before failing.
func LossyWebPDeclaring(w, h int) []byte {
	out := LossyWebP()
	binary.LittleEndian.PutUint16(out[26:], uint16(w))
	binary.LittleEndian.PutUint16(out[28:], uint16(h))
	return out
}
