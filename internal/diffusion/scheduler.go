package diffusion

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
)

// SchedulerConfig is diffusers' scheduler/scheduler_config.json. Fields the schedulers
// here do not use are ignored; absent ones take diffusers' defaults (ReadSchedulerConfig).
type SchedulerConfig struct {
	Class             string  `json:"_class_name"`
	NumTrainTimesteps int     `json:"num_train_timesteps"`
	BetaStart         float64 `json:"beta_start"`
	BetaEnd           float64 `json:"beta_end"`
	BetaSchedule      string  `json:"beta_schedule"`
	PredictionType    string  `json:"prediction_type"`
	TimestepSpacing   string  `json:"timestep_spacing"`
	StepsOffset       int     `json:"steps_offset"`
	SetAlphaToOne     *bool   `json:"set_alpha_to_one"`
	ClipSample        bool    `json:"clip_sample"`
	ClipSampleRange   float64 `json:"clip_sample_range"`
}

// The scheduler kinds this package runs.
const (
	EulerAncestral = "euler-ancestral" // EulerAncestralDiscreteScheduler
	Euler          = "euler"           // EulerDiscreteScheduler (SD-Turbo's)
	DDIM           = "ddim"            // DDIMScheduler, eta 0
)

// ReadSchedulerConfig decodes a scheduler_config.json and fills diffusers' defaults.
func ReadSchedulerConfig(r io.Reader) (SchedulerConfig, error) {
	var c SchedulerConfig
	if err := json.NewDecoder(r).Decode(&c); err != nil {
		return c, fmt.Errorf("diffusion: scheduler_config.json: %w", err)
	}
	if c.NumTrainTimesteps == 0 {
		c.NumTrainTimesteps = 1000
	}
	if c.BetaStart == 0 {
		c.BetaStart = 0.0001
	}
	if c.BetaEnd == 0 {
		c.BetaEnd = 0.02
	}
	if c.BetaSchedule == "" {
		c.BetaSchedule = "linear"
	}
	if c.PredictionType == "" {
		c.PredictionType = "epsilon"
	}
	if c.TimestepSpacing == "" {
		c.TimestepSpacing = "leading" // the default of every scheduler here
	}
	if c.ClipSampleRange == 0 {
		c.ClipSampleRange = 1
	}
	return c, nil
}

// Kind maps the config's class to a scheduler kind; override, when set, wins (an SD 1.5
// export ships PNDMScheduler, which is run as one of these with its own betas).
func (c SchedulerConfig) Kind(override string) (string, error) {
	if override != "" {
		switch override {
		case EulerAncestral, Euler, DDIM:
			return override, nil
		}
		return "", fmt.Errorf("diffusion: scheduler %q: use %s, %s or %s", override, EulerAncestral, Euler, DDIM)
	}
	switch c.Class {
	case "EulerAncestralDiscreteScheduler":
		return EulerAncestral, nil
	case "EulerDiscreteScheduler":
		return Euler, nil
	case "DDIMScheduler":
		return DDIM, nil
	}
	return "", fmt.Errorf("diffusion: scheduler class %q is not implemented: set diffusion.scheduler in the manifest to %s, %s or %s", c.Class, EulerAncestral, Euler, DDIM)
}

// alphasCumprod is diffusers' training noise schedule: betas (linear, or
// "scaled_linear": linear in sqrt(beta), squared), alphas = 1 - betas, cumulative product.
func (c SchedulerConfig) alphasCumprod() ([]float64, error) {
	n := c.NumTrainTimesteps
	betas := make([]float64, n)
	for i := range n {
		f := 0.0
		if n > 1 {
			f = float64(i) / float64(n-1)
		}
		switch c.BetaSchedule {
		case "linear":
			betas[i] = c.BetaStart + f*(c.BetaEnd-c.BetaStart)
		case "scaled_linear":
			s := math.Sqrt(c.BetaStart) + f*(math.Sqrt(c.BetaEnd)-math.Sqrt(c.BetaStart))
			betas[i] = s * s
		default:
			return nil, fmt.Errorf("diffusion: beta_schedule %q is not implemented (linear, scaled_linear)", c.BetaSchedule)
		}
	}
	ac := make([]float64, n)
	p := 1.0
	for i, b := range betas {
		p *= 1 - b
		ac[i] = p
	}
	return ac, nil
}

// timesteps returns the descending training timesteps the loop visits for steps
// denoising steps, by the config's timestep_spacing (diffusers' set_timesteps).
func (c SchedulerConfig) timesteps(steps int) ([]float64, error) {
	n := c.NumTrainTimesteps
	if steps < 1 || steps > n {
		return nil, fmt.Errorf("diffusion: %d steps: must be 1 to %d", steps, n)
	}
	ts := make([]float64, steps)
	switch c.TimestepSpacing {
	case "linspace":
		for i := range steps {
			v := 0.0
			if steps > 1 {
				v = float64(n-1) * float64(i) / float64(steps-1)
			}
			ts[steps-1-i] = v
		}
	case "leading":
		ratio := n / steps
		for i := range steps {
			ts[steps-1-i] = float64(i*ratio + c.StepsOffset)
		}
	case "trailing":
		ratio := float64(n) / float64(steps)
		for i := range steps {
			ts[i] = math.RoundToEven(float64(n)-float64(i)*ratio) - 1
		}
	default:
		return nil, fmt.Errorf("diffusion: timestep_spacing %q is not implemented (linspace, leading, trailing)", c.TimestepSpacing)
	}
	return ts, nil
}

// Scheduler is one run's noise schedule: the timesteps to visit and the update that
// turns a noise prediction into the next latents. Not safe for concurrent use.
type Scheduler interface {
	// Timesteps are the UNet timesteps, one per step, descending.
	Timesteps() []float64
	// InitNoiseSigma scales the initial standard-normal latents.
	InitNoiseSigma() float64
	// InputScale is the factor the latents are multiplied by before the UNet call of
	// step i.
	InputScale(i int) float64
	// Step updates the latents x in place from the (guided) prediction out of step i;
	// ancestral schedulers draw fresh noise from noise.
	Step(i int, out, x []float32, noise *Noise)
}

// NewScheduler builds the scheduler kind (see Kind) for steps denoising steps.
func NewScheduler(c SchedulerConfig, kind string, steps int) (Scheduler, error) {
	ac, err := c.alphasCumprod()
	if err != nil {
		return nil, err
	}
	ts, err := c.timesteps(steps)
	if err != nil {
		return nil, err
	}
	switch c.PredictionType {
	case "epsilon", "v_prediction":
	default:
		return nil, fmt.Errorf("diffusion: prediction_type %q is not implemented (epsilon, v_prediction)", c.PredictionType)
	}
	switch kind {
	case Euler, EulerAncestral:
		return newEuler(c, ac, ts, kind == EulerAncestral), nil
	case DDIM:
		final := ac[0]
		if c.SetAlphaToOne == nil || *c.SetAlphaToOne {
			final = 1
		}
		for i := range ts {
			ts[i] = math.RoundToEven(ts[i]) // DDIM visits whole timesteps
		}
		return &ddim{cfg: c, ac: ac, ts: ts, ratio: c.NumTrainTimesteps / steps, final: final}, nil
	}
	return nil, fmt.Errorf("diffusion: unknown scheduler kind %q", kind)
}

// euler is EulerDiscreteScheduler (s_churn 0) and EulerAncestralDiscreteScheduler in
// sigma space: sigma(t) = sqrt((1 - alphabar) / alphabar), interpolated linearly at
// fractional timesteps, with a final sigma of 0.
type euler struct {
	cfg       SchedulerConfig
	ts        []float64
	sigmas    []float64 // len(ts)+1
	ancestral bool
}

func newEuler(c SchedulerConfig, ac, ts []float64, ancestral bool) *euler {
	train := make([]float64, len(ac))
	for i, a := range ac {
		train[i] = math.Sqrt((1 - a) / a)
	}
	sig := make([]float64, len(ts)+1)
	for i, t := range ts {
		lo := int(math.Floor(t))
		switch {
		case lo < 0:
			sig[i] = train[0]
		case lo >= len(train)-1:
			sig[i] = train[len(train)-1]
		default:
			f := t - float64(lo)
			sig[i] = train[lo]*(1-f) + train[lo+1]*f
		}
	}
	return &euler{cfg: c, ts: ts, sigmas: sig, ancestral: ancestral}
}

func (e *euler) Timesteps() []float64 { return e.ts }

func (e *euler) InitNoiseSigma() float64 {
	m := 0.0
	for _, s := range e.sigmas {
		m = max(m, s)
	}
	if e.cfg.TimestepSpacing == "linspace" || e.cfg.TimestepSpacing == "trailing" {
		return m
	}
	return math.Sqrt(m*m + 1)
}

func (e *euler) InputScale(i int) float64 { return 1 / math.Sqrt(e.sigmas[i]*e.sigmas[i]+1) }

func (e *euler) Step(i int, out, x []float32, noise *Noise) {
	sigma, next := e.sigmas[i], e.sigmas[i+1]
	down, up := next, 0.0
	if e.ancestral && next > 0 {
		up = math.Sqrt(next * next * (sigma*sigma - next*next) / (sigma * sigma))
		down = math.Sqrt(next*next - up*up)
	}
	dt := down - sigma
	v := e.cfg.PredictionType == "v_prediction"
	c := 1 / (sigma*sigma + 1)
	for k := range x {
		s := float64(x[k])
		var x0 float64
		if v {
			x0 = float64(out[k])*(-sigma*math.Sqrt(c)) + s*c
		} else {
			x0 = s - sigma*float64(out[k])
		}
		d := (s - x0) / sigma
		x[k] = float32(s + d*dt)
	}
	if up > 0 {
		for k := range x {
			x[k] += float32(noise.Norm() * up)
		}
	}
}

// ddim is DDIMScheduler with eta 0 (deterministic).
type ddim struct {
	cfg   SchedulerConfig
	ac    []float64
	ts    []float64
	ratio int
	final float64
}

func (d *ddim) Timesteps() []float64    { return d.ts }
func (d *ddim) InitNoiseSigma() float64 { return 1 }
func (d *ddim) InputScale(int) float64  { return 1 }

func (d *ddim) Step(i int, out, x []float32, _ *Noise) {
	t := int(d.ts[i])
	prev := t - d.ratio
	a := d.ac[t]
	ap := d.final
	if prev >= 0 {
		ap = d.ac[prev]
	}
	b := 1 - a
	sa, sb, sap, sbp := math.Sqrt(a), math.Sqrt(b), math.Sqrt(ap), math.Sqrt(1-ap)
	v := d.cfg.PredictionType == "v_prediction"
	r := d.cfg.ClipSampleRange
	for k := range x {
		s, o := float64(x[k]), float64(out[k])
		var x0, eps float64
		if v {
			x0, eps = sa*s-sb*o, sa*o+sb*s
		} else {
			x0, eps = (s-sb*o)/sa, o
		}
		if d.cfg.ClipSample {
			x0 = max(-r, min(r, x0))
		}
		x[k] = float32(sap*x0 + sbp*eps)
	}
}
