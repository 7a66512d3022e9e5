package models

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/creativeai-studio/studio/internal/assets"
	"github.com/creativeai-studio/studio/internal/ncnn"
)

// fetchNCNN ensures the ncnn .param and .bin are cached and verified, then converts
// them to ONNX once; the converted file sits beside them with a sidecar naming the
// sources it came from, so a changed pin reconverts.
func fetchNCNN(ctx context.Context, cache *assets.Cache, m Manifest) (Spec, error) {
	pa, ba := m.NCNNAssets()
	param, err := cache.Ensure(ctx, pa)
	if err != nil {
		return Spec{}, fmt.Errorf("model %s (%s): %w", m.ID(), m.File, err)
	}
	bin, err := cache.Ensure(ctx, ba)
	if err != nil {
		return Spec{}, fmt.Errorf("model %s (%s): %w", m.ID(), m.File, err)
	}
	out := filepath.Join(filepath.Dir(param), "model.onnx")
	stamp := m.Source.NCNN.ParamSHA256 + " " + m.Source.NCNN.BinSHA256 + "\n"
	if b, err := os.ReadFile(out + ".source"); err == nil && string(b) == stamp {
		if _, err := os.Stat(out); err == nil {
			return Spec{Manifest: m, Path: out}, nil
		}
	}
	onnx, err := ConvertNCNN(param, bin)
	if err != nil {
		return Spec{}, fmt.Errorf("model %s (%s): %w", m.ID(), m.File, err)
	}
	tmp := out + ".tmp"
	if err := os.WriteFile(tmp, onnx, 0o644); err != nil {
		return Spec{}, err
	}
	if err := os.Rename(tmp, out); err != nil {
		return Spec{}, err
	}
	if err := os.WriteFile(out+".source", []byte(stamp), 0o644); err != nil {
		return Spec{}, err
	}
	return Spec{Manifest: m, Path: out}, nil
}

// ConvertNCNN converts an ncnn model pair on disk to ONNX bytes.
func ConvertNCNN(paramPath, binPath string) ([]byte, error) {
	p, err := os.Open(paramPath)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	b, err := os.Open(binPath)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	onnx, _, err := ncnn.Convert(p, b)
	if err != nil {
		return nil, fmt.Errorf("convert %s: %w", filepath.Base(paramPath), err)
	}
	return onnx, nil
}

// ImageManifest writes a manifest for an image-to-image model converted from ncnn
// (`studio models import-ncnn`): RGB in 0..1, any size, dynamic batch, tiled.
func ImageManifest(name, version string, task string, scale int, onnxFile string, onnx []byte, license string) string {
	sum := sha256.Sum256(onnx)
	var b strings.Builder
	fmt.Fprintf(&b, "# Converted from ncnn by `studio models import-ncnn`.\n")
	fmt.Fprintf(&b, "name: %s\nversion: %s\ntask: %s\nlicense: %s\nscale: %d\ndynamic_batch: true\n", name, version, task, license, scale)
	fmt.Fprintf(&b, "source:\n  path: %s\n  sha256: %s\n  size: %d\n", onnxFile, hex.EncodeToString(sum[:]), len(onnx))
	fmt.Fprintf(&b, "input:\n  name: %s\n  shape: [-1, 3, -1, -1]\n  std: [255, 255, 255]\n  resize: none\n", ncnn.InputName)
	fmt.Fprintf(&b, "output:\n  name: %s\n  shape: [-1, 3, -1, -1]\n  std: [255, 255, 255]\n", ncnn.OutputName)
	fmt.Fprintf(&b, "tile:\n  size: 256\n  overlap: 16\n")
	return b.String()
}
