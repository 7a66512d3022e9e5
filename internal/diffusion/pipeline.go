package diffusion

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"math"
	"os"
	"path/filepath"
	"strings"
)

// Value is a tensor crossing the Graph boundary, row-major; exactly one data slice is
// set, the one of its element type.
type Value struct {
	Shape   []int64
	Float32 []float32
	Int32   []int32
	Int64   []int64
	Bool    []bool
}

// Port is a graph input or output: its name, element type ("float32", "int32",
// "int64", "float16", ...) and shape (-1 for dynamic dimensions).
type Port struct {
	Name  string
	Type  string
	Shape []int64
}

// Graph is one loaded ONNX graph of an export. Run must be safe for concurrent use.
type Graph interface {
	Inputs() []Port
	Outputs() []Port
	// Run feeds the named inputs and returns every output by name. It honours ctx.
	Run(ctx context.Context, in map[string]Value) (map[string]Value, error)
	Close() error
}

// Opener loads ONNX files as Graphs; the inference backend (processors/inference/ort)
// implements it.
type Opener interface {
	OpenGraph(path string) (Graph, error)
}

// The files of a diffusers/optimum ONNX export (`optimum-cli export onnx`), relative to
// its directory. Safety checker and VAE config are optional.
const (
	TextEncoderFile   = "text_encoder/model.onnx"
	UNetFile          = "unet/model.onnx"
	VAEDecoderFile    = "vae_decoder/model.onnx"
	VocabFile         = "tokenizer/vocab.json"
	MergesFile        = "tokenizer/merges.txt"
	SpecialTokensFile = "tokenizer/special_tokens_map.json"
	SchedulerFile     = "scheduler/scheduler_config.json"
	VAEConfigFile     = "vae_decoder/config.json"
)

// RequiredFiles are the files every export must have.
var RequiredFiles = []string{TextEncoderFile, UNetFile, VAEDecoderFile, VocabFile, MergesFile, SchedulerFile}

// ErrBadExport is wrapped by every error about an export's files or graphs.
var ErrBadExport = errors.New("diffusion: unusable Stable Diffusion export")

// DefaultVAEScale is Stable Diffusion 1.x/2.x's latent scaling factor.
const DefaultVAEScale = 0.18215

// CheckExport reports every required file missing from dir, in one error.
func CheckExport(dir string) error {
	var missing []string
	for _, f := range RequiredFiles {
		if st, err := os.Stat(filepath.Join(dir, filepath.FromSlash(f))); err != nil || st.IsDir() {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s lacks %s: export the model with `optimum-cli export onnx --model <id> --task text-to-image <dir>` (see the README, Text to image)",
			ErrBadExport, dir, strings.Join(missing, ", "))
	}
	return nil
}

// LoadTokenizer reads an export's CLIP tokenizer, with the padding token its
// special_tokens_map.json names (SD 2.x and SD-Turbo pad with "!").
func LoadTokenizer(dir string) (*Tokenizer, error) {
	vocab, err := os.Open(filepath.Join(dir, VocabFile))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadExport, err)
	}
	defer vocab.Close()
	merges, err := os.Open(filepath.Join(dir, MergesFile))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadExport, err)
	}
	defer merges.Close()
	pad := ""
	if data, err := os.ReadFile(filepath.Join(dir, SpecialTokensFile)); err == nil {
		var m map[string]json.RawMessage
		if json.Unmarshal(data, &m) == nil {
			pad = tokenContent(m["pad_token"])
		}
	}
	return NewTokenizer(vocab, merges, pad)
}

// tokenContent reads a special token written as a string or as {"content": ...}.
func tokenContent(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var o struct {
		Content string `json:"content"`
	}
	_ = json.Unmarshal(raw, &o)
	return o.Content
}

// Options adjust how an export runs.
type Options struct {
	// Scheduler overrides the scheduler config's class (see SchedulerConfig.Kind).
	Scheduler string
	// Safety, when set, checks every generated image (SafetyMode is then not used).
	Safety SafetyChecker
	// SafetyMode decides whether the export's own safety checker
	// (safety_checker/model.onnx) runs: SafetyAuto (the default, "") when the file
	// exists, SafetyOff never, SafetyRequired always (Open fails without it).
	SafetyMode string
	// Batch lets concurrent Generate calls share UNet calls (off when MaxBatch <= 1).
	Batch BatchOptions
}

// SafetyChecker is the optional hook an operator plugs a safety model into. Check
// returns one flag per image of r; flagged images are blacked out, as diffusers does.
type SafetyChecker interface {
	Check(ctx context.Context, r *Result) ([]bool, error)
}

// Pipeline is a loaded Stable Diffusion export: text encoder, UNet, VAE decoder,
// scheduler config. Safe for concurrent use: each Generate call runs its own loop.
type Pipeline struct {
	Scheduler SchedulerConfig
	Kind      string
	VAEScale  float64

	text, unet, vae Graph
	idsType         string
	stepType        string
	stepShape       []int64
	safety          SafetyChecker
	safetyGraph     *GraphSafety  // the export's own checker, closed with the pipeline
	batch           *batcher      // nil: every job calls the UNet alone
	runs            chan struct{} // bounds graph runs in flight while sharing; nil: no bound
}

// Open loads the graphs of the export in dir.
func Open(dir string, o Opener, opts Options) (_ *Pipeline, err error) {
	if err := CheckExport(dir); err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(dir, SchedulerFile))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadExport, err)
	}
	sc, err := ReadSchedulerConfig(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadExport, err)
	}
	kind, err := sc.Kind(opts.Scheduler)
	if err != nil {
		return nil, err
	}
	p := &Pipeline{Scheduler: sc, Kind: kind, VAEScale: DefaultVAEScale, safety: opts.Safety}
	if data, err := os.ReadFile(filepath.Join(dir, VAEConfigFile)); err == nil {
		var vc struct {
			ScalingFactor float64 `json:"scaling_factor"`
		}
		if json.Unmarshal(data, &vc) == nil && vc.ScalingFactor > 0 {
			p.VAEScale = vc.ScalingFactor
		}
	}
	defer func() {
		if err != nil {
			_ = p.Close()
		}
	}()
	for _, g := range []struct {
		file string
		dst  *Graph
	}{{TextEncoderFile, &p.text}, {UNetFile, &p.unet}, {VAEDecoderFile, &p.vae}} {
		if *g.dst, err = o.OpenGraph(filepath.Join(dir, filepath.FromSlash(g.file))); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrBadExport, g.file, err)
		}
	}
	if err := p.checkPorts(); err != nil {
		return nil, err
	}
	if p.safety == nil {
		if p.safetyGraph, err = openSafety(dir, o, opts.SafetyMode); err != nil {
			return nil, err
		}
		if p.safetyGraph != nil {
			p.safety = p.safetyGraph
		}
	}
	if opts.Batch.MaxBatch > 1 {
		p.batch = newBatcher(p, opts.Batch)
		if opts.Batch.Calls > 0 {
			p.runs = make(chan struct{}, opts.Batch.Calls)
		}
	}
	return p, nil
}

func port(ps []Port, name string) (Port, bool) {
	for _, p := range ps {
		if p.Name == name {
			return p, true
		}
	}
	return Port{}, false
}

// checkPorts verifies the graphs speak the export's contract and reads the dtypes the
// loop must feed (input_ids int32 or int64; timestep float32 or int64).
func (p *Pipeline) checkPorts() error {
	var errs []string
	need := func(file string, ps []Port, name string, types ...string) Port {
		pt, ok := port(ps, name)
		if !ok {
			errs = append(errs, fmt.Sprintf("%s has no %q", file, name))
			return pt
		}
		for _, t := range types {
			if pt.Type == t {
				return pt
			}
		}
		errs = append(errs, fmt.Sprintf("%s: %q is %s, want %s", file, name, pt.Type, strings.Join(types, " or ")))
		return pt
	}
	p.idsType = need(TextEncoderFile, p.text.Inputs(), "input_ids", "int32", "int64").Type
	need(TextEncoderFile, p.text.Outputs(), "last_hidden_state", "float32")
	need(UNetFile, p.unet.Inputs(), "sample", "float32")
	ts := need(UNetFile, p.unet.Inputs(), "timestep", "float32", "int64")
	p.stepType, p.stepShape = ts.Type, ts.Shape
	need(UNetFile, p.unet.Inputs(), "encoder_hidden_states", "float32")
	need(UNetFile, p.unet.Outputs(), "out_sample", "float32")
	need(VAEDecoderFile, p.vae.Inputs(), "latent_sample", "float32")
	need(VAEDecoderFile, p.vae.Outputs(), "sample", "float32")
	if len(errs) > 0 {
		return fmt.Errorf("%w: %s (only float32 exports run here: export without --fp16)", ErrBadExport, strings.Join(errs, "; "))
	}
	return nil
}

// Safety reports whether generated images are checked (an Options.Safety hook or the
// export's safety checker).
func (p *Pipeline) Safety() bool { return p.safety != nil }

// Close releases the graphs.
func (p *Pipeline) Close() error {
	var errs []error
	for _, g := range []Graph{p.text, p.unet, p.vae} {
		if g != nil {
			errs = append(errs, g.Close())
		}
	}
	if p.safetyGraph != nil {
		errs = append(errs, p.safetyGraph.Close())
	}
	return errors.Join(errs...)
}

// Request is one generation: the token ids of the prompt and of the negative prompt
// (Tokenizer.Encode), and the sampling settings.
type Request struct {
	Cond, Uncond []int32
	Seed         uint32
	Steps        int
	// Guidance is the classifier-free guidance scale; at 1 or below the negative
	// prompt is not used and the UNet runs on the prompt alone (SD-Turbo: 0).
	Guidance float64
	// Width and Height are the image size, multiples of 8.
	Width, Height int
	// Images is how many images to make from the prompt (one batch).
	Images int
}

// Progress is told after each denoising step; an error stops the run with that error.
type Progress func(step, steps int) error

// Result is what Generate made: Images pictures as planar 8-bit RGB, [N,3,H,W].
type Result struct {
	N, Height, Width int
	Pixels           []byte
	// Flagged marks images the safety checker blacked out (nil without one).
	Flagged []bool
}

// Image returns picture i as an image.
func (r *Result) Image(i int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, r.Width, r.Height))
	plane := r.Width * r.Height
	base := i * 3 * plane
	for k := range plane {
		img.Pix[4*k] = r.Pixels[base+k]
		img.Pix[4*k+1] = r.Pixels[base+plane+k]
		img.Pix[4*k+2] = r.Pixels[base+2*plane+k]
		img.Pix[4*k+3] = 255
	}
	return img
}

// Validate checks a request's settings.
func (r Request) Validate() error {
	switch {
	case len(r.Cond) != ContextLength || r.Guidance > 1 && len(r.Uncond) != ContextLength:
		return fmt.Errorf("diffusion: token ids must be %d long", ContextLength)
	case r.Width < 8 || r.Height < 8 || r.Width%8 != 0 || r.Height%8 != 0:
		return fmt.Errorf("diffusion: size %dx%d: width and height must be positive multiples of 8", r.Width, r.Height)
	case r.Images < 1:
		return fmt.Errorf("diffusion: %d images: at least 1", r.Images)
	case r.Steps < 1:
		return fmt.Errorf("diffusion: %d steps: at least 1", r.Steps)
	}
	return nil
}

// Generate runs the text encoder once, the denoising loop (one UNet call per step,
// the unconditional and conditional halves batched together when guidance is on) and
// the VAE decoder, and returns the images. It checks ctx between steps, so a cancelled
// job stops after the step in flight; progress is told after every step. With
// Options.Batch, the UNet call of a step may be shared with concurrent Generate calls
// of the same latent size; the job's own state and result stay its own.
func (p *Pipeline) Generate(ctx context.Context, req Request, progress Progress) (*Result, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	sched, err := NewScheduler(p.Scheduler, p.Kind, req.Steps)
	if err != nil {
		return nil, err
	}
	guided := req.Guidance > 1
	n := req.Images
	batch := n
	if guided {
		batch = 2 * n
	}
	h, w := req.Height/8, req.Width/8
	key := shapeKey{h: h, w: w}
	leave := func() {}
	if p.batch != nil {
		// Joined before the text encoder runs, so that jobs started together share
		// their first step too.
		leave = p.batch.join(key, batch)
		defer leave() // on every early return; the others stop waiting for this job
	}

	// Text encoding: one call for both prompts, then repeated per image.
	rows := [][]int32{req.Cond}
	if guided {
		rows = [][]int32{req.Uncond, req.Cond}
	}
	hidden, err := p.encode(ctx, rows)
	if err != nil {
		return nil, err
	}
	dim := len(hidden.Float32) / len(rows) / ContextLength
	ehs := make([]float32, 0, batch*ContextLength*dim)
	for r := range rows { // [uncond x n, cond x n]: the order diffusers concatenates
		row := hidden.Float32[r*ContextLength*dim : (r+1)*ContextLength*dim]
		for range n {
			ehs = append(ehs, row...)
		}
	}

	per := 4 * h * w
	latents := make([]float32, n*per)
	noise := NewNoise(req.Seed)
	noise.Fill(latents, sched.InitNoiseSigma())

	in := make([]float32, batch*per)
	guidedOut := make([]float32, n*per)
	steps := sched.Timesteps()
	for i, t := range steps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		scale := float32(sched.InputScale(i))
		for k, v := range latents {
			in[k] = v * scale
		}
		if guided {
			copy(in[n*per:], in[:n*per])
		}
		call := &stepCall{key: key, t: t, rows: batch, sample: in, ehs: ehs, ctx: ctx}
		var pred []float32
		if p.batch != nil {
			pred, err = p.batch.submit(call)
		} else {
			var preds [][]float32
			if preds, err = p.predict(ctx, []*stepCall{call}, false); err == nil {
				pred = preds[0]
			}
		}
		if err != nil {
			return nil, fmt.Errorf("diffusion: unet step %d/%d: %w", i+1, len(steps), err)
		}
		if guided {
			g := float32(req.Guidance)
			for k := range guidedOut {
				u, c := pred[k], pred[n*per+k]
				guidedOut[k] = u + g*(c-u)
			}
			pred = guidedOut
		}
		sched.Step(i, pred, latents, noise)
		if progress != nil {
			if err := progress(i+1, len(steps)); err != nil {
				return nil, err
			}
		}
	}
	leave() // before decoding: the others need not wait for it
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res, err := p.decode(ctx, latents, n, h, w)
	if err != nil {
		return nil, err
	}
	if p.safety != nil {
		flags, err := p.safety.Check(ctx, res)
		if err != nil {
			return nil, fmt.Errorf("diffusion: safety checker: %w", err)
		}
		if len(flags) != n {
			return nil, fmt.Errorf("diffusion: safety checker: %d flags for %d images", len(flags), n)
		}
		res.Flagged = flags
		plane := 3 * res.Width * res.Height
		for i, f := range flags {
			if f && i < n {
				clear(res.Pixels[i*plane : (i+1)*plane])
			}
		}
	}
	return res, nil
}

func (p *Pipeline) timestep(t float64) Value {
	shape := []int64{1}
	if len(p.stepShape) == 0 {
		shape = []int64{}
	}
	if p.stepType == "int64" {
		return Value{Shape: shape, Int64: []int64{int64(t)}}
	}
	return Value{Shape: shape, Float32: []float32{float32(t)}}
}

// encode runs the text encoder on rows of token ids.
func (p *Pipeline) encode(ctx context.Context, rows [][]int32) (Value, error) {
	ids := Value{Shape: []int64{int64(len(rows)), ContextLength}}
	for _, r := range rows {
		if p.idsType == "int64" {
			for _, v := range r {
				ids.Int64 = append(ids.Int64, int64(v))
			}
		} else {
			ids.Int32 = append(ids.Int32, r...)
		}
	}
	release, err := p.acquire(ctx)
	if err != nil {
		return Value{}, err
	}
	out, err := p.text.Run(ctx, map[string]Value{"input_ids": ids})
	release()
	if err != nil {
		return Value{}, fmt.Errorf("diffusion: text encoder: %w", err)
	}
	hs := out["last_hidden_state"]
	if len(hs.Float32) == 0 || len(hs.Float32)%(len(rows)*ContextLength) != 0 {
		return Value{}, fmt.Errorf("%w: text encoder last_hidden_state has shape %v", ErrBadExport, hs.Shape)
	}
	return hs, nil
}

// decode scales the latents by 1/VAEScale and decodes them one image at a time (as
// diffusers' ONNX pipeline does: half-precision VAEs misbehave at batch > 1), mapping
// [-1, 1] to 0..255.
func (p *Pipeline) decode(ctx context.Context, latents []float32, n, h, w int) (*Result, error) {
	per := 4 * h * w
	res := &Result{N: n, Height: 8 * h, Width: 8 * w, Pixels: make([]byte, n*3*64*h*w)}
	inv := float32(1 / p.VAEScale)
	lat := make([]float32, per)
	for i := range n {
		for k, v := range latents[i*per : (i+1)*per] {
			lat[k] = v * inv
		}
		release, err := p.acquire(ctx)
		if err != nil {
			return nil, err
		}
		out, err := p.vae.Run(ctx, map[string]Value{"latent_sample": {Shape: []int64{1, 4, int64(h), int64(w)}, Float32: lat}})
		release()
		if err != nil {
			return nil, fmt.Errorf("diffusion: vae decoder: %w", err)
		}
		img := out["sample"]
		if len(img.Float32) != 3*64*h*w {
			return nil, fmt.Errorf("%w: vae decoder sample has shape %v, want [1 3 %d %d]", ErrBadExport, img.Shape, 8*h, 8*w)
		}
		dst := res.Pixels[i*3*64*h*w:]
		for k, v := range img.Float32 {
			x := min(1, max(0, float64(v)/2+0.5))
			dst[k] = uint8(math.RoundToEven(x * 255))
		}
	}
	return res, nil
}
