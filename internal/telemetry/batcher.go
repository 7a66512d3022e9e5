// Package telemetry publishes analytics rows (stage runs, HTTP requests, audit events)
// in batches: many rows in one JetStream message, so the per-message cost of the
// stream, the server and the sink is paid once per batch instead of once per row.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/streams"
)

// Defaults of Config.
const (
	DefaultMaxRows        = 256
	DefaultMaxWait        = 200 * time.Millisecond
	DefaultPublishTimeout = 5 * time.Second
	DefaultAttempts       = 3
	DefaultMaxBytes       = 512 << 10
)

// ErrDropped is returned by AddWait for a row the batcher did not store: it holds
// MaxPending rows already, it is closed, or the stream refused the batch.
var ErrDropped = errors.New("telemetry: row dropped")

// Config says when a Batcher publishes.
type Config struct {
	// Producer names this process in message ids (its worker id); New appends a nonce
	// drawn at start, so a restarted process never repeats an id of the last one.
	Producer string
	// MaxRows publishes a batch once it holds this many rows (default 256).
	MaxRows int
	// MaxWait publishes a batch this long after its first row arrived, however small.
	// Zero publishes as soon as the previous batch is stored (group commit: no wait when
	// idle, larger batches under load), for callers that wait for their row.
	MaxWait time.Duration
	// MaxPending bounds the rows held (default 16*MaxRows): a row beyond it is dropped
	// and counted, so a stream that refuses publishes cannot grow the process.
	MaxPending int
	// PublishTimeout bounds one publish attempt (default 5s); Attempts is how many are
	// made (default 3, with the same message id, so a retry is never stored twice)
	// before the batch's rows are dropped and counted.
	PublishTimeout time.Duration
	Attempts       int
	// MaxBytes splits a batch whose message would be larger (default 512 KiB, half of
	// NATS' default max_payload): rows with long error texts still fit.
	MaxBytes int
	// Lost, when set, is told how many rows were dropped. It must not block.
	Lost func(n int)
	Log  logrus.FieldLogger
}

func (c *Config) defaults() {
	if c.MaxRows <= 0 {
		c.MaxRows = DefaultMaxRows
	}
	if c.MaxWait < 0 {
		c.MaxWait = 0
	}
	if c.MaxPending < c.MaxRows {
		c.MaxPending = 16 * c.MaxRows
	}
	if c.PublishTimeout <= 0 {
		c.PublishTimeout = DefaultPublishTimeout
	}
	if c.Attempts <= 0 {
		c.Attempts = DefaultAttempts
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.Producer == "" {
		c.Producer = "studio"
	}
	if c.Log == nil {
		l := logrus.New()
		l.SetLevel(logrus.PanicLevel)
		c.Log = l
	}
}

// Encoder turns a batch of rows into the message that carries them; producer and seq
// form its message id, which the encoder sets.
type Encoder[T any] func(producer string, seq uint64, rows []T) (streams.Output, error)

// Stats counts what a Batcher did.
type Stats struct {
	// Batches and Rows count what was stored in the stream.
	Batches, Rows uint64
	// Lost counts rows dropped: over MaxPending, after Close, or refused by the stream.
	Lost uint64
}

// Batcher gathers rows and publishes them in batches from one goroutine. Add never
// blocks; AddWait blocks until its row is stored or dropped. Safe for concurrent use;
// Close publishes what is held and stops it.
type Batcher[T any] struct {
	cfg      Config
	pub      streams.Publisher
	encode   Encoder[T]
	producer string

	mu      sync.Mutex
	rows    []T
	waiters []chan error // waiters[i] is told about rows[i]; nil for Add
	first   time.Time
	closed  bool

	kick chan struct{}
	stop chan struct{}
	done chan struct{}
	seq  uint64

	batches, stored, lost atomic.Uint64
}

// New starts a batcher that publishes through pub.
func New[T any](cfg Config, pub streams.Publisher, encode Encoder[T]) *Batcher[T] {
	cfg.defaults()
	b := &Batcher[T]{
		cfg: cfg, pub: pub, encode: encode,
		producer: cfg.Producer + "-" + ulid.Make().String(),
		kick:     make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
	go b.run()
	return b
}

// Producer is the producer name in this batcher's message ids.
func (b *Batcher[T]) Producer() string { return b.producer }

// Stats returns the counters.
func (b *Batcher[T]) Stats() Stats {
	return Stats{Batches: b.batches.Load(), Rows: b.stored.Load(), Lost: b.lost.Load()}
}

// Add queues a row and reports whether it was taken; a row not taken is counted lost.
func (b *Batcher[T]) Add(row T) bool {
	return b.add(row, nil)
}

// AddWait queues a row and waits until the batch holding it is stored (nil) or dropped
// (ErrDropped, wrapping why), or until ctx ends: then the row may still be stored.
func (b *Batcher[T]) AddWait(ctx context.Context, row T) error {
	ch := make(chan error, 1)
	if !b.add(row, ch) {
		return fmt.Errorf("%w: %d rows already wait to be published, or the batcher is closed", ErrDropped, b.cfg.MaxPending)
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return fmt.Errorf("telemetry: waiting for the batch to be stored: %w", ctx.Err())
	}
}

func (b *Batcher[T]) add(row T, ch chan error) bool {
	b.mu.Lock()
	if b.closed || len(b.rows) >= b.cfg.MaxPending {
		b.mu.Unlock()
		b.dropped(1)
		return false
	}
	b.rows = append(b.rows, row)
	b.waiters = append(b.waiters, ch)
	n := len(b.rows)
	if n == 1 {
		b.first = time.Now()
	}
	b.mu.Unlock()
	// The loop needs waking for a first row (it starts the wait), a full batch, and,
	// in group commit, every row (it may be idle).
	if n == 1 || n == b.cfg.MaxRows || b.cfg.MaxWait == 0 {
		select {
		case b.kick <- struct{}{}:
		default:
		}
	}
	return true
}

func (b *Batcher[T]) dropped(n int) {
	b.lost.Add(uint64(n))
	if b.cfg.Lost != nil {
		b.cfg.Lost(n)
	}
}

// Close publishes the rows held, waiting until they are stored or ctx ends (what is
// left then is counted lost), and stops the batcher. Rows added later are dropped.
func (b *Batcher[T]) Close(ctx context.Context) error {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		close(b.stop)
	}
	b.mu.Unlock()
	select {
	case <-b.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("telemetry: flush on close did not finish: %w", ctx.Err())
	}
}

// run publishes batches until Close, then what is left.
func (b *Batcher[T]) run() {
	defer close(b.done)
	var timer *time.Timer
	for {
		b.mu.Lock()
		n, closed, first := len(b.rows), b.closed, b.first
		b.mu.Unlock()
		if n == 0 {
			if closed {
				return
			}
			select {
			case <-b.kick:
			case <-b.stop:
			}
			continue
		}
		if wait := time.Until(first.Add(b.cfg.MaxWait)); !closed && n < b.cfg.MaxRows && wait > 0 {
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			select {
			case <-timer.C:
			case <-b.kick:
				if !timer.Stop() {
					<-timer.C
				}
			case <-b.stop:
			}
			continue
		}
		b.flush()
	}
}

// flush publishes up to MaxRows of the held rows as one message.
func (b *Batcher[T]) flush() {
	b.mu.Lock()
	n := min(len(b.rows), b.cfg.MaxRows)
	rows := append([]T(nil), b.rows[:n]...)
	waiters := append([]chan error(nil), b.waiters[:n]...)
	b.rows = append(b.rows[:0], b.rows[n:]...)
	b.waiters = append(b.waiters[:0], b.waiters[n:]...)
	if len(b.rows) > 0 {
		b.first = time.Now()
	}
	b.mu.Unlock()
	b.send(rows, waiters)
}

// send publishes rows as one message, or as two halves when the message would exceed
// MaxBytes; only the run goroutine calls it.
func (b *Batcher[T]) send(rows []T, waiters []chan error) {
	b.seq++
	out, err := b.encode(b.producer, b.seq, rows)
	if err == nil && len(out.Data) > b.cfg.MaxBytes && len(rows) > 1 {
		b.seq-- // the id was not used
		h := len(rows) / 2
		b.send(rows[:h], waiters[:h])
		b.send(rows[h:], waiters[h:])
		return
	}
	if err != nil {
		err = fmt.Errorf("encode batch %d: %w", b.seq, err)
	} else {
		err = b.publish(out)
	}
	if err != nil {
		b.dropped(len(rows))
		b.cfg.Log.WithError(err).WithField("rows", len(rows)).Warn("telemetry batch dropped; the rows are counted as lost")
		err = fmt.Errorf("%w: %v", ErrDropped, err)
	} else {
		b.batches.Add(1)
		b.stored.Add(uint64(len(rows)))
	}
	for _, ch := range waiters {
		if ch != nil {
			ch <- err
		}
	}
}

// publish sends one batch, retrying with the same message id.
func (b *Batcher[T]) publish(out streams.Output) error {
	var err error
	delay := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), b.cfg.PublishTimeout)
		err = b.pub.Publish(ctx, out)
		cancel()
		if err == nil || attempt >= b.cfg.Attempts {
			return err
		}
		time.Sleep(delay)
		delay *= 2
	}
}
