package streams

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/schemas"
)

// RunnerConfig configures a Runner. Zero fields take the defaults noted.
type RunnerConfig struct {
	// Stage names the consumer in logs and metrics and its dead-letter subject
	// studio.dlq.<Stage>: a pipeline stage, or "sink", "webhooks", "active-jobs".
	Stage schemas.Stage
	// Worker identifies this process in logs and the DLQ headers (host name + pid).
	Worker string
	// Spec is the durable consumer: tiered (Spec.Filter set, one durable per tier) or
	// one untiered durable (Spec.FilterSubjects).
	Spec ConsumerSpec
	// Concurrency is the number of batches handled at once (default 1).
	Concurrency int
	// MaxBatch is the most messages handed to one Handle call (default 1).
	MaxBatch int
	// MaxBatchBytes, when positive, also bounds a batch by the bytes of its messages'
	// data, and the messages prefetched to twice that: for streams whose messages vary
	// from a few hundred bytes to many kilobytes (the sink reads batches of rows beside
	// single rows). It must exceed the largest message, which a pull bounded by bytes
	// could never deliver otherwise; 0 bounds batches by MaxBatch alone.
	MaxBatchBytes int
	// MaxWait bounds how long a partial batch waits for more messages (default 5ms).
	MaxWait time.Duration
	// FloorEvery gives lower tiers the first pick once every FloorEvery picks, so a
	// flood of premium work cannot starve them (default 5).
	FloorEvery int
	// PullExpiry bounds one pull request; short expiries recover quickly after a server
	// restart (default 5s).
	PullExpiry time.Duration
	// BackoffBase and BackoffMax shape the redelivery delay after a transient error:
	// base * 2^(delivered-1), capped (defaults 1s and 30s).
	BackoffBase, BackoffMax time.Duration
	// DrainTimeout bounds how long in-flight work may finish after shutdown begins
	// (default 25s, below Kubernetes' 30s grace period).
	DrainTimeout time.Duration
	// AckAsync acknowledges without waiting for the server's confirmation: cheaper for
	// large batches, and a lost ack only means a redelivery, which the handler must
	// tolerate (the sink does). Off, the runner waits for each ack.
	AckAsync bool
	// OnFailure is told about every message that fails for good before it goes to the
	// DLQ; a stage wires its job-failed handler here. It must be idempotent.
	OnFailure FailureHandler
	// Observer, when set, is told how every message ended (metrics).
	Observer Observer
	// Startup bounds how long NewRunner waits for a cluster that cannot create its
	// consumers yet (electing a leader); the zero value waits up to 2 minutes.
	Startup Startup
	Log     logrus.FieldLogger
}

func (c *RunnerConfig) defaults() {
	if c.Concurrency < 1 {
		c.Concurrency = 1
	}
	if c.MaxBatch < 1 {
		c.MaxBatch = 1
	}
	if c.MaxWait <= 0 {
		c.MaxWait = 5 * time.Millisecond
	}
	if c.FloorEvery < 2 {
		c.FloorEvery = 5
	}
	if c.PullExpiry <= 0 {
		c.PullExpiry = 5 * time.Second
	}
	if c.BackoffBase <= 0 {
		c.BackoffBase = time.Second
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = 30 * time.Second
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 25 * time.Second
	}
	if c.Log == nil {
		c.Log = logrus.StandardLogger()
	}
}

// Engine opens runners on one JetStream connection. Packages that must not import
// nats.go (the sink, ingest) receive one from the process wiring. Safe for concurrent
// use.
type Engine struct {
	JS jetstream.JetStream
}

// NewEngine returns an engine on nc's JetStream, for processes that dial NATS
// themselves (Dial).
func NewEngine(nc *nats.Conn) (Engine, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return Engine{}, fmt.Errorf("streams: jetstream: %w", err)
	}
	return Engine{JS: js}, nil
}

// NewRunner ensures cfg.Spec's consumers exist and returns a runner for them.
func (e Engine) NewRunner(ctx context.Context, h Handler, cfg RunnerConfig) (*Runner, error) {
	if e.JS == nil {
		return nil, errors.New("streams: engine has no JetStream connection")
	}
	return NewRunner(ctx, e.JS.Conn(), e.JS, h, cfg)
}

// abandonGrace is how long in-flight work may run on after the drain deadline cancelled
// it, before Run stops waiting for it.
const abandonGrace = time.Second

// Runner is the one consume engine: it drives a durable pull consumer (tiered or not),
// hands batches to its Handler through the shared middleware (Tracing, Observe,
// DeadLetters, Retry, Timeout, Recover), publishes outputs, acks inputs only once the
// outputs are confirmed, keeps held messages alive with InProgress, and drains within
// a bound on shutdown. Run blocks until its context is cancelled and the drain has
// finished.
type Runner struct {
	cfg   RunnerConfig
	js    jetstream.JetStream
	nc    *nats.Conn
	chain Handler
	dead  DeadLetterConfig
	log   logrus.FieldLogger

	queues []tierQueue
	picks  int
	cases  []reflect.SelectCase // take's wait on every queue; [0] is replaced per call

	mu   sync.Mutex
	held map[*Msg]struct{} // fetched and not yet acked: kept alive with InProgress
}

type tierQueue struct {
	tier  schemas.Tier
	cons  jetstream.Consumer
	ch    chan *Msg
	space chan struct{}
	// bytes is the data held in ch, counted when MaxBatchBytes is set.
	bytes *atomic.Int64
}

// NewRunner ensures the consumers exist and returns a runner for them. While a cluster
// cannot create them yet (no leader) it retries as cfg.Startup says, so processes may
// start in any order.
func NewRunner(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, h Handler, cfg RunnerConfig) (*Runner, error) {
	cfg.defaults()
	if cfg.Spec.Stream == "" || cfg.Spec.Durable == "" {
		return nil, errors.New("streams: runner needs a consumer spec with a stream and a durable name (see processors.Stages)")
	}
	if cfg.Stage == "" {
		return nil, errors.New("streams: runner needs a stage name (it names the DLQ subject)")
	}
	log := cfg.Log.WithFields(logrus.Fields{"stage": cfg.Stage, "consumer": cfg.Spec.Durable})
	if cfg.Startup.Log == nil {
		cfg.Startup.Log = log
	}
	var cons map[schemas.Tier]jetstream.Consumer
	err := cfg.Startup.Do(ctx, "consumer "+cfg.Spec.Durable+" on "+cfg.Spec.Stream, func(ctx context.Context) error {
		var err error
		cons, err = cfg.Spec.Ensure(ctx, js)
		return err
	})
	if err != nil {
		return nil, err
	}
	pub := JSPublisher{JS: js}
	r := &Runner{
		cfg:  cfg,
		js:   js,
		nc:   nc,
		log:  log,
		held: make(map[*Msg]struct{}),
		dead: DeadLetterConfig{Stage: cfg.Stage, Worker: cfg.Worker, Pub: pub, OnFailure: cfg.OnFailure,
			RetryDelay: cfg.BackoffBase, Log: log},
	}
	policy := RetryPolicy{MaxDeliver: cfg.Spec.MaxDeliver, BackoffBase: cfg.BackoffBase, BackoffMax: cfg.BackoffMax}
	r.chain = Chain(h,
		Tracing(),
		Observe(cfg.Observer, string(cfg.Stage)),
		DeadLetters(r.dead),
		Retry(policy, log),
		publishOutputs(pub, log),
		Timeout(cfg.Spec.Timeout),
		Recover(log),
	)
	for _, t := range cfg.Spec.tiers() {
		r.queues = append(r.queues, tierQueue{
			tier:  t,
			cons:  cons[t],
			ch:    make(chan *Msg, cfg.MaxBatch),
			space: make(chan struct{}, 1),
			bytes: new(atomic.Int64),
		})
	}
	r.cases = make([]reflect.SelectCase, 0, len(r.queues)+1)
	r.cases = append(r.cases, reflect.SelectCase{Dir: reflect.SelectRecv})
	for i := range r.queues {
		r.cases = append(r.cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(r.queues[i].ch)})
	}
	return r, nil
}

// Chain wraps h in the middleware, the first outermost.
func Chain(h Handler, mw ...Middleware) Handler {
	for i := len(mw) - 1; i >= 0; i-- {
		h = mw[i](h)
	}
	return h
}

// publishOutputs publishes each successful message's outputs and waits for the server;
// an output not confirmed fails its message (transiently), so it is never acked.
func publishOutputs(pub Publisher, log logrus.FieldLogger) Middleware {
	return func(next Handler) Handler {
		return BatchHandlerFunc(func(ctx context.Context, batch []*Msg) []Result {
			results := next.Handle(ctx, batch)
			for i := range results {
				res := &results[i]
				if res.Err != nil || len(res.Outputs) == 0 {
					continue
				}
				if err := pub.Publish(ctx, res.Outputs...); err != nil {
					batch[i].Log(log).WithError(err).Warn("outputs not confirmed; message will be redelivered")
					res.Err = fmt.Errorf("outputs not confirmed: %w", err)
				}
			}
			return results
		})
	}
}

// Run processes messages until ctx is cancelled, then drains: it stops pulling, returns
// prefetched messages to the stream, and lets in-flight batches finish within
// DrainTimeout. Messages whose work is cut short are nak'ed and redelivered elsewhere.
func (r *Runner) Run(ctx context.Context) error {
	stopWatch, err := r.WatchAdvisories()
	if err != nil {
		return err
	}
	defer stopWatch()

	// Work gets its own context so that shutdown (ctx) stops intake at once while
	// in-flight handlers keep running until the drain deadline.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()

	var pullers sync.WaitGroup
	for i := range r.queues {
		pullers.Add(1)
		go func(q *tierQueue) {
			defer pullers.Done()
			r.pull(ctx, q)
		}(&r.queues[i])
	}

	keepAliveDone := make(chan struct{})
	go r.keepAlive(workCtx, keepAliveDone)

	sem := make(chan struct{}, r.cfg.Concurrency)
	var workers sync.WaitGroup
	r.log.WithFields(logrus.Fields{"concurrency": r.cfg.Concurrency, "max_batch": r.cfg.MaxBatch}).Info("runner started")
loop:
	for {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			break loop
		}
		batch := r.nextBatch(ctx)
		if len(batch) == 0 {
			<-sem
			break loop
		}
		workers.Add(1)
		go func() {
			defer workers.Done()
			defer func() { <-sem }()
			r.process(workCtx, batch)
		}()
	}

	// Drain. The deadline for in-flight work starts now, not after the pullers stop
	// (a pull may take up to PullExpiry to return).
	deadline := time.NewTimer(r.cfg.DrainTimeout)
	defer deadline.Stop()
	done := make(chan struct{})
	go func() { workers.Wait(); close(done) }()
	go func() {
		select {
		case <-done:
		case <-deadline.C:
			r.log.WithField("drain_timeout", r.cfg.DrainTimeout.String()).Warn("in-flight work did not finish in time; cancelling it so it is redelivered")
			cancelWork()
		}
	}()
	// No more pulls; give prefetched messages back right away.
	pullers.Wait()
	for i := range r.queues {
		q := &r.queues[i]
		for {
			select {
			case m := <-q.ch:
				r.settle(m, Result{Action: ActionReturn})
				continue
			default:
			}
			break
		}
	}
	// A handler that ignores cancellation (a cgo call, say) must not hold the process:
	// after the drain deadline it gets abandonGrace to notice, then Run returns anyway.
	// Its messages stay unacknowledged and the server redelivers them after AckWait.
	abandon := time.NewTimer(r.cfg.DrainTimeout + abandonGrace)
	defer abandon.Stop()
	select {
	case <-done:
	case <-abandon.C:
		r.log.WithField("drain_timeout", r.cfg.DrainTimeout.String()).Error("a handler ignored cancellation; stopping without it, its messages will be redelivered")
	}
	cancelWork()
	<-keepAliveDone
	r.log.Info("runner stopped")
	return nil
}

// pull keeps the tier's buffer topped up with pull requests of at most PullExpiry.
func (r *Runner) pull(ctx context.Context, q *tierQueue) {
	failures := 0
	for ctx.Err() == nil {
		room := cap(q.ch) - len(q.ch)
		if r.cfg.MaxBatchBytes > 0 && q.bytes.Load() >= int64(r.cfg.MaxBatchBytes) {
			room = 0
		}
		if room <= 0 {
			select {
			case <-q.space:
			case <-ctx.Done():
				return
			}
			continue
		}
		// The expiry is the server's: a client-side deadline could abandon a message
		// already on its way, which then sits unacknowledged until AckWait. Shutdown
		// therefore waits for at most one PullExpiry here.
		opts := []jetstream.FetchOpt{jetstream.FetchMaxWait(r.cfg.PullExpiry)}
		if r.cfg.MaxBatchBytes > 0 {
			opts = append(opts, jetstream.FetchMaxBytes(r.cfg.MaxBatchBytes))
		}
		batch, err := q.cons.Fetch(room, opts...)
		if err != nil {
			failures++
			r.log.WithError(err).WithField("tier", q.tier).Debug("pull failed; retrying")
			sleepCtx(ctx, min(time.Duration(failures)*100*time.Millisecond, 2*time.Second))
			continue
		}
		failures = 0
		for raw := range batch.Messages() {
			m := wrap(raw, q.tier)
			r.hold(m)
			if r.cfg.MaxBatchBytes > 0 {
				q.bytes.Add(int64(len(m.Data)))
			}
			q.ch <- m // room was reserved above; only this goroutine fills q.ch
		}
		if err := batch.Error(); err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) && !errors.Is(err, nats.ErrTimeout) {
			r.log.WithError(err).WithField("tier", q.tier).Debug("pull ended with an error")
			sleepCtx(ctx, 100*time.Millisecond)
		}
	}
}

// nextBatch blocks for the first message, then gathers up to MaxBatch within MaxWait.
func (r *Runner) nextBatch(ctx context.Context) []*Msg {
	first := r.take(ctx)
	if first == nil {
		return nil
	}
	batch := []*Msg{first}
	if r.cfg.MaxBatch == 1 {
		return batch
	}
	wait, cancel := context.WithTimeout(ctx, r.cfg.MaxWait)
	defer cancel()
	size := len(first.Data)
	for len(batch) < r.cfg.MaxBatch && (r.cfg.MaxBatchBytes <= 0 || size < r.cfg.MaxBatchBytes) {
		m := r.take(wait)
		if m == nil {
			break
		}
		batch = append(batch, m)
		size += len(m.Data)
	}
	return batch
}

// take returns the next message by tier preference: the highest tier with a message
// ready wins, except that every FloorEvery-th pick scans from the lowest tier up. Only
// Run's loop calls it.
func (r *Runner) take(ctx context.Context) *Msg {
	n := len(r.queues)
	if n == 1 {
		q := &r.queues[0]
		select {
		case m := <-q.ch:
			r.taken(q, m)
			return m
		case <-ctx.Done():
			return nil
		}
	}
	r.picks++
	reverse := r.picks%r.cfg.FloorEvery == 0
	for i := 0; i < n; i++ {
		q := &r.queues[i]
		if reverse {
			q = &r.queues[n-1-i]
		}
		select {
		case m := <-q.ch:
			r.taken(q, m)
			return m
		default:
		}
	}
	// Nothing ready: wait on every tier at once.
	r.cases[0].Chan = reflect.ValueOf(ctx.Done())
	chosen, v, ok := reflect.Select(r.cases)
	if chosen == 0 || !ok {
		return nil
	}
	m := v.Interface().(*Msg)
	r.taken(&r.queues[chosen-1], m)
	return m
}

// taken accounts for a message leaving q and wakes its puller.
func (r *Runner) taken(q *tierQueue, m *Msg) {
	if r.cfg.MaxBatchBytes > 0 {
		q.bytes.Add(-int64(len(m.Data)))
	}
	r.signal(q)
}

func (r *Runner) signal(q *tierQueue) {
	select {
	case q.space <- struct{}{}:
	default:
	}
}

// process runs one batch through the middleware and settles every message in it.
func (r *Runner) process(ctx context.Context, batch []*Msg) {
	results := r.chain.Handle(ctx, batch)
	for i, m := range batch {
		r.settle(m, results[i])
	}
}

// settle acks, naks or terms a message as its result says and stops keeping it alive.
func (r *Runner) settle(m *Msg, res Result) {
	r.mu.Lock()
	delete(r.held, m)
	r.mu.Unlock()
	var err error
	switch {
	case res.Action == ActionNone && res.Err == nil:
		if r.cfg.AckAsync {
			err = m.raw.Ack()
			break
		}
		actx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = m.raw.DoubleAck(actx)
		cancel()
	case res.Action == ActionReturn:
		err = m.raw.Nak()
	case res.Action == ActionTerm:
		reason := "dead-lettered"
		if res.Err != nil {
			reason = truncate(res.Err.Error(), 200)
		}
		err = m.raw.TermWithReason(reason)
	case res.Action == ActionRetry && res.Delay > 0:
		err = m.raw.NakWithDelay(res.Delay)
	case res.Action == ActionRetry:
		err = m.raw.Nak()
	default: // a failure no middleware classified
		err = m.raw.NakWithDelay(r.cfg.BackoffBase)
	}
	if err != nil && !errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
		m.Log(r.log).WithError(err).Warn("could not settle message; it will be redelivered after AckWait")
	}
}

func (r *Runner) hold(m *Msg) {
	r.mu.Lock()
	r.held[m] = struct{}{}
	r.mu.Unlock()
}

// keepAlive sends InProgress for every held message a few times per AckWait, so long
// work (inference, a sink batch held through a ClickHouse outage) or a wait in the
// buffer never triggers a redelivery.
func (r *Runner) keepAlive(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	every := max(r.cfg.Spec.AckWait/3, 100*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	var msgs []*Msg
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		msgs = msgs[:0]
		r.mu.Lock()
		for m := range r.held {
			msgs = append(msgs, m)
		}
		r.mu.Unlock()
		for _, m := range msgs {
			_ = m.raw.InProgress()
		}
	}
}

func wrap(raw jetstream.Msg, tier schemas.Tier) *Msg {
	m := &Msg{Subject: raw.Subject(), Data: raw.Data(), Header: raw.Headers(), Tier: tier, Received: time.Now(), raw: raw}
	if md, err := raw.Metadata(); err == nil {
		m.Delivered = int(md.NumDelivered)
		m.StreamSeq = md.Sequence.Stream
		m.Stream = md.Stream
		m.Published = md.Timestamp
	}
	return m
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
