// Package ncnn converts ncnn models (a text .param graph plus .bin weights)
// into ONNX, so that models published only in ncnn format (Real-ESRGAN's
// realesr-general-x4v3 and realesr-animevideov3) run on ONNX Runtime like
// every other model of the service.
//
// It covers the layers those super-resolution networks use: Input,
// Convolution (with fused activation), PReLU, ReLU, PixelShuffle, Interp,
// BinaryOp, Eltwise, Concat, Split and Noop. Anything else is refused with
// an error naming the layer and the parameter, never converted approximately.
//
// The ONNX protobuf is written by hand with protowire: the handful of
// messages needed do not justify generated code for the whole ONNX schema.
package ncnn

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// Errors returned (wrapped) by ParseParam and Convert; match with errors.Is.
var (
	// ErrMalformed means the .param or .bin is not a valid ncnn model, or the
	// two files do not belong together.
	ErrMalformed = errors.New("malformed ncnn model")
	// ErrUnsupported means the model is valid ncnn but uses a layer, a
	// parameter or a weight encoding this converter does not translate.
	ErrUnsupported = errors.New("unsupported by the ncnn converter")
)

// paramMagic opens every text .param file.
const paramMagic = "7767517"

// maxParamID mirrors NCNN_MAX_PARAM_COUNT: ncnn itself refuses larger ids.
const maxParamID = 32

// maxParamLine bounds one line of a .param file; real ones are under 1 KB.
const maxParamLine = 1 << 20

// LayerError reports a problem with one layer. It wraps ErrMalformed or
// ErrUnsupported.
type LayerError struct {
	// Line is the 1-based line of the layer in the .param file.
	Line int
	// Type and Name are the layer's ncnn type and name.
	Type, Name string
	// Field is what was wrong: "param 6 (weight_data_size)", "weights", ...
	Field string
	// Err says how, and wraps ErrMalformed or ErrUnsupported.
	Err error
}

func (e *LayerError) Error() string {
	s := fmt.Sprintf("ncnn: line %d: layer %q (%s)", e.Line, e.Name, e.Type)
	if e.Field != "" {
		s += ": " + e.Field
	}
	return s + ": " + e.Err.Error()
}

func (e *LayerError) Unwrap() error { return e.Err }

// Model is a parsed .param file: layers in file (= execution) order.
type Model struct {
	Layers []Layer
	// BlobCount is the blob count the header declares; ParseParam checks
	// that the layers produce exactly that many blobs.
	BlobCount int
}

// Layer is one line of a .param file.
type Layer struct {
	Type, Name string
	// Bottoms are the input blob names, Tops the output blob names.
	Bottoms, Tops []string
	Params        Params
	// Line is the 1-based line number in the .param file.
	Line int
}

// errorf builds a LayerError for field that wraps kind.
func (l *Layer) errorf(kind error, field, format string, args ...any) error {
	return &LayerError{Line: l.Line, Type: l.Type, Name: l.Name, Field: field,
		Err: fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), kind)}
}

// Value is one parameter of a layer: a scalar, an array or a string.
//
// ncnn types a value by how it is written, and stores integers and floats
// in the same bits: "1=2" read where a float is expected is 2.8e-45 to ncnn,
// not 2.0. The accessors therefore refuse a value of the other kind unless
// it is zero, whose bits mean the same either way.
type Value struct {
	// Float reports that the scalar was written as a float ("1.0", "1e-1"):
	// it contains '.', 'e' or 'E'.
	Float bool
	// Array marks array parameters (key -23300-id, value "len,v1,v2,...").
	Array bool
	// Num is a scalar's value.
	Num float64
	// Nums are an array's elements, NumsFloat whether each was written as a
	// float.
	Nums      []float64
	NumsFloat []bool
	// String marks quoted string parameters (newer ncnn), with Str the text.
	String bool
	Str    string
	// Text is the parameter as written, for error messages.
	Text string
}

// Params are a layer's parameters by id (0..31).
type Params map[int]Value

// Has reports whether parameter id is set.
func (p Params) Has(id int) bool { _, ok := p[id]; return ok }

// Int returns integer parameter id, or def when it is absent.
func (p Params) Int(id, def int) (int, error) {
	v, ok := p[id]
	if !ok {
		return def, nil
	}
	if v.Array || v.String {
		return 0, fmt.Errorf("%q is not an integer: %w", v.Text, ErrMalformed)
	}
	if v.Float && v.Num != 0 {
		return 0, fmt.Errorf("%q is a float where ncnn reads an integer (it would see the float's bits); write %d: %w",
			v.Text, int(v.Num), ErrMalformed)
	}
	return int(v.Num), nil
}

// Float returns scalar parameter id as float32, or def when it is absent.
func (p Params) Float(id int, def float32) (float32, error) {
	v, ok := p[id]
	if !ok {
		return def, nil
	}
	if v.Array || v.String {
		return 0, fmt.Errorf("%q is not a number: %w", v.Text, ErrMalformed)
	}
	if !v.Float && v.Num != 0 {
		return 0, fmt.Errorf("%q is an integer where ncnn reads a float (it would see %g); write %g.0: %w",
			v.Text, math.Float32frombits(uint32(int32(v.Num))), v.Num, ErrMalformed)
	}
	return float32(v.Num), nil
}

// Floats returns float array parameter id, or nil when it is absent.
func (p Params) Floats(id int) ([]float32, error) {
	v, ok := p[id]
	if !ok {
		return nil, nil
	}
	if !v.Array {
		return nil, fmt.Errorf("%q is not an array: %w", v.Text, ErrMalformed)
	}
	out := make([]float32, len(v.Nums))
	for i, n := range v.Nums {
		if !v.NumsFloat[i] && n != 0 {
			return nil, fmt.Errorf("%q: element %d is an integer where ncnn reads a float (it would see %g); write %g.0: %w",
				v.Text, i, math.Float32frombits(uint32(int32(n))), n, ErrMalformed)
		}
		out[i] = float32(n)
	}
	return out, nil
}

// ParseParam reads a text .param file. It checks the structure (magic,
// counts, that every input blob was produced by an earlier layer and every
// blob is produced once) but not whether layer types are supported.
func ParseParam(r io.Reader) (*Model, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxParamLine)
	line := 0
	next := func() ([]string, bool) {
		for sc.Scan() {
			line++
			if f := strings.Fields(sc.Text()); len(f) > 0 {
				return f, true
			}
		}
		return nil, false
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("ncnn: param line %d: %s: %w", line, fmt.Sprintf(format, args...), ErrMalformed)
	}
	scanErr := func(what string) error {
		if err := sc.Err(); err != nil {
			return fmt.Errorf("ncnn: param line %d: reading %s: %w: %w", line+1, what, ErrMalformed, err)
		}
		return fmt.Errorf("ncnn: param file ends before %s: %w", what, ErrMalformed)
	}

	f, ok := next()
	if !ok {
		return nil, scanErr("the magic number")
	}
	if len(f) != 1 || f[0] != paramMagic {
		return nil, bad("magic %q, want %s (is this a text .param file? binary .param.bin files are not supported)", strings.Join(f, " "), paramMagic)
	}
	f, ok = next()
	if !ok {
		return nil, scanErr("the layer and blob counts")
	}
	if len(f) != 2 {
		return nil, bad("want \"layer_count blob_count\", got %q", strings.Join(f, " "))
	}
	layerCount, err1 := strconv.Atoi(f[0])
	blobCount, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil || layerCount <= 0 || blobCount <= 0 {
		return nil, bad("layer and blob counts %q are not positive integers", strings.Join(f, " "))
	}
	if layerCount > maxParamLine || blobCount > maxParamLine {
		return nil, bad("layer and blob counts %d %d are implausibly large", layerCount, blobCount)
	}

	m := &Model{BlobCount: blobCount}
	produced := map[string]int{} // blob -> line of its producer
	for len(m.Layers) < layerCount {
		f, ok := next()
		if !ok {
			return nil, scanErr(fmt.Sprintf("layer %d of %d", len(m.Layers)+1, layerCount))
		}
		l, err := parseLayer(f, line)
		if err != nil {
			return nil, err
		}
		for _, b := range l.Bottoms {
			if _, ok := produced[b]; !ok {
				return nil, l.errorf(ErrMalformed, "inputs", "blob %q is not produced by any earlier layer", b)
			}
		}
		for _, t := range l.Tops {
			if at, ok := produced[t]; ok {
				return nil, l.errorf(ErrMalformed, "outputs", "blob %q is already produced on line %d", t, at)
			}
			produced[t] = line
		}
		m.Layers = append(m.Layers, l)
	}
	if f, ok := next(); ok {
		return nil, bad("text after the %d declared layers: %q", layerCount, strings.Join(f, " "))
	}
	if err := sc.Err(); err != nil {
		return nil, scanErr("the end")
	}
	if len(produced) != blobCount {
		return nil, fmt.Errorf("ncnn: param header declares %d blobs but the layers produce %d: %w", blobCount, len(produced), ErrMalformed)
	}
	return m, nil
}

// parseLayer parses "type name nbottom ntop bottoms... tops... k=v...".
func parseLayer(f []string, line int) (Layer, error) {
	l := Layer{Line: line, Params: Params{}}
	if len(f) < 4 {
		l.Type = f[0]
		if len(f) > 1 {
			l.Name = f[1]
		}
		return l, l.errorf(ErrMalformed, "", "want \"type name input_count output_count ...\", got %q", strings.Join(f, " "))
	}
	l.Type, l.Name = f[0], f[1]
	nb, err1 := strconv.Atoi(f[2])
	nt, err2 := strconv.Atoi(f[3])
	if err1 != nil || err2 != nil || nb < 0 || nt < 0 {
		return l, l.errorf(ErrMalformed, "", "input and output counts %q %q are not non-negative integers", f[2], f[3])
	}
	if len(f) < 4+nb+nt {
		return l, l.errorf(ErrMalformed, "", "declares %d inputs and %d outputs but names only %d blobs", nb, nt, len(f)-4)
	}
	l.Bottoms = f[4 : 4+nb]
	l.Tops = f[4+nb : 4+nb+nt]
	for _, kv := range f[4+nb+nt:] {
		if err := l.Params.parse(kv); err != nil {
			return l, l.errorf(ErrMalformed, "params", "%v", err)
		}
	}
	return l, nil
}

// parse adds one "id=value" token, following ncnn's ParamDict: an id of
// -23300-k makes parameter k an array written "len,v1,v2,...", and a value
// is a float when it contains '.', 'e' or 'E'.
func (p Params) parse(kv string) error {
	k, v, ok := strings.Cut(kv, "=")
	if !ok {
		return fmt.Errorf("%q is not id=value", kv)
	}
	id, err := strconv.Atoi(k)
	if err != nil {
		return fmt.Errorf("%q: id %q is not an integer", kv, k)
	}
	val := Value{Text: kv}
	if id <= -23300 {
		id = -id - 23300
		val.Array = true
		parts := strings.Split(v, ",")
		n, err := strconv.Atoi(parts[0])
		if err != nil || n < 0 {
			return fmt.Errorf("%q: array length %q is not a non-negative integer", kv, parts[0])
		}
		if n != len(parts)-1 {
			return fmt.Errorf("%q: array declares %d elements but has %d", kv, n, len(parts)-1)
		}
		for _, e := range parts[1:] {
			x, isFloat, err := parseNumber(e)
			if err != nil {
				return fmt.Errorf("%q: element %q: %v", kv, e, err)
			}
			val.Nums = append(val.Nums, x)
			val.NumsFloat = append(val.NumsFloat, isFloat)
		}
	} else if strings.HasPrefix(v, `"`) {
		if len(v) < 2 || !strings.HasSuffix(v, `"`) {
			return fmt.Errorf("%q: unterminated string", kv)
		}
		val.String, val.Str = true, v[1:len(v)-1]
	} else {
		x, isFloat, err := parseNumber(v)
		if err != nil {
			return fmt.Errorf("%q: %v", kv, err)
		}
		val.Num, val.Float = x, isFloat
	}
	if id < 0 || id >= maxParamID {
		return fmt.Errorf("%q: parameter id %d is outside 0..%d", kv, id, maxParamID-1)
	}
	if _, dup := p[id]; dup {
		return fmt.Errorf("%q: parameter %d is set twice", kv, id)
	}
	p[id] = val
	return nil
}

func parseNumber(s string) (x float64, isFloat bool, err error) {
	if strings.ContainsAny(s, ".eE") {
		f, err := strconv.ParseFloat(s, 32)
		if err != nil {
			return 0, true, fmt.Errorf("not a number")
		}
		return f, true, nil
	}
	i, err := strconv.ParseInt(s, 10, 32)
	if err != nil {
		return 0, false, fmt.Errorf("not a 32-bit integer")
	}
	return float64(i), false, nil
}
