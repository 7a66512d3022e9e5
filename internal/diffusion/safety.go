package diffusion

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
)

// SafetyCheckerFile is the optional safety model of an export: diffusers'
// StableDiffusionSafetyChecker as `optimum-cli export onnx --task text-to-image` writes
// it, with inputs clip_input float32 [B,3,224,224] (CLIP-preprocessed images) and
// images float32 [B,H,W,3] (0..1), and outputs out_images and has_nsfw_concepts bool
// [B].
const SafetyCheckerFile = "safety_checker/model.onnx"

// Safety modes (Options.SafetyMode): auto uses the export's safety checker when it has
// one, off never does, required refuses to open an export without one.
const (
	SafetyAuto     = "auto"
	SafetyOff      = "off"
	SafetyRequired = "required"
)

// CLIPSize is the side of the safety checker's CLIP input.
const CLIPSize = 224

// The normalisation of CLIP's image processor (the safety feature extractor's
// preprocessor_config.json): per channel mean and standard deviation of 0..1 values.
var (
	CLIPMean = [3]float32{0.48145466, 0.4578275, 0.40821073}
	CLIPStd  = [3]float32{0.26862954, 0.26130258, 0.27577711}
)

// ErrNoSafetyChecker is returned by Open when SafetyMode is required and the export has
// no safety_checker/model.onnx.
var ErrNoSafetyChecker = errors.New("diffusion: the export has no safety checker")

// GraphSafety runs an export's safety checker graph: it implements SafetyChecker with
// one graph call per image, as diffusers' ONNX pipeline does ("safety_checker does not
// support batched inputs yet": the exported graph's boolean indexing was traced at
// batch 1).
type GraphSafety struct {
	g Graph
}

// NewGraphSafety checks that g speaks the safety checker's contract.
func NewGraphSafety(g Graph) (*GraphSafety, error) {
	var errs []string
	for _, want := range []struct {
		ports []Port
		name  string
		typ   string
	}{{g.Inputs(), "clip_input", "float32"}, {g.Inputs(), "images", "float32"}, {g.Outputs(), "has_nsfw_concepts", "bool"}} {
		p, ok := port(want.ports, want.name)
		switch {
		case !ok:
			errs = append(errs, fmt.Sprintf("has no %q", want.name))
		case p.Type != want.typ:
			errs = append(errs, fmt.Sprintf("%q is %s, want %s", want.name, p.Type, want.typ))
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %s: %s (export it with optimum-cli export onnx --task text-to-image, without --fp16)", ErrBadExport, SafetyCheckerFile, strings.Join(errs, "; "))
	}
	return &GraphSafety{g: g}, nil
}

// Check implements SafetyChecker: for each image it feeds the CLIP-preprocessed image
// and the image itself (NHWC, 0..1) and reads has_nsfw_concepts.
func (s *GraphSafety) Check(ctx context.Context, r *Result) ([]bool, error) {
	plane := r.Width * r.Height
	images := make([]float32, plane*3)
	flags := make([]bool, r.N)
	for i := range r.N {
		src := r.Pixels[i*3*plane:]
		for k := range plane {
			for c := range 3 {
				images[3*k+c] = float32(src[c*plane+k]) / 255
			}
		}
		out, err := s.g.Run(ctx, map[string]Value{
			"clip_input": {Shape: []int64{1, 3, CLIPSize, CLIPSize}, Float32: CLIPInput(r, i)},
			"images":     {Shape: []int64{1, int64(r.Height), int64(r.Width), 3}, Float32: images},
		})
		if err != nil {
			return nil, fmt.Errorf("image %d: %w", i, err)
		}
		f := out["has_nsfw_concepts"]
		if len(f.Bool) != 1 {
			return nil, fmt.Errorf("%w: %s: has_nsfw_concepts has shape %v, want [1]", ErrBadExport, SafetyCheckerFile, f.Shape)
		}
		flags[i] = f.Bool[0]
	}
	return flags, nil
}

// Close releases the graph.
func (s *GraphSafety) Close() error { return s.g.Close() }

// openSafety loads the export's safety checker as mode asks: nil when it is off or
// (auto) when the export has none.
func openSafety(dir string, o Opener, mode string) (*GraphSafety, error) {
	switch mode {
	case SafetyOff:
		return nil, nil
	case "", SafetyAuto, SafetyRequired:
	default:
		return nil, fmt.Errorf("diffusion: safety mode %q: want auto, off or required", mode)
	}
	path := filepath.Join(dir, filepath.FromSlash(SafetyCheckerFile))
	if st, err := os.Stat(path); err != nil || st.IsDir() {
		if mode == SafetyRequired {
			return nil, fmt.Errorf("%w: %s lacks %s and the model's diffusion.safety is required: export the model with its safety checker (`optimum-cli export onnx --model <id> --task text-to-image <dir>` writes safety_checker/ when the model has one, e.g. SD 1.5) or set diffusion.safety to auto or off",
				ErrNoSafetyChecker, dir, SafetyCheckerFile)
		}
		return nil, nil
	}
	g, err := o.OpenGraph(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadExport, SafetyCheckerFile, err)
	}
	s, err := NewGraphSafety(g)
	if err != nil {
		_ = g.Close()
		return nil, err
	}
	return s, nil
}

// CLIPInput is image i of r as the safety checker's feature extractor (CLIPImageProcessor)
// prepares it: the shortest side resized to 224 with PIL's bicubic filter (antialiased
// when shrinking, 8-bit between passes), the centre 224x224 cropped, rescaled by 1/255
// and normalised with CLIPMean and CLIPStd; planar [3,224,224].
func CLIPInput(r *Result, i int) []float32 {
	w, h := r.Width, r.Height
	var nw, nh int
	if w <= h {
		nw, nh = CLIPSize, int(float64(CLIPSize)*float64(h)/float64(w))
	} else {
		nw, nh = int(float64(CLIPSize)*float64(w)/float64(h)), CLIPSize
	}
	plane := w * h
	top, left := (nh-CLIPSize)/2, (nw-CLIPSize)/2
	out := make([]float32, 3*CLIPSize*CLIPSize)
	xs := resampleWeights(w, nw)
	ys := resampleWeights(h, nh)
	horiz := make([]uint8, h*CLIPSize) // only the cropped columns are needed
	for c := range 3 {
		src := r.Pixels[(i*3+c)*plane : (i*3+c+1)*plane]
		for y := range h {
			row := src[y*w : (y+1)*w]
			for x := range CLIPSize {
				horiz[y*CLIPSize+x] = xs[left+x].apply(func(k int) float64 { return float64(row[k]) })
			}
		}
		dst := out[c*CLIPSize*CLIPSize:]
		for y := range CLIPSize {
			wy := ys[top+y]
			for x := range CLIPSize {
				v := wy.apply(func(k int) float64 { return float64(horiz[k*CLIPSize+x]) })
				dst[y*CLIPSize+x] = (float32(v)/255 - CLIPMean[c]) / CLIPStd[c]
			}
		}
	}
	return out
}

// taps are one output pixel's source window and normalised weights.
type taps struct {
	first int
	w     []float64
}

func (t taps) apply(at func(k int) float64) uint8 {
	var s float64
	for j, w := range t.w {
		s += w * at(t.first+j)
	}
	return uint8(min(255, max(0, math.Round(s))))
}

// resampleWeights are PIL's bicubic (a = -0.5) taps for resizing in pixels to out: the
// filter widens by the scale when shrinking, the window is clipped to the image and
// the weights renormalised.
func resampleWeights(in, out int) []taps {
	scale := float64(in) / float64(out)
	fs := max(scale, 1)
	support := 2 * fs
	res := make([]taps, out)
	for x := range out {
		center := (float64(x) + 0.5) * scale
		lo := max(0, int(center-support+0.5))
		hi := min(in, int(center+support+0.5))
		t := taps{first: lo, w: make([]float64, hi-lo)}
		var sum float64
		for k := lo; k < hi; k++ {
			v := bicubic((float64(k) - center + 0.5) / fs)
			t.w[k-lo] = v
			sum += v
		}
		if sum != 0 {
			for k := range t.w {
				t.w[k] /= sum
			}
		}
		res[x] = t
	}
	return res
}

func bicubic(x float64) float64 {
	const a = -0.5
	x = math.Abs(x)
	switch {
	case x < 1:
		return ((a+2)*x-(a+3))*x*x + 1
	case x < 2:
		return (((x-5)*x+8)*x - 4) * a
	}
	return 0
}
