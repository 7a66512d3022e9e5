package ncnn

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/creativeai-studio/studio/internal/onnx"
)

// esrganLike is the shape of Real-ESRGAN's compact models: a conv body,
// PixelShuffle, and a nearest-upsampled copy of the input added on.
func esrganLike(t testing.TB, rng *rand.Rand) *testNet {
	n := newNet()
	n.add("Split", "split0", []string{"data"}, []string{"d0", "d1"})
	n.add("Convolution", "conv0", []string{"d1"}, []string{"c0"}, "0=8", "1=3", "4=1", "5=1", "6=216")
	n.f16(t, randHalfs(rng, 216))
	n.f32(false, randFloats(rng, 8, -0.1, 0.1))
	n.add("PReLU", "prelu0", []string{"c0"}, []string{"p0"}, "0=8")
	n.f32(false, randFloats(rng, 8, 0, 0.3))
	n.add("Convolution", "conv1", []string{"p0"}, []string{"c1"}, "0=12", "1=3", "4=1", "5=1", "6=864")
	n.f16(t, randHalfs(rng, 864))
	n.f32(false, randFloats(rng, 12, -0.1, 0.1))
	n.add("PixelShuffle", "ps", []string{"c1"}, []string{"s"}, "0=2")
	n.add("Interp", "up", []string{"d0"}, []string{"u"}, "0=1", "1=2.000000e+00", "2=2.000000e+00")
	n.add("BinaryOp", "add", []string{"s", "u"}, []string{"output"})
	return n
}

func TestConvertBuildsAnONNXGraphWithDynamicInput(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	model, info := esrganLike(t, rng).convert(t)
	s := decodeONNX(t, model)
	if s.irVersion != onnx.IRVersion || s.opset != 17 {
		t.Errorf("ir_version %d opset %d, want %d and 17", s.irVersion, s.opset, onnx.IRVersion)
	}
	wantOps := []string{"Conv", "PRelu", "Conv", "DepthToSpace", "Resize", "Add"}
	if !slices.Equal(s.ops(), wantOps) {
		t.Errorf("ops = %v, want %v", s.ops(), wantOps)
	}
	if got := s.inputs["input"]; !slices.Equal(got, []string{"N", "3", "H", "W"}) {
		t.Errorf("input dims = %v, want [N 3 H W]", got)
	}
	if got := s.outputs["output"]; !slices.Equal(got, []string{"N", "3", "?", "?"}) {
		t.Errorf("output dims = %v, want [N 3 ? ?]", got)
	}
	if len(s.inputs) != 1 || len(s.outputs) != 1 {
		t.Errorf("inputs %v outputs %v, want one each", s.inputs, s.outputs)
	}
	conv := s.nodes[0]
	if conv.inputs[0] != "input" || conv.attrs["pads"] != "[1 1 1 1]" || conv.attrs["kernel_shape"] != "[3 3]" {
		t.Errorf("first conv = %+v", conv)
	}
	w := s.inits[conv.inputs[1]]
	if !slices.Equal(w.dims, []int64{8, 3, 3, 3}) || w.dataType != int64(onnx.Float) || len(w.raw) != 216*4 {
		t.Errorf("conv weight initializer: dims %v type %d bytes %d", w.dims, w.dataType, len(w.raw))
	}
	if slope := s.inits[s.nodes[1].inputs[1]]; !slices.Equal(slope.dims, []int64{8, 1, 1}) {
		t.Errorf("PReLU slope dims = %v, want [8 1 1] to broadcast over NCHW", slope.dims)
	}
	if ps := s.nodes[3]; ps.attrs["mode"] != "CRD" || ps.attrs["blocksize"] != "2" {
		t.Errorf("PixelShuffle became %+v, want DepthToSpace CRD blocksize 2", ps)
	}
	if up := s.nodes[4]; up.attrs["mode"] != "nearest" || up.attrs["coordinate_transformation_mode"] != "asymmetric" || up.inputs[0] != "input" {
		t.Errorf("Interp became %+v", up)
	}
	if add := s.nodes[5]; add.outputs[0] != "output" {
		t.Errorf("last node writes %v, want output", add.outputs)
	}
	// The first conv's weights are float16 1/1024 steps: check the first one survived.
	want := math.Float32bits(float32(int(rand.New(rand.NewPCG(1, 2)).IntN(2049))-1024) / 1024)
	if got := binary.LittleEndian.Uint32(w.raw); got != want {
		t.Errorf("first weight bits %#x, want %#x", got, want)
	}

	if info.Scale != 4/2.0 || info.InputChannels != 3 || info.OutputChannels != 3 || info.Layers != 8 ||
		info.Nodes != 6 || info.Weights != 216+8+8+864+12 || info.WeightFormats[Float16] != 2 ||
		info.LayerTypes["Convolution"] != 2 || info.Input != "input" || info.Output != "output" {
		t.Errorf("info = %+v", info)
	}
}

func TestConvertNamesTensorsSafely(t *testing.T) {
	// Blob names that collide with the graph's own names must not merge.
	n := newNet("2=3")
	n.add("ReLU", "r0", []string{"data"}, []string{"input"})
	n.add("ReLU", "r1", []string{"input"}, []string{"output_1"})
	n.add("ReLU", "r2", []string{"output_1"}, []string{"x"})
	s := decodeONNX(t, func() []byte { m, _ := n.convert(t); return m }())
	var chain []string
	for _, nd := range s.nodes {
		chain = append(chain, nd.inputs[0]+">"+nd.outputs[0])
	}
	want := []string{"input>input_1", "input_1>output_1", "output_1>output"}
	if !slices.Equal(chain, want) {
		t.Errorf("tensor chain = %v, want %v", chain, want)
	}
}

func TestConvertPassThroughGraphGetsAnIdentity(t *testing.T) {
	n := newNet("2=1")
	n.add("Noop", "nop", []string{"data"}, []string{"y"})
	model, info := n.convert(t)
	s := decodeONNX(t, model)
	if !slices.Equal(s.ops(), []string{"Identity"}) || s.nodes[0].inputs[0] != "input" || s.nodes[0].outputs[0] != "output" {
		t.Errorf("nodes = %+v", s.nodes)
	}
	if info.InputChannels != 1 || info.Scale != 1 {
		t.Errorf("info = %+v", info)
	}
}

func TestConvertRejectsWhatItCannotTranslate(t *testing.T) {
	conv := func(params ...string) *testNet {
		n := newNet()
		n.add("Convolution", "conv0", []string{"data"}, []string{"y"}, append([]string{"0=2", "1=1", "6=6"}, params...)...)
		n.f32(true, make([]float32, 6))
		return n
	}
	tests := []struct {
		name  string
		net   func() *testNet
		bin   func([]byte) []byte // edits the .bin; nil keeps it
		kind  error
		wants []string
	}{
		{"an unknown layer type", func() *testNet {
			return newNet("2=3").add("Pooling", "pool1", []string{"data"}, []string{"y"}, "0=0")
		}, nil, ErrUnsupported, []string{"line 4", `layer "pool1" (Pooling)`, "not supported"}},
		{"a parameter the converter does not know", func() *testNet { return conv("7=2") }, nil,
			ErrUnsupported, []string{`"conv0" (Convolution)`, "param 7", `"7=2"`}},
		{"int8 convolution", func() *testNet { return conv("8=1") }, nil,
			ErrUnsupported, []string{"param 8 (int8_scale_term)"}},
		{"a weight size that does not divide", func() *testNet {
			n := newNet("2=3")
			n.add("Convolution", "conv0", []string{"data"}, []string{"y"}, "0=2", "1=3", "6=50")
			return n
		}, nil, ErrMalformed, []string{"param 6 (weight_data_size)", "not a multiple of num_output*kernel_h*kernel_w = 2*3*3"}},
		{"weights for the wrong input channel count", func() *testNet {
			n := newNet("2=4")
			n.add("Convolution", "conv0", []string{"data"}, []string{"y"}, "0=2", "1=1", "6=6")
			return n
		}, nil, ErrMalformed, []string{"imply 3 input channels", `"data" has 4`}},
		{"a .bin that is too short", func() *testNet { return conv() },
			func(b []byte) []byte { return b[:len(b)-1] }, ErrMalformed, []string{`"conv0"`, "weights", "1 bytes short"}},
		{"a .bin that is too long", func() *testNet { return conv() },
			func(b []byte) []byte { return append(b, 0, 0, 0, 0) }, ErrMalformed, []string{"4 bytes left", "does not belong"}},
		{"an unknown fused activation", func() *testNet { return conv("9=7") }, nil,
			ErrUnsupported, []string{"param 9 (activation_type)"}},
		{"a leaky relu without its slope", func() *testNet { return conv("9=2") }, nil,
			ErrMalformed, []string{"param 10 (activation_params)", "needs 1"}},
		{"non-zero padding values", func() *testNet { return conv("4=1", "18=1.0") }, nil,
			ErrUnsupported, []string{"param 18 (pad_value)"}},
		{"mixed negative pads", func() *testNet { return conv("4=-233", "15=0") }, nil,
			ErrMalformed, []string{"param 4 (pad_left)"}},
		{"a zero stride", func() *testNet { return conv("3=0") }, nil,
			ErrMalformed, []string{"param 3 (stride_w)"}},
		{"two outputs", func() *testNet {
			return newNet("2=3").add("ReLU", "a", []string{"data"}, []string{"y"}).add("ReLU", "b", []string{"data"}, []string{"z"})
		}, nil, ErrUnsupported, []string{"2 blobs that no layer consumes (y, z)"}},
		{"no Input layer", func() *testNet {
			n := &testNet{blobs: map[string]bool{}}
			return n.add("MemoryData", "m", nil, []string{"x"})
		}, nil, ErrUnsupported, []string{"0 Input layers"}},
		{"an input of unknown depth", func() *testNet {
			return newNet().add("ReLU", "r", []string{"data"}, []string{"y"})
		}, nil, ErrUnsupported, []string{"param 2 (c)", "add 2=C"}},
		{"atan2", func() *testNet {
			return newNet("2=3").add("BinaryOp", "atan", []string{"data"}, []string{"y"}, "0=10", "1=1")
		}, nil, ErrUnsupported, []string{`"atan" (BinaryOp)`, "param 0 (op_type)"}},
		{"a tensor BinaryOp with one input", func() *testNet {
			return newNet("2=3").add("BinaryOp", "add", []string{"data"}, []string{"y"}, "0=0")
		}, nil, ErrMalformed, []string{"takes 2 inputs and 1 outputs, has 1 and 1"}},
		{"an Interp resize type ncnn lacks", func() *testNet {
			return newNet("2=3").add("Interp", "up", []string{"data"}, []string{"y"}, "0=4", "1=2.0", "2=2.0")
		}, nil, ErrUnsupported, []string{"param 0 (resize_type)"}},
		{"an Interp size expression", func() *testNet {
			return newNet("2=3").add("Interp", "up", []string{"data"}, []string{"y"}, "0=1", `9="1,2"`)
		}, nil, ErrUnsupported, []string{"param 9 (size_expr)"}},
		{"an Interp scale written as an integer, which ncnn would misread", func() *testNet {
			return newNet("2=3").add("Interp", "up", []string{"data"}, []string{"y"}, "0=1", "1=2", "2=2")
		}, nil, ErrMalformed, []string{"param 1 (height_scale)", "ncnn reads a float", "write 2.0"}},
		{"a PixelShuffle that does not divide the channels", func() *testNet {
			return newNet("2=3").add("PixelShuffle", "ps", []string{"data"}, []string{"y"}, "0=2")
		}, nil, ErrMalformed, []string{`"ps" (PixelShuffle)`, "3 input channels are not divisible by 4"}},
		{"a PReLU with the wrong slope count", func() *testNet {
			n := newNet("2=3").add("PReLU", "pr", []string{"data"}, []string{"y"}, "0=2")
			n.f32(false, []float32{1, 2})
			return n
		}, nil, ErrMalformed, []string{"param 0 (num_slope)", "2 slopes for 3 channels"}},
		{"an Eltwise over different channel counts", func() *testNet {
			n := newNet("2=3").add("Split", "s", []string{"data"}, []string{"a", "b"})
			n.add("PixelShuffle", "ps", []string{"a"}, []string{"c"}, "0=1")
			n.add("Convolution", "conv", []string{"b"}, []string{"d"}, "0=2", "1=1", "6=6")
			n.f32(true, make([]float32, 6))
			return n.add("Eltwise", "sum", []string{"c", "d"}, []string{"y"}, "0=1")
		}, nil, ErrMalformed, []string{`"sum" (Eltwise)`, `"d" has 2 channels`}},
		{"a Noop with more outputs than inputs", func() *testNet {
			return newNet("2=3").add("Noop", "n", []string{"data"}, []string{"y", "z"})
		}, nil, ErrMalformed, []string{`"n" (Noop)`, "2 outputs for 1 inputs"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := tt.net()
			bin := n.bin.Bytes()
			if tt.bin != nil {
				bin = tt.bin(slices.Clone(bin))
			}
			_, _, err := Convert(strings.NewReader(n.param()), bytes.NewReader(bin))
			if !errors.Is(err, tt.kind) {
				t.Fatalf("err = %v, want %v", err, tt.kind)
			}
			for _, w := range tt.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func FuzzConvert(f *testing.F) {
	for i := range 3 {
		n := esrganLike(f, rand.New(rand.NewPCG(uint64(i), 3)))
		f.Add(n.param(), n.bin.Bytes())
	}
	f.Add(sampleParam, []byte{})
	f.Add("7767517\n2 2\nInput in 0 1 x 2=3\nConvolution c 1 1 x y 0=2147483647 1=2147483647 11=2147483647 6=2147483647\n", []byte{})
	f.Fuzz(func(t *testing.T, param string, bin []byte) {
		model, info, err := Convert(strings.NewReader(param), bytes.NewReader(bin))
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("error %v is neither ErrMalformed nor ErrUnsupported", err)
			}
			return
		}
		s := decodeONNX(t, model)
		if len(s.nodes) != info.Nodes || len(s.inputs) != 1 || len(s.outputs) != 1 {
			t.Fatalf("%d nodes (info %d), inputs %v, outputs %v", len(s.nodes), info.Nodes, s.inputs, s.outputs)
		}
	})
}
