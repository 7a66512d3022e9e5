package streams

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime/debug"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/internal/trace"
	"github.com/creativeai-studio/studio/schemas"
)

// ErrMaxDeliveries is passed to OnFailure when a message exhausted its deliveries.
var ErrMaxDeliveries = errors.New("message was delivered the maximum number of times without success")

// RunnerConfig configures a Runner. Zero fields take the defaults noted.
type RunnerConfig struct {
	Stage schemas.Stage
	// Worker identifies this process in logs and telemetry (host name + pid).
	Worker string
	Spec   ConsumerSpec
	// Concurrency is the number of batches handled at once (default 1).
	Concurrency int
	Timeout     time.Duration // bounds one Handle call (the stage table's Timeout); 0: none
	// MaxBatch is the most messages handed to one Handle call (default 1).
	MaxBatch int
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
	// OnFailure is told about every message that fails for good (permanent error or
	// exhausted deliveries) before it goes to the DLQ. It must be idempotent.
	OnFailure func(ctx context.Context, m *Msg, err error)
	// OnRetry and OnDeadLetter, when set, are told (for metrics) each time a message is
	// handed back for a delayed redelivery after a failure, and each time one is written
	// to the DLQ. They run on the settling goroutine and must not block.
	OnRetry      func(m *Msg)
	OnDeadLetter func(m *Msg)
	Log          logrus.FieldLogger
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

// Runner drives one stage: it pulls from the stage's per-tier consumers, hands batches
// to the Handler, publishes outputs, and acks inputs only once the outputs are
// confirmed. Run blocks until its context is cancelled and the drain has finished.
type Runner struct {
	cfg     RunnerConfig
	js      jetstream.JetStream
	nc      *nats.Conn
	handler Handler
	pub     Publisher
	log     logrus.FieldLogger

	queues []tierQueue
	picks  int

	mu   sync.Mutex
	held map[*Msg]struct{} // fetched and not yet acked: kept alive with InProgress
}

type tierQueue struct {
	tier  schemas.Tier
	cons  jetstream.Consumer
	ch    chan *Msg
	space chan struct{}
}

// NewRunner ensures the stage's consumers exist and returns a runner for them.
func NewRunner(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, h Handler, cfg RunnerConfig) (*Runner, error) {
	cfg.defaults()
	if cfg.Spec.Stream == "" {
		return nil, errors.New("streams: runner needs a consumer spec (see StageConsumers)")
	}
	cons, err := cfg.Spec.Ensure(ctx, js)
	if err != nil {
		return nil, err
	}
	r := &Runner{
		cfg:     cfg,
		js:      js,
		nc:      nc,
		handler: h,
		pub:     JSPublisher{JS: js},
		log:     cfg.Log.WithFields(logrus.Fields{"stage": cfg.Stage, "consumer": cfg.Spec.Durable}),
		held:    make(map[*Msg]struct{}),
	}
	for _, t := range schemas.Tiers {
		r.queues = append(r.queues, tierQueue{
			tier:  t,
			cons:  cons[t],
			ch:    make(chan *Msg, cfg.MaxBatch),
			space: make(chan struct{}, 1),
		})
	}
	return r, nil
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
	r.log.WithFields(logrus.Fields{"concurrency": r.cfg.Concurrency, "max_batch": r.cfg.MaxBatch}).Info("stage runner started")
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
				r.settle(m, func() error { return m.raw.Nak() })
				continue
			default:
			}
			break
		}
	}
	<-done
	cancelWork()
	<-keepAliveDone
	r.log.Info("stage runner stopped")
	return nil
}

// pull keeps the tier's buffer topped up with pull requests of at most PullExpiry.
func (r *Runner) pull(ctx context.Context, q *tierQueue) {
	failures := 0
	for ctx.Err() == nil {
		room := cap(q.ch) - len(q.ch)
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
		batch, err := q.cons.Fetch(room, jetstream.FetchMaxWait(r.cfg.PullExpiry))
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
	first := r.take(ctx, nil)
	if first == nil {
		return nil
	}
	batch := []*Msg{first}
	if r.cfg.MaxBatch == 1 {
		return batch
	}
	wait, cancel := context.WithTimeout(ctx, r.cfg.MaxWait)
	defer cancel()
	for len(batch) < r.cfg.MaxBatch {
		m := r.take(wait, nil)
		if m == nil {
			break
		}
		batch = append(batch, m)
	}
	return batch
}

// take returns the next message by tier preference: the highest tier with a message
// ready wins, except that every FloorEvery-th pick scans from the lowest tier up.
func (r *Runner) take(ctx context.Context, _ any) *Msg {
	r.picks++
	n := len(r.queues)
	reverse := r.picks%r.cfg.FloorEvery == 0
	for i := 0; i < n; i++ {
		q := &r.queues[i]
		if reverse {
			q = &r.queues[n-1-i]
		}
		select {
		case m := <-q.ch:
			r.signal(q)
			return m
		default:
		}
	}
	// Nothing ready: wait on every tier at once.
	cases := make([]reflect.SelectCase, 0, n+1)
	cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())})
	for i := range r.queues {
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(r.queues[i].ch)})
	}
	chosen, v, ok := reflect.Select(cases)
	if chosen == 0 || !ok {
		return nil
	}
	r.signal(&r.queues[chosen-1])
	return v.Interface().(*Msg)
}

func (r *Runner) signal(q *tierQueue) {
	select {
	case q.space <- struct{}{}:
	default:
	}
}

// process runs one batch and settles every message in it.
func (r *Runner) process(ctx context.Context, batch []*Msg) {
	results := r.safeHandle(ctx, batch)
	for i, m := range batch {
		res := results[i]
		if res.Err == nil {
			if err := r.pub.Publish(ctx, res.Outputs...); err != nil {
				r.msgLog(m).WithError(err).Warn("outputs not confirmed; message will be redelivered")
				r.retried(m)
				r.settle(m, func() error { return m.raw.NakWithDelay(r.backoff(m.Delivered)) })
				continue
			}
			r.settle(m, func() error {
				actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				defer cancel()
				return m.raw.DoubleAck(actx)
			})
			continue
		}
		r.fail(ctx, m, res.Err)
	}
}

func (r *Runner) safeHandle(ctx context.Context, batch []*Msg) (results []Result) {
	defer func() {
		if p := recover(); p != nil {
			r.log.WithFields(logrus.Fields{"panic": fmt.Sprint(p), "stack": string(debug.Stack())}).Error("handler panicked; the batch will be redelivered")
			results = make([]Result, len(batch))
			for i := range results {
				results[i].Err = fmt.Errorf("handler panicked: %v", p)
			}
		}
	}()
	results = r.handler.Handle(ctx, batch)
	if len(results) != len(batch) {
		err := fmt.Errorf("handler returned %d results for %d messages", len(results), len(batch))
		results = make([]Result, len(batch))
		for i := range results {
			results[i].Err = err
		}
	}
	return results
}

// fail settles a message whose handler returned an error.
func (r *Runner) fail(ctx context.Context, m *Msg, err error) {
	log := r.msgLog(m).WithError(err)
	var jerr *schemas.JobError
	switch {
	case errors.As(err, &jerr):
		log.Warn("permanent failure; sending to the DLQ")
	case ctx.Err() != nil:
		// Shutdown cut the work short: hand it back at once, it was not the message's fault.
		log.Info("work interrupted by shutdown; returning the message")
		r.settle(m, func() error { return m.raw.Nak() })
		return
	case r.cfg.Spec.MaxDeliver > 0 && m.Delivered >= r.cfg.Spec.MaxDeliver:
		log.Warn("transient failure on the last allowed delivery; sending to the DLQ")
		err = fmt.Errorf("%w (%d): last error: %v", ErrMaxDeliveries, m.Delivered, err)
	default:
		delay := r.backoff(m.Delivered)
		log.WithField("retry_in", delay.String()).Warn("transient failure; will retry")
		r.retried(m)
		r.settle(m, func() error { return m.raw.NakWithDelay(delay) })
		return
	}
	fctx := context.WithoutCancel(ctx)
	if err := r.deadLetter(fctx, m, r.cfg.Spec.Stream, err); err != nil {
		log.WithError(err).Error("could not write to the DLQ; the message will be redelivered")
		r.retried(m)
		r.settle(m, func() error { return m.raw.NakWithDelay(r.backoff(m.Delivered)) })
		return
	}
	r.settle(m, func() error { return m.raw.TermWithReason(truncate(err.Error(), 200)) })
}

// deadLetter tells OnFailure and copies the message to studio.dlq.<stage> with its
// reason. The DLQ publish is de-duplicated by stream and sequence.
func (r *Runner) deadLetter(ctx context.Context, m *Msg, stream string, reason error) error {
	if r.cfg.OnFailure != nil {
		r.cfg.OnFailure(ctx, m, reason)
	}
	h := nats.Header{}
	for k, v := range m.Header {
		if k == jetstream.MsgIDHeader {
			continue
		}
		h[k] = v
	}
	h.Set(HeaderDLQReason, truncate(reason.Error(), 1000))
	h.Set(HeaderDLQStage, string(r.cfg.Stage))
	h.Set(HeaderDLQAttempts, fmt.Sprint(m.Delivered))
	h.Set(HeaderDLQStream, stream)
	h.Set(HeaderDLQSeq, fmt.Sprint(m.StreamSeq))
	h.Set(HeaderDLQSubject, m.Subject)
	h.Set(HeaderDLQWorker, r.cfg.Worker)
	if err := r.pub.Publish(ctx, Output{
		Subject: schemas.DLQSubject(r.cfg.Stage),
		MsgID:   fmt.Sprintf("dlq-%s-%d", stream, m.StreamSeq),
		Data:    m.Data,
		Header:  h,
	}); err != nil {
		return err
	}
	if r.cfg.OnDeadLetter != nil {
		r.cfg.OnDeadLetter(m)
	}
	return nil
}

func (r *Runner) retried(m *Msg) {
	if r.cfg.OnRetry != nil {
		r.cfg.OnRetry(m)
	}
}

// msgLog is the runner's logger for one message, with the job id and trace id taken
// from the headers every pipeline publish carries (Studio-Job-Id, traceparent).
func (r *Runner) msgLog(m *Msg) logrus.FieldLogger {
	f := logrus.Fields{"stream_seq": m.StreamSeq, "attempt": m.Delivered, "subject": m.Subject, "tier": m.Tier}
	if id := m.Header.Get("Studio-Job-Id"); id != "" {
		f["job_id"] = id
	}
	if tid := trace.ID(m.Header.Get("traceparent")); tid != "" {
		f["trace_id"] = tid
	}
	return r.log.WithFields(f)
}

// DLQ headers.
const (
	HeaderDLQReason   = "Studio-Dlq-Reason"
	HeaderDLQStage    = "Studio-Dlq-Stage"
	HeaderDLQAttempts = "Studio-Dlq-Attempts"
	HeaderDLQStream   = "Studio-Dlq-Stream"
	HeaderDLQSeq      = "Studio-Dlq-Seq"
	HeaderDLQSubject  = "Studio-Dlq-Subject"
	HeaderDLQWorker   = "Studio-Dlq-Worker"
)

// settle runs an ack-type call and stops keeping the message alive.
func (r *Runner) settle(m *Msg, fn func() error) {
	r.mu.Lock()
	delete(r.held, m)
	r.mu.Unlock()
	if err := fn(); err != nil {
		r.msgLog(m).WithError(err).Warn("could not settle message; it will be redelivered after AckWait")
	}
}

func (r *Runner) hold(m *Msg) {
	r.mu.Lock()
	r.held[m] = struct{}{}
	r.mu.Unlock()
}

// keepAlive sends InProgress for every held message a few times per AckWait, so long
// inference or a wait in the tier buffer never triggers a redelivery.
func (r *Runner) keepAlive(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	every := max(r.cfg.Spec.AckWait/3, 100*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.mu.Lock()
		msgs := make([]*Msg, 0, len(r.held))
		for m := range r.held {
			msgs = append(msgs, m)
		}
		r.mu.Unlock()
		for _, m := range msgs {
			_ = m.raw.InProgress()
		}
	}
}

func (r *Runner) backoff(delivered int) time.Duration {
	d := r.cfg.BackoffBase
	for i := 1; i < delivered && d < r.cfg.BackoffMax; i++ {
		d *= 2
	}
	return min(d, r.cfg.BackoffMax)
}

func wrap(raw jetstream.Msg, tier schemas.Tier) *Msg {
	m := &Msg{Subject: raw.Subject(), Data: raw.Data(), Header: raw.Headers(), Tier: tier, Received: time.Now(), raw: raw}
	if md, err := raw.Metadata(); err == nil {
		m.Delivered = int(md.NumDelivered)
		m.StreamSeq = md.Sequence.Stream
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
