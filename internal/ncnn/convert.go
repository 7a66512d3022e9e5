package ncnn

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/creativeai-studio/studio/internal/onnx"
)

// Names of the converted model's input and output tensors.
const (
	InputName  = "input"
	OutputName = "output"
)

// Info describes a converted model.
type Info struct {
	// Input and Output are the ONNX tensor names (InputName, OutputName).
	Input, Output string
	// InputChannels and OutputChannels are the C of the NCHW tensors.
	InputChannels, OutputChannels int
	// Scale is the output's height and width over the input's (4 for a x4
	// upscaler), ignoring the border lost by unpadded convolutions; 0 when
	// it differs between height and width or depends on a fixed target size.
	Scale float64
	// Layers counts the ncnn layers, LayerTypes the same by type.
	Layers     int
	LayerTypes map[string]int
	// Nodes is the number of ONNX nodes emitted.
	Nodes int
	// Weights is the number of values read from the .bin, and WeightFormats
	// counts the flagged weight arrays by storage encoding.
	Weights       int
	WeightFormats map[WeightFormat]int
}

// Convert reads an ncnn model (.param text and .bin weights) and returns the
// equivalent ONNX model (opset 17, float32 weights): one input "input"
// f32[N,C,H,W] and one output "output", with N, H and W dynamic. The ncnn
// model must have exactly one Input layer and exactly one blob that no layer
// consumes; that blob becomes the output. A fixed size on the Input layer
// (0=w 1=h) is ignored, and float16 weights are widened to float32.
//
// Convert holds the widened weights and the encoded model in memory at once
// (about 10 MB for realesr-general-x4v3) and does no I/O besides reading
// param and bin. It is safe for concurrent use.
//
// Errors wrap ErrMalformed or ErrUnsupported, and name the layer and the
// parameter or weight array at fault (see LayerError).
func Convert(param, bin io.Reader) ([]byte, *Info, error) {
	m, err := ParseParam(param)
	if err != nil {
		return nil, nil, err
	}
	c := &converter{
		m:         m,
		w:         newBinReader(bin),
		blobs:     map[string]*blob{},
		taken:     map[string]bool{},
		nodeNames: map[string]int{},
		info: &Info{Input: InputName, Output: OutputName, Layers: len(m.Layers),
			LayerTypes: map[string]int{}},
	}
	if err := c.plan(); err != nil {
		return nil, nil, err
	}
	for i := range m.Layers {
		l := &m.Layers[i]
		c.info.LayerTypes[l.Type]++
		if err := c.layer(l); err != nil {
			return nil, nil, err
		}
	}
	if err := c.w.end(); err != nil {
		return nil, nil, err
	}
	return c.finish(), c.info, nil
}

// blob is an ncnn blob as an ONNX tensor. Split and Noop outputs share the
// *blob of their input.
type blob struct {
	name     string // ONNX tensor name
	channels int
	sy, sx   float64 // size relative to the input; 0 = unknown
}

type converter struct {
	m     *Model
	w     *binReader
	g     onnx.Graph
	blobs map[string]*blob // by ncnn name
	taken map[string]bool  // ONNX tensor names in use
	info  *Info

	nodeNames map[string]int

	names      map[string]string // ncnn blob -> ONNX name, decided up front
	inputBlob  string
	outputBlob string // the blob that becomes the graph output
	inputC     int
}

// plan finds the input and output blobs and names every blob before any
// node is emitted, so the producer of the output writes "output" directly.
func (c *converter) plan() error {
	root := map[string]string{} // Split/Noop outputs -> the blob they alias
	rootOf := func(b string) string {
		if r, ok := root[b]; ok {
			return r
		}
		return b
	}
	var inputs []*Layer
	consumed := map[string]bool{}
	var produced []string // non-alias blobs in order
	for i := range c.m.Layers {
		l := &c.m.Layers[i]
		if l.Type != "Split" && l.Type != "Noop" { // aliases do not consume
			for _, b := range l.Bottoms {
				consumed[rootOf(b)] = true
			}
		}
		switch l.Type {
		case "Split":
			if len(l.Bottoms) != 1 {
				return l.errorf(ErrMalformed, "inputs", "Split takes 1 input, has %d", len(l.Bottoms))
			}
			for _, t := range l.Tops {
				root[t] = rootOf(l.Bottoms[0])
			}
		case "Noop":
			if len(l.Tops) > len(l.Bottoms) {
				return l.errorf(ErrMalformed, "outputs", "Noop passes its inputs through, but has %d outputs for %d inputs", len(l.Tops), len(l.Bottoms))
			}
			for j, t := range l.Tops {
				root[t] = rootOf(l.Bottoms[j])
			}
		default:
			if l.Type == "Input" {
				inputs = append(inputs, l)
			}
			produced = append(produced, l.Tops...)
		}
	}
	if len(inputs) != 1 {
		return fmt.Errorf("ncnn: the model has %d Input layers, want exactly 1: %w", len(inputs), ErrUnsupported)
	}
	in := inputs[0]
	if len(in.Bottoms) != 0 || len(in.Tops) != 1 {
		return in.errorf(ErrMalformed, "", "Input takes no inputs and has 1 output, has %d and %d", len(in.Bottoms), len(in.Tops))
	}
	c.inputBlob = in.Tops[0]

	var outs []string
	for _, b := range produced {
		if !consumed[b] {
			outs = append(outs, b)
		}
	}
	if len(outs) != 1 {
		return fmt.Errorf("ncnn: the model has %d blobs that no layer consumes (%s), want exactly 1 to become the output: %w",
			len(outs), strings.Join(outs, ", "), ErrUnsupported)
	}
	c.outputBlob = outs[0]

	c.taken[InputName] = true
	c.taken[OutputName] = true
	c.names = map[string]string{c.inputBlob: InputName}
	if c.outputBlob != c.inputBlob {
		c.names[c.outputBlob] = OutputName
	}
	for _, b := range produced {
		if _, ok := c.names[b]; !ok {
			c.names[b] = c.unique(b)
		}
	}
	return c.inputChannels(in, rootOf)
}

// inputChannels takes C from the Input layer's "2=c" or, failing that, from
// the weights of the first convolution reading the input.
func (c *converter) inputChannels(in *Layer, rootOf func(string) string) error {
	p := params{l: in}
	p.known(0, 1, 2)
	c.inputC = p.int(2, "c", 0)
	p.check(c.inputC >= 0, 2, "c", "must not be negative, is %d", c.inputC)
	if p.err != nil {
		return p.err
	}
	if c.inputC > 0 {
		return nil
	}
	for i := range c.m.Layers {
		l := &c.m.Layers[i]
		if l.Type != "Convolution" || len(l.Bottoms) != 1 || rootOf(l.Bottoms[0]) != c.inputBlob {
			continue
		}
		ch, err := convInputChannels(l)
		if err != nil {
			return err
		}
		c.inputC = ch
		return nil
	}
	return in.errorf(ErrUnsupported, "param 2 (c)", "the channel count is not set and no convolution reads the input to infer it from; add 2=C to the Input layer")
}

// unique returns name, or name with a suffix if another tensor has it.
func (c *converter) unique(name string) string {
	n := name
	for i := 1; c.taken[n]; i++ {
		n = name + "_" + strconv.Itoa(i)
	}
	c.taken[n] = true
	return n
}

func (c *converter) in(l *Layer, i int) *blob { return c.blobs[l.Bottoms[i]] }

// out registers ncnn blob top as the output of the current layer.
func (c *converter) out(top string, channels int, sy, sx float64) *blob {
	b := &blob{name: c.names[top], channels: channels, sy: sy, sx: sx}
	c.blobs[top] = b
	return b
}

func (c *converter) node(l *Layer, opType string, inputs, outputs []string, attrs ...onnx.Attr) {
	// Node names only need to be unique for tools that show the graph; the
	// first node of a layer carries the layer's name.
	name := l.Name
	if n := c.nodeNames[name]; n > 0 {
		name += "/" + strings.ToLower(opType)
		if c.nodeNames[name] > 0 {
			name += "_" + strconv.Itoa(n)
		}
	}
	c.nodeNames[l.Name]++
	c.nodeNames[name]++
	c.g.Nodes = append(c.g.Nodes, onnx.Node{Name: name, Op: opType, Inputs: inputs, Outputs: outputs, Attrs: attrs})
}

// constant adds an initializer and returns its name.
func (c *converter) constant(name string, dims []int64, floats []float32) string {
	n := c.unique(name)
	c.g.Initializers = append(c.g.Initializers, onnx.Tensor{Name: n, Dims: dims, Floats: floats})
	return n
}

func (c *converter) constantInt64(name string, v ...int64) string {
	n := c.unique(name)
	c.g.Initializers = append(c.g.Initializers, onnx.Tensor{Name: n, Dims: []int64{int64(len(v))}, Int64s: v})
	return n
}

// temp names an intermediate tensor of layer l.
func (c *converter) temp(l *Layer, what string) string { return c.unique(l.Name + "/" + what) }

// weights reads n values of layer l from the .bin.
func (c *converter) weights(l *Layer, field string, n int, flagged bool) ([]float32, error) {
	var v []float32
	var err error
	if flagged {
		v, err = c.w.flagged(n, field)
	} else {
		v, err = c.w.raw(n, field)
	}
	if err != nil {
		return nil, &LayerError{Line: l.Line, Type: l.Type, Name: l.Name, Field: field, Err: err}
	}
	c.info.Weights += n
	return v, nil
}

func (c *converter) layer(l *Layer) error {
	switch l.Type {
	case "Input":
		c.out(l.Tops[0], c.inputC, 1, 1)
		return nil
	case "Split":
		for _, t := range l.Tops {
			c.blobs[t] = c.in(l, 0)
		}
		return nil
	case "Noop":
		for i, t := range l.Tops {
			c.blobs[t] = c.in(l, i)
		}
		return nil
	case "Convolution":
		return c.convolution(l)
	case "PReLU":
		return c.prelu(l)
	case "ReLU":
		return c.relu(l)
	case "PixelShuffle":
		return c.pixelShuffle(l)
	case "Interp":
		return c.interp(l)
	case "BinaryOp":
		return c.binaryOp(l)
	case "Eltwise":
		return c.eltwise(l)
	case "Concat":
		return c.concat(l)
	}
	return l.errorf(ErrUnsupported, "type", "layer type %q is not supported (supported: Input, Convolution, PReLU, ReLU, PixelShuffle, Interp, BinaryOp, Eltwise, Concat, Split, Noop)", l.Type)
}

// convInputChannels derives a convolution's input channel count from its
// weight size, as ncnn does.
func convInputChannels(l *Layer) (int, error) {
	p := params{l: l}
	numOut := p.int(0, "num_output", 0)
	kw := p.int(1, "kernel_w", 0)
	kh := p.int(11, "kernel_h", kw)
	size := p.int(6, "weight_data_size", 0)
	p.check(numOut > 0, 0, "num_output", "must be positive, is %d", numOut)
	p.check(kw > 0 && kh > 0, 1, "kernel_w", "kernel %dx%d is not positive", kw, kh)
	p.check(size > 0, 6, "weight_data_size", "must be positive, is %d", size)
	if p.err != nil {
		return 0, p.err
	}
	// Each factor is below 2^31, and the product is checked against size
	// after every step, so it cannot overflow.
	per := numOut * kw
	if per <= size {
		per *= kh
	}
	p.check(per <= size && size%per == 0, 6, "weight_data_size",
		"%d is not a multiple of num_output*kernel_h*kernel_w = %d*%d*%d", size, numOut, kh, kw)
	if p.err != nil {
		return 0, p.err
	}
	return size / per, nil
}

func (c *converter) convolution(l *Layer) error {
	p := params{l: l}
	p.known(0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19)
	p.counts(1, 1)
	numOut := p.int(0, "num_output", 0)
	kw := p.int(1, "kernel_w", 0)
	kh := p.int(11, "kernel_h", kw)
	dw := p.int(2, "dilation_w", 1)
	dh := p.int(12, "dilation_h", dw)
	sw := p.int(3, "stride_w", 1)
	sh := p.int(13, "stride_h", sw)
	pl := p.int(4, "pad_left", 0)
	pr := p.int(15, "pad_right", pl)
	pt := p.int(14, "pad_top", pl)
	pb := p.int(16, "pad_bottom", pt)
	padValue := p.float(18, "pad_value", 0)
	biasTerm := p.int(5, "bias_term", 0)
	int8 := p.int(8, "int8_scale_term", 0)
	act := p.int(9, "activation_type", 0)
	actParams := p.floats(10, "activation_params")
	dynamic := p.int(19, "dynamic_weight", 0)
	p.int(17, "impl_type", 0) // a kernel hint for ncnn itself
	p.check(dw > 0 && dh > 0, 2, "dilation_w", "dilation %dx%d is not positive", dh, dw)
	p.check(sw > 0 && sh > 0, 3, "stride_w", "stride %dx%d is not positive", sh, sw)
	p.check(biasTerm == 0 || biasTerm == 1, 5, "bias_term", "must be 0 or 1, is %d", biasTerm)
	p.unsupported(int8 == 0, 8, "int8_scale_term", "int8 convolution is not supported; convert the float model")
	p.unsupported(dynamic == 0, 19, "dynamic_weight", "weights supplied as a second input are not supported")
	if p.err != nil {
		return p.err
	}
	inC, err := convInputChannels(l)
	if err != nil {
		return err
	}
	x := c.in(l, 0)
	p.check(x.channels == inC, 6, "weight_data_size",
		"%d weights imply %d input channels, but input %q has %d", numOut*kh*kw*inC, inC, l.Bottoms[0], x.channels)

	pads := []int{pt, pl, pb, pr}
	same := ""
	switch {
	case pl == -233 && pr == -233 && pt == -233 && pb == -233:
		same = "SAME_UPPER"
	case pl == -234 && pr == -234 && pt == -234 && pb == -234:
		same = "SAME_LOWER"
	case slices.Min(pads) < 0:
		p.check(false, 4, "pad_left", "pads (top %d, left %d, bottom %d, right %d) are negative, and not all -233 (SAME_UPPER) or -234 (SAME_LOWER)", pt, pl, pb, pr)
	}
	p.unsupported(padValue == 0 || (same == "" && slices.Max(pads) == 0), 18, "pad_value",
		"padding with %v instead of 0 is not supported", padValue)
	if p.err != nil {
		return p.err
	}
	if err := checkActivation(l, act, actParams); err != nil {
		return err
	}

	w, err := c.weights(l, "weights", numOut*inC*kh*kw, true) // = weight_data_size
	if err != nil {
		return err
	}
	inputs := []string{x.name, c.constant(l.Name+".weight", []int64{int64(numOut), int64(inC), int64(kh), int64(kw)}, w)}
	if biasTerm == 1 {
		b, err := c.weights(l, "bias", numOut, false)
		if err != nil {
			return err
		}
		inputs = append(inputs, c.constant(l.Name+".bias", []int64{int64(numOut)}, b))
	}
	attrs := []onnx.Attr{
		onnx.AttrInts("kernel_shape", int64(kh), int64(kw)),
		onnx.AttrInts("strides", int64(sh), int64(sw)),
		onnx.AttrInts("dilations", int64(dh), int64(dw)),
	}
	if same != "" {
		attrs = append(attrs, onnx.AttrString("auto_pad", same))
	} else {
		attrs = append(attrs, onnx.AttrInts("pads", int64(pt), int64(pl), int64(pb), int64(pr)))
	}
	y := c.out(l.Tops[0], numOut, x.sy/float64(sh), x.sx/float64(sw))
	if act == 0 {
		c.node(l, "Conv", inputs, []string{y.name}, attrs...)
		return nil
	}
	conv := c.temp(l, "conv")
	c.node(l, "Conv", inputs, []string{conv}, attrs...)
	c.activation(l, act, actParams, conv, y.name)
	return nil
}

// checkActivation validates a fused activation (Convolution params 9, 10).
func checkActivation(l *Layer, act int, params []float32) error {
	need := map[int]int{0: 0, 1: 0, 2: 1, 3: 2, 4: 0, 5: 0, 6: 2}
	n, ok := need[act]
	if !ok {
		return l.errorf(ErrUnsupported, "param 9 (activation_type)", "activation %d is not supported (0 none, 1 relu, 2 leakyrelu, 3 clip, 4 sigmoid, 5 mish, 6 hardswish)", act)
	}
	if len(params) < n {
		return l.errorf(ErrMalformed, "param 10 (activation_params)", "activation %d needs %d parameters, has %d", act, n, len(params))
	}
	return nil
}

// activation emits ncnn's fused activation act from in to out.
func (c *converter) activation(l *Layer, act int, params []float32, in, out string) {
	switch act {
	case 1:
		c.node(l, "Relu", []string{in}, []string{out})
	case 2:
		c.node(l, "LeakyRelu", []string{in}, []string{out}, onnx.AttrFloat("alpha", params[0]))
	case 3:
		lo := c.constant(l.Name+".clip_min", nil, []float32{params[0]})
		hi := c.constant(l.Name+".clip_max", nil, []float32{params[1]})
		c.node(l, "Clip", []string{in, lo, hi}, []string{out})
	case 4:
		c.node(l, "Sigmoid", []string{in}, []string{out})
	case 5: // mish(x) = x * tanh(softplus(x)); ONNX has Mish only from opset 18
		sp, th := c.temp(l, "softplus"), c.temp(l, "tanh")
		c.node(l, "Softplus", []string{in}, []string{sp})
		c.node(l, "Tanh", []string{sp}, []string{th})
		c.node(l, "Mul", []string{in, th}, []string{out})
	case 6: // ncnn hardswish(x) = x * clamp(alpha*x + beta, 0, 1)
		hs := c.temp(l, "hardsigmoid")
		c.node(l, "HardSigmoid", []string{in}, []string{hs}, onnx.AttrFloat("alpha", params[0]), onnx.AttrFloat("beta", params[1]))
		c.node(l, "Mul", []string{in, hs}, []string{out})
	}
}

func (c *converter) prelu(l *Layer) error {
	p := params{l: l}
	p.known(0)
	p.counts(1, 1)
	n := p.int(0, "num_slope", 0)
	if p.err != nil {
		return p.err
	}
	x := c.in(l, 0)
	p.check(n == 1 || n == x.channels, 0, "num_slope", "%d slopes for %d channels (want 1 or %d)", n, x.channels, x.channels)
	if p.err != nil {
		return p.err
	}
	s, err := c.weights(l, "slopes", n, false)
	if err != nil {
		return err
	}
	dims := []int64{1}
	if n > 1 {
		dims = []int64{int64(n), 1, 1} // per channel of NCHW
	}
	y := c.out(l.Tops[0], x.channels, x.sy, x.sx)
	c.node(l, "PRelu", []string{x.name, c.constant(l.Name+".slope", dims, s)}, []string{y.name})
	return nil
}

func (c *converter) relu(l *Layer) error {
	p := params{l: l}
	p.known(0)
	p.counts(1, 1)
	slope := p.float(0, "slope", 0)
	if p.err != nil {
		return p.err
	}
	x := c.in(l, 0)
	y := c.out(l.Tops[0], x.channels, x.sy, x.sx)
	if slope == 0 {
		c.node(l, "Relu", []string{x.name}, []string{y.name})
	} else {
		c.node(l, "LeakyRelu", []string{x.name}, []string{y.name}, onnx.AttrFloat("alpha", slope))
	}
	return nil
}

func (c *converter) pixelShuffle(l *Layer) error {
	p := params{l: l}
	p.known(0, 1)
	p.counts(1, 1)
	r := p.int(0, "upscale_factor", 1)
	mode := p.int(1, "mode", 0)
	p.check(r > 0, 0, "upscale_factor", "must be positive, is %d", r)
	p.check(mode == 0 || mode == 1, 1, "mode", "must be 0 (PyTorch order) or 1 (TensorFlow order), is %d", mode)
	if p.err != nil {
		return p.err
	}
	x := c.in(l, 0)
	p.check(x.channels%(r*r) == 0, 0, "upscale_factor", "%d input channels are not divisible by %d", x.channels, r*r)
	if p.err != nil {
		return p.err
	}
	y := c.out(l.Tops[0], x.channels/(r*r), x.sy*float64(r), x.sx*float64(r))
	if r == 1 {
		c.node(l, "Identity", []string{x.name}, []string{y.name})
		return nil
	}
	// ncnn mode 0 takes output channel p, sub-pixel (i, j) from input channel
	// p*r*r + i*r + j: ONNX's CRD. Mode 1 takes (i*r + j)*C' + p: DCR.
	order := map[int]string{0: "CRD", 1: "DCR"}[mode]
	c.node(l, "DepthToSpace", []string{x.name}, []string{y.name}, onnx.AttrInt("blocksize", int64(r)), onnx.AttrString("mode", order))
	return nil
}

func (c *converter) interp(l *Layer) error {
	p := params{l: l}
	if l.Params.Has(9) {
		return l.errorf(ErrUnsupported, "param 9 (size_expr)", "size expressions are not supported")
	}
	p.known(0, 1, 2, 3, 4, 5, 6)
	kind := p.int(0, "resize_type", 0)
	hs := p.float(1, "height_scale", 1)
	ws := p.float(2, "width_scale", 1)
	oh := p.int(3, "output_height", 0)
	ow := p.int(4, "output_width", 0)
	dynamic := p.int(5, "dynamic_target_size", 0)
	align := p.int(6, "align_corner", 0)
	p.unsupported(kind >= 1 && kind <= 3, 0, "resize_type", "%d is not 1 (nearest), 2 (bilinear) or 3 (bicubic)", kind)
	p.check(dynamic == 0 || dynamic == 1, 5, "dynamic_target_size", "must be 0 or 1, is %d", dynamic)
	p.check(align == 0 || align == 1, 6, "align_corner", "must be 0 or 1, is %d", align)
	p.check(oh >= 0 && ow >= 0, 3, "output_height", "output size %dx%d is negative", oh, ow)
	fixed := oh > 0 && ow > 0 // ncnn uses the scales unless both are set
	p.check(dynamic == 1 || fixed || (hs > 0 && ws > 0), 1, "height_scale", "scales %v x %v are not positive", hs, ws)
	p.counts(1+dynamic, 1)
	if p.err != nil {
		return p.err
	}
	x := c.in(l, 0)

	// ncnn's nearest samples floor(y / scale) (or floor(y * in/out) for a
	// target size): ONNX "asymmetric" + "floor". Bilinear and bicubic sample
	// around (y + 0.5) * in/out - 0.5 with edge replication ("half_pixel"),
	// or y * (in-1)/(out-1) with align_corner, and compute in/out from the
	// actual sizes even when given scales, so they always get sizes here.
	attrs := []onnx.Attr{}
	switch kind {
	case 1:
		attrs = append(attrs, onnx.AttrString("mode", "nearest"), onnx.AttrString("coordinate_transformation_mode", "asymmetric"),
			onnx.AttrString("nearest_mode", "floor"))
	case 2, 3:
		ctm := "half_pixel"
		if align == 1 {
			ctm = "align_corners"
		}
		attrs = append(attrs, onnx.AttrString("coordinate_transformation_mode", ctm))
		if kind == 2 {
			attrs = append(attrs, onnx.AttrString("mode", "linear"))
		} else {
			attrs = append(attrs, onnx.AttrString("mode", "cubic"), onnx.AttrFloat("cubic_coeff_a", -0.75), onnx.AttrInt("exclude_outside", 0))
		}
	}

	var y *blob
	var inputs []string
	switch {
	case dynamic == 1:
		ref := c.in(l, 1)
		y = c.out(l.Tops[0], x.channels, ref.sy, ref.sx)
		inputs = []string{x.name, "", "", c.sizes(l, x.name, func() string {
			hw := c.temp(l, "target_hw")
			c.node(l, "Shape", []string{ref.name}, []string{hw}, onnx.AttrInt("start", 2), onnx.AttrInt("end", 4))
			return hw
		})}
	case fixed:
		y = c.out(l.Tops[0], x.channels, 0, 0)
		inputs = []string{x.name, "", "", c.sizes(l, x.name, func() string {
			return c.constantInt64(l.Name+".output_hw", int64(oh), int64(ow))
		})}
	case kind == 1:
		y = c.out(l.Tops[0], x.channels, x.sy*float64(hs), x.sx*float64(ws))
		inputs = []string{x.name, "", c.constant(l.Name+".scales", []int64{4}, []float32{1, 1, hs, ws})}
	default:
		y = c.out(l.Tops[0], x.channels, x.sy*float64(hs), x.sx*float64(ws))
		inputs = []string{x.name, "", "", c.sizes(l, x.name, func() string {
			// ncnn: out = (int)(in * scale), computed in float32.
			hw, hwf, scaled, floor, hwi := c.temp(l, "hw"), c.temp(l, "hw_f"), c.temp(l, "hw_scaled"), c.temp(l, "hw_floor"), c.temp(l, "output_hw")
			c.node(l, "Shape", []string{x.name}, []string{hw}, onnx.AttrInt("start", 2), onnx.AttrInt("end", 4))
			c.node(l, "Cast", []string{hw}, []string{hwf}, onnx.AttrInt("to", int64(onnx.Float)))
			c.node(l, "Mul", []string{hwf, c.constant(l.Name+".scale_hw", []int64{2}, []float32{hs, ws})}, []string{scaled})
			c.node(l, "Floor", []string{scaled}, []string{floor})
			c.node(l, "Cast", []string{floor}, []string{hwi}, onnx.AttrInt("to", int64(onnx.Int64)))
			return hwi
		})}
	}
	c.node(l, "Resize", inputs, []string{y.name}, attrs...)
	return nil
}

// sizes builds Resize's "sizes" input: x's N and C followed by the H and W
// that hw emits.
func (c *converter) sizes(l *Layer, x string, hw func() string) string {
	nc := c.temp(l, "nc")
	c.node(l, "Shape", []string{x}, []string{nc}, onnx.AttrInt("start", 0), onnx.AttrInt("end", 2))
	h := hw()
	out := c.temp(l, "sizes")
	c.node(l, "Concat", []string{nc, h}, []string{out}, onnx.AttrInt("axis", 0))
	return out
}

// binaryOps maps ncnn BinaryOp op_type to an ONNX op and whether the
// operands are swapped (ncnn's "reverse" ops).
var binaryOps = map[int]struct {
	op      string
	reverse bool
}{
	0: {"Add", false}, 1: {"Sub", false}, 2: {"Mul", false}, 3: {"Div", false},
	4: {"Max", false}, 5: {"Min", false}, 6: {"Pow", false},
	7: {"Sub", true}, 8: {"Div", true}, 9: {"Pow", true},
}

func (c *converter) binaryOp(l *Layer) error {
	p := params{l: l}
	p.known(0, 1, 2)
	op := p.int(0, "op_type", 0)
	withScalar := p.int(1, "with_scalar", 0)
	scalar := p.float(2, "b", 0)
	p.check(withScalar == 0 || withScalar == 1, 1, "with_scalar", "must be 0 or 1, is %d", withScalar)
	if p.err != nil {
		return p.err
	}
	p.counts(2-withScalar, 1)
	o, ok := binaryOps[op]
	p.unsupported(ok, 0, "op_type", "operation %d is not supported (0-9: add, sub, mul, div, max, min, pow, rsub, rdiv, rpow)", op)
	if p.err != nil {
		return p.err
	}
	a := c.in(l, 0)
	var b string
	y := &blob{channels: a.channels, sy: a.sy, sx: a.sx}
	if withScalar == 1 {
		b = c.constant(l.Name+".b", nil, []float32{scalar})
	} else {
		bb := c.in(l, 1)
		b = bb.name
		p.check(a.channels == bb.channels || a.channels == 1 || bb.channels == 1, 0, "inputs",
			"%q has %d channels and %q has %d: they do not broadcast", l.Bottoms[0], a.channels, l.Bottoms[1], bb.channels)
		if p.err != nil {
			return p.err
		}
		y.channels = max(a.channels, bb.channels)
		if a.sy != bb.sy || a.sx != bb.sx {
			y.sy, y.sx = 0, 0
		}
	}
	out := c.out(l.Tops[0], y.channels, y.sy, y.sx)
	ins := []string{a.name, b}
	if o.reverse {
		ins[0], ins[1] = ins[1], ins[0]
	}
	c.node(l, o.op, ins, []string{out.name})
	return nil
}

func (c *converter) eltwise(l *Layer) error {
	p := params{l: l}
	p.known(0, 1)
	op := p.int(0, "op_type", 0)
	coeffs := p.floats(1, "coeffs")
	p.check(len(l.Bottoms) >= 1, 0, "inputs", "needs at least one input")
	p.counts(len(l.Bottoms), 1)
	p.unsupported(op >= 0 && op <= 2, 0, "op_type", "operation %d is not 0 (prod), 1 (sum) or 2 (max)", op)
	p.check(op != 1 || len(coeffs) == 0 || len(coeffs) == len(l.Bottoms), 1, "coeffs",
		"%d coefficients for %d inputs", len(coeffs), len(l.Bottoms))
	if p.err != nil {
		return p.err
	}
	x := c.in(l, 0)
	names := make([]string, len(l.Bottoms))
	for i := range l.Bottoms {
		b := c.in(l, i)
		p.check(b.channels == x.channels, 0, "inputs", "%q has %d channels but %q has %d", l.Bottoms[i], b.channels, l.Bottoms[0], x.channels)
		names[i] = b.name
	}
	if p.err != nil {
		return p.err
	}
	y := c.out(l.Tops[0], x.channels, x.sy, x.sx)
	switch op {
	case 0: // ONNX Mul is binary: chain it
		acc := names[0]
		for i := 1; i < len(names); i++ {
			next := y.name
			if i < len(names)-1 {
				next = c.temp(l, "prod")
			}
			c.node(l, "Mul", []string{acc, names[i]}, []string{next})
			acc = next
		}
		if len(names) == 1 {
			c.node(l, "Identity", names, []string{y.name})
		}
	case 1:
		for i, k := range coeffs {
			if k != 1 {
				scaled := c.temp(l, "scaled")
				c.node(l, "Mul", []string{names[i], c.constant(fmt.Sprintf("%s.coeff%d", l.Name, i), nil, []float32{k})}, []string{scaled})
				names[i] = scaled
			}
		}
		c.node(l, "Sum", names, []string{y.name})
	case 2:
		c.node(l, "Max", names, []string{y.name})
	}
	return nil
}

func (c *converter) concat(l *Layer) error {
	p := params{l: l}
	p.known(0)
	axis := p.int(0, "axis", 0)
	p.check(len(l.Bottoms) >= 1, 0, "inputs", "needs at least one input")
	p.counts(len(l.Bottoms), 1)
	// ncnn axes count over C, H, W without the batch: 0 is C.
	p.unsupported(axis >= -3 && axis <= 2, 0, "axis", "%d is not an axis of a C,H,W blob", axis)
	if p.err != nil {
		return p.err
	}
	onnxAxis := axis
	if axis >= 0 {
		onnxAxis++
	}
	channelAxis := onnxAxis == 1 || onnxAxis == -3
	x := c.in(l, 0)
	names := make([]string, len(l.Bottoms))
	channels := 0
	for i := range l.Bottoms {
		b := c.in(l, i)
		names[i] = b.name
		channels += b.channels
		p.check(channelAxis || b.channels == x.channels, 0, "inputs", "%q has %d channels but %q has %d", l.Bottoms[i], b.channels, l.Bottoms[0], x.channels)
	}
	if p.err != nil {
		return p.err
	}
	sy, sx := x.sy, x.sx
	if !channelAxis {
		channels, sy, sx = x.channels, 0, 0
	}
	y := c.out(l.Tops[0], channels, sy, sx)
	c.node(l, "Concat", names, []string{y.name}, onnx.AttrInt("axis", int64(onnxAxis)))
	return nil
}

// finish adds the graph's inputs and outputs and encodes the model.
func (c *converter) finish() []byte {
	out := c.blobs[c.outputBlob]
	if out.name != OutputName { // the graph passes its input straight through
		c.g.Nodes = append(c.g.Nodes, onnx.Node{Name: "output", Op: "Identity", Inputs: []string{out.name}, Outputs: []string{OutputName}})
	}
	c.g.Name = "ncnn"
	c.g.Inputs = []onnx.ValueInfo{{Name: InputName, Dims: []onnx.Dim{{Param: "N"}, {Value: int64(c.inputC)}, {Param: "H"}, {Param: "W"}}}}
	c.g.Outputs = []onnx.ValueInfo{{Name: OutputName, Dims: []onnx.Dim{{Param: "N"}, {Value: int64(out.channels)}, {}, {}}}}
	c.info.InputChannels, c.info.OutputChannels = c.inputC, out.channels
	if out.sy == out.sx {
		c.info.Scale = out.sx
	}
	c.info.Nodes = len(c.g.Nodes)
	c.info.WeightFormats = maps.Clone(c.w.formats)
	m := onnx.Model{
		Producer:        "creativeai-studio ncnn converter",
		ProducerVersion: "1",
		Doc:             "Converted from an ncnn model; input float32 NCHW, N, H and W dynamic.",
		Graph:           c.g,
	}
	return m.Marshal()
}

// params reads a layer's parameters and keeps the first error, so a layer
// handler can read everything and check once.
type params struct {
	l   *Layer
	err error
}

func (p *params) fail(kind error, id int, name, format string, args ...any) {
	if p.err == nil {
		p.err = p.l.errorf(kind, fmt.Sprintf("param %d (%s)", id, name), format, args...)
	}
}

// check records a malformed-model error unless ok.
func (p *params) check(ok bool, id int, name, format string, args ...any) {
	if !ok {
		p.fail(ErrMalformed, id, name, format, args...)
	}
}

// unsupported records an unsupported-feature error unless ok.
func (p *params) unsupported(ok bool, id int, name, format string, args ...any) {
	if !ok {
		p.fail(ErrUnsupported, id, name, format, args...)
	}
}

// known refuses parameters the converter does not interpret: ignoring one
// could silently change what the layer computes.
func (p *params) known(ids ...int) {
	for _, id := range slices.Sorted(maps.Keys(p.l.Params)) {
		if !slices.Contains(ids, id) {
			p.unsupported(false, id, "unknown", "%q is not a parameter the converter understands for %s", p.l.Params[id].Text, p.l.Type)
		}
	}
}

// counts checks the number of input and output blobs.
func (p *params) counts(bottoms, tops int) {
	if p.err == nil && (len(p.l.Bottoms) != bottoms || len(p.l.Tops) != tops) {
		p.err = p.l.errorf(ErrMalformed, "blobs", "%s with these parameters takes %d inputs and %d outputs, has %d and %d",
			p.l.Type, bottoms, tops, len(p.l.Bottoms), len(p.l.Tops))
	}
}

func (p *params) int(id int, name string, def int) int {
	v, err := p.l.Params.Int(id, def)
	if err != nil && p.err == nil {
		p.err = &LayerError{Line: p.l.Line, Type: p.l.Type, Name: p.l.Name, Field: fmt.Sprintf("param %d (%s)", id, name), Err: err}
	}
	return v
}

func (p *params) float(id int, name string, def float32) float32 {
	v, err := p.l.Params.Float(id, def)
	if err != nil && p.err == nil {
		p.err = &LayerError{Line: p.l.Line, Type: p.l.Type, Name: p.l.Name, Field: fmt.Sprintf("param %d (%s)", id, name), Err: err}
	}
	return v
}

func (p *params) floats(id int, name string) []float32 {
	v, err := p.l.Params.Floats(id)
	if err != nil && p.err == nil {
		p.err = &LayerError{Line: p.l.Line, Type: p.l.Type, Name: p.l.Name, Field: fmt.Sprintf("param %d (%s)", id, name), Err: err}
	}
	return v
}
