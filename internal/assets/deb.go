package assets

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
)

// AptDownload is the default DebFunc. It runs `apt-get download PKG` in dir,
// which needs no root and installs nothing, so apt's own configuration
// (mirrors, proxy) applies. If that fails it refreshes the package lists once
// with `apt-get update` (which needs root) and tries again, because a fresh
// machine or container often has none. It blocks for the download;
// cancelling ctx kills apt-get.
func AptDownload(ctx context.Context, pkg, dir string) (string, error) {
	download := func() error {
		// Run as root, apt warns that the _apt user cannot write dir and
		// downloads unsandboxed: harmless for a file we verify anyway.
		cmd := exec.CommandContext(ctx, "apt-get", "download", "-q", pkg)
		cmd.Dir = dir
		return runTool(cmd)
	}
	err := download()
	if err != nil && ctx.Err() == nil && !errors.Is(err, exec.ErrNotFound) {
		if uerr := runTool(exec.CommandContext(ctx, "apt-get", "update", "-qq")); uerr != nil {
			return "", fmt.Errorf("assets: apt-get download %s: %w; refreshing the package lists failed too (%v): run `apt-get update` as root, then try again", pkg, err, uerr)
		}
		err = download()
	}
	if err != nil {
		return "", fmt.Errorf("assets: apt-get download %s: %w; check that apt can reach its mirrors and that the package exists for this distribution (`apt-cache policy %s`)", pkg, err, pkg)
	}
	return onlyFile(dir, ".deb")
}

// extractDeb copies a.Source.File out of the .deb at deb into dst. The data
// member of a .deb may be xz- or zstd-compressed, which the standard library
// cannot read, so dpkg-deb unpacks it to a plain tar stream that is read
// here with the same safety checks as npm tarballs; nothing else of the
// package touches the disk.
func extractDeb(ctx context.Context, deb string, a Asset, dst *os.File) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(ctx, "dpkg-deb", "--fsys-tarfile", deb)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("assets: %s: %w", a.Name, err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("assets: %s: dpkg-deb: %w; install dpkg (Debian and Ubuntu have it) to unpack %s", a.Name, err, deb)
	}
	xerr := extractFile(ctx, out, a, dst, deb)
	// Once the file is out the rest of the stream is of no interest:
	// stop dpkg-deb rather than decompress the remainder.
	cancel()
	_, _ = io.Copy(io.Discard, out)
	werr := cmd.Wait()
	if xerr != nil {
		if werr != nil && !errors.Is(xerr, ErrChecksum) && stderr.Len() > 0 {
			return fmt.Errorf("%w (dpkg-deb: %s)", xerr, strings.TrimSpace(stderr.String()))
		}
		return xerr
	}
	return nil
}
