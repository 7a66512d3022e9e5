//go:build cgo

package ort

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/creativeai-studio/studio/internal/diffusion"
	"github.com/creativeai-studio/studio/internal/diffusion/diffusiontest"
)

func openWith(t *testing.T, dir string, opts diffusion.Options) (*diffusion.Pipeline, error) {
	t.Helper()
	b, err := New(Config{LibraryPath: cpuLibrary(t), Device: "cpu", IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	p, err := diffusion.Open(dir, b, opts)
	if err == nil {
		t.Cleanup(func() { _ = p.Close() })
	}
	return p, err
}

func clipMean(r *diffusion.Result, i int) float64 {
	var s float64
	for _, v := range diffusion.CLIPInput(r, i) {
		s += float64(v)
	}
	return s / (3 * diffusion.CLIPSize * diffusion.CLIPSize)
}

// TestSafetyChecker runs the export's safety checker graph (the test one flags an image
// whose CLIP input's mean is above a threshold) with a threshold between the means of
// two generated images, so that one is flagged and the other is not.
func TestSafetyChecker(t *testing.T) {
	ctx := context.Background()
	plain := testExport(t, diffusiontest.Options{})
	p, err := openWith(t, plain, diffusion.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Safety() {
		t.Fatal("an export without safety_checker/ is checked")
	}
	tok, err := diffusion.LoadTokenizer(plain)
	if err != nil {
		t.Fatal(err)
	}
	req := request(tok, 4, 7.5)
	req.Images = 2
	base, err := p.Generate(ctx, req, nil)
	if err != nil {
		t.Fatal(err)
	}
	if base.Flagged != nil {
		t.Errorf("flags %v without a checker", base.Flagged)
	}
	plane := 3 * base.Width * base.Height
	m0, m1 := clipMean(base, 0), clipMean(base, 1)
	if d := m0 - m1; d < 1e-3 && d > -1e-3 {
		t.Fatalf("the two images' CLIP means %v and %v are too close to tell apart", m0, m1)
	}
	flagged := 0
	if m1 > m0 {
		flagged = 1
	}
	safe := testExport(t, diffusiontest.Options{Safety: true, SafetyThreshold: float32((m0 + m1) / 2)})

	t.Run("auto: the flagged image is black, the other unchanged", func(t *testing.T) {
		p, err := openWith(t, safe, diffusion.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if !p.Safety() {
			t.Fatal("the export's safety checker is not used")
		}
		res, err := p.Generate(ctx, req, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Flagged) != 2 || !res.Flagged[flagged] || res.Flagged[1-flagged] {
			t.Fatalf("flags %v, want image %d flagged (CLIP means %v, %v)", res.Flagged, flagged, m0, m1)
		}
		if !bytes.Equal(res.Pixels[flagged*plane:(flagged+1)*plane], make([]byte, plane)) {
			t.Error("the flagged image is not black")
		}
		keep := 1 - flagged
		if !bytes.Equal(res.Pixels[keep*plane:(keep+1)*plane], base.Pixels[keep*plane:(keep+1)*plane]) {
			t.Error("the unflagged image changed")
		}
	})
	t.Run("one image: unflagged it is the golden output, flagged it is black", func(t *testing.T) {
		one := request(tok, 4, 7.5) // TestPipelineGolden's "euler ancestral with guidance"
		golden := goldenDigest(t, "euler ancestral with guidance")
		unchecked, err := p.Generate(ctx, one, nil)
		if err != nil {
			t.Fatal(err)
		}
		m := clipMean(unchecked, 0)
		for _, c := range []struct {
			name      string
			threshold float64
			flagged   bool
		}{{"threshold above its CLIP mean", m + 0.05, false}, {"threshold below its CLIP mean", m - 0.05, true}} {
			p, err := openWith(t, testExport(t, diffusiontest.Options{Safety: true, SafetyThreshold: float32(c.threshold)}), diffusion.Options{})
			if err != nil {
				t.Fatal(err)
			}
			res, err := p.Generate(ctx, one, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Flagged) != 1 || res.Flagged[0] != c.flagged {
				t.Fatalf("%s: flags %v, want [%v]", c.name, res.Flagged, c.flagged)
			}
			want := golden
			if c.flagged {
				want = digest(make([]byte, len(res.Pixels)))
			}
			if got := digest(res.Pixels); got != want {
				t.Errorf("%s: pixels sha256 %s, want %s", c.name, got, want)
			}
		}
	})
	t.Run("off: the checker is not loaded", func(t *testing.T) {
		p, err := openWith(t, safe, diffusion.Options{SafetyMode: diffusion.SafetyOff})
		if err != nil {
			t.Fatal(err)
		}
		if p.Safety() {
			t.Fatal("safety off still checks")
		}
		res, err := p.Generate(ctx, req, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Flagged != nil || !bytes.Equal(res.Pixels, base.Pixels) {
			t.Errorf("flags %v; pixels equal to the unchecked run: %v", res.Flagged, bytes.Equal(res.Pixels, base.Pixels))
		}
	})
	t.Run("required: an export without the checker is refused", func(t *testing.T) {
		_, err := openWith(t, plain, diffusion.Options{SafetyMode: diffusion.SafetyRequired})
		if !errors.Is(err, diffusion.ErrNoSafetyChecker) || !strings.Contains(err.Error(), diffusion.SafetyCheckerFile) || !strings.Contains(err.Error(), "auto or off") {
			t.Errorf("err = %v", err)
		}
		if p, err := openWith(t, safe, diffusion.Options{SafetyMode: diffusion.SafetyRequired}); err != nil || !p.Safety() {
			t.Errorf("with the checker: err %v", err)
		}
	})
	t.Run("an unknown mode is refused", func(t *testing.T) {
		if _, err := openWith(t, safe, diffusion.Options{SafetyMode: "strict"}); err == nil || !strings.Contains(err.Error(), "auto, off or required") {
			t.Errorf("err = %v", err)
		}
	})
}

// goldenDigest is the sha256 testdata/diffusion-golden.txt holds for a TestPipelineGolden case.
func goldenDigest(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "diffusion-golden.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if n, sum, ok := strings.Cut(line, "\t"); ok && n == name {
			return sum
		}
	}
	t.Fatalf("no golden %q", name)
	return ""
}
