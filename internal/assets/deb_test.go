package assets

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// buildDeb builds a real .deb holding files with dpkg-deb, or skips.
func buildDeb(t *testing.T, files map[string][]byte) string {
	t.Helper()
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Skip("dpkg-deb not installed")
	}
	root := filepath.Join(t.TempDir(), "pkg")
	control := "Package: fake-data\nVersion: 1.0\nArchitecture: all\nMaintainer: Test <test@example.invalid>\nDescription: test data\n"
	files["DEBIAN/control"] = []byte(control)
	for name, body := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	deb := filepath.Join(t.TempDir(), "fake-data_1.0_all.deb")
	out, err := exec.Command("dpkg-deb", "--root-owner-group", "--build", root, deb).CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg-deb --build: %v: %s", err, out)
	}
	return deb
}

func TestEnsureExtractsFromADebianPackage(t *testing.T) {
	photo := []byte("\x89PNG pretend photo")
	deb := buildDeb(t, map[string][]byte{
		"usr/share/fake/photo.png": photo,
		"usr/share/fake/other.png": []byte("other"),
	})
	var calls int
	c := &Cache{Dir: t.TempDir(), DownloadDeb: func(ctx context.Context, pkg, dir string) (string, error) {
		calls++
		if pkg != "fake-data" {
			t.Errorf("asked for package %q", pkg)
		}
		in, err := os.Open(deb)
		if err != nil {
			return "", err
		}
		defer in.Close()
		out := filepath.Join(dir, filepath.Base(deb))
		f, err := os.Create(out)
		if err != nil {
			return "", err
		}
		defer f.Close()
		_, err = io.Copy(f, in)
		return out, err
	}}
	a := Asset{
		Name:    "photo",
		Source:  Source{Deb: "fake-data", File: "usr/share/fake/photo.png"},
		SHA256:  digest(photo),
		Size:    int64(len(photo)),
		Path:    "photos/photo.png",
		License: "CC0-1.0",
	}
	p, err := c.Ensure(t.Context(), a)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != string(photo) {
		t.Errorf("got %q", b)
	}

	missing := a
	missing.Name, missing.Path, missing.Source.File = "missing", "photos/missing.png", "usr/share/fake/missing.png"
	if _, err := c.Ensure(t.Context(), missing); err == nil {
		t.Error("Ensure of a file the package lacks succeeded")
	}
	// A file the package lacks would be lacking from a fresh download too.
	if calls != 1 {
		t.Errorf("downloaded %d times, want 1", calls)
	}
	assertNoTempFiles(t, c.Dir)
}
