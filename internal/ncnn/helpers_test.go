package ncnn

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// testNet writes a small ncnn model the way ncnn's converters do: a .param
// text and a .bin with each layer's arrays in order.
type testNet struct {
	lines []string
	blobs map[string]bool
	bin   bytes.Buffer
}

// newNet starts a model whose Input layer produces blob "data".
func newNet(inputParams ...string) *testNet {
	n := &testNet{blobs: map[string]bool{}}
	n.add("Input", "input0", nil, []string{"data"}, inputParams...)
	return n
}

func (n *testNet) add(typ, name string, bottoms, tops []string, params ...string) *testNet {
	f := []string{typ, name, fmt.Sprint(len(bottoms)), fmt.Sprint(len(tops))}
	f = append(f, bottoms...)
	f = append(f, tops...)
	f = append(f, params...)
	n.lines = append(n.lines, strings.Join(f, " "))
	for _, t := range tops {
		n.blobs[t] = true
	}
	return n
}

func (n *testNet) param() string {
	return fmt.Sprintf("7767517\n%d %d\n%s\n", len(n.lines), len(n.blobs), strings.Join(n.lines, "\n"))
}

// f32 appends float32 values, after the float32 storage tag if tagged.
func (n *testNet) f32(tagged bool, v []float32) {
	if tagged {
		_ = binary.Write(&n.bin, binary.LittleEndian, uint32(0))
	}
	_ = binary.Write(&n.bin, binary.LittleEndian, v)
}

// f16 appends v (which must be exact in float16) after the float16 tag,
// padded to 4 bytes as ncnn does.
func (n *testNet) f16(t testing.TB, v []float32) {
	_ = binary.Write(&n.bin, binary.LittleEndian, uint32(tagFloat16))
	for _, x := range v {
		_ = binary.Write(&n.bin, binary.LittleEndian, floatToHalf(t, x))
	}
	if len(v)%2 == 1 {
		n.bin.Write([]byte{0, 0})
	}
}

func (n *testNet) convert(t *testing.T) ([]byte, *Info) {
	t.Helper()
	model, info, err := Convert(strings.NewReader(n.param()), bytes.NewReader(n.bin.Bytes()))
	if err != nil {
		t.Fatalf("Convert: %v\nparam:\n%s", err, n.param())
	}
	return model, info
}

// floatToHalf encodes a float32 that float16 represents exactly.
func floatToHalf(t testing.TB, f float32) uint16 {
	t.Helper()
	var sign uint16
	if math.Signbit(float64(f)) {
		sign, f = 0x8000, -f
	}
	if f == 0 {
		return sign
	}
	e := math.Floor(math.Log2(float64(f)))
	if e < -14 { // subnormal
		m := float64(f) * (1 << 24)
		if m != math.Trunc(m) {
			t.Fatalf("%v is not exact in float16", f)
		}
		return sign | uint16(m)
	}
	m := (float64(f)/math.Exp2(e) - 1) * 1024
	if m != math.Trunc(m) || e > 15 {
		t.Fatalf("%v is not exact in float16", f)
	}
	return sign | uint16(e+15)<<10 | uint16(m)
}

// randHalfs returns n values in [-1, 1] that float16 represents exactly.
func randHalfs(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.IntN(2049)-1024) / 1024
	}
	return v
}

func randFloats(rng *rand.Rand, n int, lo, hi float32) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = lo + (hi-lo)*rng.Float32()
	}
	return v
}

// tensor is an NCHW float32 tensor.
type tensor struct {
	n, c, h, w int
	d          []float32
}

func newTensor(n, c, h, w int) tensor {
	return tensor{n, c, h, w, make([]float32, n*c*h*w)}
}

func randTensor(rng *rand.Rand, n, c, h, w int) tensor {
	t := newTensor(n, c, h, w)
	copy(t.d, randFloats(rng, len(t.d), -1, 1))
	return t
}

func (t tensor) idx(n, c, y, x int) int { return ((n*t.c+c)*t.h+y)*t.w + x }
func (t tensor) at(n, c, y, x int) float32 {
	return t.d[t.idx(n, c, y, x)]
}
func (t tensor) set(n, c, y, x int, v float32) { t.d[t.idx(n, c, y, x)] = v }
func (t tensor) shape() []int64 {
	return []int64{int64(t.n), int64(t.c), int64(t.h), int64(t.w)}
}

// mapT applies f to every element.
func (t tensor) mapT(f func(c int, v float32) float32) tensor {
	o := newTensor(t.n, t.c, t.h, t.w)
	for n := range t.n {
		for c := range t.c {
			for y := range t.h {
				for x := range t.w {
					o.set(n, c, y, x, f(c, t.at(n, c, y, x)))
				}
			}
		}
	}
	return o
}

// onnxSummary is what tests read back out of an encoded ModelProto.
type onnxSummary struct {
	irVersion, opset int64
	nodes            []onnxNodeSummary
	inits            map[string]onnxInitSummary
	inputs, outputs  map[string][]string // name -> dims ("N", "3", "?")
}

type onnxNodeSummary struct {
	op, name        string
	inputs, outputs []string
	attrs           map[string]string // rendered values
}

type onnxInitSummary struct {
	dims     []int64
	dataType int64
	raw      []byte
}

func (s *onnxSummary) ops() []string {
	var out []string
	for _, n := range s.nodes {
		out = append(out, n.op)
	}
	return out
}

// decodeONNX parses the fields the converter writes, failing the test on
// anything that is not valid protobuf.
func decodeONNX(t *testing.T, b []byte) *onnxSummary {
	t.Helper()
	s := &onnxSummary{inits: map[string]onnxInitSummary{}, inputs: map[string][]string{}, outputs: map[string][]string{}}
	fields(t, b, func(num protowire.Number, v uint64, m []byte) {
		switch num {
		case 1:
			s.irVersion = int64(v)
		case 8:
			fields(t, m, func(num protowire.Number, v uint64, _ []byte) {
				if num == 2 {
					s.opset = int64(v)
				}
			})
		case 7:
			fields(t, m, func(num protowire.Number, _ uint64, m []byte) {
				switch num {
				case 1:
					s.nodes = append(s.nodes, decodeNode(t, m))
				case 5:
					name, init := decodeInit(t, m)
					s.inits[name] = init
				case 11, 12:
					name, dims := decodeValueInfo(t, m)
					if num == 11 {
						s.inputs[name] = dims
					} else {
						s.outputs[name] = dims
					}
				}
			})
		}
	})
	return s
}

func decodeNode(t *testing.T, b []byte) onnxNodeSummary {
	n := onnxNodeSummary{attrs: map[string]string{}}
	fields(t, b, func(num protowire.Number, _ uint64, m []byte) {
		switch num {
		case 1:
			n.inputs = append(n.inputs, string(m))
		case 2:
			n.outputs = append(n.outputs, string(m))
		case 3:
			n.name = string(m)
		case 4:
			n.op = string(m)
		case 5:
			var name, val string
			fields(t, m, func(num protowire.Number, v uint64, m []byte) {
				switch num {
				case 1:
					name = string(m)
				case 2:
					val = fmt.Sprint(math.Float32frombits(uint32(v)))
				case 3:
					val = fmt.Sprint(int64(v))
				case 4:
					val = string(m)
				case 8:
					var ints []int64
					for len(m) > 0 {
						x, k := protowire.ConsumeVarint(m)
						if k < 0 {
							t.Fatalf("bad packed ints in attribute %s", name)
						}
						ints = append(ints, int64(x))
						m = m[k:]
					}
					val = fmt.Sprint(ints)
				}
			})
			n.attrs[name] = val
		}
	})
	return n
}

func decodeInit(t *testing.T, b []byte) (string, onnxInitSummary) {
	var name string
	var init onnxInitSummary
	fields(t, b, func(num protowire.Number, v uint64, m []byte) {
		switch num {
		case 1:
			for len(m) > 0 {
				x, k := protowire.ConsumeVarint(m)
				if k < 0 {
					t.Fatal("bad packed dims")
				}
				init.dims = append(init.dims, int64(x))
				m = m[k:]
			}
		case 2:
			init.dataType = int64(v)
		case 8:
			name = string(m)
		case 9:
			init.raw = m
		}
	})
	return name, init
}

func decodeValueInfo(t *testing.T, b []byte) (string, []string) {
	var name string
	var dims []string
	fields(t, b, func(num protowire.Number, _ uint64, m []byte) {
		switch num {
		case 1:
			name = string(m)
		case 2: // TypeProto.tensor_type.shape.dim
			fields(t, m, func(num protowire.Number, _ uint64, m []byte) {
				fields(t, m, func(num protowire.Number, v uint64, m []byte) {
					if num != 2 {
						return
					}
					fields(t, m, func(_ protowire.Number, _ uint64, m []byte) {
						d := "?"
						fields(t, m, func(num protowire.Number, v uint64, m []byte) {
							if num == 1 {
								d = fmt.Sprint(v)
							} else {
								d = string(m)
							}
						})
						dims = append(dims, d)
					})
				})
			})
		}
	})
	return name, dims
}

// fields walks one message, passing varint and fixed32 values as v and
// length-delimited ones as m.
func fields(t *testing.T, b []byte, f func(num protowire.Number, v uint64, m []byte)) {
	t.Helper()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			t.Fatalf("bad protobuf tag: %v", protowire.ParseError(n))
		}
		b = b[n:]
		switch typ {
		case protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				t.Fatalf("bad varint in field %d", num)
			}
			f(num, v, nil)
			b = b[n:]
		case protowire.Fixed32Type:
			v, n := protowire.ConsumeFixed32(b)
			if n < 0 {
				t.Fatalf("bad fixed32 in field %d", num)
			}
			f(num, uint64(v), nil)
			b = b[n:]
		case protowire.BytesType:
			m, n := protowire.ConsumeBytes(b)
			if n < 0 {
				t.Fatalf("bad bytes in field %d", num)
			}
			f(num, 0, m)
			b = b[n:]
		default:
			t.Fatalf("unexpected wire type %d in field %d", typ, num)
		}
	}
}
