//go:build cgo

package ort

import (
	"context"
	"fmt"

	ortgo "github.com/yalue/onnxruntime_go"

	"github.com/creativeai-studio/studio/internal/diffusion"
)

var _ diffusion.Opener = (*Backend)(nil)

// OpenGraph loads an ONNX file with every input and output it declares (the graphs of
// a Stable Diffusion export), with the backend's device and threading settings.
func (b *Backend) OpenGraph(path string) (diffusion.Graph, error) {
	ins, outs, err := ortgo.GetInputOutputInfo(path)
	if err != nil {
		return nil, fmt.Errorf("ort: read the inputs and outputs of %s: %w", path, err)
	}
	g := &graph{path: path}
	for _, i := range ins {
		g.ins = append(g.ins, diffusion.Port{Name: i.Name, Type: elemType(i.DataType), Shape: []int64(i.Dimensions)})
	}
	for _, o := range outs {
		g.outs = append(g.outs, diffusion.Port{Name: o.Name, Type: elemType(o.DataType), Shape: []int64(o.Dimensions)})
	}
	so, err := b.sessionOptions()
	if err != nil {
		return nil, err
	}
	defer so.Destroy()
	names := func(ps []diffusion.Port) []string {
		out := make([]string, len(ps))
		for i, p := range ps {
			out[i] = p.Name
		}
		return out
	}
	if g.s, err = ortgo.NewDynamicAdvancedSession(path, names(g.ins), names(g.outs), so); err != nil {
		return nil, fmt.Errorf("ort: load %s: %w", path, err)
	}
	return g, nil
}

func elemType(t ortgo.TensorElementDataType) string {
	switch t {
	case ortgo.TensorElementDataTypeFloat:
		return "float32"
	case ortgo.TensorElementDataTypeFloat16:
		return "float16"
	case ortgo.TensorElementDataTypeInt32:
		return "int32"
	case ortgo.TensorElementDataTypeInt64:
		return "int64"
	case ortgo.TensorElementDataTypeBool:
		return "bool"
	}
	return t.String()
}

type graph struct {
	path      string
	s         *ortgo.DynamicAdvancedSession
	ins, outs []diffusion.Port
}

func (g *graph) Inputs() []diffusion.Port  { return g.ins }
func (g *graph) Outputs() []diffusion.Port { return g.outs }
func (g *graph) Close() error              { return g.s.Destroy() }

// newInput makes an input value: a tensor, or a scalar for an empty shape (a rank-0
// input, such as some exports' timestep, which NewTensor refuses). On error it returns
// a nil interface, never a typed nil that Run's cleanup would call Destroy on.
func newInput[T ortgo.TensorData](shape []int64, data []T) (ortgo.Value, error) {
	if len(shape) == 0 {
		if len(data) != 1 {
			return nil, fmt.Errorf("a scalar takes 1 value, not %d", len(data))
		}
		s, err := ortgo.NewScalar(data[0])
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	t, err := ortgo.NewTensor(ortgo.NewShape(shape...), data)
	if err != nil {
		return nil, err
	}
	return t, nil
}

// Run feeds in by name; cancelling ctx terminates the run inside ONNX Runtime.
func (g *graph) Run(ctx context.Context, in map[string]diffusion.Value) (map[string]diffusion.Value, error) {
	vals := make([]ortgo.Value, len(g.ins))
	defer func() {
		for _, v := range vals {
			if v != nil {
				_ = v.Destroy()
			}
		}
	}()
	for i, p := range g.ins {
		v, ok := in[p.Name]
		if !ok {
			return nil, fmt.Errorf("ort: %s needs input %q", g.path, p.Name)
		}
		var err error
		switch {
		case v.Float32 != nil:
			vals[i], err = newInput(v.Shape, v.Float32)
		case v.Int32 != nil:
			vals[i], err = newInput(v.Shape, v.Int32)
		case v.Int64 != nil:
			vals[i], err = newInput(v.Shape, v.Int64)
		default:
			err = fmt.Errorf("no data")
		}
		if err != nil {
			return nil, fmt.Errorf("ort: input %q %v: %w", p.Name, v.Shape, err)
		}
	}
	ro, err := ortgo.NewRunOptions()
	if err != nil {
		return nil, fmt.Errorf("ort: run options: %w", err)
	}
	defer ro.Destroy()
	stop := context.AfterFunc(ctx, func() { _ = ro.Terminate() })
	defer stop()
	outs := make([]ortgo.Value, len(g.outs))
	if err := g.s.RunWithOptions(vals, outs, ro); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("ort: %s run stopped: %w", g.path, ctx.Err())
		}
		return nil, fmt.Errorf("ort: run %s: %w", g.path, err)
	}
	res := make(map[string]diffusion.Value, len(outs))
	for i, o := range outs {
		if o == nil {
			continue
		}
		switch t := o.(type) {
		case *ortgo.Tensor[float32]:
			res[g.outs[i].Name] = diffusion.Value{Shape: []int64(t.GetShape()), Float32: append([]float32(nil), t.GetData()...)}
		case *ortgo.Tensor[int32]:
			res[g.outs[i].Name] = diffusion.Value{Shape: []int64(t.GetShape()), Int32: append([]int32(nil), t.GetData()...)}
		case *ortgo.Tensor[int64]:
			res[g.outs[i].Name] = diffusion.Value{Shape: []int64(t.GetShape()), Int64: append([]int64(nil), t.GetData()...)}
		case *ortgo.Tensor[bool]:
			res[g.outs[i].Name] = diffusion.Value{Shape: []int64(t.GetShape()), Bool: append([]bool(nil), t.GetData()...)}
		}
		_ = o.Destroy()
	}
	return res, nil
}
