package ncnn

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

const sampleParam = `7767517
5 6
Input            in0        0 1 data 2=3
Split            split0     1 2 data a b
Convolution      conv0      1 1 a c 0=4 1=3 4=1 5=1 6=108 9=2 -23310=1,1.000000e-01
Interp           up         1 1 b d 0=3 1=2.000000e+00 2=2.0 9="size"
Eltwise          sum        2 1 c d out 0=1 -23301=3,1.0,0.5,0
`

func TestParseParamReadsLayersBlobsAndTypedParams(t *testing.T) {
	m, err := ParseParam(strings.NewReader(sampleParam))
	if err != nil {
		t.Fatal(err)
	}
	if m.BlobCount != 6 || len(m.Layers) != 5 {
		t.Fatalf("blobs %d layers %d, want 6 and 5", m.BlobCount, len(m.Layers))
	}
	split := m.Layers[1]
	if split.Type != "Split" || split.Name != "split0" || split.Line != 4 ||
		!slices.Equal(split.Bottoms, []string{"data"}) || !slices.Equal(split.Tops, []string{"a", "b"}) {
		t.Errorf("split layer = %+v", split)
	}

	conv := m.Layers[2].Params
	if v, err := conv.Int(0, 0); err != nil || v != 4 {
		t.Errorf("num_output = %d, %v; want 4", v, err)
	}
	if v, err := conv.Int(11, 7); err != nil || v != 7 {
		t.Errorf("absent param gave %d, %v; want the default 7", v, err)
	}
	if _, err := conv.Float(4, 0); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "1e-45") {
		t.Errorf("the integer 1 read as a float gave %v, want ErrMalformed saying ncnn sees 1e-45", err)
	}
	if v, err := (Params{0: {Text: "0=0"}}).Float(0, 7); err != nil || v != 0 {
		t.Errorf("the integer 0 read as a float gave %v, %v; want 0", v, err)
	}
	if _, err := (Params{1: {Array: true, Nums: []float64{1}, NumsFloat: []bool{false}, Text: "-23301=1,1"}}).Floats(1); !errors.Is(err, ErrMalformed) {
		t.Errorf("an integer array element read as a float gave %v, want ErrMalformed", err)
	}
	act, err := conv.Floats(10)
	if err != nil || !slices.Equal(act, []float32{0.1}) {
		t.Errorf("activation params = %v, %v; want [0.1]", act, err)
	}

	up := m.Layers[3].Params
	if v, err := up.Float(1, 0); err != nil || v != 2 || !up[1].Float {
		t.Errorf("height_scale = %v (float %v), %v", v, up[1].Float, err)
	}
	if _, err := up.Int(2, 0); !errors.Is(err, ErrMalformed) {
		t.Errorf("a float read as an integer gave %v, want ErrMalformed (ncnn would read its bits)", err)
	}
	if !up[9].String || up[9].Str != "size" {
		t.Errorf("string param = %+v", up[9])
	}

	coeffs := m.Layers[4].Params
	if v, err := coeffs.Floats(1); err != nil || !slices.Equal(v, []float32{1, 0.5, 0}) {
		t.Errorf("float array = %v, %v; want [1 0.5 0] (an integer 0 has the bits of 0.0)", v, err)
	}
	if _, err := coeffs.Floats(0); !errors.Is(err, ErrMalformed) {
		t.Errorf("a scalar read as an array gave %v, want ErrMalformed", err)
	}
	if _, err := coeffs.Int(1, 0); !errors.Is(err, ErrMalformed) {
		t.Errorf("an array read as an integer gave %v, want ErrMalformed", err)
	}
}

func TestParseParamToleratesBlankLinesAndExtraSpaces(t *testing.T) {
	text := "7767517\n\n 2   2 \n\nInput in 0 1 x\n\n\tReLU   r 1 1   x y   0=0\n\n"
	m, err := ParseParam(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Layers) != 2 || m.Layers[1].Line != 7 {
		t.Fatalf("layers %+v", m.Layers)
	}
}

func TestParseParamRejectsMalformedFiles(t *testing.T) {
	tests := []struct {
		name, text string
		want       []string // substrings of the error
	}{
		{"an empty file", "", []string{"before the magic"}},
		{"a binary .param.bin magic", "7767518\n1 1\nInput in 0 1 x\n", []string{"magic", "7767517"}},
		{"a header without blob count", "7767517\n1\nInput in 0 1 x\n", []string{"line 2", "layer_count blob_count"}},
		{"negative counts", "7767517\n-1 1\n", []string{"not positive"}},
		{"fewer layers than declared", "7767517\n2 1\nInput in 0 1 x\n", []string{"layer 2 of 2"}},
		{"more layers than declared", "7767517\n1 1\nInput in 0 1 x\nReLU r 1 1 x y\n", []string{"line 4", "after the 1 declared layers"}},
		{"the wrong blob count", "7767517\n2 3\nInput in 0 1 x\nReLU r 1 1 x y\n", []string{"declares 3 blobs", "produce 2"}},
		{"a truncated layer line", "7767517\n1 1\nInput in 0\n", []string{`layer "in"`, "type name input_count"}},
		{"non-numeric blob counts", "7767517\n1 1\nInput in zero 1 x\n", []string{`layer "in"`, "not non-negative integers"}},
		{"fewer blob names than counted", "7767517\n2 2\nInput in 0 1 x\nBinaryOp add 2 1 x\n", []string{`layer "add" (BinaryOp)`, "names only 1"}},
		{"an input nobody produced", "7767517\n2 2\nInput in 0 1 x\nReLU r 1 1 z y\n", []string{"line 4", `"r"`, `blob "z"`}},
		{"a blob produced twice", "7767517\n2 1\nInput in 0 1 x\nReLU r 1 1 x x\n", []string{`"r"`, "already produced on line 3"}},
		{"a param without =", "7767517\n1 1\nInput in 0 1 x 2:3\n", []string{`"2:3" is not id=value`}},
		{"a non-numeric param id", "7767517\n1 1\nInput in 0 1 x c=3\n", []string{`id "c"`}},
		{"a non-numeric value", "7767517\n1 1\nInput in 0 1 x 2=3x\n", []string{"not a 32-bit integer"}},
		{"an integer too large for ncnn", "7767517\n1 1\nInput in 0 1 x 2=4294967296\n", []string{"not a 32-bit integer"}},
		{"a bad float", "7767517\n1 1\nInput in 0 1 x 2=1.2.3\n", []string{"not a number"}},
		{"an array shorter than declared", "7767517\n1 1\nInput in 0 1 x -23310=3,1,2\n", []string{"declares 3 elements but has 2"}},
		{"an array with a bad length", "7767517\n1 1\nInput in 0 1 x -23310=x,1\n", []string{"array length"}},
		{"a param id ncnn cannot hold", "7767517\n1 1\nInput in 0 1 x 32=1\n", []string{"outside 0..31"}},
		{"an array id ncnn cannot hold", "7767517\n1 1\nInput in 0 1 x -23340=1,1\n", []string{"outside 0..31"}},
		{"a param set twice", "7767517\n1 1\nInput in 0 1 x 2=3 2=4\n", []string{"set twice"}},
		{"an unterminated string", "7767517\n1 1\nInput in 0 1 x 9=\"abc\n", []string{"unterminated"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseParam(strings.NewReader(tt.text))
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestLayerErrorsCarryTheLayer(t *testing.T) {
	_, err := ParseParam(strings.NewReader("7767517\n2 2\nInput in 0 1 x\nReLU relu1 1 1 x y 0=\n"))
	var le *LayerError
	if !errors.As(err, &le) {
		t.Fatalf("err = %v, want a *LayerError", err)
	}
	if le.Line != 4 || le.Name != "relu1" || le.Type != "ReLU" || le.Field != "params" {
		t.Errorf("LayerError = %+v", le)
	}
}
