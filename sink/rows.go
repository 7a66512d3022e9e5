package sink

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	json "github.com/goccy/go-json"

	"github.com/creativeai-studio/studio/internal/trace"
	"github.com/creativeai-studio/studio/schemas"
)

// table describes one ClickHouse table the sink inserts into. Columns are listed in
// every INSERT (18.16 rejects an INSERT without a column list); columns left out, such
// as inserted_at, take their DEFAULT.
type table struct {
	name string
	// key is the column holding the row's deterministic id, the ReplacingMergeTree
	// sorting key; rows whose key is already stored are not inserted again.
	key string
	// userCol and timeCol select a user's rows older than an erasure request.
	userCol, timeCol string
	cols             []column
	// columns are the cols' names; kinds counts the String, integer or DateTime, and
	// Float64 columns.
	columns []string
	kinds   [3]int
}

// newTable completes t's columns and kinds from its cols.
func newTable(t *table) *table {
	for _, c := range t.cols {
		t.columns = append(t.columns, c.name)
		switch c.typ {
		case colString:
			t.kinds[0]++
		case colFloat64:
			t.kinds[2]++
		default:
			t.kinds[1]++
		}
	}
	return t
}

var (
	tableJobs = newTable(&table{
		name: "jobs", key: "job_id", userCol: "user_id", timeCol: "submitted_at",
		cols: []column{
			{"job_id", colString}, {"tenant", colString}, {"user_id", colString}, {"tier", colString},
			{"task", colString}, {"model", colString}, {"model_version", colString},
			{"status", colString}, {"error_code", colString}, {"error_message", colString},
			{"error_stage", colString}, {"cache_hit", colUInt8},
			{"input_bytes", colUInt64}, {"input_type", colString}, {"input_width", colUInt32}, {"input_height", colUInt32},
			{"outputs", colUInt16}, {"output_bytes", colUInt64}, {"output_width", colUInt32}, {"output_height", colUInt32},
			{"submitted_at", colTime}, {"started_at", colTime}, {"finished_at", colTime},
			{"total_ms", colFloat64}, {"queue_wait_ms", colFloat64}, {"processing_ms", colFloat64},
			{"preprocess_ms", colFloat64}, {"inference_ms", colFloat64}, {"postprocess_ms", colFloat64},
			{"store_ms", colFloat64}, {"trace_id", colString},
		},
	})
	tableStageRuns = newTable(&table{
		name: "stage_runs", key: "run_id", userCol: "user_id", timeCol: "started_at",
		cols: []column{
			{"run_id", colString}, {"job_id", colString}, {"tenant", colString}, {"user_id", colString},
			{"tier", colString}, {"task", colString}, {"model", colString}, {"model_version", colString},
			{"stage", colString}, {"worker", colString}, {"attempt", colUInt16}, {"batch_size", colUInt16},
			{"outcome", colString}, {"error", colString},
			{"started_at", colTime}, {"duration_ms", colFloat64}, {"queue_wait_ms", colFloat64}, {"trace_id", colString},
		},
	})
	tableHTTP = newTable(&table{
		name: "http_requests", key: "id", userCol: "user_id", timeCol: "event_time",
		cols: []column{
			{"id", colString}, {"event_time", colTime}, {"method", colString}, {"route", colString},
			{"status", colUInt16}, {"duration_ms", colFloat64}, {"tenant", colString}, {"user_id", colString},
			{"request_bytes", colUInt64}, {"response_bytes", colUInt64}, {"sample_rate", colFloat64},
			{"weight", colFloat64}, {"request_id", colString}, {"trace_id", colString},
		},
	})
	tableAudit = newTable(&table{
		name: "audit_log", key: "id", userCol: "actor", timeCol: "event_time",
		cols: []column{
			{"id", colString}, {"event_time", colTime}, {"actor", colString}, {"tenant", colString},
			{"action", colString}, {"resource", colString}, {"ip", colString}, {"result", colString},
			{"request_id", colString}, {"trace_id", colString},
		},
	})
	tableFeedback = newTable(&table{
		name: "feedback", key: "id", userCol: "user_id", timeCol: "event_time",
		cols: []column{
			{"id", colString}, {"job_id", colString}, {"tenant", colString}, {"user_id", colString},
			{"rating", colInt8}, {"comment", colString}, {"model", colString}, {"model_version", colString},
			{"event_time", colTime},
		},
	})
	// tableReplay holds shadow replays (`studio replay`); timeCol is the original
	// request's time, so a replay of a request made before its user's erasure is
	// erased (or dropped on arrival) like the original's rows.
	tableReplay = newTable(&table{
		name: "replay_results", key: "id", userCol: "user_id", timeCol: "submitted_at",
		cols: []column{
			{"id", colString}, {"replay_id", colString}, {"job_id", colString}, {"shadow_job_id", colString},
			{"tenant", colString}, {"user_id", colString}, {"task", colString}, {"model", colString},
			{"original_version", colString}, {"shadow_version", colString}, {"outcome", colString},
			{"error", colString}, {"output", colString},
			{"iou", colFloat64}, {"psnr", colFloat64}, {"ssim", colFloat64}, {"text_equal", colUInt8},
			{"cer", colFloat64}, {"original_ms", colFloat64}, {"shadow_ms", colFloat64},
			{"submitted_at", colTime}, {"replayed_at", colTime},
		},
	})
	tableErasures = newTable(&table{
		name: "erasures", key: "id",
		cols: []column{
			{"id", colString}, {"tenant", colString}, {"user_id", colString}, {"requested_at", colTime},
			{"requested_by", colString}, {"applied_at", colTime},
		},
	})

	// erasableTables hold personal data and are cleaned by erasure requests.
	erasableTables = []*table{tableJobs, tableStageRuns, tableHTTP, tableAudit, tableFeedback, tableReplay}
)

// decoded is what one message turns into: its rows, a block per table.
type decoded struct {
	blocks  []*block
	erasure *schemas.ErasureRequest
}

// one returns a decoded message of a single block.
func one(b *block) decoded { return decoded{blocks: []*block{b}} }

// errMalformed marks a message the sink can never write: it goes to the DLQ.
var errMalformed = errors.New("malformed event")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errMalformed, fmt.Sprintf(format, args...))
}

// streamSpec says which schemas a stream may carry.
type streamSpec struct {
	stream  string
	durable string
	filters []string
	// primary is the schema most of the stream's events have: decode tries it first,
	// reading the event once.
	primary string
	// batched streams carry messages of many rows (schemas.TelemetryBatch,
	// schemas.AuditBatch) beside single-row events: a write takes fewer messages.
	batched bool
	schemas map[string]func(data []byte) (decoded, error)
}

var sinkStreams = []streamSpec{
	{
		stream: schemas.StreamResults, durable: "sink-results", filters: []string{"studio.results.>"},
		primary: schemas.SchemaJobResult,
		schemas: map[string]func([]byte) (decoded, error){schemas.SchemaJobResult: decodeResult},
	},
	{
		stream: schemas.StreamTelemetry, durable: "sink-telemetry", filters: []string{"studio.telemetry.>"},
		primary: schemas.SchemaTelemetryBatch, batched: true,
		schemas: map[string]func([]byte) (decoded, error){
			schemas.SchemaTelemetryBatch: decodeTelemetryBatch,
			schemas.SchemaStageRun:       decodeStageRun,
			schemas.SchemaHTTPRequest:    decodeHTTPRequest,
			schemas.SchemaReplayResult:   decodeReplay,
		},
	},
	{
		stream: schemas.StreamAudit, durable: AuditConsumer, filters: []string{"studio.audit.>"},
		primary: schemas.SchemaAudit, batched: true,
		schemas: map[string]func([]byte) (decoded, error){
			schemas.SchemaAuditBatch: decodeAuditBatch,
			schemas.SchemaAudit:      decodeAudit,
			schemas.SchemaErasure:    decodeErasure,
		},
	},
	{
		stream: schemas.StreamFeedback, durable: "sink-feedback", filters: []string{schemas.SubjectFeedback},
		primary: schemas.SchemaFeedback,
		schemas: map[string]func([]byte) (decoded, error){schemas.SchemaFeedback: decodeFeedback},
	},
}

// decode turns a message of the stream into rows, or returns an error wrapping
// errMalformed that says what is wrong with it.
func (s *streamSpec) decode(subject string, data []byte) (decoded, error) {
	if d, err := s.schemas[s.primary](data); err == nil {
		return d, nil
	}
	// Another schema, or a malformed event: read the envelope to tell which.
	var env struct {
		Schema string `json:"schema"`
	}
	if err := json.Unmarshal(data, &env); err != nil {
		return decoded{}, malformed("message on %s is not a JSON object: %v", subject, err)
	}
	fn, ok := s.schemas[env.Schema]
	if !ok {
		known := make([]string, 0, len(s.schemas))
		for k := range s.schemas {
			known = append(known, k)
		}
		return decoded{}, malformed("message on %s has schema %q; the sink reads %v on stream %s", subject, env.Schema, known, s.stream)
	}
	d, err := fn(data)
	if err != nil {
		if !errors.Is(err, errMalformed) {
			err = malformed("%s message on %s: %v", env.Schema, subject, err)
		}
		return decoded{}, err
	}
	return d, nil
}

// errOtherSchema says an event is not of the schema its decoder reads.
var errOtherSchema = errors.New("event of another schema")

// is checks that an event's schema field names the schema its decoder reads.
func is(want, got string) error {
	if got != want {
		return errOtherSchema
	}
	return nil
}

// maxDateTime is the last second a ClickHouse DateTime (UInt32 seconds) can hold.
var maxDateTime = time.Unix(math.MaxUint32, 0)

// required checks a time that must be set and fit a DateTime column.
func required(name string, t time.Time) (time.Time, error) {
	if t.IsZero() {
		return time.Time{}, fmt.Errorf("missing %s", name)
	}
	if t.Before(time.Unix(0, 0)) || t.After(maxDateTime) {
		return time.Time{}, fmt.Errorf("%s %s is outside 1970..2106", name, t.Format(time.RFC3339))
	}
	return t.UTC(), nil
}

// optional maps an unset time to 1970-01-01, the DateTime columns' "unknown".
func optional(name string, t time.Time) (time.Time, error) {
	if t.IsZero() {
		return time.Unix(0, 0).UTC(), nil
	}
	return required(name, t)
}

func uintOf[T uint8 | uint16 | uint32 | uint64](name string, v int64) (T, error) {
	var zero T
	if v < 0 || uint64(v) > uint64(^zero) {
		return zero, fmt.Errorf("%s %d is out of range", name, v)
	}
	return T(v), nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func decodeResult(data []byte) (decoded, error) {
	var ev schemas.ResultEvent
	if err := json.Unmarshal(data, &ev); err != nil {
		return decoded{}, err
	}
	if err := is(schemas.SchemaJobResult, ev.Schema); err != nil {
		return decoded{}, err
	}
	if ev.JobID == "" {
		return decoded{}, errors.New("missing job_id")
	}
	if err := schemas.ValidToken(ev.Tenant); err != nil {
		return decoded{}, fmt.Errorf("tenant: %w", err)
	}
	if !ev.Status.Final() {
		return decoded{}, fmt.Errorf("status %q is not final", ev.Status)
	}
	submitted, err := required("submitted_at", ev.SubmittedAt)
	if err != nil {
		return decoded{}, err
	}
	finished, err := required("finished_at", ev.FinishedAt)
	if err != nil {
		return decoded{}, err
	}
	started, err := optional("started_at", ev.StartedAt)
	if err != nil {
		return decoded{}, err
	}
	var queueWait float64
	if !ev.StartedAt.IsZero() {
		queueWait = ms(ev.StartedAt.Sub(ev.SubmittedAt))
	}
	var processing float64
	for _, d := range ev.DurationsMS {
		processing += d
	}
	inBytes, err := uintOf[uint64]("input size", ev.Input.Size)
	if err != nil {
		return decoded{}, err
	}
	inW, err := uintOf[uint32]("input width", int64(ev.Input.Width))
	if err != nil {
		return decoded{}, err
	}
	inH, err := uintOf[uint32]("input height", int64(ev.Input.Height))
	if err != nil {
		return decoded{}, err
	}
	// The output's size is the largest result image (a cutout, not its thumbnail).
	var outBytes uint64
	var outW, outH uint32
	for name, r := range ev.Results {
		if r.Size < 0 || r.Width < 0 || r.Height < 0 {
			return decoded{}, fmt.Errorf("result %q has a negative size", name)
		}
		outBytes += uint64(r.Size)
		if uint64(r.Width)*uint64(r.Height) > uint64(outW)*uint64(outH) {
			outW, err = uintOf[uint32]("output width", int64(r.Width))
			if err != nil {
				return decoded{}, err
			}
			outH, err = uintOf[uint32]("output height", int64(r.Height))
			if err != nil {
				return decoded{}, err
			}
		}
	}
	outputs, err := uintOf[uint16]("result count", int64(len(ev.Results)))
	if err != nil {
		return decoded{}, err
	}
	var errCode, errMsg, errStage string
	if ev.Error != nil {
		errCode, errMsg, errStage = ev.Error.Code, ev.Error.Message, string(ev.Error.Stage)
	}
	var cacheHit uint8
	if ev.CacheHit {
		cacheHit = 1
	}
	d := ev.DurationsMS
	b := newBlock(tableJobs, 1)
	r := b.row(rowMeta{key: ev.JobID, tenant: ev.Tenant, user: ev.User, at: submitted})
	r.s(ev.JobID)
	r.s(ev.Tenant)
	r.s(ev.User)
	r.s(string(ev.Tier))
	r.s(string(ev.Task))
	r.s(ev.Model)
	r.s(ev.ModelVersion)
	r.s(string(ev.Status))
	r.s(errCode)
	r.s(errMsg)
	r.s(errStage)
	r.u(uint64(cacheHit))
	r.u(inBytes)
	r.s(ev.Input.ContentType)
	r.u(uint64(inW))
	r.u(uint64(inH))
	r.u(uint64(outputs))
	r.u(outBytes)
	r.u(uint64(outW))
	r.u(uint64(outH))
	r.t(submitted)
	r.t(started)
	r.t(finished)
	r.f(ms(ev.FinishedAt.Sub(ev.SubmittedAt)))
	r.f(queueWait)
	r.f(processing)
	r.f(d[schemas.StagePreprocess])
	r.f(d[schemas.StageInference])
	r.f(d[schemas.StagePostprocess])
	r.f(d[schemas.StageStore])
	r.s(trace.ID(ev.TraceParent))
	r.done()
	return one(b), nil
}

// StageRunID is the stage_runs key of a run: job:stage:attempt:outcome, the same id the
// pipeline publishes the telemetry with (Nats-Msg-Id).
func StageRunID(r *schemas.StageRun) string {
	return r.JobID + ":" + string(r.Stage) + ":" + strconv.Itoa(r.Attempt) + ":" + r.Outcome
}

func decodeStageRun(data []byte) (decoded, error) {
	var r schemas.StageRun
	if err := json.Unmarshal(data, &r); err != nil {
		return decoded{}, err
	}
	if err := is(schemas.SchemaStageRun, r.Schema); err != nil {
		return decoded{}, err
	}
	b := newBlock(tableStageRuns, 1)
	if err := addStageRun(b, &r); err != nil {
		return decoded{}, err
	}
	return one(b), nil
}

// addStageRun checks a stage run and adds its row to b (a stage_runs block).
func addStageRun(b *block, r *schemas.StageRun) error {
	switch {
	case r.Schema != schemas.SchemaStageRun:
		return fmt.Errorf("schema is %q, want %q", r.Schema, schemas.SchemaStageRun)
	case r.JobID == "":
		return errors.New("missing job_id")
	case r.Stage == "":
		return errors.New("missing stage")
	case r.Outcome == "":
		return errors.New("missing outcome")
	case r.DurationMS < 0:
		return fmt.Errorf("negative duration_ms %v", r.DurationMS)
	}
	started, err := required("started_at", r.StartedAt)
	if err != nil {
		return err
	}
	attempt, err := uintOf[uint16]("attempt", int64(r.Attempt))
	if err != nil {
		return err
	}
	batch, err := uintOf[uint16]("batch_size", int64(r.BatchSize))
	if err != nil {
		return err
	}
	id := StageRunID(r)
	w := b.row(rowMeta{key: id, tenant: r.Tenant, user: r.User, at: started})
	w.s(id)
	w.s(r.JobID)
	w.s(r.Tenant)
	w.s(r.User)
	w.s(string(r.Tier))
	w.s(string(r.Task))
	w.s(r.Model)
	w.s(r.ModelVersion)
	w.s(string(r.Stage))
	w.s(r.Worker)
	w.u(uint64(attempt))
	w.u(uint64(batch))
	w.s(r.Outcome)
	w.s(r.Error)
	w.t(started)
	w.f(r.DurationMS)
	w.f(r.QueueWaitMS)
	w.s(trace.ID(r.TraceParent))
	w.done()
	return nil
}

func decodeHTTPRequest(data []byte) (decoded, error) {
	var r schemas.HTTPRequest
	if err := json.Unmarshal(data, &r); err != nil {
		return decoded{}, err
	}
	if err := is(schemas.SchemaHTTPRequest, r.Schema); err != nil {
		return decoded{}, err
	}
	b := newBlock(tableHTTP, 1)
	if err := addHTTPRequest(b, &r); err != nil {
		return decoded{}, err
	}
	return one(b), nil
}

// addHTTPRequest checks an HTTP request row and adds it to b (an http_requests block).
func addHTTPRequest(b *block, r *schemas.HTTPRequest) error {
	if err := r.Validate(); err != nil {
		return err
	}
	at, err := required("time", r.Time)
	if err != nil {
		return err
	}
	reqBytes, err := uintOf[uint64]("request_bytes", r.RequestBytes)
	if err != nil {
		return err
	}
	respBytes, err := uintOf[uint64]("response_bytes", r.ResponseBytes)
	if err != nil {
		return err
	}
	w := b.row(rowMeta{key: r.ID, tenant: r.Tenant, user: r.User, at: at})
	w.s(r.ID)
	w.t(at)
	w.s(r.Method)
	w.s(r.Route)
	w.u(uint64(uint16(r.Status)))
	w.f(r.DurationMS)
	w.s(r.Tenant)
	w.s(r.User)
	w.u(reqBytes)
	w.u(respBytes)
	w.f(r.SampleRate)
	w.f(1 / r.SampleRate)
	w.s(r.RequestID)
	w.s(r.TraceID)
	w.done()
	return nil
}

// decodeTelemetryBatch reads a TelemetryBatch: every row as if it had come alone, so a
// row keeps its id (and de-duplication) whichever way it travelled. One bad row makes
// the whole message malformed: the producer validated its rows, so it is not ours.
// The stage runs, nearly all the sink's rows, are read by scanner straight into their
// block; a message the scanner cannot read (not strict JSON) is left to
// json.Unmarshal, which decides as before.
func decodeTelemetryBatch(data []byte) (decoded, error) {
	d, err := scanTelemetryBatch(data)
	if errors.Is(err, errSyntax) {
		return unmarshalTelemetryBatch(data)
	}
	return d, err
}

// unmarshalTelemetryBatch is decodeTelemetryBatch through json.Unmarshal.
func unmarshalTelemetryBatch(data []byte) (decoded, error) {
	var b schemas.TelemetryBatch
	if err := json.Unmarshal(data, &b); err != nil {
		return decoded{}, err
	}
	if err := is(schemas.SchemaTelemetryBatch, b.Schema); err != nil {
		return decoded{}, err
	}
	if err := b.Validate(); err != nil {
		return decoded{}, err
	}
	var d decoded
	if len(b.StageRuns) > 0 {
		runs := newBlock(tableStageRuns, len(b.StageRuns))
		for i := range b.StageRuns {
			if err := addStageRun(runs, &b.StageRuns[i]); err != nil {
				return decoded{}, fmt.Errorf("stage_runs[%d]: %w", i, err)
			}
		}
		d.blocks = append(d.blocks, runs)
	}
	return addHTTPRequests(d, b.HTTPRequests)
}

// addHTTPRequests adds a batch's HTTP request rows to d.
func addHTTPRequests(d decoded, reqs []schemas.HTTPRequest) (decoded, error) {
	if len(reqs) == 0 {
		return d, nil
	}
	b := newBlock(tableHTTP, len(reqs))
	for i := range reqs {
		if err := addHTTPRequest(b, &reqs[i]); err != nil {
			return decoded{}, fmt.Errorf("http_requests[%d]: %w", i, err)
		}
	}
	d.blocks = append(d.blocks, b)
	return d, nil
}

// scanTelemetryBatch is decodeTelemetryBatch through scanner; an error wrapping
// errSyntax says the scanner could not read the message.
func scanTelemetryBatch(data []byte) (decoded, error) {
	p := scanner{s: string(data)}
	var b schemas.TelemetryBatch
	var runs *block
	var rowErr error
	var n int
	err := p.object(func(key string) error {
		var err error
		switch fieldName(key) {
		case "schema":
			if !p.null() {
				b.Schema, err = p.str()
			}
		case "producer":
			if !p.null() {
				b.Producer, err = p.str()
			}
		case "seq":
			if !p.null() {
				var lit string
				if lit, err = p.number(); err == nil {
					b.Seq, err = strconv.ParseUint(lit, 10, 64)
				}
			}
		case "stage_runs":
			// A repeated key replaces the rows, as json.Unmarshal does.
			runs, rowErr, n = newBlock(tableStageRuns, bytes.Count(data, []byte(`"job_id"`))), nil, 0
			if p.null() {
				return nil
			}
			err = p.array(func() error {
				var r schemas.StageRun
				if !p.null() {
					if err := p.stageRun(&r); err != nil {
						return err
					}
				}
				if rowErr == nil {
					if err := addStageRun(runs, &r); err != nil {
						rowErr = fmt.Errorf("stage_runs[%d]: %w", n, err)
					}
				}
				n++
				return nil
			})
		case "http_requests":
			start := p.i
			if err = p.skip(); err == nil {
				b.HTTPRequests = nil
				if uerr := json.Unmarshal([]byte(p.s[start:p.i]), &b.HTTPRequests); uerr != nil {
					err = fmt.Errorf("%w: http_requests: %v", errSyntax, uerr) // json.Unmarshal decides
				}
			}
		default:
			err = p.skip()
		}
		return err
	})
	if err == nil {
		err = p.end()
	}
	if err != nil {
		return decoded{}, err
	}
	if err := is(schemas.SchemaTelemetryBatch, b.Schema); err != nil {
		return decoded{}, err
	}
	if err := b.Validate(); err != nil {
		return decoded{}, err
	}
	if rowErr != nil {
		return decoded{}, rowErr
	}
	var d decoded
	if runs != nil && runs.rows() > 0 {
		d.blocks = append(d.blocks, runs)
	}
	return addHTTPRequests(d, b.HTTPRequests)
}

func decodeAudit(data []byte) (decoded, error) {
	var e schemas.AuditEvent
	if err := json.Unmarshal(data, &e); err != nil {
		return decoded{}, err
	}
	if err := is(schemas.SchemaAudit, e.Schema); err != nil {
		return decoded{}, err
	}
	b := newBlock(tableAudit, 1)
	if err := addAudit(b, &e); err != nil {
		return decoded{}, err
	}
	return one(b), nil
}

// addAudit checks an audit event and adds its row to b (an audit_log block).
func addAudit(b *block, e *schemas.AuditEvent) error {
	if err := e.Validate(); err != nil {
		return err
	}
	at, err := required("time", e.Time)
	if err != nil {
		return err
	}
	w := b.row(rowMeta{key: e.ID, tenant: e.Tenant, user: e.Actor, at: at})
	w.s(e.ID)
	w.t(at)
	w.s(e.Actor)
	w.s(e.Tenant)
	w.s(e.Action)
	w.s(e.Resource)
	w.s(e.IP)
	w.s(e.Result)
	w.s(e.RequestID)
	w.s(e.TraceID)
	w.done()
	return nil
}

// decodeAuditBatch reads an AuditBatch, every event as if it had come alone.
func decodeAuditBatch(data []byte) (decoded, error) {
	var b schemas.AuditBatch
	if err := json.Unmarshal(data, &b); err != nil {
		return decoded{}, err
	}
	if err := is(schemas.SchemaAuditBatch, b.Schema); err != nil {
		return decoded{}, err
	}
	if err := b.Validate(); err != nil {
		return decoded{}, err
	}
	if len(b.Events) == 0 {
		return decoded{}, nil
	}
	events := newBlock(tableAudit, len(b.Events))
	for i := range b.Events {
		if err := addAudit(events, &b.Events[i]); err != nil {
			return decoded{}, fmt.Errorf("events[%d]: %w", i, err)
		}
	}
	return one(events), nil
}

func decodeFeedback(data []byte) (decoded, error) {
	var f schemas.Feedback
	if err := json.Unmarshal(data, &f); err != nil {
		return decoded{}, err
	}
	if err := is(schemas.SchemaFeedback, f.Schema); err != nil {
		return decoded{}, err
	}
	if err := f.Validate(); err != nil {
		return decoded{}, err
	}
	at, err := required("time", f.Time)
	if err != nil {
		return decoded{}, err
	}
	b := newBlock(tableFeedback, 1)
	w := b.row(rowMeta{key: f.ID, tenant: f.Tenant, user: f.User, at: at})
	w.s(f.ID)
	w.s(f.JobID)
	w.s(f.Tenant)
	w.s(f.User)
	w.i8(int8(f.Rating))
	w.s(f.Comment)
	w.s(f.Model)
	w.s(f.ModelVersion)
	w.t(at)
	w.done()
	return one(b), nil
}

// decodeErasure keeps the request in audit_log (action "erasure", exempt from the
// erasure itself) and in erasures; the writer applies the deletes.
func decodeErasure(data []byte) (decoded, error) {
	var r schemas.ErasureRequest
	if err := json.Unmarshal(data, &r); err != nil {
		return decoded{}, err
	}
	if err := is(schemas.SchemaErasure, r.Schema); err != nil {
		return decoded{}, err
	}
	if err := r.Validate(); err != nil {
		return decoded{}, err
	}
	at, err := required("requested_at", r.RequestedAt)
	if err != nil {
		return decoded{}, err
	}
	by := r.RequestedBy
	if by == "" {
		by = "unknown"
	}
	audit := newBlock(tableAudit, 1)
	w := audit.row(rowMeta{key: r.ID, tenant: r.Tenant, keep: true, at: at})
	w.s(r.ID)
	w.t(at)
	for _, v := range []string{by, r.Tenant, schemas.ActionErasure, "user/" + r.User, "", "applied", "", ""} {
		w.s(v)
	}
	w.done()
	erasures := newBlock(tableErasures, 1)
	w = erasures.row(rowMeta{key: r.ID, tenant: r.Tenant, keep: true, at: at})
	w.s(r.ID)
	w.s(r.Tenant)
	w.s(r.User)
	w.t(at)
	w.s(by)
	w.t(time.Time{}) // applied_at: filled in by the writer when it applies the request
	w.done()
	return decoded{erasure: &r, blocks: []*block{audit, erasures}}, nil
}

// decodeReplay writes one replay_results row. A metric that does not apply to the task
// is nan (text_equal: 255), so aggregates skip it with isNaN.
func decodeReplay(data []byte) (decoded, error) {
	var r schemas.ReplayResult
	if err := json.Unmarshal(data, &r); err != nil {
		return decoded{}, err
	}
	if err := r.Validate(); err != nil {
		return decoded{}, err
	}
	replayed, err := required("replayed_at", r.ReplayedAt)
	if err != nil {
		return decoded{}, err
	}
	submitted, err := optional("submitted_at", r.SubmittedAt)
	if err != nil {
		return decoded{}, err
	}
	metric := func(v *float64) float64 {
		if v == nil {
			return math.NaN()
		}
		return *v
	}
	textEqual := uint8(255)
	if r.TextEqual != nil {
		textEqual = 0
		if *r.TextEqual {
			textEqual = 1
		}
	}
	id := r.ReplayID + ":" + r.JobID
	b := newBlock(tableReplay, 1)
	w := b.row(rowMeta{key: id, tenant: r.Tenant, user: r.User, at: submitted})
	for _, v := range []string{id, r.ReplayID, r.JobID, r.ShadowJobID, r.Tenant, r.User, string(r.Task), r.Model,
		r.OriginalVersion, r.ShadowVersion, r.Outcome, r.Error, r.Output} {
		w.s(v)
	}
	w.f(metric(r.IoU))
	w.f(metric(r.PSNR))
	w.f(metric(r.SSIM))
	w.u(uint64(textEqual))
	w.f(metric(r.CER))
	w.f(r.OriginalMS)
	w.f(r.ShadowMS)
	w.t(submitted)
	w.t(replayed)
	w.done()
	return one(b), nil
}
