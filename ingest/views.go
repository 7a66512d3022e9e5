package ingest

import (
	"net/http"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/creativeai-studio/studio/processors"
	"github.com/creativeai-studio/studio/schemas"
)

// JobResponse is the v1 view of a job: the job record as stored, plus links.
type JobResponse struct {
	*schemas.JobRecord
	StatusURL string `json:"status_url"`
	EventsURL string `json:"events_url"`
	// WebSocketURL is EventsURL as an absolute ws:// or wss:// URL.
	WebSocketURL string            `json:"websocket_url,omitempty"`
	Downloads    map[string]string `json:"downloads,omitempty"`
}

// JobList is a page of the caller's jobs, newest first.
type JobList struct {
	Jobs []JobResponse `json:"jobs"`
	// NextCursor fetches the next (older) page; empty on the last page.
	NextCursor string `json:"next_cursor,omitempty"`
}

// JobV2 is the v2 view of a job: a designed public shape instead of the stored record.
// The model is one object, stage timings are an ordered list, results carry their
// download URLs, and queue details appear only while the job waits.
type JobV2 struct {
	ID      string         `json:"id"`
	Status  schemas.Status `json:"status" enum:"queued,running,succeeded,failed,cancelled"`
	Stage   schemas.Stage  `json:"stage"`
	Percent int            `json:"percent" minimum:"0" maximum:"100"`
	// Step and Steps count the denoising steps of a generate job while it runs.
	Step   int            `json:"step,omitempty"`
	Steps  int            `json:"steps,omitempty"`
	Task   schemas.Task   `json:"task"`
	Tier   schemas.Tier   `json:"tier"`
	Model  ModelRef       `json:"model"`
	Params map[string]any `json:"params,omitempty"`
	// Queue is set while the job waits for its first stage.
	Queue    *QueueInfo        `json:"queue,omitempty"`
	Input    FileV2            `json:"input"`
	Results  []FileV2          `json:"results"`
	Timings  []StageTimingV2   `json:"timings"`
	Error    *schemas.JobError `json:"error,omitempty"`
	CacheHit bool              `json:"cache_hit,omitempty"`
	TraceID  string            `json:"trace_id,omitempty"`
	// Batch is the batch the job belongs to (GET /v2/batches/{id}).
	Batch string `json:"batch,omitempty"`
	// Chain lists the steps of a chained job with each finished step's outputs, and
	// ChainStep is the step running now.
	Chain     []schemas.ChainStep `json:"chain,omitempty"`
	ChainStep int                 `json:"chain_step,omitempty"`
	Links     LinksV2             `json:"links"`

	SubmittedAt time.Time `json:"submitted_at"`
	StartedAt   time.Time `json:"started_at,omitzero"`
	FinishedAt  time.Time `json:"finished_at,omitzero"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// ModelRef names the model version that runs (or ran) a job.
type ModelRef struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	// FallbackFrom is the version asked for when its fallback ran instead.
	FallbackFrom string `json:"fallback_from,omitempty"`
}

// QueueInfo says how far a waiting job is from the front of its tier's queue.
type QueueInfo struct {
	Position int `json:"position"`
}

// FileV2 is a stored file of a job with its download URL.
type FileV2 struct {
	Name        string `json:"name"`
	URL         string `json:"url"`
	ContentType string `json:"content_type,omitempty"`
	Size        int64  `json:"size"`
	SHA256      string `json:"sha256"`
	Width       int    `json:"width,omitempty"`
	Height      int    `json:"height,omitempty"`
	// Flags say what happened to the file: "unsafe" for a generated image the safety
	// checker flagged (blacked out).
	Flags []string `json:"flags,omitempty" doc:"unsafe: the safety checker flagged this generated image, and its pixels are black"`
	// Data is the file itself, only in POST /v2/predict?inline=true answers.
	Data []byte `json:"data,omitempty" doc:"the file, base64; only in POST /v2/predict?inline=true answers, for files of at most 1 MiB"`
}

// StageTimingV2 is one stage's work on a job.
type StageTimingV2 struct {
	Stage      schemas.Stage `json:"stage"`
	StartedAt  time.Time     `json:"started_at"`
	FinishedAt time.Time     `json:"finished_at,omitzero"`
	DurationMS float64       `json:"duration_ms,omitempty"`
	Attempts   int           `json:"attempts,omitempty"`
	Worker     string        `json:"worker,omitempty"`
	BatchSize  int           `json:"batch_size,omitempty"`
}

// LinksV2 are the job's related resources.
type LinksV2 struct {
	Self      string `json:"self"`
	Events    string `json:"events"`
	WebSocket string `json:"websocket,omitempty"`
	Cancel    string `json:"cancel"`
}

// JobListV2 is a page of the caller's jobs, newest first.
type JobListV2 struct {
	Items      []JobV2 `json:"items"`
	NextCursor string  `json:"next_cursor,omitempty"`
}

// links are the URLs of one job as seen by one client.
type links struct {
	status, events, websocket string
}

func jobPath(version, id string) string { return "/" + version + "/jobs/" + id }

// linksFor builds a job's URLs; wsBase is "ws://host" or "" when unknown.
func linksFor(version, id, wsBase string) links {
	events := "/v1/jobs/" + id + "/events" // unchanged in v2: one events route
	l := links{status: jobPath(version, id), events: events}
	if wsBase != "" {
		l.websocket = wsBase + events
	}
	return l
}

// wsBase derives the WebSocket origin from the public URL or the request.
func (s *Service) wsBase(r *http.Request) string {
	if s.cfg.PublicURL != "" {
		u := strings.TrimRight(s.cfg.PublicURL, "/")
		switch {
		case strings.HasPrefix(u, "https://"):
			return "wss://" + strings.TrimPrefix(u, "https://")
		case strings.HasPrefix(u, "http://"):
			return "ws://" + strings.TrimPrefix(u, "http://")
		}
		return u
	}
	if r == nil || r.Host == "" {
		return ""
	}
	scheme := "ws://"
	if r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
		scheme = "wss://"
	}
	return scheme + r.Host
}

func resultURL(id, name string, ref schemas.ObjectRef) string {
	return "/v1/jobs/" + id + "/results/" + name + path.Ext(ref.Key)
}

// viewV1 is the v1 representation.
func viewV1(rec *schemas.JobRecord, wsBase string) JobResponse {
	l := linksFor("v1", rec.ID, wsBase)
	v := JobResponse{JobRecord: rec, StatusURL: l.status, EventsURL: l.events, WebSocketURL: l.websocket}
	if len(rec.Results) > 0 {
		v.Downloads = map[string]string{}
		for name, ref := range rec.Results {
			v.Downloads[name] = resultURL(rec.ID, name, ref)
		}
	}
	return v
}

// viewV2 is the v2 representation.
func viewV2(rec *schemas.JobRecord, wsBase string) JobV2 {
	l := linksFor("v2", rec.ID, wsBase)
	v := JobV2{
		ID: rec.ID, Status: rec.Status, Stage: rec.Stage, Percent: rec.Percent, Step: rec.Step, Steps: rec.Steps, Task: rec.Task, Tier: rec.Tier,
		Model:  ModelRef{Name: rec.Model, Version: rec.ModelVersion, FallbackFrom: rec.FallbackFrom},
		Params: rec.Params, Error: rec.Error, CacheHit: rec.CacheHit, TraceID: rec.TraceID, Batch: rec.Batch,
		Chain: rec.Chain, ChainStep: rec.ChainStep,
		Input:   fileV2("input", "/v1/jobs/"+rec.ID+"/input", rec.Input),
		Results: []FileV2{}, Timings: []StageTimingV2{},
		Links:       LinksV2{Self: l.status, Events: l.events, WebSocket: l.websocket, Cancel: l.status},
		SubmittedAt: rec.SubmittedAt, StartedAt: rec.StartedAt, FinishedAt: rec.FinishedAt, UpdatedAt: rec.UpdatedAt,
	}
	if rec.Status == schemas.StatusQueued && rec.QueuePosition > 0 {
		v.Queue = &QueueInfo{Position: rec.QueuePosition}
	}
	names := make([]string, 0, len(rec.Results))
	for name := range rec.Results {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		ref := rec.Results[name]
		v.Results = append(v.Results, fileV2(name, resultURL(rec.ID, name, ref), ref))
	}
	for _, st := range processors.StageNames() {
		if t := rec.Stages[st]; t != nil {
			v.Timings = append(v.Timings, StageTimingV2{Stage: st, StartedAt: t.StartedAt, FinishedAt: t.FinishedAt,
				DurationMS: t.DurationMS, Attempts: t.Attempts, Worker: t.Worker, BatchSize: t.BatchSize})
		}
	}
	return v
}

func fileV2(name, url string, ref schemas.ObjectRef) FileV2 {
	return FileV2{Name: name, URL: url, ContentType: ref.ContentType, Size: ref.Size, SHA256: ref.SHA256, Width: ref.Width, Height: ref.Height, Flags: ref.Flags}
}
