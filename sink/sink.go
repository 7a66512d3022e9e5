package sink

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
)

// DLQStage names the sink's dead-letter subject, studio.dlq.sink.
const DLQStage schemas.Stage = "sink"

// AuditConsumer is the sink's durable consumer of the AUDIT stream, which applies the
// erasure requests: once it has acknowledged one, the request is applied
// (erasure.WatchRequests waits for that).
const AuditConsumer = "sink-audit"

// Sink consumes the analytics streams and writes them to ClickHouse. Create it with New
// and call Run once; Stats may be called from any goroutine.
type Sink struct {
	cfg    Config
	engine streams.Engine
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

// New checks cfg and returns a sink that consumes through engine.
func New(cfg Config, engine streams.Engine) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Sink{cfg: cfg, engine: engine, log: cfg.Log.WithField("component", "sink")}, nil
}

// Run consumes the analytics streams until ctx is cancelled; see Sink.Run.
func Run(ctx context.Context, cfg Config, engine streams.Engine) error {
	s, err := New(cfg, engine)
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

	runners := make([]*streams.Runner, 0, len(sinkStreams))
	for i := range sinkStreams {
		r, err := s.newRunner(ctx, &sinkStreams[i], w)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		runners = append(runners, r)
	}
	s.log.WithFields(logrus.Fields{"clickhouse": s.cfg.Addr, "embedded": s.cfg.EmbeddedDir, "database": s.cfg.Database, "batch_rows": s.cfg.BatchRows, "flush_interval": s.cfg.FlushInterval.String()}).Info("sink started")
	var wg sync.WaitGroup
	for _, r := range runners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = r.Run(ctx)
		}()
	}
	wg.Wait()
	s.log.Info("sink stopped")
	return nil
}

// connect retries until ClickHouse answers and the schema is usable.
func (s *Sink) connect(ctx context.Context) (conn, error) {
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

func (s *Sink) prepare(ctx context.Context) (conn, error) {
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

// newRunner opens the stream's consumer on the engine, retrying while NATS refuses.
// The runner gathers up to BatchRows messages, or what arrived within FlushInterval of
// the first, into one batch; it keeps them alive with InProgress while the handler
// retries through a ClickHouse outage, and never gives up on a message (MaxDeliver -1):
// only a malformed one leaves the stream unwritten, for studio.dlq.sink.
func (s *Sink) newRunner(ctx context.Context, spec *streamSpec, w *writer) (*streams.Runner, error) {
	log := s.log.WithField("stream", spec.stream)
	msgs := s.cfg.BatchRows
	cfg := streams.RunnerConfig{
		Stage: DLQStage, Worker: s.cfg.Worker,
		Spec: streams.ConsumerSpec{
			Stream: spec.stream, Durable: spec.durable, FilterSubjects: spec.filters,
			Description: "ClickHouse sink", AckWait: s.cfg.AckWait,
			MaxAckPending: 2*msgs + 256, MaxDeliver: -1,
		},
		// One batch at a time per stream: the next one is pulled while this one is
		// written, and inserts never race each other. (Two in flight were slower: the
		// second batch is gathered while the first is written, so FlushInterval cuts it
		// short, and the server pays for more, smaller inserts.)
		// A message may carry many rows (studio.telemetry.batch): the bytes bound
		// keeps a write of them near BatchRows x bytesPerRow of data.
		Concurrency: 1, MaxBatch: msgs, MaxBatchBytes: batchBytes(s.cfg.BatchRows), MaxWait: s.cfg.FlushInterval,
		PullExpiry:   max(min(s.cfg.FlushInterval, 5*time.Second), 100*time.Millisecond),
		DrainTimeout: s.cfg.DrainTimeout, AckAsync: true,
		Observer: sinkObserver{&s.stats}, Log: log,
	}
	h := streams.BatchHandlerFunc(func(ctx context.Context, batch []*streams.Msg) []streams.Result {
		return s.handle(ctx, spec, w, batch, log)
	})
	delay := 500 * time.Millisecond
	for {
		r, err := s.engine.NewRunner(ctx, h, cfg)
		if err == nil {
			return r, nil
		}
		log.WithError(err).Warn("cannot open the sink's consumer; retrying")
		if !sleep(ctx, delay) {
			return nil, ctx.Err()
		}
		delay = min(delay*2, 10*time.Second)
	}
}

// batchedRowsPerMsg is the rows a message of a batched stream is expected to carry
// when decodeAll shares out the decoding.
const batchedRowsPerMsg = 32

// bytesPerRow is the bound of a write's message data per BatchRows: a stage-run row
// is ~450 bytes of JSON, so a write of batch messages holds ~4 x BatchRows rows, one of
// single-row events BatchRows (the count bound comes first).
const bytesPerRow = 2 << 10

// minBatchBytes keeps the bytes bound above the largest message NATS accepts by default
// (1 MiB max_payload), which a pull bounded by bytes could not deliver.
const minBatchBytes = 8 << 20

func batchBytes(rows int) int { return max(rows*bytesPerRow, minBatchBytes) }

// held is a message of a batch, by its index in the batch, and what it decoded to.
type held struct {
	i   int
	dec decoded
}

// handle decodes a batch and writes it. Malformed messages fail permanently (the
// runner moves them to the DLQ); the rest are committed together, after which the
// runner acknowledges them.
func (s *Sink) handle(ctx context.Context, spec *streamSpec, w *writer, batch []*streams.Msg, log logrus.FieldLogger) []streams.Result {
	results := make([]streams.Result, len(batch))
	decs := make([]decoded, len(batch))
	decodeAll(spec, batch, decs, results)
	buf := make([]held, 0, len(batch))
	for i := range batch {
		if results[i].Err == nil {
			buf = append(buf, held{i: i, dec: decs[i]})
		}
	}
	if len(buf) == 0 {
		return results
	}
	buf, err := s.flush(ctx, spec, w, buf, results, log)
	if err != nil {
		for _, h := range buf {
			results[h.i].Err = err
		}
	}
	return results
}

// minDecodeShare is the fewest messages worth a goroutine of their own in decodeAll.
const minDecodeShare = 512

// decodeAll decodes batch into decs, on every core for a large batch; a malformed
// message gets a permanent error in results instead.
func decodeAll(spec *streamSpec, batch []*streams.Msg, decs []decoded, results []streams.Result) {
	one := func(from, to int) {
		for i := from; i < to; i++ {
			dec, err := spec.decode(batch[i].Subject, batch[i].Data)
			if err != nil {
				results[i].Err = streams.Permanent(err)
				continue
			}
			decs[i] = dec
		}
	}
	share := minDecodeShare
	if spec.batched {
		share = minDecodeShare / batchedRowsPerMsg // messages of many rows each
	}
	parts := min(runtime.GOMAXPROCS(0), len(batch)/share)
	if parts <= 1 {
		one(0, len(batch))
		return
	}
	var wg sync.WaitGroup
	per := (len(batch) + parts - 1) / parts
	for from := 0; from < len(batch); from += per {
		wg.Add(1)
		go func() {
			defer wg.Done()
			one(from, min(from+per, len(batch)))
		}()
	}
	wg.Wait()
}

// flush writes a batch, retrying with backoff while ClickHouse fails (the runner keeps
// the messages alive meanwhile). A row ClickHouse refuses fails its message for good
// and the rest is written again. When ctx ends (the runner's drain deadline) it gives
// up and returns the error for what is left, which the runner hands back (Nak).
func (s *Sink) flush(ctx context.Context, spec *streamSpec, w *writer, buf []held, results []streams.Result, log logrus.FieldLogger) ([]held, error) {
	delay := 200 * time.Millisecond
	for attempt := 1; ; attempt++ {
		blocks, msgOf, erasures := flatten(buf)
		qctx, qcancel := context.WithTimeout(ctx, s.cfg.QueryTimeout)
		err := w.write(qctx, blocks, msgOf, erasures)
		qcancel()
		if err == nil {
			break
		}
		var re *rowError
		if errors.As(err, &re) {
			results[buf[re.msg].i].Err = streams.Permanent(fmt.Errorf("%w: %v", errMalformed, re.err))
			buf = append(buf[:re.msg:re.msg], buf[re.msg+1:]...)
			if len(buf) == 0 {
				return nil, nil
			}
			continue
		}
		s.stats.writeErrors.Add(1)
		if ctx.Err() != nil {
			log.WithError(err).WithField("messages", len(buf)).Warn("shutting down before the batch was written; returning it to the stream")
			return buf, fmt.Errorf("ClickHouse write not done before shutdown: %w", err)
		}
		l := log.WithError(err).WithFields(logrus.Fields{"messages": len(buf), "attempt": attempt, "retry_in": delay.String()})
		if attempt == 1 || attempt%20 == 0 {
			l.Warn("ClickHouse write failed; holding the batch and retrying (messages stay unacknowledged)")
		} else {
			l.Debug("ClickHouse write failed again")
		}
		if !sleep(ctx, delay) {
			continue // the next attempt sees ctx done and hands the batch back
		}
		// Short enough to catch up within seconds of ClickHouse returning; one failed
		// insert every 2 s costs a down or overloaded server nothing.
		delay = min(delay*2, 2*time.Second)
	}
	if s.afterCommit != nil {
		s.afterCommit(spec.stream)
	}
	// A lost ack only means a redelivery, which writes nothing.
	s.stats.messages.Add(uint64(len(buf)))
	s.stats.batches.Add(1)
	for _, h := range buf {
		if e := h.dec.erasure; e != nil {
			// The request id only: the log must not repeat the erased user's id.
			log.WithField("erasure_id", e.ID).Info("erasure request applied; ClickHouse deletes the rows in the background")
		}
	}
	return buf, nil
}

// flatten lists a batch's blocks of rows, the message of each block, and its erasure
// requests.
func flatten(buf []held) ([]*block, []int, []*schemas.ErasureRequest) {
	n := 0
	for _, h := range buf {
		n += len(h.dec.blocks)
	}
	blocks := make([]*block, 0, n)
	msgOf := make([]int, 0, n)
	var erasures []*schemas.ErasureRequest
	for i, h := range buf {
		for _, b := range h.dec.blocks {
			blocks = append(blocks, b)
			msgOf = append(msgOf, i)
		}
		if h.dec.erasure != nil {
			erasures = append(erasures, h.dec.erasure)
		}
	}
	return blocks, msgOf, erasures
}

// sinkObserver counts the sink's dead letters in its Stats.
type sinkObserver struct{ stats *counters }

func (o sinkObserver) Handled(string, string, time.Duration) {}
func (o sinkObserver) Retried(string)                        {}
func (o sinkObserver) DeadLettered(string)                   { o.stats.deadLetters.Add(1) }

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
