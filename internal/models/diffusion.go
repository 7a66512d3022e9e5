package models

import (
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"time"

	"github.com/creativeai-studio/studio/internal/diffusion"
	"github.com/creativeai-studio/studio/schemas"
)

// Diffusion configures a text-to-image model (task generate, source.export): the
// defaults a job gets for what it leaves out, and the bounds it may ask for.
type Diffusion struct {
	// Scheduler overrides the export's scheduler class: euler-ancestral, euler, ddim or
	// pndm (PNDMScheduler with skip_prk_steps, SD 1.5's).
	Scheduler string `yaml:"scheduler"`
	// Steps and Guidance are the defaults (SD-Turbo: 1 and 0; SD 1.5: 25 and 7.5).
	Steps    int      `yaml:"steps"`
	Guidance *float64 `yaml:"guidance"`
	// Width and Height are the default size (512x512); MaxSide bounds either side
	// (1024) and MaxImages the images of one job (4).
	Width     int `yaml:"width"`
	Height    int `yaml:"height"`
	MaxSide   int `yaml:"max_side"`
	MaxImages int `yaml:"max_images"`
	// UNetBatch is the largest UNet batch (samples; a guided image counts 2) that
	// concurrent jobs of the same size may share in one call; 1 turns sharing off and
	// 0 leaves it to the inference step (on a GPU 8, on the CPU off). BatchWindowMS is
	// how long a step waits for others to join its call (5 ms).
	UNetBatch     int `yaml:"unet_batch"`
	BatchWindowMS int `yaml:"batch_window_ms"`
	// Safety decides whether the export's safety checker (safety_checker/model.onnx)
	// checks every image, blacking out flagged ones: auto (default) when the export has
	// it, off never, required always (the model refuses to load without it).
	Safety string `yaml:"safety"`
}

// Batch returns the manifest's UNet sharing as the pipeline's options (MaxBatch 0: the
// device's default).
func (d Diffusion) Batch() diffusion.BatchOptions {
	d.setDefaults()
	return diffusion.BatchOptions{MaxBatch: d.UNetBatch, Window: time.Duration(d.BatchWindowMS) * time.Millisecond}
}

// Export returns the directory of a diffusion export (source.export), resolved against
// the manifest's folder.
func (m Manifest) Export() string {
	p := m.Source.Export
	if p != "" && !filepath.IsAbs(p) {
		p = filepath.Join(m.Dir, p)
	}
	return p
}

func (d *Diffusion) setDefaults() {
	if d.Steps == 0 {
		d.Steps = 25
	}
	if d.Guidance == nil {
		g := 7.5
		d.Guidance = &g
	}
	if d.Width == 0 {
		d.Width = 512
	}
	if d.Height == 0 {
		d.Height = 512
	}
	if d.MaxSide == 0 {
		d.MaxSide = 1024
	}
	if d.MaxImages == 0 {
		d.MaxImages = 4
	}
	if d.BatchWindowMS == 0 {
		d.BatchWindowMS = 5
	}
	if d.Safety == "" {
		d.Safety = diffusion.SafetyAuto
	}
}

// diffusionProblems validates a generate manifest: an export directory and sane
// defaults; the image tensors of the other tasks do not apply.
func (m Manifest) diffusionProblems() []string {
	var errs []string
	bad := func(field, format string, args ...any) {
		errs = append(errs, field+": "+fmt.Sprintf(format, args...))
	}
	if m.Task != schemas.TaskGenerate {
		bad("source.export", "a diffusion export serves task generate, not %q", m.Task)
	}
	if m.Source.Export == "" {
		bad("source.export", "task generate needs the directory of an ONNX export (text_encoder/, unet/, vae_decoder/, tokenizer/, scheduler/)")
	}
	if m.Source.NPM != "" || m.Source.Path != "" || m.Source.NCNN != nil {
		bad("source", "a diffusion export is a directory: set only source.export")
	}
	d := Diffusion{}
	if m.Diffusion != nil {
		d = *m.Diffusion
	}
	d.setDefaults()
	if d.Scheduler != "" {
		if _, err := (diffusion.SchedulerConfig{}).Kind(d.Scheduler); err != nil {
			bad("diffusion.scheduler", "%q must be euler-ancestral, euler, ddim or pndm", d.Scheduler)
		}
	}
	if d.Steps < 1 || d.Steps > MaxDiffusionSteps {
		bad("diffusion.steps", "%d must be 1 to %d", d.Steps, MaxDiffusionSteps)
	}
	if *d.Guidance < 0 || *d.Guidance > 30 {
		bad("diffusion.guidance", "%v must be 0 to 30", *d.Guidance)
	}
	if d.MaxSide < 64 || d.MaxSide > 2048 || d.MaxSide%8 != 0 {
		bad("diffusion.max_side", "%d must be a multiple of 8 from 64 to 2048", d.MaxSide)
	}
	for _, s := range []struct {
		field string
		v     int
	}{{"diffusion.width", d.Width}, {"diffusion.height", d.Height}} {
		if s.v < 64 || s.v > d.MaxSide || s.v%8 != 0 {
			bad(s.field, "%d must be a multiple of 8 from 64 to max_side %d", s.v, d.MaxSide)
		}
	}
	if d.MaxImages < 1 || d.MaxImages > 8 {
		bad("diffusion.max_images", "%d must be 1 to 8", d.MaxImages)
	}
	if d.UNetBatch < 0 || d.UNetBatch > 64 {
		bad("diffusion.unet_batch", "%d must be 1 (no sharing) to 64, or 0 for the device's default", d.UNetBatch)
	}
	if d.BatchWindowMS < 1 || d.BatchWindowMS > 1000 {
		bad("diffusion.batch_window_ms", "%d must be 1 to 1000", d.BatchWindowMS)
	}
	switch d.Safety {
	case diffusion.SafetyAuto, diffusion.SafetyOff, diffusion.SafetyRequired:
	default:
		bad("diffusion.safety", "%q must be auto, off or required", d.Safety)
	}
	return errs
}

// MaxDiffusionSteps bounds the denoising steps of one job.
const MaxDiffusionSteps = 150

// Generation is a generate job's settings, resolved from its parameters and the
// model's defaults.
type Generation struct {
	Prompt, NegativePrompt string
	Seed                   uint32
	Steps                  int
	Guidance               float64
	Width, Height          int
	Images                 int
}

// Generation resolves a generate job's parameters (numbers as encoding/json decodes
// them) against the manifest's defaults and bounds; a value out of bounds is an error
// that names the parameter and the bound. A missing seed draws one.
func (m Manifest) Generation(params map[string]any) (Generation, error) {
	d := Diffusion{}
	if m.Diffusion != nil {
		d = *m.Diffusion
	}
	d.setDefaults()
	g := Generation{Steps: d.Steps, Guidance: *d.Guidance, Width: d.Width, Height: d.Height, Images: 1, Seed: rand.Uint32()}
	str := func(name string, dst *string) error {
		if v, ok := params[name]; ok {
			s, isStr := v.(string)
			if !isStr {
				return fmt.Errorf("%s must be a string", name)
			}
			*dst = s
		}
		return nil
	}
	num := func(name string, lo, hi float64, whole bool) (float64, bool, error) {
		v, ok := params[name]
		if !ok {
			return 0, false, nil
		}
		f, isNum := v.(float64)
		if !isNum || math.IsNaN(f) || f < lo || f > hi || whole && f != math.Trunc(f) {
			kind := "a number"
			if whole {
				kind = "a whole number"
			}
			return 0, false, fmt.Errorf("%s %v: must be %s from %v to %v", name, v, kind, lo, hi)
		}
		return f, true, nil
	}
	if err := str("prompt", &g.Prompt); err != nil {
		return g, err
	}
	if err := str("negative_prompt", &g.NegativePrompt); err != nil {
		return g, err
	}
	if f, ok, err := num("seed", 0, math.MaxUint32, true); err != nil {
		return g, err
	} else if ok {
		g.Seed = uint32(f)
	}
	if f, ok, err := num("steps", 1, MaxDiffusionSteps, true); err != nil {
		return g, err
	} else if ok {
		g.Steps = int(f)
	}
	if f, ok, err := num("guidance", 0, 30, false); err != nil {
		return g, err
	} else if ok {
		g.Guidance = f
	}
	for _, s := range []struct {
		name string
		dst  *int
	}{{"width", &g.Width}, {"height", &g.Height}} {
		f, ok, err := num(s.name, 64, float64(d.MaxSide), true)
		if err != nil {
			return g, err
		}
		if ok {
			if int(f)%8 != 0 {
				return g, fmt.Errorf("%s %v: must be a multiple of 8", s.name, f)
			}
			*s.dst = int(f)
		}
	}
	if f, ok, err := num("num_images", 1, float64(d.MaxImages), true); err != nil {
		return g, err
	} else if ok {
		g.Images = int(f)
	}
	return g, nil
}
