package sink

import (
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
	columns          []string
}

var (
	tableJobs = &table{
		name: "jobs", key: "job_id", userCol: "user_id", timeCol: "submitted_at",
		columns: []string{
			"job_id", "tenant", "user_id", "tier", "task", "model", "model_version",
			"status", "error_code", "error_message", "error_stage", "cache_hit",
			"input_bytes", "input_type", "input_width", "input_height",
			"outputs", "output_bytes", "output_width", "output_height",
			"submitted_at", "started_at", "finished_at",
			"total_ms", "queue_wait_ms", "processing_ms",
			"preprocess_ms", "inference_ms", "postprocess_ms", "store_ms", "trace_id",
		},
	}
	tableStageRuns = &table{
		name: "stage_runs", key: "run_id", userCol: "user_id", timeCol: "started_at",
		columns: []string{
			"run_id", "job_id", "tenant", "user_id", "tier", "task", "model", "model_version",
			"stage", "worker", "attempt", "batch_size", "outcome", "error",
			"started_at", "duration_ms", "queue_wait_ms", "trace_id",
		},
	}
	tableHTTP = &table{
		name: "http_requests", key: "id", userCol: "user_id", timeCol: "event_time",
		columns: []string{
			"id", "event_time", "method", "route", "status", "duration_ms", "tenant", "user_id",
			"request_bytes", "response_bytes", "sample_rate", "weight", "request_id", "trace_id",
		},
	}
	tableAudit = &table{
		name: "audit_log", key: "id", userCol: "actor", timeCol: "event_time",
		columns: []string{
			"id", "event_time", "actor", "tenant", "action", "resource", "ip", "result",
			"request_id", "trace_id",
		},
	}
	tableFeedback = &table{
		name: "feedback", key: "id", userCol: "user_id", timeCol: "event_time",
		columns: []string{
			"id", "job_id", "tenant", "user_id", "rating", "comment", "model", "model_version", "event_time",
		},
	}
	// tableReplay holds shadow replays (`studio replay`); timeCol is the original
	// request's time, so a replay of a request made before its user's erasure is
	// erased (or dropped on arrival) like the original's rows.
	tableReplay = &table{
		name: "replay_results", key: "id", userCol: "user_id", timeCol: "submitted_at",
		columns: []string{
			"id", "replay_id", "job_id", "shadow_job_id", "tenant", "user_id", "task", "model",
			"original_version", "shadow_version", "outcome", "error", "output",
			"iou", "psnr", "ssim", "text_equal", "cer", "original_ms", "shadow_ms",
			"submitted_at", "replayed_at",
		},
	}
	tableErasures = &table{
		name: "erasures", key: "id",
		columns: []string{"id", "tenant", "user_id", "requested_at", "requested_by", "applied_at"},
	}

	// erasableTables hold personal data and are cleaned by erasure requests.
	erasableTables = []*table{tableJobs, tableStageRuns, tableHTTP, tableAudit, tableFeedback, tableReplay}
)

// row is one row for one table, with what the erasure filter needs.
type row struct {
	table  *table
	key    string
	tenant string
	user   string
	// at is the row's event time, compared with an erasure's requested_at.
	at time.Time
	// keep exempts the row from the erasure filter (the erasure's own audit record).
	keep   bool
	values []any
}

// decoded is what one message turns into.
type decoded struct {
	rows    []row
	erasure *schemas.ErasureRequest
}

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
	return decoded{rows: []row{{
		table: tableJobs, key: ev.JobID, tenant: ev.Tenant, user: ev.User, at: submitted,
		values: []any{
			ev.JobID, ev.Tenant, ev.User, string(ev.Tier), string(ev.Task), ev.Model, ev.ModelVersion,
			string(ev.Status), errCode, errMsg, errStage, cacheHit,
			inBytes, ev.Input.ContentType, inW, inH,
			outputs, outBytes, outW, outH,
			submitted, started, finished,
			ms(ev.FinishedAt.Sub(ev.SubmittedAt)), queueWait, processing,
			d[schemas.StagePreprocess], d[schemas.StageInference], d[schemas.StagePostprocess], d[schemas.StageStore],
			trace.ID(ev.TraceParent),
		},
	}}}, nil
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
	rw, err := stageRunRow(&r)
	if err != nil {
		return decoded{}, err
	}
	return decoded{rows: []row{rw}}, nil
}

func stageRunRow(r *schemas.StageRun) (row, error) {
	switch {
	case r.Schema != schemas.SchemaStageRun:
		return row{}, fmt.Errorf("schema is %q, want %q", r.Schema, schemas.SchemaStageRun)
	case r.JobID == "":
		return row{}, errors.New("missing job_id")
	case r.Stage == "":
		return row{}, errors.New("missing stage")
	case r.Outcome == "":
		return row{}, errors.New("missing outcome")
	case r.DurationMS < 0:
		return row{}, fmt.Errorf("negative duration_ms %v", r.DurationMS)
	}
	started, err := required("started_at", r.StartedAt)
	if err != nil {
		return row{}, err
	}
	attempt, err := uintOf[uint16]("attempt", int64(r.Attempt))
	if err != nil {
		return row{}, err
	}
	batch, err := uintOf[uint16]("batch_size", int64(r.BatchSize))
	if err != nil {
		return row{}, err
	}
	id := StageRunID(r)
	return row{
		table: tableStageRuns, key: id, tenant: r.Tenant, user: r.User, at: started,
		values: []any{
			id, r.JobID, r.Tenant, r.User, string(r.Tier), string(r.Task), r.Model, r.ModelVersion,
			string(r.Stage), r.Worker, attempt, batch, r.Outcome, r.Error,
			started, r.DurationMS, r.QueueWaitMS, trace.ID(r.TraceParent),
		},
	}, nil
}

func decodeHTTPRequest(data []byte) (decoded, error) {
	var r schemas.HTTPRequest
	if err := json.Unmarshal(data, &r); err != nil {
		return decoded{}, err
	}
	if err := is(schemas.SchemaHTTPRequest, r.Schema); err != nil {
		return decoded{}, err
	}
	rw, err := httpRequestRow(&r)
	if err != nil {
		return decoded{}, err
	}
	return decoded{rows: []row{rw}}, nil
}

func httpRequestRow(r *schemas.HTTPRequest) (row, error) {
	if err := r.Validate(); err != nil {
		return row{}, err
	}
	at, err := required("time", r.Time)
	if err != nil {
		return row{}, err
	}
	reqBytes, err := uintOf[uint64]("request_bytes", r.RequestBytes)
	if err != nil {
		return row{}, err
	}
	respBytes, err := uintOf[uint64]("response_bytes", r.ResponseBytes)
	if err != nil {
		return row{}, err
	}
	return row{
		table: tableHTTP, key: r.ID, tenant: r.Tenant, user: r.User, at: at,
		values: []any{
			r.ID, at, r.Method, r.Route, uint16(r.Status), r.DurationMS, r.Tenant, r.User,
			reqBytes, respBytes, r.SampleRate, 1 / r.SampleRate, r.RequestID, r.TraceID,
		},
	}, nil
}

// decodeTelemetryBatch reads a TelemetryBatch: every row as if it had come alone, so a
// row keeps its id (and de-duplication) whichever way it travelled. One bad row makes
// the whole message malformed: the producer validated its rows, so it is not ours.
func decodeTelemetryBatch(data []byte) (decoded, error) {
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
	rows := make([]row, 0, len(b.StageRuns)+len(b.HTTPRequests))
	for i := range b.StageRuns {
		rw, err := stageRunRow(&b.StageRuns[i])
		if err != nil {
			return decoded{}, fmt.Errorf("stage_runs[%d]: %w", i, err)
		}
		rows = append(rows, rw)
	}
	for i := range b.HTTPRequests {
		rw, err := httpRequestRow(&b.HTTPRequests[i])
		if err != nil {
			return decoded{}, fmt.Errorf("http_requests[%d]: %w", i, err)
		}
		rows = append(rows, rw)
	}
	return decoded{rows: rows}, nil
}

func decodeAudit(data []byte) (decoded, error) {
	var e schemas.AuditEvent
	if err := json.Unmarshal(data, &e); err != nil {
		return decoded{}, err
	}
	if err := is(schemas.SchemaAudit, e.Schema); err != nil {
		return decoded{}, err
	}
	rw, err := auditRow(&e)
	if err != nil {
		return decoded{}, err
	}
	return decoded{rows: []row{rw}}, nil
}

func auditRow(e *schemas.AuditEvent) (row, error) {
	if err := e.Validate(); err != nil {
		return row{}, err
	}
	at, err := required("time", e.Time)
	if err != nil {
		return row{}, err
	}
	return row{
		table: tableAudit, key: e.ID, tenant: e.Tenant, user: e.Actor, at: at,
		values: []any{e.ID, at, e.Actor, e.Tenant, e.Action, e.Resource, e.IP, e.Result, e.RequestID, e.TraceID},
	}, nil
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
	rows := make([]row, 0, len(b.Events))
	for i := range b.Events {
		rw, err := auditRow(&b.Events[i])
		if err != nil {
			return decoded{}, fmt.Errorf("events[%d]: %w", i, err)
		}
		rows = append(rows, rw)
	}
	return decoded{rows: rows}, nil
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
	return decoded{rows: []row{{
		table: tableFeedback, key: f.ID, tenant: f.Tenant, user: f.User, at: at,
		values: []any{f.ID, f.JobID, f.Tenant, f.User, int8(f.Rating), f.Comment, f.Model, f.ModelVersion, at},
	}}}, nil
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
	return decoded{
		erasure: &r,
		rows: []row{
			{
				table: tableAudit, key: r.ID, tenant: r.Tenant, keep: true, at: at,
				values: []any{r.ID, at, by, r.Tenant, schemas.ActionErasure, "user/" + r.User, "", "applied", "", ""},
			},
			{
				table: tableErasures, key: r.ID, tenant: r.Tenant, keep: true, at: at,
				// applied_at is filled in by the writer when it applies the request.
				values: []any{r.ID, r.Tenant, r.User, at, by, time.Time{}},
			},
		},
	}, nil
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
	return decoded{rows: []row{{
		table: tableReplay, key: id, tenant: r.Tenant, user: r.User, at: submitted,
		values: []any{
			id, r.ReplayID, r.JobID, r.ShadowJobID, r.Tenant, r.User, string(r.Task), r.Model,
			r.OriginalVersion, r.ShadowVersion, r.Outcome, r.Error, r.Output,
			metric(r.IoU), metric(r.PSNR), metric(r.SSIM), textEqual, metric(r.CER), r.OriginalMS, r.ShadowMS,
			submitted, replayed,
		},
	}}}, nil
}
