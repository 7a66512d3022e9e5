package assets

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestTwoProcessesShareOneCache runs two copies of the test binary that
// Ensure the same asset into one directory at the same time: flock must make
// one wait for the other, so the package is packed once and the file is whole.
func TestTwoProcessesShareOneCache(t *testing.T) {
	if os.Getenv("STUDIO_ASSETS_HELPER_DIR") != "" {
		t.Skip("helper process")
	}
	dir := t.TempDir()
	var wg sync.WaitGroup
	outs := make([][]byte, 2)
	errs := make([]error, 2)
	for i := range outs {
		wg.Go(func() {
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestHelperEnsureInAnotherProcess$", "-test.v")
			cmd.Env = append(os.Environ(), "STUDIO_ASSETS_HELPER_DIR="+dir)
			outs[i], errs[i] = cmd.CombinedOutput()
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("helper %d: %v\n%s", i, err, outs[i])
		}
	}
	for i, out := range outs {
		if !strings.Contains(string(out), "--- PASS: TestHelperEnsureInAnotherProcess") {
			t.Fatalf("helper %d did not run:\n%s", i, out)
		}
	}
	log, err := os.ReadFile(filepath.Join(dir, "packs.log"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(log), "pack\n"); n != 1 {
		t.Errorf("two processes packed %d times, want 1", n)
	}
	pkg := newChunkedPackage(t)
	_, sum, err := hashFile(filepath.Join(dir, "cache", filepath.FromSlash(pkg.chunkAsset().Path)))
	if err != nil || sum != pkg.chunkAsset().SHA256 {
		t.Errorf("cached file sha256 %s (%v), want %s", sum, err, pkg.chunkAsset().SHA256)
	}
}

// TestHelperEnsureInAnotherProcess is the body of one process of
// TestTwoProcessesShareOneCache; on its own it does nothing.
func TestHelperEnsureInAnotherProcess(t *testing.T) {
	dir := os.Getenv("STUDIO_ASSETS_HELPER_DIR")
	if dir == "" {
		t.Skip("only runs as a helper process")
	}
	pkg := newChunkedPackage(t)
	packer := newFakePacker(t, pkg.entries)
	c := &Cache{Dir: filepath.Join(dir, "cache"), Pack: func(ctx context.Context, spec, d string) (string, error) {
		f, err := os.OpenFile(filepath.Join(dir, "packs.log"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return "", err
		}
		_, _ = f.WriteString("pack\n")
		f.Close()
		// Long enough for the other process to reach the lock.
		time.Sleep(500 * time.Millisecond)
		return packer.Pack(ctx, spec, d)
	}}
	if _, err := c.Ensure(t.Context(), pkg.chunkAsset()); err != nil {
		t.Fatal(err)
	}
}
