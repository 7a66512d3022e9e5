package diffusion

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// BatchOptions let concurrent Generate calls of one Pipeline share UNet calls: each
// denoising step of a job asks for one UNet call, and the calls that jobs with the
// same latent size ask for at about the same time run as one batch. Each job keeps its
// own scheduler, timestep, noise, guidance and progress; only the UNet call is shared.
type BatchOptions struct {
	// MaxBatch is the largest batch one UNet call may take, in samples (a guided image
	// counts twice, as its two halves are two samples). 1 or less turns sharing off:
	// every job calls the UNet on its own, as before.
	MaxBatch int
	// Window is how long a step waits for other jobs to join its call. The call runs
	// at once when every job of its shape is waiting, or when the batch is full.
	Window time.Duration
	// Calls bounds the graph runs (text encoder, UNet, VAE decoder) of the Pipeline in
	// flight at once while sharing is on, since more jobs then run at once than there
	// are sessions (0: no bound).
	Calls int
}

// DefaultBatchWindow is the gather window when BatchOptions.Window is 0.
const DefaultBatchWindow = 5 * time.Millisecond

// shapeKey is what the UNet inputs of jobs must share to be concatenated along the
// batch: the latent size. The text embeddings of one Pipeline are all [77, D] of its
// text encoder.
type shapeKey struct{ h, w int }

// stepCall is one job's request for one UNet call: rows samples of its latents (both
// guidance halves when guided), their text embeddings and the job's timestep.
type stepCall struct {
	key    shapeKey
	t      float64
	rows   int
	sample []float32
	ehs    []float32
	ctx    context.Context
	done   chan stepResult // buffered: the batch never blocks on a job that left
}

type stepResult struct {
	pred []float32
	err  error
}

// batcher gathers the stepCalls of concurrent jobs and runs them as shared UNet
// calls. Safe for concurrent use; submit blocks until the job's share comes back.
type batcher struct {
	p    *Pipeline
	opts BatchOptions
	// perSample: the UNet takes one timestep per sample ([batch]), so jobs at different
	// steps share a call; otherwise only jobs at the same timestep do.
	perSample bool

	mu      sync.Mutex
	active  map[shapeKey]int // samples of the jobs running, by shape
	pending map[shapeKey][]*stepCall
	timers  map[shapeKey]*gather
}

// gather is the window of one shape's waiting calls; flush compares the pointer, so a
// timer that fires after its window was closed does nothing.
type gather struct{ t *time.Timer }

func newBatcher(p *Pipeline, o BatchOptions) *batcher {
	if o.Window <= 0 {
		o.Window = DefaultBatchWindow
	}
	b := &batcher{
		p: p, opts: o,
		perSample: len(p.stepShape) == 1 && p.stepShape[0] < 0,
		active:    map[shapeKey]int{}, pending: map[shapeKey][]*stepCall{}, timers: map[shapeKey]*gather{},
	}
	return b
}

// join registers a job of rows samples per call; the returned leave must be called
// when the job ends, however it ends, so that the others stop waiting for it.
func (b *batcher) join(key shapeKey, rows int) (leave func()) {
	b.mu.Lock()
	b.active[key] += rows
	b.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			b.mu.Lock()
			b.active[key] -= rows
			if b.active[key] <= 0 {
				delete(b.active, key)
			}
			batches := b.ready(key)
			b.mu.Unlock()
			b.start(batches)
		})
	}
}

// submit asks for c's UNet call and waits for its prediction; if c's context ends
// first, c is withdrawn (or, when its batch already runs, its share is dropped).
func (b *batcher) submit(c *stepCall) ([]float32, error) {
	c.done = make(chan stepResult, 1)
	b.mu.Lock()
	b.pending[c.key] = append(b.pending[c.key], c)
	batches := b.ready(c.key)
	if len(b.pending[c.key]) > 0 && b.timers[c.key] == nil {
		key, g := c.key, &gather{}
		g.t = time.AfterFunc(b.opts.Window, func() { b.flush(key, g) })
		b.timers[key] = g
	}
	b.mu.Unlock()
	// The batch that c completes runs on c's goroutine: one hand-over less per step.
	var own []*stepCall
	for i, calls := range batches {
		if slices.Contains(calls, c) {
			own = calls
			batches = slices.Delete(batches, i, i+1)
			break
		}
	}
	b.start(batches)
	if own != nil {
		b.run(own)
	}
	select {
	case r := <-c.done:
		return r.pred, r.err
	case <-c.ctx.Done():
		b.withdraw(c)
		return nil, c.ctx.Err()
	}
}

func (b *batcher) withdraw(c *stepCall) {
	b.mu.Lock()
	defer b.mu.Unlock()
	calls := b.pending[c.key]
	for i, p := range calls {
		if p == c {
			b.pending[c.key] = append(calls[:i:i], calls[i+1:]...)
			break
		}
	}
	b.clearIfIdle(c.key)
}

// flush runs whatever waits for key when the window ends.
func (b *batcher) flush(key shapeKey, g *gather) {
	b.mu.Lock()
	if b.timers[key] != g {
		b.mu.Unlock()
		return
	}
	delete(b.timers, key)
	batches := b.take(key, true)
	b.mu.Unlock()
	b.start(batches)
}

// ready returns the batches of key that should run now: all of them when every job of
// the shape is waiting, else the full ones. Called with b.mu held.
func (b *batcher) ready(key shapeKey) [][]*stepCall {
	waiting := 0
	for _, c := range b.pending[key] {
		waiting += c.rows
	}
	if waiting == 0 {
		return nil
	}
	return b.take(key, waiting >= b.active[key])
}

// take cuts the pending calls of key into batches in arrival order, each at most
// MaxBatch samples (a larger call runs alone) and, without per-sample timesteps, of
// one timestep. all takes every batch; otherwise only full ones leave, the rest keep
// waiting. Called with b.mu held.
func (b *batcher) take(key shapeKey, all bool) [][]*stepCall {
	type open struct {
		calls []*stepCall
		rows  int
	}
	var done [][]*stepCall
	var order []float64 // timesteps in order of their first call
	groups := map[float64]*open{}
	for _, c := range b.pending[key] {
		t := c.t
		if b.perSample {
			t = 0
		}
		g := groups[t]
		if g == nil {
			g = &open{}
			groups[t] = g
			order = append(order, t)
		}
		if g.rows > 0 && g.rows+c.rows > b.opts.MaxBatch {
			done = append(done, g.calls)
			*g = open{}
		}
		g.calls = append(g.calls, c)
		g.rows += c.rows
		if g.rows >= b.opts.MaxBatch {
			done = append(done, g.calls)
			*g = open{}
		}
	}
	var rest []*stepCall
	for _, t := range order {
		if g := groups[t]; len(g.calls) > 0 {
			if all {
				done = append(done, g.calls)
			} else {
				rest = append(rest, g.calls...)
			}
		}
	}
	b.pending[key] = rest
	b.clearIfIdle(key)
	return done
}

// clearIfIdle drops the bookkeeping of a shape nobody waits for. Called with b.mu held.
func (b *batcher) clearIfIdle(key shapeKey) {
	if len(b.pending[key]) > 0 {
		return
	}
	delete(b.pending, key)
	if g := b.timers[key]; g != nil {
		g.t.Stop()
		delete(b.timers, key)
	}
}

func (b *batcher) start(batches [][]*stepCall) {
	for _, calls := range batches {
		go b.run(calls)
	}
}

// run makes one UNet call for calls and hands each its share. The call is cancelled
// only when every job in it is gone. If a shared call fails while its jobs still want
// it, each job's call is retried alone, so that one job's trouble stays its own.
func (b *batcher) run(calls []*stepCall) {
	ctx := calls[0].ctx
	if len(calls) > 1 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(context.WithoutCancel(ctx))
		defer cancel()
		var left atomic.Int32
		left.Store(int32(len(calls)))
		for _, c := range calls {
			stop := context.AfterFunc(c.ctx, func() {
				if left.Add(-1) == 0 {
					cancel()
				}
			})
			defer stop()
		}
	}
	preds, err := b.p.predict(ctx, calls, b.perSample)
	if err != nil && len(calls) > 1 && ctx.Err() == nil {
		for _, c := range calls {
			pred, err := b.p.predict(c.ctx, []*stepCall{c}, b.perSample)
			var share []float32
			if err == nil {
				share = pred[0]
			}
			c.done <- stepResult{pred: share, err: err}
		}
		return
	}
	for i, c := range calls {
		r := stepResult{err: err}
		if err == nil {
			r.pred = preds[i]
		}
		c.done <- r
	}
}

// predict runs the UNet once on the concatenated inputs of calls and returns each
// call's slice of out_sample. A single call is fed exactly as an unshared step is.
func (p *Pipeline) predict(ctx context.Context, calls []*stepCall, perSample bool) ([][]float32, error) {
	key := calls[0].key
	rows := 0
	for _, c := range calls {
		rows += c.rows
	}
	per := 4 * key.h * key.w
	dim := len(calls[0].ehs) / calls[0].rows / ContextLength
	sample, ehs := calls[0].sample, calls[0].ehs
	step := p.timestep(calls[0].t)
	if len(calls) > 1 {
		sample = make([]float32, 0, rows*per)
		ehs = make([]float32, 0, rows*ContextLength*dim)
		for _, c := range calls {
			sample = append(sample, c.sample...)
			ehs = append(ehs, c.ehs...)
		}
		if perSample {
			step = p.timesteps(calls)
		}
	}
	release, err := p.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	out, err := p.unet.Run(ctx, map[string]Value{
		"sample":                {Shape: []int64{int64(rows), 4, int64(key.h), int64(key.w)}, Float32: sample},
		"timestep":              step,
		"encoder_hidden_states": {Shape: []int64{int64(rows), ContextLength, int64(dim)}, Float32: ehs},
	})
	if err != nil {
		return nil, err
	}
	pred := out["out_sample"].Float32
	if len(pred) != rows*per {
		return nil, fmt.Errorf("%w: unet out_sample has %d values, want %d", ErrBadExport, len(pred), rows*per)
	}
	shares := make([][]float32, len(calls))
	off := 0
	for i, c := range calls {
		shares[i] = pred[off : off+c.rows*per : off+c.rows*per]
		off += c.rows * per
	}
	return shares, nil
}

// timesteps is the [batch] timestep input of a shared call: each job's timestep once
// per sample of it.
func (p *Pipeline) timesteps(calls []*stepCall) Value {
	v := Value{}
	for _, c := range calls {
		for range c.rows {
			if p.stepType == "int64" {
				v.Int64 = append(v.Int64, int64(c.t))
			} else {
				v.Float32 = append(v.Float32, float32(c.t))
			}
		}
	}
	v.Shape = []int64{int64(max(len(v.Int64), len(v.Float32)))}
	return v
}

// acquire waits for a free graph run when runs are bounded (Options.Batch.Calls).
func (p *Pipeline) acquire(ctx context.Context) (release func(), err error) {
	if p.runs == nil {
		return func() {}, nil
	}
	select {
	case p.runs <- struct{}{}:
		return func() { <-p.runs }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
