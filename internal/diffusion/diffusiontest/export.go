// Package diffusiontest writes tiny Stable Diffusion exports for tests: the directory
// layout, file names, graph input and output names, shapes and dtypes of a real
// `optimum-cli export onnx` export of SD-Turbo or SD 1.5, with small random weights
// (hidden size 8, 4 latent channels) and a small CLIP-style vocabulary. The graphs are
// synthetic: they exercise the pipeline, they draw nothing.
package diffusiontest

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"github.com/creativeai-studio/studio/internal/diffusion"
	"github.com/creativeai-studio/studio/internal/onnx"
)

// Hidden is the text encoder width of the test exports.
const Hidden = 8

// Options vary the export.
type Options struct {
	// TimestepInt64 declares the UNet's timestep int64 (as some exports do) instead of
	// float32.
	TimestepInt64 bool
	// TimestepScalar declares the UNet's timestep a scalar (as some community exports
	// do) instead of optimum's [steps], so one call takes one timestep for all samples.
	TimestepScalar bool
	// Scheduler is the scheduler config's _class_name (default
	// EulerAncestralDiscreteScheduler).
	Scheduler string
	// Spacing is its timestep_spacing (default "leading").
	Spacing string
	// Omit leaves these export files out (to test validation).
	Omit []string
	// Safety writes safety_checker/model.onnx, which flags an image when the mean of
	// its clip_input is above SafetyThreshold.
	Safety          bool
	SafetyThreshold float32
}

// Words are the whole words the test vocabulary has merges for, besides single bytes.
var Words = []string{"a", "photo", "of", "cat", "dog", "red", "blurry"}

// Vocab returns the test vocabulary (token -> id) and merges in CLIP's layout: the 256
// byte symbols, the same with "</w>", one merged token per merge, then
// <|startoftext|> and <|endoftext|>.
func Vocab() (map[string]int32, []string) {
	vocab := map[string]int32{}
	var order []string
	add := func(tok string) {
		if _, ok := vocab[tok]; !ok {
			vocab[tok] = int32(len(order))
			order = append(order, tok)
		}
	}
	// CLIP's byte alphabet: printable bytes stand for themselves, the others for
	// U+0100 onwards.
	n := 0
	enc := map[int]string{}
	for b := range 256 {
		if b >= '!' && b <= '~' || b >= 0xA1 && b <= 0xAC || b >= 0xAE && b <= 0xFF {
			enc[b] = string(rune(b))
		} else {
			enc[b] = string(rune(256 + n))
			n++
		}
	}
	for b := range 256 {
		add(enc[b])
	}
	for b := range 256 {
		add(enc[b] + "</w>")
	}
	var merges []string
	for _, w := range Words {
		// Merge left to right: "c a" -> "ca", "ca t</w>" -> "cat</w>".
		syms := strings.Split(w, "")
		syms[len(syms)-1] += "</w>"
		cur := syms[0]
		for _, s := range syms[1:] {
			merges = append(merges, cur+" "+s)
			cur += s
			add(cur)
		}
	}
	add(diffusion.StartOfText)
	add(diffusion.EndOfText)
	return vocab, merges
}

// WriteExport writes a test export into dir.
func WriteExport(dir string, o Options) error {
	if o.Scheduler == "" {
		o.Scheduler = "EulerAncestralDiscreteScheduler"
	}
	if o.Spacing == "" {
		o.Spacing = "leading"
	}
	vocab, merges := Vocab()
	vj, err := json.Marshal(vocab)
	if err != nil {
		return err
	}
	sched, err := json.MarshalIndent(map[string]any{
		"_class_name": o.Scheduler, "num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012,
		"beta_schedule": "scaled_linear", "prediction_type": "epsilon", "timestep_spacing": o.Spacing,
		"steps_offset": 1, "set_alpha_to_one": false, "clip_sample": false, "skip_prk_steps": true, // as SD 1.5's
	}, "", "  ")
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(17, 2026))
	files := map[string][]byte{
		diffusion.VocabFile:         vj,
		diffusion.MergesFile:        []byte("#version: 0.2\n" + strings.Join(merges, "\n") + "\n"),
		diffusion.SpecialTokensFile: []byte(`{"bos_token":"<|startoftext|>","eos_token":"<|endoftext|>","pad_token":"<|endoftext|>","unk_token":"<|endoftext|>"}`),
		diffusion.SchedulerFile:     sched,
		diffusion.VAEConfigFile:     []byte(`{"_class_name":"AutoencoderKL","scaling_factor":0.18215,"latent_channels":4}`),
		diffusion.TextEncoderFile:   textEncoder(rng, len(vocab)),
		diffusion.UNetFile:          unet(rng, o.TimestepInt64, o.TimestepScalar),
		diffusion.VAEDecoderFile:    vaeDecoder(rng),
	}
	if o.Safety {
		files[diffusion.SafetyCheckerFile] = SafetyChecker(o.SafetyThreshold)
	}
	for _, f := range o.Omit {
		delete(files, f)
	}
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return fmt.Errorf("diffusiontest: %w", err)
		}
	}
	return nil
}

func random(rng *rand.Rand, n int, scale float64) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(rng.NormFloat64() * scale)
	}
	return out
}

// textEncoder: input_ids int32 [batch, 77] -> last_hidden_state f32 [batch, 77, D] and
// pooler_output [batch, D]: an embedding table plus positions, through tanh.
func textEncoder(rng *rand.Rand, vocab int) []byte {
	var g onnx.Graph
	g.Name = "text_encoder"
	g.Inputs = []onnx.ValueInfo{{Name: "input_ids", Type: onnx.Int32, Dims: []onnx.Dim{{Param: "batch_size"}, {Param: "sequence_length"}}}}
	g.Outputs = []onnx.ValueInfo{
		{Name: "last_hidden_state", Dims: []onnx.Dim{{Param: "batch_size"}, {Param: "sequence_length"}, {Value: Hidden}}},
		{Name: "pooler_output", Dims: []onnx.Dim{{Param: "batch_size"}, {Value: Hidden}}},
	}
	g.Initializers = []onnx.Tensor{
		{Name: "token_embedding", Dims: []int64{int64(vocab), Hidden}, Floats: random(rng, vocab*Hidden, 1)},
		{Name: "position_embedding", Dims: []int64{diffusion.ContextLength, Hidden}, Floats: random(rng, diffusion.ContextLength*Hidden, 0.1)},
	}
	g.Add("Gather", []string{"token_embedding", "input_ids"}, []string{"tokens"}, onnx.AttrInt("axis", 0))
	g.Add("Add", []string{"tokens", "position_embedding"}, []string{"embedded"})
	g.Add("Tanh", []string{"embedded"}, []string{"last_hidden_state"})
	g.Add("ReduceMean", []string{"last_hidden_state"}, []string{"pooler_output"}, onnx.AttrInts("axes", 1), onnx.AttrInt("keepdims", 0))
	m := onnx.Model{Producer: "diffusiontest", Graph: g}
	return m.Marshal()
}

// unet: sample f32 [2B, 4, h, w], timestep [1] or [2B] (float32 or int64; a scalar with
// scalarStep), encoder_hidden_states f32 [2B, 77, D] -> out_sample f32 [2B, 4, h, w]: a
// 1x1 convolution of the sample plus a per-sample term from the text (so guidance
// matters) and the timestep, through tanh. Like a diffusers UNet, it takes one timestep
// for the batch or one per sample (diffusers expands the timestep to the batch).
func unet(rng *rand.Rand, int64Step, scalarStep bool) []byte {
	var g onnx.Graph
	g.Name = "unet"
	stepType := onnx.Float
	if int64Step {
		stepType = onnx.Int64
	}
	stepDims := []onnx.Dim{{Param: "steps"}}
	if scalarStep {
		stepDims = []onnx.Dim{}
	}
	spatial := []onnx.Dim{{Param: "batch_size"}, {Value: 4}, {Param: "height"}, {Param: "width"}}
	g.Inputs = []onnx.ValueInfo{
		{Name: "sample", Dims: spatial},
		{Name: "timestep", Type: stepType, Dims: stepDims},
		{Name: "encoder_hidden_states", Dims: []onnx.Dim{{Param: "batch_size"}, {Param: "sequence_length"}, {Value: Hidden}}},
	}
	g.Outputs = []onnx.ValueInfo{{Name: "out_sample", Dims: spatial}}
	g.Initializers = []onnx.Tensor{
		{Name: "conv_w", Dims: []int64{4, 4, 1, 1}, Floats: random(rng, 16, 0.5)},
		{Name: "conv_b", Dims: []int64{4}, Floats: random(rng, 4, 0.1)},
		{Name: "text_w", Dims: []int64{Hidden, 4}, Floats: random(rng, Hidden*4, 1)},
		{Name: "cond_shape", Dims: []int64{4}, Int64s: []int64{-1, 4, 1, 1}},
		{Name: "step_shape", Dims: []int64{4}, Int64s: []int64{-1, 1, 1, 1}},
	}
	step := "timestep"
	if int64Step {
		g.Add("Cast", []string{"timestep"}, []string{"timestep_f"}, onnx.AttrInt("to", int64(onnx.Float)))
		step = "timestep_f"
	}
	g.Add("Constant", nil, []string{"step_scale"}, onnx.AttrTensor("value", onnx.Tensor{Floats: []float32{0.001}}))
	g.Add("Mul", []string{step, "step_scale"}, []string{"step_scaled"})
	g.Add("Reshape", []string{"step_scaled", "step_shape"}, []string{"step_term"})
	g.Add("Conv", []string{"sample", "conv_w", "conv_b"}, []string{"conv"})
	g.Add("ReduceMean", []string{"encoder_hidden_states"}, []string{"text_mean"}, onnx.AttrInts("axes", 1), onnx.AttrInt("keepdims", 0))
	g.Add("MatMul", []string{"text_mean", "text_w"}, []string{"text_proj"})
	g.Add("Reshape", []string{"text_proj", "cond_shape"}, []string{"cond"})
	g.Add("Add", []string{"conv", "cond"}, []string{"mixed"})
	g.Add("Add", []string{"mixed", "step_term"}, []string{"timed"})
	g.Add("Tanh", []string{"timed"}, []string{"out_sample"})
	m := onnx.Model{Producer: "diffusiontest", Graph: g}
	return m.Marshal()
}

// vaeDecoder: latent_sample f32 [B, 4, h, w] -> sample f32 [B, 3, 8h, 8w]: a 1x1
// convolution to RGB, nearest x8 upsampling, tanh.
func vaeDecoder(rng *rand.Rand) []byte {
	var g onnx.Graph
	g.Name = "vae_decoder"
	g.Inputs = []onnx.ValueInfo{{Name: "latent_sample", Dims: []onnx.Dim{{Param: "batch_size"}, {Value: 4}, {Param: "latent_height"}, {Param: "latent_width"}}}}
	g.Outputs = []onnx.ValueInfo{{Name: "sample", Dims: []onnx.Dim{{Param: "batch_size"}, {Value: 3}, {Param: "height"}, {Param: "width"}}}}
	g.Initializers = []onnx.Tensor{
		{Name: "rgb_w", Dims: []int64{3, 4, 1, 1}, Floats: random(rng, 12, 0.3)},
		{Name: "rgb_b", Dims: []int64{3}, Floats: random(rng, 3, 0.1)},
		{Name: "scales", Dims: []int64{4}, Floats: []float32{1, 1, 8, 8}},
	}
	g.Add("Conv", []string{"latent_sample", "rgb_w", "rgb_b"}, []string{"rgb"})
	g.Add("Resize", []string{"rgb", "", "scales"}, []string{"up"}, onnx.AttrString("mode", "nearest"))
	g.Add("Tanh", []string{"up"}, []string{"sample"})
	m := onnx.Model{Producer: "diffusiontest", Graph: g}
	return m.Marshal()
}

// SafetyChecker is a safety checker graph with the names, shapes and dtypes of
// optimum's export (clip_input f32 [B,3,224,224], images f32 [B,H,W,3] ->
// out_images f32 [B,H,W,3], has_nsfw_concepts bool [B]) whose flag is
// mean(clip_input of the image) > threshold and whose out_images are the images.
func SafetyChecker(threshold float32) []byte {
	var g onnx.Graph
	g.Name = "safety_checker"
	nhwc := []onnx.Dim{{Param: "batch_size"}, {Param: "height"}, {Param: "width"}, {Param: "channels"}}
	g.Inputs = []onnx.ValueInfo{
		{Name: "clip_input", Dims: []onnx.Dim{{Param: "batch_size"}, {Param: "channels"}, {Param: "clip_height"}, {Param: "clip_width"}}},
		{Name: "images", Dims: nhwc},
	}
	g.Outputs = []onnx.ValueInfo{
		{Name: "out_images", Dims: nhwc},
		{Name: "has_nsfw_concepts", Type: onnx.Bool, Dims: []onnx.Dim{{Param: "batch_size"}}},
	}
	g.Add("Constant", nil, []string{"threshold"}, onnx.AttrTensor("value", onnx.Tensor{Floats: []float32{threshold}}))
	g.Add("ReduceMean", []string{"clip_input"}, []string{"clip_mean"}, onnx.AttrInts("axes", 1, 2, 3), onnx.AttrInt("keepdims", 0))
	g.Add("Greater", []string{"clip_mean", "threshold"}, []string{"has_nsfw_concepts"})
	g.Add("Identity", []string{"images"}, []string{"out_images"})
	m := onnx.Model{Producer: "diffusiontest", Graph: g}
	return m.Marshal()
}
