package ocr

import (
	"math"
	"strings"
	"testing"
)

func TestDecode(t *testing.T) {
	d, err := ReadDictionary(strings.NewReader("a\nb\nc\n"))
	if err != nil {
		t.Fatal(err)
	}
	if d.Classes() != 5 {
		t.Fatalf("classes %d, want blank + 3 + space = 5", d.Classes())
	}
	const blank, a, b, c, space = 0, 1, 2, 3, 4
	// steps builds a [T, 5] probability matrix whose step i has class cls[i] at p[i]
	// and the rest spread evenly.
	steps := func(cls []int, p []float32) []float32 {
		out := make([]float32, len(cls)*5)
		for i, k := range cls {
			for j := range 5 {
				out[i*5+j] = (1 - p[i]) / 4
			}
			out[i*5+k] = p[i]
		}
		return out
	}
	tests := []struct {
		name     string
		cls      []int
		p        []float32
		wantText string
		wantConf float64
	}{
		{"repeats collapse and blanks drop", []int{a, a, blank, b, b, b, c}, []float32{0.9, 0.8, 0.99, 0.7, 0.6, 0.5, 1}, "abc", (0.9 + 0.7 + 1) / 3},
		{"a blank between repeats keeps both", []int{a, blank, a}, []float32{0.8, 0.9, 0.6}, "aa", 0.7},
		{"the class after the dictionary is a space", []int{a, space, b}, []float32{1, 1, 1}, "a b", 1},
		{"all blanks read as nothing with confidence 0", []int{blank, blank}, []float32{0.9, 0.9}, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text, conf, err := d.Decode(steps(tt.cls, tt.p), len(tt.cls), 5)
			if err != nil {
				t.Fatal(err)
			}
			if text != tt.wantText || math.Abs(conf-tt.wantConf) > 1e-6 {
				t.Errorf("Decode = %q %.4f, want %q %.4f", text, conf, tt.wantText, tt.wantConf)
			}
		})
	}
	if _, _, err := d.Decode(make([]float32, 12), 2, 6); err == nil || !strings.Contains(err.Error(), "do not belong together") {
		t.Errorf("6 classes against a 5-class dictionary: %v, want a mismatch error", err)
	}
	if _, err := ReadDictionary(strings.NewReader("")); err == nil {
		t.Error("an empty dictionary was accepted")
	}
}
