// Package onnx writes ONNX model files: the subset of onnx.proto (field numbers from
// onnx/onnx.proto3) needed to build inference graphs in Go. The ncnn importer writes
// its converted graphs with it, and tests build small graphs with the same input and
// output names, shapes and dtypes as real exports. It only writes; ONNX Runtime reads.
package onnx

import (
	"encoding/binary"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// The versions a Model declares unless it says otherwise.
const (
	IRVersion = 8  // ONNX 1.12, the release that introduced opset 17
	Opset     = 17 // the default ai.onnx operator set
)

// DataType is TensorProto.DataType.
type DataType int32

// The element types this package writes.
const (
	Float DataType = 1
	Uint8 DataType = 2
	Int8  DataType = 3
	Int32 DataType = 6
	Int64 DataType = 7
	Bool  DataType = 9
	// Float16 is IEEE half precision; this package writes no float16 data, but a graph
	// can compute in it (Cast to=Float16), as fp16 exports with float32 inputs do.
	Float16 DataType = 10
)

// Model is a whole ONNX file: one graph and the operator set it uses.
type Model struct {
	Producer, ProducerVersion, Doc string
	Opset                          int64 // 0 means Opset
	Graph                          Graph
}

// Graph is a computation: nodes in topological order, constant initializers, and the
// graph's inputs and outputs.
type Graph struct {
	Name            string
	Nodes           []Node
	Initializers    []Tensor
	Inputs, Outputs []ValueInfo
}

// Node is one operator application.
type Node struct {
	Name, Op        string
	Inputs, Outputs []string // an empty input name marks an omitted optional input
	Attrs           []Attr
}

// Attr is a node attribute; build it with AttrInt, AttrFloat, AttrString, AttrInts,
// AttrFloats or AttrTensor.
type Attr struct {
	name   string
	typ    int32
	f      float32
	i      int64
	s      string
	floats []float32
	ints   []int64
	t      *Tensor
}

// AttributeProto.AttributeType
const (
	atFloat  = 1
	atInt    = 2
	atString = 3
	atTensor = 4
	atFloats = 6
	atInts   = 7
)

// AttrInt is an integer attribute.
func AttrInt(name string, v int64) Attr { return Attr{name: name, typ: atInt, i: v} }

// AttrFloat is a float attribute.
func AttrFloat(name string, v float32) Attr { return Attr{name: name, typ: atFloat, f: v} }

// AttrString is a string attribute.
func AttrString(name, v string) Attr { return Attr{name: name, typ: atString, s: v} }

// AttrInts is a list-of-integers attribute.
func AttrInts(name string, v ...int64) Attr { return Attr{name: name, typ: atInts, ints: v} }

// AttrFloats is a list-of-floats attribute.
func AttrFloats(name string, v ...float32) Attr {
	return Attr{name: name, typ: atFloats, floats: v}
}

// AttrTensor is a tensor attribute (the `value` of a Constant node).
func AttrTensor(name string, t Tensor) Attr { return Attr{name: name, typ: atTensor, t: &t} }

// Tensor is a constant: its element type follows from which data slice is set
// (Floats, Int64s or Int32s). Data is stored as raw_data, little-endian.
type Tensor struct {
	Name   string
	Dims   []int64
	Floats []float32
	Int64s []int64
	Int32s []int32
}

// Dim is one dimension of a value: a fixed size, a symbolic name, or (both zero)
// unknown.
type Dim struct {
	Value int64
	Param string
}

// Dims is a shorthand for fixed dimensions; a negative size becomes unknown.
func Dims(sizes ...int64) []Dim {
	d := make([]Dim, len(sizes))
	for i, s := range sizes {
		if s > 0 {
			d[i].Value = s
		}
	}
	return d
}

// ValueInfo names a graph input or output with its element type (zero means Float) and
// shape.
type ValueInfo struct {
	Name string
	Type DataType
	Dims []Dim
}

// Add appends a node to the graph; its name is its first output's.
func (g *Graph) Add(op string, inputs, outputs []string, attrs ...Attr) {
	name := op
	if len(outputs) > 0 {
		name = outputs[0]
	}
	g.Nodes = append(g.Nodes, Node{Name: name, Op: op, Inputs: inputs, Outputs: outputs, Attrs: attrs})
}

// Marshal encodes the model as an ONNX protobuf file.
func (m *Model) Marshal() []byte {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.VarintType) // ir_version
	b = protowire.AppendVarint(b, IRVersion)
	b = appendString(b, 2, m.Producer)
	b = appendString(b, 3, m.ProducerVersion)
	b = appendString(b, 6, m.Doc)
	b = appendMessage(b, 7, m.Graph.marshal())
	opsetVersion := m.Opset
	if opsetVersion == 0 {
		opsetVersion = Opset
	}
	var opset []byte
	opset = appendString(opset, 1, "") // the default ai.onnx domain
	opset = protowire.AppendTag(opset, 2, protowire.VarintType)
	opset = protowire.AppendVarint(opset, uint64(opsetVersion))
	return appendMessage(b, 8, opset)
}

func (g *Graph) marshal() []byte {
	var b []byte
	for _, n := range g.Nodes {
		b = appendMessage(b, 1, n.marshal())
	}
	b = appendString(b, 2, g.Name)
	for _, t := range g.Initializers {
		b = appendMessage(b, 5, t.marshal())
	}
	for _, v := range g.Inputs {
		b = appendMessage(b, 11, v.marshal())
	}
	for _, v := range g.Outputs {
		b = appendMessage(b, 12, v.marshal())
	}
	return b
}

func (n *Node) marshal() []byte {
	var b []byte
	for _, s := range n.Inputs {
		b = protowire.AppendTag(b, 1, protowire.BytesType) // empty names are kept
		b = protowire.AppendString(b, s)
	}
	for _, s := range n.Outputs {
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendString(b, s)
	}
	b = appendString(b, 3, n.Name)
	b = appendString(b, 4, n.Op)
	for _, a := range n.Attrs {
		b = appendMessage(b, 5, a.marshal())
	}
	return b
}

func (a *Attr) marshal() []byte {
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
	case atTensor:
		b = appendMessage(b, 5, a.t.marshal())
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

func (t *Tensor) marshal() []byte {
	var b []byte
	if len(t.Dims) > 0 {
		var p []byte
		for _, d := range t.Dims {
			p = protowire.AppendVarint(p, uint64(d))
		}
		b = appendMessage(b, 1, p)
	}
	var raw []byte
	var dt DataType
	switch {
	case t.Int64s != nil:
		dt = Int64
		raw = make([]byte, 8*len(t.Int64s))
		for i, v := range t.Int64s {
			binary.LittleEndian.PutUint64(raw[8*i:], uint64(v))
		}
	case t.Int32s != nil:
		dt = Int32
		raw = make([]byte, 4*len(t.Int32s))
		for i, v := range t.Int32s {
			binary.LittleEndian.PutUint32(raw[4*i:], uint32(v))
		}
	default:
		dt = Float
		raw = make([]byte, 4*len(t.Floats))
		for i, f := range t.Floats {
			binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(f))
		}
	}
	b = protowire.AppendTag(b, 2, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(dt))
	b = appendString(b, 8, t.Name)
	b = protowire.AppendTag(b, 9, protowire.BytesType)
	return protowire.AppendBytes(b, raw)
}

func (v *ValueInfo) marshal() []byte {
	var shape []byte
	for _, d := range v.Dims {
		var dim []byte
		switch {
		case d.Param != "":
			dim = appendString(dim, 2, d.Param)
		case d.Value > 0:
			dim = protowire.AppendTag(dim, 1, protowire.VarintType)
			dim = protowire.AppendVarint(dim, uint64(d.Value))
		}
		shape = appendMessage(shape, 1, dim)
	}
	dt := v.Type
	if dt == 0 {
		dt = Float
	}
	var tensorType []byte
	tensorType = protowire.AppendTag(tensorType, 1, protowire.VarintType)
	tensorType = protowire.AppendVarint(tensorType, uint64(dt))
	tensorType = appendMessage(tensorType, 2, shape)
	var typ []byte
	typ = appendMessage(typ, 1, tensorType)
	var b []byte
	b = appendString(b, 1, v.Name)
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

// appendMessage writes an embedded message (or packed repeated field), even when
// empty: an empty TensorShapeProto.Dimension still counts as a dimension.
func appendMessage(b []byte, num protowire.Number, m []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, m)
}
