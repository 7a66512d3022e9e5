package models

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/creativeai-studio/studio/internal/assets"
)

// Variant is another file of the same model for one device: an fp16 export to run on
// a GPU instead of the int8 or fp32 file that suits the CPU. It must keep the model's
// input and output names, shapes and element types (float32 I/O with fp16 inside, as
// onnxconverter's keep_io_types makes), so pre- and postprocessing do not change.
type Variant struct {
	// Precision is what the file computes in: fp16.
	Precision string `yaml:"precision"`
	// Source is one whole file from an npm package or a local path, with its digest.
	Source Source `yaml:"source"`
}

// checkVariants reports manifest problems of m.Variants.
func (m Manifest) checkVariants(bad func(field, format string, args ...any)) {
	for _, dev := range sortedKeys(m.Variants) {
		v := m.Variants[dev]
		field := "variants." + dev
		if dev != "cuda" {
			bad(field, "%q is not a device a variant can be for (cuda)", dev)
		}
		if v.Precision != "fp16" {
			bad(field+".precision", "%q must be fp16", v.Precision)
		}
		checkFileSource(bad, field+".source", v.Source)
	}
}

// deviceKind is the device family of a backend's device ("cuda:0" -> "cuda").
func deviceKind(device string) string {
	kind, _, _ := strings.Cut(device, ":")
	return kind
}

// PathFor returns the ONNX file to load on device (a backend's Device(): "cpu",
// "cuda:0"): the fetched variant for that device, else Path. So a manifest's fp16 file
// runs on the GPU and is ignored on the CPU.
func (s Spec) PathFor(device string) string {
	if p, ok := s.VariantPaths[deviceKind(device)]; ok {
		return p
	}
	return s.Path
}

// FetchVariant fetches and verifies m's variant for device (a --device value or a
// backend's Device()) into spec, which Fetch returned for m; without a variant for that
// device it returns spec unchanged. Variants are fetched only for the device that runs
// them, so a CPU machine never downloads an fp16 file.
func FetchVariant(ctx context.Context, cache *assets.Cache, spec Spec, device string) (Spec, error) {
	dev := deviceKind(device)
	v, ok := spec.Variants[dev]
	if !ok {
		return spec, nil
	}
	m := spec.Manifest
	var p string
	if v.Source.Path != "" {
		p = v.Source.Path
		if !filepath.IsAbs(p) {
			p = filepath.Join(m.Dir, p)
		}
		if err := verifyFile(p, v.Source.SHA256, v.Source.Size); err != nil {
			return Spec{}, fmt.Errorf("%w: %s: variants.%s.source.path: %v", ErrBadManifest, m.File, dev, err)
		}
	} else {
		var err error
		a := m.PartAsset(dev+"-"+v.Precision, v.Source)
		if p, err = cache.Ensure(ctx, a); err != nil {
			return Spec{}, fmt.Errorf("model %s (%s), %s variant: %w", m.ID(), m.File, dev, err)
		}
	}
	paths := map[string]string{dev: p}
	for k, q := range spec.VariantPaths {
		if k != dev {
			paths[k] = q
		}
	}
	spec.VariantPaths = paths
	return spec, nil
}
