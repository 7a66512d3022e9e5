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
	// SkipPRKSteps (PNDMScheduler) skips the Runge-Kutta warm-up: only the linear
	// multistep (PLMS) form is implemented, which is what SD 1.5's config asks for.
	SkipPRKSteps    bool    `json:"skip_prk_steps"`
	ClipSampleRange float64 `json:"clip_sample_range"`
}

// The scheduler kinds this package runs.
const (
	EulerAncestral = "euler-ancestral" // EulerAncestralDiscreteScheduler
	Euler          = "euler"           // EulerDiscreteScheduler (SD-Turbo's)
	DDIM           = "ddim"            // DDIMScheduler, eta 0
	PNDM           = "pndm"            // PNDMScheduler with skip_prk_steps (SD 1.5's)
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
		case EulerAncestral, Euler, DDIM, PNDM:
			return override, nil
		}
		return "", fmt.Errorf("diffusion: scheduler %q: use %s, %s, %s or %s", override, EulerAncestral, Euler, DDIM, PNDM)
	}
	switch c.Class {
	case "EulerAncestralDiscreteScheduler":
		return EulerAncestral, nil
	case "EulerDiscreteScheduler":
		return Euler, nil
	case "DDIMScheduler":
		return DDIM, nil
	case "PNDMScheduler":
		if !c.SkipPRKSteps {
			return "", fmt.Errorf("diffusion: PNDMScheduler with skip_prk_steps false (the Runge-Kutta warm-up) is not implemented: set skip_prk_steps true in scheduler_config.json, or diffusion.scheduler in the manifest to %s, %s, %s or %s", PNDM, DDIM, EulerAncestral, Euler)
		}
		return PNDM, nil
	}
	return "", fmt.Errorf("diffusion: scheduler class %q is not implemented: set diffusion.scheduler in the manifest to %s, %s, %s or %s", c.Class, EulerAncestral, Euler, DDIM, PNDM)
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
	case PNDM:
		return newPNDM(c, ac, ts, steps), nil
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

// pndm is PNDMScheduler with skip_prk_steps: pseudo linear multistep (PLMS, Liu et al.
// 2022, "Pseudo Numerical Methods for Diffusion Models on Manifolds", eq. 12), the
// scheduler SD 1.5's scheduler_config.json names. Written from the paper's method and
// the behaviour of diffusers' PNDMScheduler; the golden test derives its values by hand.
//
// With r = num_train_timesteps / steps and t_0 < ... < t_{N-1} the whole timesteps of
// the spacing, it visits N+1 timesteps (N for one step): t_{N-1}, t_{N-2}, t_{N-2},
// t_{N-3}, ..., t_0. Every step moves the sample from a timestep t to t - r with the
// transfer
//
//	x' = sqrt(a'/a) x - (a' - a) e / (a sqrt(1-a') + sqrt(a (1-a) a'))
//
// where a = alphabar(t), a' = alphabar(t - r) (alphabar[0], or 1 with set_alpha_to_one,
// below 0) and e is a combination of the UNet's noise predictions e_k (for
// v-prediction first turned into noise: sqrt(a) v + sqrt(1-a) x):
//
//	call 0: e_0, from t_{N-1} (the sample there is kept);
//	call 1: (e_0 + e_1) / 2, again from t_{N-1} with the kept sample: e_1 is the UNet's
//	        prediction at t_{N-2} of call 0's result, so this is a second-order
//	        (Heun-like) redo of the first step; e_1 is not remembered;
//	then    the Adams-Bashforth combinations of the remembered predictions, newest first:
//	        (3 e_n - e_{n-1}) / 2,
//	        (23 e_n - 16 e_{n-1} + 5 e_{n-2}) / 12,
//	        (55 e_n - 59 e_{n-1} + 37 e_{n-2} - 9 e_{n-3}) / 24 from then on.
//
// The model input is never scaled and the initial noise has sigma 1.
type pndm struct {
	cfg   SchedulerConfig
	ac    []float64
	ts    []float64
	ratio int
	final float64
	ets   [][]float32 // the remembered predictions, oldest first, at most four
	kept  []float32   // the sample before call 0, for call 1
}

func newPNDM(c SchedulerConfig, ac, desc []float64, steps int) *pndm {
	final := ac[0]
	if c.SetAlphaToOne == nil || *c.SetAlphaToOne {
		final = 1
	}
	n := len(desc)
	ts := make([]float64, 0, n+1)
	for i, t := range desc {
		ts = append(ts, math.RoundToEven(t))
		if i == 0 && n > 1 {
			ts = append(ts, math.RoundToEven(desc[1])) // t_{N-2} twice
		}
	}
	// desc is t_{N-1}, t_{N-2}, ...: with the repeat inserted after t_{N-1} it reads
	// t_{N-1}, t_{N-2}, t_{N-2}, t_{N-3}, ..., t_0.
	return &pndm{cfg: c, ac: ac, ts: ts, ratio: c.NumTrainTimesteps / steps, final: final}
}

func (p *pndm) Timesteps() []float64    { return p.ts }
func (p *pndm) InitNoiseSigma() float64 { return 1 }
func (p *pndm) InputScale(int) float64  { return 1 }

func (p *pndm) Step(i int, out, x []float32, _ *Noise) {
	t := int(p.ts[i])
	prev := t - p.ratio
	if i == 1 && len(p.ts) > 1 {
		// The redo of the first step: from t_{N-1} again.
		prev, t = t, t+p.ratio
	} else {
		if len(p.ets) == 4 {
			p.ets = p.ets[1:]
		}
		p.ets = append(p.ets, append([]float32(nil), out...))
	}
	e := p.ets
	n := len(e)
	var eps func(k int) float64
	switch {
	case i == 0:
		p.kept = append([]float32(nil), x...)
		eps = func(k int) float64 { return float64(e[0][k]) }
	case i == 1:
		copy(x, p.kept)
		p.kept = nil
		eps = func(k int) float64 { return (float64(out[k]) + float64(e[0][k])) / 2 }
	case n == 2:
		eps = func(k int) float64 { return (3*float64(e[1][k]) - float64(e[0][k])) / 2 }
	case n == 3:
		eps = func(k int) float64 {
			return (23*float64(e[2][k]) - 16*float64(e[1][k]) + 5*float64(e[0][k])) / 12
		}
	default:
		eps = func(k int) float64 {
			return (55*float64(e[3][k]) - 59*float64(e[2][k]) + 37*float64(e[1][k]) - 9*float64(e[0][k])) / 24
		}
	}
	a := p.ac[min(t, len(p.ac)-1)]
	ap := p.final
	if prev >= 0 {
		ap = p.ac[prev]
	}
	sampleCoeff := math.Sqrt(ap / a)
	denom := a*math.Sqrt(1-ap) + math.Sqrt(a*(1-a)*ap)
	v := p.cfg.PredictionType == "v_prediction"
	for k := range x {
		s, m := float64(x[k]), eps(k)
		if v {
			m = math.Sqrt(a)*m + math.Sqrt(1-a)*s
		}
		x[k] = float32(sampleCoeff*s - (ap-a)*m/denom)
	}
}
