//go:build cgo

package ncnn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	ortgo "github.com/yalue/onnxruntime_go"

	"github.com/creativeai-studio/studio/internal/assets"
)

// The tests drive onnxruntime_go directly rather than through
// processors/inference/ort: internal/models imports this package, and ort
// imports internal/models.

var ortInit struct {
	once sync.Once
	err  error
}

// needORT loads the cached ONNX Runtime library once per process. Without
// it the test skips, unless STUDIO_REQUIRE_ASSETS=1 (CI fetches it first).
func needORT(t testing.TB) {
	t.Helper()
	lib := filepath.Join(assets.DefaultDir(), filepath.FromSlash(assets.ONNXRuntimeCPU.Path))
	if _, err := os.Stat(lib); err != nil {
		if os.Getenv("STUDIO_REQUIRE_ASSETS") == "1" {
			t.Fatalf("ONNX Runtime library: %v (run `studio fetch runtime`)", err)
		}
		t.Skipf("no ONNX Runtime library at %s (run `studio fetch runtime`): %v", lib, err)
	}
	ortInit.once.Do(func() {
		ortgo.SetSharedLibraryPath(lib)
		ortInit.err = ortgo.InitializeEnvironment(ortgo.WithLogLevelError())
	})
	if ortInit.err != nil {
		t.Fatalf("load ONNX Runtime from %s: %v", lib, ortInit.err)
	}
}

type ortSession struct{ s *ortgo.DynamicAdvancedSession }

// openONNX writes model to a temporary file and opens an ONNX Runtime
// session on it with the given intra-op thread count (0: all cores).
func openONNX(t testing.TB, model []byte, threads int) *ortSession {
	t.Helper()
	needORT(t)
	path := filepath.Join(t.TempDir(), "model.onnx")
	if err := os.WriteFile(path, model, 0o644); err != nil {
		t.Fatal(err)
	}
	so, err := ortgo.NewSessionOptions()
	if err != nil {
		t.Fatal(err)
	}
	defer so.Destroy()
	if threads > 0 {
		if err := so.SetIntraOpNumThreads(threads); err != nil {
			t.Fatal(err)
		}
	}
	s, err := ortgo.NewDynamicAdvancedSession(path, []string{InputName}, []string{OutputName}, so)
	if err != nil {
		t.Fatalf("ONNX Runtime refused the converted model: %v", err)
	}
	t.Cleanup(func() { _ = s.Destroy() })
	return &ortSession{s}
}

func (s *ortSession) run(t testing.TB, x tensor) tensor {
	t.Helper()
	in, err := ortgo.NewTensor(ortgo.NewShape(x.shape()...), x.d)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Destroy()
	outs := []ortgo.Value{nil}
	if err := s.s.Run([]ortgo.Value{in}, outs); err != nil {
		t.Fatalf("run %v: %v", x.shape(), err)
	}
	defer outs[0].Destroy()
	o, ok := outs[0].(*ortgo.Tensor[float32])
	if !ok {
		t.Fatalf("output is %T, want float32", outs[0])
	}
	sh := o.GetShape()
	if len(sh) != 4 {
		t.Fatalf("output shape %v is not NCHW", sh)
	}
	return tensor{int(sh[0]), int(sh[1]), int(sh[2]), int(sh[3]), slices.Clone(o.GetData())}
}

// assertClose compares shapes and values with a float32-sized tolerance.
func assertClose(t *testing.T, got, want tensor, tol float64) {
	t.Helper()
	if got.n != want.n || got.c != want.c || got.h != want.h || got.w != want.w {
		t.Fatalf("shape %v, want %v", got.shape(), want.shape())
	}
	worst, at := 0.0, 0
	for i := range want.d {
		d := math.Abs(float64(got.d[i]-want.d[i])) / math.Max(1, math.Abs(float64(want.d[i])))
		if d > worst || math.IsNaN(d) {
			worst, at = d, i
		}
	}
	if worst > tol || math.IsNaN(worst) {
		t.Fatalf("element %d = %v, want %v (relative error %.3g > %.3g)", at, got.d[at], want.d[at], worst, tol)
	}
}

// opCase is a small ncnn graph, what ncnn would compute for it, and the
// input shapes to try (several, to check the batch and sizes are dynamic).
type opCase struct {
	name   string
	build  func(t *testing.T, rng *rand.Rand) (*testNet, func(tensor) tensor)
	shapes [][4]int
	tol    float64
}

func convCase(name string, inC int, s convSpec, params []string, fp16, bias bool, act func(int, float32) float32, shapes ...[4]int) opCase {
	return opCase{name: name, shapes: shapes, build: func(t *testing.T, rng *rand.Rand) (*testNet, func(tensor) tensor) {
		nw := s.oc * inC * s.kh * s.kw
		p := append([]string{fmt.Sprintf("0=%d", s.oc), fmt.Sprintf("6=%d", nw)}, params...)
		if bias {
			p = append(p, "5=1")
		}
		n := newNet()
		n.add("Convolution", "conv", []string{"data"}, []string{"y"}, p...)
		var w, b []float32
		if fp16 {
			w = randHalfs(rng, nw)
			n.f16(t, w)
		} else {
			w = randFloats(rng, nw, -1, 1)
			n.f32(true, w)
		}
		if bias {
			b = randFloats(rng, s.oc, -1, 1)
			n.f32(false, b)
		}
		return n, func(x tensor) tensor {
			y := conv2d(x, w, b, s)
			if act != nil {
				y = y.mapT(act)
			}
			return y
		}
	}}
}

// interpCase resizes the input with an Interp layer.
func interpCase(name string, params []string, ref func(tensor) tensor, shapes ...[4]int) opCase {
	return opCase{name: name, shapes: shapes, build: func(t *testing.T, rng *rand.Rand) (*testNet, func(tensor) tensor) {
		n := newNet("2=2")
		n.add("Interp", "interp", []string{"data"}, []string{"y"}, params...)
		return n, ref
	}}
}

// binaryCase computes op(a, b + 1.5) with a and b both the input, so the
// divisor stays away from zero.
func binaryCase(name string, op int, ref func(a, b float32) float32) opCase {
	return opCase{name: name, shapes: [][4]int{{2, 3, 4, 5}}, build: func(t *testing.T, rng *rand.Rand) (*testNet, func(tensor) tensor) {
		n := newNet("2=3")
		n.add("Split", "split", []string{"data"}, []string{"a", "b"})
		n.add("BinaryOp", "plus", []string{"b"}, []string{"c"}, "0=0", "1=1", "2=1.500000e+00")
		n.add("BinaryOp", "op", []string{"a", "c"}, []string{"y"}, fmt.Sprintf("0=%d", op))
		return n, func(x tensor) tensor {
			c := x.mapT(func(_ int, v float32) float32 { return v + 1.5 })
			return zip(x, c, ref)
		}
	}}
}

// scalarCase computes op(input + 1.5, 0.75) with a scalar BinaryOp.
func scalarCase(name string, op int, ref func(a, b float32) float32) opCase {
	return opCase{name: name, shapes: [][4]int{{1, 2, 3, 4}}, tol: 1e-5, build: func(t *testing.T, rng *rand.Rand) (*testNet, func(tensor) tensor) {
		n := newNet("2=2")
		n.add("BinaryOp", "plus", []string{"data"}, []string{"c"}, "0=0", "1=1", "2=1.500000e+00")
		n.add("BinaryOp", "op", []string{"c"}, []string{"y"}, fmt.Sprintf("0=%d", op), "1=1", "2=7.500000e-01")
		return n, func(x tensor) tensor {
			return x.mapT(func(_ int, v float32) float32 { return ref(v+1.5, 0.75) })
		}
	}}
}

func pow32(a, b float32) float32 { return float32(math.Pow(float64(a), float64(b))) }

func TestConvertedOpsMatchNCNNOnONNXRuntime(t *testing.T) {
	needORT(t)
	// Both sizes leave an odd total padding, so upper and lower differ.
	upT, upB := samePads(8, 3, 2, 1, true)
	loT, loB := samePads(7, 2, 1, 1, false)
	cases := []opCase{
		convCase("3x3 convolution with padding and bias keeps batch and size dynamic", 3,
			convSpec{oc: 4, kh: 3, kw: 3, sh: 1, sw: 1, dh: 1, dw: 1, pt: 1, pl: 1, pb: 1, pr: 1},
			[]string{"1=3", "4=1"}, false, true, nil, [4]int{2, 3, 7, 9}, [4]int{1, 3, 5, 4}),
		convCase("rectangular strided dilated convolution with asymmetric pads, fp16 weights and leaky relu", 3,
			convSpec{oc: 5, kh: 2, kw: 3, sh: 1, sw: 2, dh: 1, dw: 2, pt: 1, pl: 2, pb: 0, pr: 0},
			[]string{"1=3", "11=2", "2=2", "12=1", "3=2", "13=1", "4=2", "15=0", "14=1", "16=0", "9=2", "-23310=1,1.000000e-01"},
			true, true, leaky(0.1), [4]int{1, 3, 8, 10}),
		convCase("SAME_UPPER padding (-233) with stride 2", 2,
			convSpec{oc: 3, kh: 3, kw: 3, sh: 2, sw: 2, dh: 1, dw: 1, pt: upT, pl: upT, pb: upB, pr: upB},
			[]string{"1=3", "3=2", "4=-233"}, false, false, nil, [4]int{1, 2, 8, 8}),
		convCase("SAME_LOWER padding (-234) puts the odd pixel first", 2,
			convSpec{oc: 3, kh: 2, kw: 2, sh: 1, sw: 1, dh: 1, dw: 1, pt: loT, pl: loT, pb: loB, pr: loB},
			[]string{"1=2", "4=-234"}, false, true, nil, [4]int{1, 2, 7, 7}),
		convCase("fused relu", 3, convSpec{oc: 4, kh: 1, kw: 1, sh: 1, sw: 1, dh: 1, dw: 1},
			[]string{"1=1", "9=1"}, false, true, func(_ int, v float32) float32 { return max(v, 0) }, [4]int{1, 3, 4, 4}),
		convCase("fused clip", 3, convSpec{oc: 4, kh: 1, kw: 1, sh: 1, sw: 1, dh: 1, dw: 1},
			[]string{"1=1", "9=3", "-23310=2,-2.500000e-01,5.000000e-01"}, false, true,
			func(_ int, v float32) float32 { return min(max(v, -0.25), 0.5) }, [4]int{1, 3, 4, 4}),
		convCase("fused sigmoid", 3, convSpec{oc: 4, kh: 1, kw: 1, sh: 1, sw: 1, dh: 1, dw: 1},
			[]string{"1=1", "9=4"}, false, true, func(_ int, v float32) float32 { return sigmoid(v) }, [4]int{1, 3, 4, 4}),
		convCase("fused mish", 3, convSpec{oc: 4, kh: 1, kw: 1, sh: 1, sw: 1, dh: 1, dw: 1},
			[]string{"1=1", "9=5"}, false, true, func(_ int, v float32) float32 { return mish(v) }, [4]int{1, 3, 4, 4}),
		convCase("fused hardswish", 3, convSpec{oc: 4, kh: 1, kw: 1, sh: 1, sw: 1, dh: 1, dw: 1},
			[]string{"1=1", "9=6", "-23310=2,2.000000e-01,5.000000e-01"}, false, true, hardswish(0.2, 0.5), [4]int{1, 3, 4, 4}),
		{name: "per-channel PReLU", shapes: [][4]int{{2, 4, 3, 5}}, build: func(t *testing.T, rng *rand.Rand) (*testNet, func(tensor) tensor) {
			n := newNet("2=4").add("PReLU", "prelu", []string{"data"}, []string{"y"}, "0=4")
			s := randFloats(rng, 4, -0.5, 0.5)
			n.f32(false, s)
			return n, func(x tensor) tensor { return x.mapT(prelu(s)) }
		}},
		{name: "single-slope PReLU", shapes: [][4]int{{1, 3, 3, 3}}, build: func(t *testing.T, rng *rand.Rand) (*testNet, func(tensor) tensor) {
			n := newNet("2=3").add("PReLU", "prelu", []string{"data"}, []string{"y"}, "0=1")
			n.f32(false, []float32{0.25})
			return n, func(x tensor) tensor { return x.mapT(prelu([]float32{0.25})) }
		}},
		{name: "ReLU and leaky ReLU", shapes: [][4]int{{1, 2, 3, 3}}, build: func(t *testing.T, rng *rand.Rand) (*testNet, func(tensor) tensor) {
			n := newNet("2=2").add("ReLU", "relu", []string{"data"}, []string{"r"}, "0=0")
			n.add("Split", "s", []string{"data"}, []string{"d0", "d1"}) // a second use of data
			n.add("ReLU", "leaky", []string{"d0"}, []string{"l"}, "0=2.000000e-01")
			n.add("Eltwise", "sum", []string{"r", "l"}, []string{"y"}, "0=1")
			return n, func(x tensor) tensor {
				return zip(x.mapT(leaky(0)), x.mapT(leaky(0.2)), func(a, b float32) float32 { return a + b })
			}
		}},
		{name: "PixelShuffle in PyTorch order (mode 0, DepthToSpace CRD)", shapes: [][4]int{{2, 8, 3, 4}}, build: func(t *testing.T, rng *rand.Rand) (*testNet, func(tensor) tensor) {
			return newNet("2=8").add("PixelShuffle", "ps", []string{"data"}, []string{"y"}, "0=2"),
				func(x tensor) tensor { return pixelShuffle(x, 2, 0) }
		}},
		{name: "PixelShuffle in TensorFlow order (mode 1, DepthToSpace DCR)", shapes: [][4]int{{1, 8, 3, 4}}, build: func(t *testing.T, rng *rand.Rand) (*testNet, func(tensor) tensor) {
			return newNet("2=8").add("PixelShuffle", "ps", []string{"data"}, []string{"y"}, "0=2", "1=1"),
				func(x tensor) tensor { return pixelShuffle(x, 2, 1) }
		}},
		{name: "PixelShuffle x3", shapes: [][4]int{{1, 18, 2, 3}}, build: func(t *testing.T, rng *rand.Rand) (*testNet, func(tensor) tensor) {
			return newNet("2=18").add("PixelShuffle", "ps", []string{"data"}, []string{"y"}, "0=3"),
				func(x tensor) tensor { return pixelShuffle(x, 3, 0) }
		}},
		interpCase("nearest x4", []string{"0=1", "1=4.000000e+00", "2=4.000000e+00"},
			func(x tensor) tensor { return nearest(x, 4, 4, 0, 0) }, [4]int{2, 2, 3, 5}, [4]int{1, 2, 4, 4}),
		interpCase("nearest x3 by 1.5", []string{"0=1", "1=3.000000e+00", "2=1.500000e+00"},
			func(x tensor) tensor { return nearest(x, 3, 1.5, 0, 0) }, [4]int{1, 2, 5, 7}),
		interpCase("nearest to a fixed size", []string{"0=1", "3=6", "4=9"},
			func(x tensor) tensor { return nearest(x, 0, 0, 6, 9) }, [4]int{1, 2, 4, 6}, [4]int{1, 2, 7, 3}),
		interpCase("bilinear x2", []string{"0=2", "1=2.000000e+00", "2=2.000000e+00"},
			func(x tensor) tensor { return bilinear(x, 2*x.h, 2*x.w, false) }, [4]int{1, 2, 4, 5}),
		interpCase("bilinear x1.5, where ncnn derives the ratio from the sizes", []string{"0=2", "1=1.500000e+00", "2=1.500000e+00"},
			func(x tensor) tensor { return bilinear(x, x.h*3/2, x.w*3/2, false) }, [4]int{1, 2, 5, 7}),
		interpCase("bilinear with align_corner", []string{"0=2", "1=2.000000e+00", "2=3.000000e+00", "6=1"},
			func(x tensor) tensor { return bilinear(x, 2*x.h, 3*x.w, true) }, [4]int{1, 2, 4, 5}),
		interpCase("bicubic x2", []string{"0=3", "1=2.000000e+00", "2=2.000000e+00"},
			func(x tensor) tensor { return bicubic(x, 2*x.h, 2*x.w, false) }, [4]int{1, 2, 5, 6}),
		interpCase("bicubic x0.5, as animevideov3-x2 ends", []string{"0=3", "1=5.000000e-01", "2=5.000000e-01"},
			func(x tensor) tensor { return bicubic(x, x.h/2, x.w/2, false) }, [4]int{1, 2, 12, 10}),
		interpCase("bicubic to a fixed size with align_corner", []string{"0=3", "3=7", "4=9", "6=1"},
			func(x tensor) tensor { return bicubic(x, 7, 9, true) }, [4]int{1, 2, 5, 4}),
		{name: "bilinear to the size of another blob", shapes: [][4]int{{1, 2, 3, 4}}, build: func(t *testing.T, rng *rand.Rand) (*testNet, func(tensor) tensor) {
			n := newNet("2=2").add("Split", "s", []string{"data"}, []string{"a", "b"})
			n.add("Interp", "big", []string{"a"}, []string{"ref"}, "0=1", "1=3.000000e+00", "2=2.000000e+00")
			n.add("Interp", "fit", []string{"b", "ref"}, []string{"y"}, "0=2", "5=1")
			return n, func(x tensor) tensor { return bilinear(x, 3*x.h, 2*x.w, false) }
		}},
		binaryCase("tensor add", 0, func(a, b float32) float32 { return a + b }),
		binaryCase("tensor sub", 1, func(a, b float32) float32 { return a - b }),
		binaryCase("tensor mul", 2, func(a, b float32) float32 { return a * b }),
		binaryCase("tensor div", 3, func(a, b float32) float32 { return a / b }),
		binaryCase("tensor max", 4, func(a, b float32) float32 { return max(a, b) }),
		binaryCase("tensor min", 5, func(a, b float32) float32 { return min(a, b) }),
		binaryCase("tensor rsub", 7, func(a, b float32) float32 { return b - a }),
		binaryCase("tensor rdiv", 8, func(a, b float32) float32 { return b / a }),
		scalarCase("scalar sub", 1, func(a, b float32) float32 { return a - b }),
		scalarCase("scalar mul", 2, func(a, b float32) float32 { return a * b }),
		scalarCase("scalar div", 3, func(a, b float32) float32 { return a / b }),
		scalarCase("scalar max", 4, func(a, b float32) float32 { return max(a, b) }),
		scalarCase("scalar min", 5, func(a, b float32) float32 { return min(a, b) }),
		scalarCase("scalar pow", 6, pow32),
		scalarCase("scalar rsub", 7, func(a, b float32) float32 { return b - a }),
		scalarCase("scalar rdiv", 8, func(a, b float32) float32 { return b / a }),
		scalarCase("scalar rpow", 9, func(a, b float32) float32 { return pow32(b, a) }),
		{name: "Eltwise sum with coefficients, prod and max over three inputs", shapes: [][4]int{{2, 3, 2, 4}}, build: func(t *testing.T, rng *rand.Rand) (*testNet, func(tensor) tensor) {
			n := newNet("2=3").add("Split", "s", []string{"data"}, []string{"a", "b", "c", "d", "e", "f", "g"})
			n.add("ReLU", "ra", []string{"a"}, []string{"ra"}, "0=5.000000e-01")
			n.add("Eltwise", "wsum", []string{"ra", "b"}, []string{"s1"}, "0=1", "-23301=2,1.000000e+00,-5.000000e-01")
			n.add("Eltwise", "prod", []string{"s1", "c", "d"}, []string{"p"}, "0=0")
			n.add("Eltwise", "max", []string{"p", "e", "f"}, []string{"m"}, "0=2")
			n.add("Eltwise", "sum", []string{"m", "g"}, []string{"y"}, "0=1")
			return n, func(x tensor) tensor {
				s1 := zip(x.mapT(leaky(0.5)), x, func(a, b float32) float32 { return a - 0.5*b })
				p := zip(s1, x, func(a, b float32) float32 { return a * b * b })
				m := zip(p, x, func(a, b float32) float32 { return max(a, b) })
				return zip(m, x, func(a, b float32) float32 { return a + b })
			}
		}},
		{name: "Concat over channels, height and width", shapes: [][4]int{{2, 2, 3, 4}}, build: func(t *testing.T, rng *rand.Rand) (*testNet, func(tensor) tensor) {
			n := newNet("2=2").add("Split", "s", []string{"data"}, []string{"a", "b", "c", "d", "e", "f"})
			n.add("ReLU", "r", []string{"a"}, []string{"ra"})
			n.add("Concat", "cc", []string{"ra", "b"}, []string{"c1"}, "0=0")
			n.add("Concat", "ch", []string{"c", "d"}, []string{"c2"}, "0=1")
			n.add("Concat", "cw", []string{"e", "f"}, []string{"c3"}, "0=-1")
			n.add("Interp", "fit2", []string{"c2"}, []string{"r2"}, "0=1", "3=3", "4=8") // back to 3x8
			n.add("Concat", "cc2", []string{"r2", "r2"}, []string{"r2c"}, "0=0")         // 4 channels
			n.add("Interp", "fit3", []string{"c3"}, []string{"r3"}, "0=1", "3=3", "4=8") // 3x8
			n.add("Concat", "cc3", []string{"r3", "r3"}, []string{"r3c"}, "0=-3")        // 4 channels
			n.add("Interp", "fit1", []string{"c1"}, []string{"r1"}, "0=1", "3=3", "4=8") // 3x8
			n.add("Eltwise", "sum", []string{"r1", "r2c", "r3c"}, []string{"y"}, "0=1")
			return n, func(x tensor) tensor {
				r1 := nearest(concat(1, x.mapT(leaky(0)), x), 0, 0, 3, 8)
				r2 := nearest(concat(2, x, x), 0, 0, 3, 8)
				r3 := nearest(concat(3, x, x), 0, 0, 3, 8)
				sum := func(a, b float32) float32 { return a + b }
				return zip(zip(r1, concat(1, r2, r2), sum), concat(1, r3, r3), sum)
			}
		}},
		{name: "a Real-ESRGAN-shaped graph: Noop, Split, conv, PReLU, PixelShuffle, nearest skip, add", shapes: [][4]int{{2, 3, 6, 5}, {1, 3, 9, 9}},
			build: func(t *testing.T, rng *rand.Rand) (*testNet, func(tensor) tensor) {
				n := newNet()
				n.add("Noop", "noop", []string{"data"}, []string{"d"})
				n.add("Split", "split", []string{"d"}, []string{"d0", "d1", "unused"})
				w0, b0 := randHalfs(rng, 8*3*9), randFloats(rng, 8, -0.1, 0.1)
				n.add("Convolution", "conv0", []string{"d1"}, []string{"c0"}, "0=8", "1=3", "4=1", "5=1", "6=216")
				n.f16(t, w0)
				n.f32(false, b0)
				s0 := randFloats(rng, 8, 0, 0.3)
				n.add("PReLU", "prelu0", []string{"c0"}, []string{"p0"}, "0=8")
				n.f32(false, s0)
				w1, b1 := randHalfs(rng, 12*8*9), randFloats(rng, 12, -0.1, 0.1)
				n.add("Convolution", "conv1", []string{"p0"}, []string{"c1"}, "0=12", "1=3", "4=1", "5=1", "6=864")
				n.f16(t, w1)
				n.f32(false, b1)
				n.add("PixelShuffle", "ps", []string{"c1"}, []string{"s"}, "0=2")
				n.add("Interp", "up", []string{"d0"}, []string{"u"}, "0=1", "1=2.000000e+00", "2=2.000000e+00")
				n.add("BinaryOp", "add", []string{"s", "u"}, []string{"out"})
				pad1 := convSpec{kh: 3, kw: 3, sh: 1, sw: 1, dh: 1, dw: 1, pt: 1, pl: 1, pb: 1, pr: 1}
				return n, func(x tensor) tensor {
					s1, s2 := pad1, pad1
					s1.oc, s2.oc = 8, 12
					body := pixelShuffle(conv2d(conv2d(x, w0, b0, s1).mapT(prelu(s0)), w1, b1, s2), 2, 0)
					return zip(body, nearest(x, 2, 2, 0, 0), func(a, b float32) float32 { return a + b })
				}
			}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			n, ref := tc.build(t, rng)
			model, _ := n.convert(t)
			s := openONNX(t, model, 1)
			tol := tc.tol
			if tol == 0 {
				tol = 1e-5
			}
			for _, sh := range tc.shapes {
				x := randTensor(rng, sh[0], sh[1], sh[2], sh[3])
				assertClose(t, s.run(t, x), ref(x), tol)
			}
		})
	}
}
