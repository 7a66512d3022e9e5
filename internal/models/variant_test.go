package models

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/creativeai-studio/studio/internal/assets"
)

// withVariant is the shipped isnet@small manifest with a cuda variant from a local file.
func withVariant(t *testing.T, v Variant) Manifest {
	t.Helper()
	ms, err := Shipped()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.ID() == "isnet@small" {
			m.Variants = map[string]Variant{"cuda": v}
			return m
		}
	}
	t.Fatal("isnet@small is not shipped")
	return Manifest{}
}

func TestVariantValidation(t *testing.T) {
	good := Variant{Precision: "fp16", Source: Source{Path: "isnet-fp16.onnx", SHA256: strings.Repeat("a", 64)}}
	for _, tc := range []struct {
		name string
		edit func(m *Manifest)
		want string // "" when valid
	}{
		{"an fp16 file for cuda is valid", func(m *Manifest) {}, ""},
		{"a variant for an unknown device is refused", func(m *Manifest) { m.Variants["rocm"] = good }, `variants.rocm: "rocm" is not a device`},
		{"a precision other than fp16 is refused", func(m *Manifest) { m.Variants["cuda"] = Variant{Precision: "int4", Source: good.Source} }, `variants.cuda.precision: "int4" must be fp16`},
		{"a variant without a digest is refused", func(m *Manifest) {
			m.Variants["cuda"] = Variant{Precision: "fp16", Source: Source{Path: "x.onnx"}}
		}, "variants.cuda.source.sha256"},
		{"a chunked variant is refused", func(m *Manifest) {
			m.Variants["cuda"] = Variant{Precision: "fp16", Source: Source{NPM: "a@1.0.0", ChunkIndex: "r.json", SHA256: good.Source.SHA256}}
		}, "variants.cuda.source"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := withVariant(t, good)
			tc.edit(&m)
			err := m.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("valid manifest refused: %v", err)
			case tc.want != "" && (!errors.Is(err, ErrBadManifest) || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want ErrBadManifest naming %q", err, tc.want)
			}
		})
	}
}

func TestVariantSelection(t *testing.T) {
	dir := t.TempDir()
	data := []byte("an fp16 ONNX file")
	sum := sha256.Sum256(data)
	if err := os.WriteFile(filepath.Join(dir, "isnet-fp16.onnx"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	m := withVariant(t, Variant{Precision: "fp16", Source: Source{Path: "isnet-fp16.onnx", SHA256: hex.EncodeToString(sum[:]), Size: int64(len(data))}})
	m.Dir = dir
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	base := Spec{Manifest: m, Path: "/cache/models/isnet/small/model.onnx"}
	cache := &assets.Cache{Dir: t.TempDir()}
	ctx := context.Background()

	t.Run("on the CPU the variant is neither fetched nor used", func(t *testing.T) {
		s, err := FetchVariant(ctx, cache, base, "cpu")
		if err != nil {
			t.Fatal(err)
		}
		if len(s.VariantPaths) != 0 || s.PathFor("cpu") != base.Path {
			t.Errorf("cpu: variants %v, PathFor %q", s.VariantPaths, s.PathFor("cpu"))
		}
	})
	t.Run("on CUDA the verified fp16 file is loaded instead", func(t *testing.T) {
		s, err := FetchVariant(ctx, cache, base, "cuda")
		if err != nil {
			t.Fatal(err)
		}
		want := filepath.Join(dir, "isnet-fp16.onnx")
		for _, dev := range []string{"cuda", "cuda:0", "cuda:1"} {
			if got := s.PathFor(dev); got != want {
				t.Errorf("PathFor(%q) = %q, want %q", dev, got, want)
			}
		}
		if got := s.PathFor("cpu"); got != base.Path {
			t.Errorf("PathFor(cpu) = %q after fetching the variant, want the CPU file", got)
		}
		if base.VariantPaths != nil {
			t.Error("FetchVariant changed the spec it was given")
		}
	})
	t.Run("a variant whose bytes do not match its digest is refused", func(t *testing.T) {
		if err := os.WriteFile(filepath.Join(dir, "isnet-fp16.onnx"), []byte("swapped"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := FetchVariant(ctx, cache, base, "cuda:0")
		if !errors.Is(err, ErrBadManifest) || !strings.Contains(err.Error(), "variants.cuda.source.path") {
			t.Errorf("error %v, want ErrBadManifest naming variants.cuda.source.path", err)
		}
	})
	t.Run("a manifest without variants runs its file everywhere", func(t *testing.T) {
		plain := Spec{Manifest: m, Path: base.Path}
		plain.Variants = nil
		s, err := FetchVariant(ctx, cache, plain, "cuda")
		if err != nil || s.PathFor("cuda:0") != base.Path {
			t.Errorf("PathFor(cuda:0) = %q, %v", s.PathFor("cuda:0"), err)
		}
	})
}
