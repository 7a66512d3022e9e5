package sink

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
)

// DLQStage names the sink's dead-letter subject, studio.dlq.sink.
const DLQStage schemas.Stage = "sink"

// Sink consumes the analytics streams and writes them to ClickHouse. Create it with New
// and call Run once; Stats may be called from any goroutine.
type Sink struct {
	cfg    Config
	opener streams.BatchOpener
	log    logrus.FieldLogger
	stats  counters

	// afterCommit, when set (tests), runs after a batch is committed and before its
	// messages are acknowledged.
	afterCommit func(stream string)
}

// Stats counts what a Sink has done since it started.
type Stats struct {
	// Rows counts rows inserted, by table.
	Rows map[string]uint64
	// Messages counts messages acknowledged after their batch was committed.
	Messages uint64
	// Batches counts committed batches.
	Batches uint64
	// Duplicates counts rows not inserted because their id was already stored (a
	// redelivery) or appeared twice in one batch.
	Duplicates uint64
	// ErasedRows counts rows dropped because their user was erased before they arrived.
	ErasedRows uint64
	// Erasures counts applied erasure requests.
	Erasures uint64
	// DeadLetters counts malformed messages sent to the DLQ.
	DeadLetters uint64
	// WriteErrors counts failed write attempts (ClickHouse down or refusing).
	WriteErrors uint64
}

type counters struct {
	mu                                        sync.Mutex
	rows                                      map[string]uint64
	messages, batches, duplicates, erasedRows atomic.Uint64
	erasures, deadLetters, writeErrors        atomic.Uint64
}

func (c *counters) addRows(table string, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rows == nil {
		c.rows = map[string]uint64{}
	}
	c.rows[table] += uint64(n)
}

// New checks cfg and returns a sink that reads through opener.
func New(cfg Config, opener streams.BatchOpener) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Sink{cfg: cfg, opener: opener, log: cfg.Log.WithField("component", "sink")}, nil
}

// Run consumes the analytics streams until ctx is cancelled; see Sink.Run.
func Run(ctx context.Context, cfg Config, opener streams.BatchOpener) error {
	s, err := New(cfg, opener)
	if err != nil {
		return err
	}
	return s.Run(ctx)
}

// Stats returns a snapshot of the counters.
func (s *Sink) Stats() Stats {
	st := Stats{
		Rows:        map[string]uint64{},
		Messages:    s.stats.messages.Load(),
		Batches:     s.stats.batches.Load(),
		Duplicates:  s.stats.duplicates.Load(),
		ErasedRows:  s.stats.erasedRows.Load(),
		Erasures:    s.stats.erasures.Load(),
		DeadLetters: s.stats.deadLetters.Load(),
		WriteErrors: s.stats.writeErrors.Load(),
	}
	s.stats.mu.Lock()
	for k, v := range s.stats.rows {
		st.Rows[k] = v
	}
	s.stats.mu.Unlock()
	return st
}

// Run connects to ClickHouse (waiting for it while it is down), migrates the schema or
// checks it is current, and consumes every analytics stream until ctx is cancelled.
// Then it stops fetching, flushes what it holds within DrainTimeout, and hands back to
// the streams what it could not write. It returns an error only for problems a retry
// cannot fix (an outdated schema with Migrate off, an edited migration).
func (s *Sink) Run(ctx context.Context) error {
	conn, err := s.connect(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer conn.Close()
	w := &writer{conn: conn, erased: newErasureSet(), stats: &s.stats, now: time.Now}

	var wg sync.WaitGroup
	for i := range sinkStreams {
		spec := &sinkStreams[i]
		cons, err := s.openConsumer(ctx, spec)
		if err != nil {
			wg.Wait()
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.consume(ctx, spec, cons, w)
		}()
	}
	s.log.WithFields(logrus.Fields{"clickhouse": s.cfg.Addr, "database": s.cfg.Database, "batch_rows": s.cfg.BatchRows, "flush_interval": s.cfg.FlushInterval.String()}).Info("sink started")
	wg.Wait()
	s.log.Info("sink stopped")
	return nil
}

// connect retries until ClickHouse answers and the schema is usable.
func (s *Sink) connect(ctx context.Context) (driver.Conn, error) {
	delay := 500 * time.Millisecond
	for attempt := 1; ; attempt++ {
		conn, err := s.prepare(ctx)
		if err == nil {
			return conn, nil
		}
		if errors.Is(err, ErrSchemaOutdated) || errors.Is(err, ErrMigrationChanged) {
			return nil, err
		}
		log := s.log.WithError(err).WithField("retry_in", delay.String())
		if attempt == 1 || attempt%10 == 0 {
			log.Warn("ClickHouse is not reachable; events wait in their streams until it is")
		} else {
			log.Debug("ClickHouse still not reachable")
		}
		if !sleep(ctx, delay) {
			return nil, ctx.Err()
		}
		delay = min(delay*2, 10*time.Second)
	}
}

func (s *Sink) prepare(ctx context.Context) (driver.Conn, error) {
	if s.cfg.Migrate {
		conn, err := openDatabase(ctx, &s.cfg)
		if err != nil {
			return nil, err
		}
		if _, err := migrateConn(ctx, &s.cfg, conn, 0); err != nil {
			conn.Close()
			return nil, err
		}
		return conn, nil
	}
	conn, err := open(&s.cfg, s.cfg.Database)
	if err != nil {
		return nil, err
	}
	missing, err := schemaCurrent(ctx, conn)
	if err == nil && len(missing) > 0 {
		err = fmt.Errorf("%w: %s lacks %v; run `studio migrate` (or start the sink with --sink-migrate)", ErrSchemaOutdated, s.cfg.Database, missing)
	}
	if exceptionCode(err) == codeUnknownDatabase {
		err = fmt.Errorf("%w: database %s does not exist; run `studio migrate`", ErrSchemaOutdated, s.cfg.Database)
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

func (s *Sink) openConsumer(ctx context.Context, spec *streamSpec) (*streams.BatchConsumer, error) {
	delay := 500 * time.Millisecond
	for {
		cons, err := s.opener.Open(ctx, streams.BatchSpec{
			Stream:         spec.stream,
			Durable:        spec.durable,
			FilterSubjects: spec.filters,
			AckWait:        s.cfg.AckWait,
			MaxAckPending:  2*s.cfg.BatchRows + 256,
			MaxDeliver:     -1,
			DLQStage:       DLQStage,
			Worker:         s.cfg.Worker,
		})
		if err == nil {
			return cons, nil
		}
		s.log.WithError(err).WithField("stream", spec.stream).Warn("cannot open the sink's consumer; retrying")
		if !sleep(ctx, delay) {
			return nil, ctx.Err()
		}
		delay = min(delay*2, 10*time.Second)
	}
}

// held is a fetched message and what it decoded to.
type held struct {
	d   *streams.Delivery
	dec decoded
}

// consume runs one stream's fetch and batch loop until ctx is cancelled. Batches are
// written by a flusher goroutine, so the next batch is fetched and decoded while the
// previous one is inserted; at most two batches are held, well inside MaxAckPending.
func (s *Sink) consume(ctx context.Context, spec *streamSpec, cons *streams.BatchConsumer, w *writer) {
	log := s.log.WithField("stream", spec.stream)
	batches := make(chan []held)
	flusherDone := make(chan struct{})
	go func() {
		defer close(flusherDone)
		for buf := range batches {
			s.flush(ctx, spec, cons, w, buf, log)
		}
	}()
	defer func() {
		close(batches)
		<-flusherDone
	}()
	// handOver waits for the flusher, keeping the batch alive meanwhile (the flusher may
	// be retrying through a ClickHouse outage).
	handOver := func(buf []held) {
		t := time.NewTicker(max(cons.Spec().AckWait/3, 100*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case batches <- buf:
				return
			case <-t.C:
				for _, h := range buf {
					_ = h.d.InProgress()
				}
			}
		}
	}

	var buf []held
	var flushAt time.Time
	fetchFailures := 0
	for ctx.Err() == nil {
		if room := s.cfg.BatchRows - len(buf); room > 0 {
			// An empty buffer waits one flush interval too: a fetch returns early only
			// when full, and the first message's flush deadline starts when it arrives.
			wait := min(s.cfg.FlushInterval, 5*time.Second)
			if len(buf) > 0 {
				wait = time.Until(flushAt)
			}
			if wait > 0 {
				ds, err := cons.Fetch(ctx, room, wait)
				if err != nil && ctx.Err() == nil {
					fetchFailures++
					log.WithError(err).Debug("fetch failed; retrying")
					sleep(ctx, min(time.Duration(fetchFailures)*100*time.Millisecond, 2*time.Second))
				} else {
					fetchFailures = 0
				}
				for _, d := range ds {
					dec, err := spec.decode(d.Subject, d.Data)
					if err != nil {
						s.deadLetter(ctx, cons, d, err, log)
						continue
					}
					if len(buf) == 0 {
						flushAt = time.Now().Add(s.cfg.FlushInterval)
					}
					buf = append(buf, held{d: d, dec: dec})
				}
			}
		}
		if len(buf) > 0 && (len(buf) >= s.cfg.BatchRows || !time.Now().Before(flushAt)) {
			handOver(buf)
			buf = nil
		}
	}
	if len(buf) > 0 {
		handOver(buf)
	}
}

// flush writes a batch, retrying with backoff while ClickHouse fails and keeping the
// messages alive meanwhile, then acknowledges them. After ctx is cancelled it keeps
// trying for at most DrainTimeout and then hands the messages back (Nak).
func (s *Sink) flush(ctx context.Context, spec *streamSpec, cons *streams.BatchConsumer, w *writer, buf []held, log logrus.FieldLogger) {
	wctx, cancel := drainContext(ctx, s.cfg.DrainTimeout)
	defer cancel()
	stopKeepAlive := keepAlive(buf, cons.Spec().AckWait/3)
	defer stopKeepAlive()

	delay := 200 * time.Millisecond
	for attempt := 1; ; attempt++ {
		rows, msgOf, erasures := flatten(buf)
		qctx, qcancel := context.WithTimeout(wctx, s.cfg.QueryTimeout)
		err := w.write(qctx, rows, msgOf, erasures)
		qcancel()
		if err == nil {
			break
		}
		var re *rowError
		if errors.As(err, &re) {
			s.deadLetter(wctx, cons, buf[re.msg].d, fmt.Errorf("%w: %v", errMalformed, re.err), log)
			buf = append(buf[:re.msg:re.msg], buf[re.msg+1:]...)
			if len(buf) == 0 {
				return
			}
			continue
		}
		s.stats.writeErrors.Add(1)
		if wctx.Err() != nil {
			log.WithError(err).WithField("messages", len(buf)).Warn("shutting down before the batch was written; returning it to the stream")
			for _, h := range buf {
				_ = h.d.Nak(0)
			}
			return
		}
		l := log.WithError(err).WithFields(logrus.Fields{"messages": len(buf), "attempt": attempt, "retry_in": delay.String()})
		if attempt == 1 || attempt%20 == 0 {
			l.Warn("ClickHouse write failed; holding the batch and retrying (messages stay unacknowledged)")
		} else {
			l.Debug("ClickHouse write failed again")
		}
		if !sleep(wctx, delay) {
			continue // the next attempt sees wctx done and hands the batch back
		}
		// Short enough to catch up within seconds of ClickHouse returning; one failed
		// insert every 2 s costs a down or overloaded server nothing.
		delay = min(delay*2, 2*time.Second)
	}
	if s.afterCommit != nil {
		s.afterCommit(spec.stream)
	}
	for _, h := range buf {
		// A lost ack only means a redelivery, which writes nothing.
		if err := h.d.Ack(); err != nil {
			log.WithError(err).WithField("stream_seq", h.d.StreamSeq).Debug("ack failed; the message will be redelivered and skipped")
		}
	}
	s.stats.messages.Add(uint64(len(buf)))
	s.stats.batches.Add(1)
	for _, h := range buf {
		if e := h.dec.erasure; e != nil {
			// The request id only: the log must not repeat the erased user's id.
			log.WithField("erasure_id", e.ID).Info("erasure request applied; ClickHouse deletes the rows in the background")
		}
	}
}

// flatten lists a batch's rows, the message of each row, and its erasure requests.
func flatten(buf []held) ([]row, []int, []*schemas.ErasureRequest) {
	var rows []row
	var msgOf []int
	var erasures []*schemas.ErasureRequest
	for i, h := range buf {
		for _, r := range h.dec.rows {
			rows = append(rows, r)
			msgOf = append(msgOf, i)
		}
		if h.dec.erasure != nil {
			erasures = append(erasures, h.dec.erasure)
		}
	}
	return rows, msgOf, erasures
}

// deadLetter sends a message the sink can never write to studio.dlq.sink; when the
// DLQ publish fails the message is redelivered later and tried again.
func (s *Sink) deadLetter(ctx context.Context, cons *streams.BatchConsumer, d *streams.Delivery, reason error, log logrus.FieldLogger) {
	l := log.WithError(reason).WithFields(logrus.Fields{"subject": d.Subject, "stream_seq": d.StreamSeq})
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := cons.DeadLetter(dctx, d, reason); err != nil {
		l.WithField("dlq_error", err.Error()).Error("could not write a malformed message to the DLQ; it will be redelivered")
		_ = d.Nak(5 * time.Second)
		return
	}
	s.stats.deadLetters.Add(1)
	l.Warn("malformed message moved to the DLQ")
}

// keepAlive sends InProgress for every held message every interval until stopped, so a
// batch held through a ClickHouse outage is not redelivered to another replica.
func keepAlive(buf []held, every time.Duration) (stop func()) {
	every = max(every, 100*time.Millisecond)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				for _, h := range buf {
					_ = h.d.InProgress()
				}
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// drainContext is ctx with a grace period: it ends grace after ctx does.
func drainContext(ctx context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	out, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(grace, cancel)
		context.AfterFunc(out, func() { t.Stop() })
	})
	return out, func() { stop(); cancel() }
}

// sleep waits d or until ctx ends; it reports whether the full wait passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
