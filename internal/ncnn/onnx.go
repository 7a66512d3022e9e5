package ncnn

import (
	"encoding/binary"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// The subset of onnx.proto (field numbers from onnx/onnx.proto3) that the
// converter writes.

const (
	onnxIRVersion = 8 // ONNX 1.12, the release that introduced opset 17
	onnxOpset     = 17

	// TensorProto.DataType
	dtFloat = 1
	dtInt64 = 7

	// AttributeProto.AttributeType
	atFloat  = 1
	atInt    = 2
	atString = 3
	atFloats = 6
	atInts   = 7
)

type onnxModel struct {
	producer, producerVersion, doc string
	graph                          onnxGraph
}

type onnxGraph struct {
	name            string
	nodes           []onnxNode
	initializers    []onnxTensor
	inputs, outputs []onnxValueInfo
}

type onnxNode struct {
	name, opType    string
	inputs, outputs []string
	attrs           []onnxAttr
}

type onnxAttr struct {
	name   string
	typ    int32
	f      float32
	i      int64
	s      string
	floats []float32
	ints   []int64
}

// onnxTensor is an initializer: float32 or int64 data, stored as raw_data.
type onnxTensor struct {
	name   string
	dims   []int64
	floats []float32
	int64s []int64 // used when floats is nil
}

// onnxDim is a dimension: a fixed size, a symbolic name, or (both zero)
// unknown.
type onnxDim struct {
	value int64
	param string
}

type onnxValueInfo struct {
	name string
	dims []onnxDim
}

func attrInt(name string, v int64) onnxAttr { return onnxAttr{name: name, typ: atInt, i: v} }
func attrFloat(name string, v float32) onnxAttr {
	return onnxAttr{name: name, typ: atFloat, f: v}
}
func attrString(name, v string) onnxAttr { return onnxAttr{name: name, typ: atString, s: v} }
func attrInts(name string, v ...int64) onnxAttr {
	return onnxAttr{name: name, typ: atInts, ints: v}
}

func (m *onnxModel) marshal() []byte {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.VarintType) // ir_version
	b = protowire.AppendVarint(b, onnxIRVersion)
	b = appendString(b, 2, m.producer)
	b = appendString(b, 3, m.producerVersion)
	b = appendString(b, 6, m.doc)
	b = appendMessage(b, 7, m.graph.marshal())
	var opset []byte
	opset = appendString(opset, 1, "") // the default ai.onnx domain
	opset = protowire.AppendTag(opset, 2, protowire.VarintType)
	opset = protowire.AppendVarint(opset, onnxOpset)
	b = appendMessage(b, 8, opset)
	return b
}

func (g *onnxGraph) marshal() []byte {
	var b []byte
	for _, n := range g.nodes {
		b = appendMessage(b, 1, n.marshal())
	}
	b = appendString(b, 2, g.name)
	for _, t := range g.initializers {
		b = appendMessage(b, 5, t.marshal())
	}
	for _, v := range g.inputs {
		b = appendMessage(b, 11, v.marshal())
	}
	for _, v := range g.outputs {
		b = appendMessage(b, 12, v.marshal())
	}
	return b
}

func (n *onnxNode) marshal() []byte {
	var b []byte
	for _, s := range n.inputs {
		b = protowire.AppendTag(b, 1, protowire.BytesType) // empty names mark omitted optional inputs
		b = protowire.AppendString(b, s)
	}
	for _, s := range n.outputs {
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendString(b, s)
	}
	b = appendString(b, 3, n.name)
	b = appendString(b, 4, n.opType)
	for _, a := range n.attrs {
		b = appendMessage(b, 5, a.marshal())
	}
	return b
}

func (a *onnxAttr) marshal() []byte {
	var b []byte
	b = appendString(b, 1, a.name)
	switch a.typ {
	case atFloat:
		b = protowire.AppendTag(b, 2, protowire.Fixed32Type)
		b = protowire.AppendFixed32(b, math.Float32bits(a.f))
	case atInt:
		b = protowire.AppendTag(b, 3, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(a.i))
	case atString:
		b = protowire.AppendTag(b, 4, protowire.BytesType)
		b = protowire.AppendString(b, a.s)
	case atFloats:
		var p []byte
		for _, f := range a.floats {
			p = protowire.AppendFixed32(p, math.Float32bits(f))
		}
		b = appendMessage(b, 7, p)
	case atInts:
		var p []byte
		for _, i := range a.ints {
			p = protowire.AppendVarint(p, uint64(i))
		}
		b = appendMessage(b, 8, p)
	}
	b = protowire.AppendTag(b, 20, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(a.typ))
}

func (t *onnxTensor) marshal() []byte {
	var b []byte
	if len(t.dims) > 0 {
		var p []byte
		for _, d := range t.dims {
			p = protowire.AppendVarint(p, uint64(d))
		}
		b = appendMessage(b, 1, p)
	}
	var raw []byte
	dt := uint64(dtFloat)
	if t.floats != nil {
		raw = make([]byte, 4*len(t.floats))
		for i, f := range t.floats {
			binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(f))
		}
	} else {
		dt = dtInt64
		raw = make([]byte, 8*len(t.int64s))
		for i, v := range t.int64s {
			binary.LittleEndian.PutUint64(raw[8*i:], uint64(v))
		}
	}
	b = protowire.AppendTag(b, 2, protowire.VarintType)
	b = protowire.AppendVarint(b, dt)
	b = appendString(b, 8, t.name)
	b = protowire.AppendTag(b, 9, protowire.BytesType)
	return protowire.AppendBytes(b, raw)
}

func (v *onnxValueInfo) marshal() []byte {
	var shape []byte
	for _, d := range v.dims {
		var dim []byte
		switch {
		case d.param != "":
			dim = appendString(dim, 2, d.param)
		case d.value > 0:
			dim = protowire.AppendTag(dim, 1, protowire.VarintType)
			dim = protowire.AppendVarint(dim, uint64(d.value))
		}
		shape = appendMessage(shape, 1, dim)
	}
	var tensorType []byte
	tensorType = protowire.AppendTag(tensorType, 1, protowire.VarintType)
	tensorType = protowire.AppendVarint(tensorType, dtFloat)
	tensorType = appendMessage(tensorType, 2, shape)
	var typ []byte
	typ = appendMessage(typ, 1, tensorType)
	var b []byte
	b = appendString(b, 1, v.name)
	return appendMessage(b, 2, typ)
}

// appendString writes a string field, leaving it out when empty (proto3).
func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// appendMessage writes an embedded message (or packed repeated field), even
// when empty: an empty TensorShapeProto.Dimension still counts as a dimension.
func appendMessage(b []byte, num protowire.Number, m []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, m)
}
