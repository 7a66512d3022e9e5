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

// ocrManifest is a three-part OCR model with local files; %DET%, %REC% and %DICT% are
// their digests.
const ocrManifest = `
name: reader
version: v1
task: ocr
source: {path: det.onnx, sha256: "%DET%"}
input: {name: x, shape: [-1, 3, -1, -1], color: BGR, resize: none}
output: {name: y, shape: [-1, 1, -1, -1], color: GRAY}
parts:
  rec:
    source: {path: rec.onnx, sha256: "%REC%"}
    input: {name: x, shape: [-1, 3, 48, -1]}
    output: {name: probs, shape: [-1, -1, 97]}
files:
  dict: {path: keys.txt, sha256: "%DICT%"}
`

func TestPartsAndFiles(t *testing.T) {
	dir := t.TempDir()
	digest := map[string]string{}
	for name, data := range map[string]string{"det.onnx": "detector", "rec.onnx": "recogniser", "keys.txt": "a\nb\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(data))
		digest[name] = hex.EncodeToString(sum[:])
	}
	text := strings.NewReplacer("%DET%", digest["det.onnx"], "%REC%", digest["rec.onnx"], "%DICT%", digest["keys.txt"]).Replace(ocrManifest)

	t.Run("fetch verifies every part and file and Part opens one as a spec of its own", func(t *testing.T) {
		m, err := ParseManifest(filepath.Join(dir, "reader.yaml"), []byte(text))
		if err != nil {
			t.Fatal(err)
		}
		spec, err := Fetch(context.Background(), &assets.Cache{Dir: t.TempDir()}, m)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := spec.Part("rec")
		if err != nil {
			t.Fatal(err)
		}
		if rec.ID() != "reader-rec@v1" || rec.Path != filepath.Join(dir, "rec.onnx") || rec.Input.H() != 48 || rec.Output.Name != "probs" || rec.Input.Std != [3]float32{1, 1, 1} {
			t.Errorf("part spec %s at %s, input %+v, output %q", rec.ID(), rec.Path, rec.Input, rec.Output.Name)
		}
		if p, err := spec.File("dict"); err != nil || p != filepath.Join(dir, "keys.txt") {
			t.Errorf("File(dict) = %q, %v", p, err)
		}
		if _, err := spec.Part("cls"); !errors.Is(err, ErrUnknownModel) {
			t.Errorf("Part(cls) = %v, want ErrUnknownModel", err)
		}
	})
	t.Run("a part whose file has another digest is refused with its role", func(t *testing.T) {
		bad := strings.Replace(text, digest["rec.onnx"], strings.Repeat("0", 64), 1)
		m, err := ParseManifest(filepath.Join(dir, "reader.yaml"), []byte(bad))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Fetch(context.Background(), &assets.Cache{Dir: t.TempDir()}, m); err == nil || !strings.Contains(err.Error(), "rec") || !strings.Contains(err.Error(), "has sha256") {
			t.Errorf("Fetch = %v", err)
		}
	})
	tests := []struct {
		name, yaml, want string
	}{
		{"an ocr model without a recogniser is refused", strings.Replace(text, "parts:\n  rec:", "parts:\n  other:", 1), "recogniser part"},
		{"an ocr model without a dictionary is refused", strings.Replace(text, "  dict: {", "  words: {", 1), "files.dict"},
		{"a part without a digest is refused", strings.Replace(text, `sha256: "`+digest["rec.onnx"]+`"`, "", 1), "parts.rec.source.sha256"},
		{"a part with a 3-D input is refused", strings.Replace(text, "shape: [-1, 3, 48, -1]", "shape: [3, 48, -1]", 1), "parts.rec.input.shape"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseManifest("ops/reader.yaml", []byte(tc.yaml))
			if !errors.Is(err, ErrBadManifest) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want ErrBadManifest naming %q", err, tc.want)
			}
		})
	}
}
