package assets

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
)

// archiveKind is a kind of downloaded package kept under <Dir>/<dir>.
type archiveKind struct{ dir, ext string }

var (
	kindNPM = archiveKind{dir: "npm", ext: ".tgz"}
	kindDeb = archiveKind{dir: "deb", ext: ".deb"}
)

// errArchiveRead marks a package that could not be read: with a cached
// package that calls for a fresh download, not for giving up.
var errArchiveRead = errors.New("unreadable package")

// withArchive runs use on the downloaded package name, downloading it first
// if the cache lacks it. The package's lock is held throughout so nobody
// replaces it underneath use. A cached package that fails (corrupt, or a
// partial file left by a tool that did not write atomically) is downloaded
// again once before giving up.
func (c *Cache) withArchive(ctx context.Context, log logrus.FieldLogger, root string, k archiveKind, name string,
	fetch func(ctx context.Context, name, dir string) (string, error), use func(path string) error,
) error {
	dir := filepath.Join(root, k.dir)
	file := strings.ReplaceAll(name, "/", "+") + k.ext // "+" occurs in neither npm nor Debian names
	p := filepath.Join(dir, file)
	log = log.WithField("package", name)

	lock, err := lockFile(ctx, filepath.Join(root, ".locks", k.dir, file+".lock"), func() {
		log.Info("waiting for another process using this package")
	})
	if err != nil {
		return err
	}
	defer lock.unlock()

	cached := true
	if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
		cached = false
		if err := download(ctx, log, dir, file, name, fetch); err != nil {
			return err
		}
	} else if err != nil {
		return fmt.Errorf("assets: %w", err)
	}
	err = use(p)
	if err == nil || !cached || ctx.Err() != nil || !retryable(err) {
		return err
	}
	log.WithError(err).Warn("cached package failed verification; downloading it again")
	if err := os.Remove(p); err != nil {
		return fmt.Errorf("assets: %w", err)
	}
	if err := download(ctx, log, dir, file, name, fetch); err != nil {
		return err
	}
	return use(p)
}

// retryable reports whether a fresh download could cure err. A missing entry
// or a hostile one would come back the same, so those are not retried: the
// package is 100 MB.
func retryable(err error) bool {
	return errors.Is(err, ErrChecksum) || errors.Is(err, errArchiveRead)
}

// download fetches a package into a private temporary directory and renames
// it to dir/file, so dir never holds a partial package. The caller holds the
// package's lock.
func download(ctx context.Context, log logrus.FieldLogger, dir, file, name string,
	fetch func(ctx context.Context, name, dir string) (string, error),
) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("assets: %w", err)
	}
	// Holding the lock, these are left over from a process that died.
	if old, _ := filepath.Glob(filepath.Join(dir, ".fetch-"+file+"-*")); len(old) > 0 {
		for _, p := range old {
			_ = os.RemoveAll(p)
		}
	}
	tmp, err := os.MkdirTemp(dir, ".fetch-"+file+"-*")
	if err != nil {
		return fmt.Errorf("assets: %w", err)
	}
	defer os.RemoveAll(tmp)

	start := time.Now()
	log.Info("downloading package")
	got, err := fetch(ctx, name, tmp)
	if err != nil {
		return err
	}
	if rel, err := filepath.Rel(tmp, got); err != nil || rel != filepath.Base(got) {
		return fmt.Errorf("assets: fetching %s returned %q, outside its directory %s", name, got, tmp)
	}
	st, err := os.Lstat(got)
	if err != nil || !st.Mode().IsRegular() {
		return fmt.Errorf("assets: fetching %s returned %q, which is not a regular file", name, got)
	}
	if err := os.Rename(got, filepath.Join(dir, file)); err != nil {
		return fmt.Errorf("assets: %w", err)
	}
	syncDir(dir)
	log.WithFields(logrus.Fields{"bytes": st.Size(), "took": time.Since(start).Round(time.Millisecond)}).Info("package downloaded")
	return nil
}

// onlyFile returns the single file in dir whose name ends in ext; package
// tools name their output themselves, and dir was empty before they ran.
func onlyFile(dir, ext string) (string, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*"+ext))
	if err != nil {
		return "", err
	}
	if len(names) != 1 {
		return "", fmt.Errorf("assets: expected one %s file in %s, found %d", ext, dir, len(names))
	}
	return names[0], nil
}

// walkTar calls visit for every entry of the tar stream r until visit says
// stop. It refuses the whole stream at the first entry whose name is absolute
// or climbs with "..", whatever visit wants: such an archive is hostile.
// Names reach visit cleaned of a leading "./". Link targets are not checked
// because nothing here creates links: only regular-file bodies are copied,
// into files the cache names itself.
// Errors of its own name the asset and archive; errors of visit come back
// unchanged. It stops early when ctx is done.
func walkTar(ctx context.Context, a Asset, archive string, r io.Reader, visit func(name string, h *tar.Header, body io.Reader) (stop bool, err error)) error {
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("assets: %s: %w", a.Name, err)
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("assets: %s: reading %s: %w: %w", a.Name, archive, errArchiveRead, err)
		}
		name := strings.TrimPrefix(h.Name, "./")
		if name == "" || name == "." {
			continue
		}
		if unsafeEntry(name) {
			return fmt.Errorf("assets: %s: %s: %w %q; refusing the whole package", a.Name, archive, ErrUnsafeArchive, h.Name)
		}
		stop, err := visit(name, h, tr)
		if err != nil {
			return err
		}
		if stop {
			return nil
		}
	}
}

func unsafeEntry(name string) bool {
	if strings.HasPrefix(name, "/") || strings.Contains(name, `\`) {
		return true
	}
	for _, el := range strings.Split(name, "/") {
		if el == ".." {
			return true
		}
	}
	return false
}

// copyEntry copies a regular-file entry of exactly want bytes to w.
func copyEntry(a Asset, what string, h *tar.Header, body io.Reader, want int64, w io.Writer, archive string) error {
	if h.Typeflag != tar.TypeReg {
		return fmt.Errorf("assets: %s: %s in %s is not a regular file (tar type %q); refusing to follow it", a.Name, what, archive, h.Typeflag)
	}
	if h.Size != want {
		return &ChecksumError{Asset: a.Name, What: "size of " + what, Want: fmt.Sprint(want), Got: fmt.Sprint(h.Size), Hint: mismatchHint(archive)}
	}
	n, err := io.Copy(w, io.LimitReader(markedReader{body}, want))
	if err != nil {
		return fmt.Errorf("assets: %s: copying %s: %w", a.Name, what, err)
	}
	if n != want {
		return fmt.Errorf("assets: %s: %s ends after %d of %d bytes: %w", a.Name, what, n, want, errArchiveRead)
	}
	return nil
}

// markedReader tags read errors with errArchiveRead so that they, unlike
// write errors (a full disk), lead to a fresh download.
type markedReader struct{ r io.Reader }

func (m markedReader) Read(p []byte) (int, error) {
	n, err := m.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		err = fmt.Errorf("%w: %w", errArchiveRead, err)
	}
	return n, err
}
