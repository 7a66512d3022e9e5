package models

import (
	"errors"
	"strings"
	"testing"
)

func TestStyleInputIsValidated(t *testing.T) {
	sha := strings.Repeat("ab", 32)
	good := strings.ReplaceAll(goodManifest, "%SHA%", sha) + "style:\n  name: style\n  shape: [1, 3, 256, 256]\n  std: [255, 255, 255]\n"
	m, err := ParseManifest("ops/styler.yaml", []byte(good))
	if err != nil {
		t.Fatalf("an arbitrary-style manifest is refused: %v", err)
	}
	if !m.TakesStyle() || m.Style.Resize != "bilinear" || m.Style.W() != 256 {
		t.Errorf("style = %+v, want a 256x256 bilinear style input", m.Style)
	}
	for _, tc := range []struct{ name, yaml, want string }{
		{"a style input without a name is refused", strings.Replace(good, "  name: style\n", "", 1), "style.name"},
		{"a style input named like the content input is refused", strings.Replace(good, "  name: style\n", "  name: input\n", 1), "style.name"},
		{"a style image of four channels is refused", strings.Replace(good, "[1, 3, 256, 256]", "[1, 4, 256, 256]", 1), "style.shape"},
		{"a batched style input is refused", strings.Replace(good, "[1, 3, 256, 256]", "[-1, 3, 256, 256]", 1), "style.shape"},
		{"a dynamic style size with a resize is refused", strings.Replace(good, "[1, 3, 256, 256]", "[1, 3, -1, -1]", 1), "style.resize"},
		{"a fixed style size without a resize is refused", good + "  resize: none\n", "style.resize"},
		{"a zero style std is refused", strings.Replace(good, "  std: [255, 255, 255]\n", "  std: [0, 255, 255]\n", 3), "style.std"},
		{"a style input on a tiled model is refused", good + "tile:\n  size: 256\n  overlap: 16\n", "runs whole images"},
		{"a style input on an upscaler is refused", strings.Replace(good, "task: style-transfer", "task: upscale", 1), "only a style-transfer model"},
		{"an orientation of its own is refused", good + "  orientation: stored\n", "style.orientation"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseManifest("ops/styler.yaml", []byte(tc.yaml))
			if !errors.Is(err, ErrBadManifest) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v: want ErrBadManifest naming %q", err, tc.want)
			}
		})
	}
	t.Run("a dynamic style size with resize none is accepted", func(t *testing.T) {
		y := strings.Replace(good, "[1, 3, 256, 256]", "[1, 3, -1, -1]", 1) + "  resize: none\n"
		if _, err := ParseManifest("ops/styler.yaml", []byte(y)); err != nil {
			t.Error(err)
		}
	})
}
