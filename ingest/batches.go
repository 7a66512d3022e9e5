package ingest

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/oklog/ulid/v2"

	"github.com/creativeai-studio/studio/internal/auth"
	"github.com/creativeai-studio/studio/internal/jobs"
	"github.com/creativeai-studio/studio/schemas"
)

// Batches: POST /v2/batches admits one job per image, each through Admit, with one
// task and parameter set; the jobs share a batch id and travel on the batch lane
// (BatchTier). There is no batch record: a batch is its jobs, found through the
// caller's job index (jobs.IndexEntry.Batch), so erasure and expiry cover it as they
// cover jobs.

// MaxBatchImages is the most images one batch takes; MaxBatchBytes bounds a multipart
// batch body.
const (
	MaxBatchImages = 50
	MaxBatchBytes  = 64 << 20
)

// maxBatchJSON bounds a JSON batch body: keys only, no image data.
const maxBatchJSON = 1 << 20

// BatchV2 is a batch: its jobs, how many are in each state, and its progress.
type BatchV2 struct {
	ID string `json:"id"`
	// Status is running while any job of the batch is queued or running, else done.
	Status string       `json:"status" enum:"running,done"`
	Task   schemas.Task `json:"task"`
	Total  int          `json:"total" doc:"jobs in the batch"`
	Counts BatchCounts  `json:"counts"`
	// Percent is the mean progress of the jobs; a job that ended counts as 100.
	Percent int `json:"percent" minimum:"0" maximum:"100"`
	// ETASeconds extrapolates the time since submission linearly over Percent: set
	// while the batch runs and has made progress.
	ETASeconds *float64 `json:"eta_seconds,omitempty" doc:"seconds until the batch is done, extrapolated from its progress so far; absent before any progress and once done"`
	Jobs       []JobV2  `json:"jobs"`
	// Refused lists the images that were not admitted (POST only).
	Refused     []BatchRefusal `json:"refused,omitempty"`
	Links       BatchLinks     `json:"links"`
	SubmittedAt time.Time      `json:"submitted_at"`
}

// BatchCounts counts a batch's jobs by status.
type BatchCounts = schemas.BatchCounts

// BatchRefusal is an image of a batch that Admit refused, with the problem it answered.
type BatchRefusal struct {
	// Index is the image's position in the request, from 0.
	Index    int      `json:"index"`
	Filename string   `json:"filename,omitempty"`
	Key      string   `json:"key,omitempty"`
	Problem  *Problem `json:"problem"`
}

// BatchLinks are a batch's related resources.
type BatchLinks struct {
	Self string `json:"self"`
}

// batchItem is one image of a parsed batch request.
type batchItem struct {
	req      SubmitRequest
	filename string
}

type batchInput struct {
	ID string `path:"id" doc:"batch id (a ULID)"`
}

func (s *Service) registerBatchRoutes(api huma.API) {
	v2 := versioned{version: "v2", latest: true}
	tags := []string{"batches"}
	route(s, api, v2, huma.Operation{
		OperationID: "submit-batch", Method: http.MethodPost, Path: "/batches", Tags: tags,
		Summary: "Submit a batch",
		Description: fmt.Sprintf("Many images, one task and parameter set: a multipart form with one `image` part per file and the fields `task`, `model`, `version`, `params` (as POST /jobs), "+
			"or JSON `{\"task\", \"model\", \"version\", \"params\", \"images\": [{\"key\": ...}]}` naming uploaded objects (POST /v1/uploads). At most %d images and %d MiB. "+
			"Each image becomes a job, admitted exactly as POST /jobs admits one; the batch is charged once against the rate limit, and the active-job cap applies per job. "+
			"Images that are refused (an unreadable image, the active-job cap reached) are listed in `refused` with their problem, and the others form the batch (**partial admission**); "+
			"if no image is admitted the answer is the first refusal. Batch jobs run on the batch lane (the lowest tier's queue), which yields to interactive work without starving. "+
			"`callback_url` receives one signed webhook (`studio.batch.completed/v1`, counts per status) when every job of the batch has ended; the batch's jobs send none of their own. "+
			"Idempotency keys are not taken. The same batch request is taken on NATS at `studio.submit.batch.<task>`. Answers 202 with the batch and `Location`.", MaxBatchImages, MaxBatchBytes>>20),
		DefaultStatus: http.StatusAccepted, Errors: []int{400, 401, 403, 413, 415, 422, 429, 503},
		Metadata: declare(scoped(auth.ScopeJobsWrite).audited(auth.ActionJobSubmit)),
		RequestBody: &huma.RequestBody{Required: true, Content: map[string]*huma.MediaType{
			"multipart/form-data": {Schema: &huma.Schema{Type: "object", Properties: map[string]*huma.Schema{
				"image":        {Type: "array", Items: &huma.Schema{Type: "string", Format: "binary"}, Description: "one part per image"},
				"task":         {Type: "string"},
				"model":        {Type: "string"},
				"version":      {Type: "string"},
				"params":       {Type: "string", Description: "task parameters as a JSON object"},
				"callback_url": {Type: "string", Format: "uri", Description: "receives one signed POST (studio.batch.completed/v1) when every job of the batch has ended"},
			}, Required: []string{"image", "task"}}},
			"application/json": {Schema: &huma.Schema{Type: "object", Description: "schemas.BatchRequest", Properties: map[string]*huma.Schema{
				"task":         {Type: "string"},
				"model":        {Type: "string"},
				"version":      {Type: "string"},
				"params":       {Type: "object", Description: "task parameters; ranges in GET /v1/tasks"},
				"images":       {Type: "array", Items: &huma.Schema{Ref: "#/components/schemas/ImageInput"}, Description: "uploaded objects by key; inline data is not taken"},
				"callback_url": {Type: "string", Format: "uri", Description: "receives one signed POST (studio.batch.completed/v1) when every job of the batch has ended"},
			}, Required: []string{"task", "images"}}},
		}},
	}, func(ctx context.Context, _ *struct{}) (*submitOutput[BatchV2], error) {
		b, err := s.handleBatch(ctx)
		if err != nil {
			return nil, err
		}
		return &submitOutput[BatchV2]{Status: http.StatusAccepted, Location: batchPath(b.ID), Body: *b}, nil
	})
	route(s, api, v2, huma.Operation{
		OperationID: "cancel-batch", Method: http.MethodDelete, Path: "/batches/{id}", Tags: tags,
		Summary: "Cancel a batch", Description: "Cancels every queued or running job of the batch (as DELETE /jobs/{id} does); finished jobs stay as they are. Answers the batch.",
		Errors: []int{404, 503}, Metadata: declare(scoped(auth.ScopeJobsWrite)),
	}, func(ctx context.Context, in *batchInput) (*jobOutput[BatchV2], error) {
		b, err := s.cancelBatch(ctx, in.ID)
		if err != nil {
			return nil, err
		}
		return &jobOutput[BatchV2]{Body: *b}, nil
	})
	route(s, api, v2, huma.Operation{
		OperationID: "get-batch-results", Method: http.MethodGet, Path: "/batches/{id}/results", Tags: tags,
		Summary: "Download a batch's results", Description: "One ZIP of the results of the batch's jobs that have succeeded so far, `<job id>/<result name><ext>`, streamed from object storage.",
		Errors: []int{404, 503}, Metadata: declare(scoped(auth.ScopeJobsRead)),
		Responses: map[string]*huma.Response{"200": {Description: "a ZIP archive", Content: map[string]*huma.MediaType{
			"application/zip": {Schema: &huma.Schema{Type: "string", Format: "binary"}}}}},
	}, func(ctx context.Context, in *batchInput) (*huma.StreamResponse, error) {
		return s.batchArchive(ctx, in.ID)
	})
	route(s, api, v2, huma.Operation{
		OperationID: "get-batch", Method: http.MethodGet, Path: "/batches/{id}", Tags: tags,
		Summary: "Get a batch", Description: "The batch's jobs, how many are in each state, and its progress.",
		Errors: []int{404, 503}, Metadata: declare(scoped(auth.ScopeJobsRead)),
	}, func(ctx context.Context, in *batchInput) (*jobOutput[BatchV2], error) {
		b, err := s.getBatch(ctx, in.ID)
		if err != nil {
			return nil, err
		}
		return &jobOutput[BatchV2]{Body: *b}, nil
	})
}

func batchPath(id string) string { return "/v2/batches/" + id }

// handleBatch admits each image of a batch through Admit (admitBatch). The first
// image's reader parses the whole body, so a caller refused by Admit's rules 1 to 3
// never has it read.
func (s *Service) handleBatch(ctx context.Context) (*BatchV2, error) {
	w, r := exchangeFrom(ctx)
	entry := Entry{RequestID: RequestIDFrom(ctx), IP: s.auditRequest(r).IP, Batch: NewJobID()}
	admitted, refused, err := s.admitBatch(ctx, s.httpCaller(ctx), entry, r.URL.Path, func() ([]batchItem, *Problem) {
		return s.parseBatchBody(w, r)
	})
	if err != nil {
		return nil, s.batchRefusal(err, r)
	}
	b := s.batchView(entry.Batch, admitted, r)
	b.Refused = refused
	return b, nil
}

// admitBatch is the batch admission of both entries (HTTP and NATS): each item that
// parse returns is admitted through Admit as a member of entry.Batch, the rate limit
// charged by the first only. Refused items are listed with their problem (where names
// the entry in them) and the others form the batch; when parse fails or no item is
// admitted, err is the first refusal. admitted[i] and refused are in request order.
func (s *Service) admitBatch(ctx context.Context, who *auth.Principal, entry Entry, where string, parse func() ([]batchItem, *Problem)) (admitted []*schemas.JobRecord, refused []BatchRefusal, err error) {
	var (
		items []batchItem
		first error
	)
	for i := 0; i == 0 || i < len(items); i++ {
		e := entry
		e.rateCharged = i > 0
		sub, err := s.Admit(ctx, who, e, func() (SubmitRequest, error) {
			if items == nil {
				var p *Problem
				if items, p = parse(); p != nil {
					return SubmitRequest{}, p
				}
			}
			return items[i].req, nil
		})
		if err == nil {
			admitted = append(admitted, sub.Job)
			continue
		}
		if items == nil {
			return nil, nil, err
		}
		if first == nil {
			first = err
		}
		prob, _ := s.refusal(err, where)
		refused = append(refused, BatchRefusal{Index: i, Filename: items[i].filename, Key: items[i].req.ImageKey, Problem: prob})
	}
	if len(admitted) == 0 {
		return nil, refused, first
	}
	return admitted, refused, nil
}

// batchRefusal renders an Admit refusal as the answer (with Retry-After for a limit).
func (s *Service) batchRefusal(err error, r *http.Request) error {
	prob, retry := s.refusal(err, r.URL.Path)
	if retry != "" {
		return huma.ErrorWithHeaders(prob, http.Header{"Retry-After": {retry}})
	}
	return prob
}

// parseBatchBody reads POST /v2/batches: multipart with image parts, or JSON keys.
func (s *Service) parseBatchBody(w http.ResponseWriter, r *http.Request) ([]batchItem, *Problem) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch {
	case err == nil && mt == "multipart/form-data":
		r.Body = http.MaxBytesReader(w, r.Body, MaxBatchBytes)
		return s.parseBatchMultipart(r)
	case err == nil && mt == "application/json":
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBatchJSON))
		if err != nil {
			return nil, problem(413, "body_too_large", fmt.Sprintf("a JSON batch may be at most %d bytes: it names uploaded images by key", maxBatchJSON))
		}
		return parseBatchJSON(body)
	}
	return nil, problem(415, "unsupported_media_type",
		"send multipart/form-data with one image part per file and a task field, or application/json naming uploaded images by key",
		FieldProblem{Field: "Content-Type", Constraint: "enum", Message: "must be multipart/form-data or application/json"})
}

// parseBatchJSON reads a JSON batch request (schemas.BatchRequest): the body of a JSON
// POST /v2/batches and of a batch on studio.submit.batch.<task>.
func parseBatchJSON(body []byte) ([]batchItem, *Problem) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var br schemas.BatchRequest
	if err := dec.Decode(&br); err != nil {
		return nil, problem(400, "bad_json", "the body is not a batch request: "+err.Error())
	}
	base := SubmitRequest{Task: br.Task, Model: br.Model, Version: br.Version, Params: br.Params, CallbackURL: br.CallbackURL}
	var items []batchItem
	for i, img := range br.Images {
		if img.Key == "" || img.Data != nil {
			f := fmt.Sprintf("images[%d].key", i)
			return nil, problem(422, "invalid_image", "each image of a JSON batch names an uploaded object by key (POST /v1/uploads); inline data is not taken",
				FieldProblem{Field: f, Constraint: "required", Message: "an upload key is required"})
		}
		req := base
		req.ImageKey, req.ImageField = img.Key, fmt.Sprintf("images[%d].key", i)
		items = append(items, batchItem{req: req})
	}
	return checkBatchSize(items)
}

// parseBatchMultipart reads the fields and every image part of a multipart batch.
func (s *Service) parseBatchMultipart(r *http.Request) ([]batchItem, *Problem) {
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, problem(400, "bad_multipart", err.Error())
	}
	var base SubmitRequest
	var items []batchItem
	maxImage := s.cfg.Limits.MaxBytes
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, problem(413, "body_too_large", fmt.Sprintf("a batch body may be at most %d MiB; split the batch", MaxBatchBytes>>20))
		}
		if err != nil {
			return nil, problem(400, "bad_multipart", "the multipart body is malformed: "+err.Error())
		}
		name := part.FormName()
		switch name {
		case "image":
			data, err := io.ReadAll(io.LimitReader(part, maxImage+1))
			if errors.As(err, &mbe) {
				return nil, problem(413, "body_too_large", fmt.Sprintf("a batch body may be at most %d MiB; split the batch", MaxBatchBytes>>20))
			}
			if err != nil {
				return nil, problem(400, "bad_multipart", "reading an image part: "+err.Error())
			}
			f := fmt.Sprintf("image[%d]", len(items))
			if int64(len(data)) > maxImage {
				return nil, problem(413, "image_too_large", fmt.Sprintf("image %d (%s) is larger than the %d byte limit", len(items), part.FileName(), maxImage),
					FieldProblem{Field: f, Constraint: "maxBytes", Message: "over the size limit"})
			}
			if data == nil {
				data = []byte{}
			}
			items = append(items, batchItem{req: SubmitRequest{Image: data, ImageField: f}, filename: part.FileName()})
			if len(items) > MaxBatchImages {
				return checkBatchSize(items)
			}
		case "steps":
			// Chains run one job at a time (POST /v2/jobs with steps); a batch takes one task.
			return nil, problem(422, "invalid_chain", "a batch runs one task on every image; submit chained jobs one by one to /v2/jobs",
				FieldProblem{Field: "steps", Constraint: "not", Message: "not taken by a batch"})
		case "style":
			return nil, problem(422, "invalid_style", "a batch does not take a style image; submit arbitrary-style jobs one by one to /v2/jobs",
				FieldProblem{Field: "style", Constraint: "not", Message: "not taken by a batch"})
		case "task", "model", "version", "params", "callback_url":
			v, err := io.ReadAll(io.LimitReader(part, 64<<10))
			if err != nil {
				return nil, problem(400, "bad_multipart", "reading field "+name+": "+err.Error())
			}
			val := strings.TrimSpace(string(v))
			switch name {
			case "task":
				base.Task = schemas.Task(val)
			case "model":
				base.Model = val
			case "version":
				base.Version = val
			case "callback_url":
				base.CallbackURL = val
			case "params":
				if val != "" {
					if err := json.Unmarshal([]byte(val), &base.Params); err != nil {
						return nil, problem(422, "invalid_params", "params must be a JSON object: "+err.Error(), FieldProblem{Field: "params", Constraint: "type", Message: "must be a JSON object"})
					}
				}
			}
		}
		part.Close()
	}
	for i := range items {
		img, field := items[i].req.Image, items[i].req.ImageField
		items[i].req = base
		items[i].req.Image, items[i].req.ImageField = img, field
	}
	return checkBatchSize(items)
}

// checkBatchSize refuses an empty batch and one over MaxBatchImages.
func checkBatchSize(items []batchItem) ([]batchItem, *Problem) {
	switch {
	case len(items) == 0:
		return nil, problem(422, "missing_field", "a batch needs at least one image", FieldProblem{Field: "image", Constraint: "minItems", Message: "at least one image"})
	case len(items) > MaxBatchImages:
		return nil, problem(413, "too_many_images", fmt.Sprintf("a batch takes at most %d images; split it", MaxBatchImages),
			FieldProblem{Field: "image", Constraint: "maxItems", Message: fmt.Sprintf("at most %d", MaxBatchImages)})
	}
	return items, nil
}

// getBatch answers GET /v2/batches/{id}.
func (s *Service) getBatch(ctx context.Context, id string) (*BatchV2, error) {
	recs, err := s.batchJobs(ctx, id)
	if err != nil {
		return nil, err
	}
	_, r := exchangeFrom(ctx)
	return s.batchView(id, recs, r), nil
}

// batchJobs finds the caller's jobs of batch id through the job index, in submission
// order; none is a 404 problem.
func (s *Service) batchJobs(ctx context.Context, id string) ([]*schemas.JobRecord, error) {
	if s.index == nil {
		return nil, problem(http.StatusServiceUnavailable, "unavailable", "this server keeps no job index; ask the operator to enable it")
	}
	notFound := problem(404, "batch_not_found", fmt.Sprintf("no batch %q", id), FieldProblem{Field: "id", Constraint: "exists", Message: "no such batch"})
	if schemas.ValidToken(id) != nil {
		return nil, notFound
	}
	tenant, user := s.caller(ctx)
	entries, err := s.index.Entries(ctx, tenant, user)
	if err != nil {
		return nil, s.asProblem(err, "batch lookup")
	}
	var recs []*schemas.JobRecord
	for _, e := range entries {
		if e.Batch != id {
			continue
		}
		rec, err := s.jobs.Get(ctx, e.JobID)
		if errors.Is(err, jobs.ErrNotFound) {
			continue // expired or erased
		}
		if err != nil {
			return nil, s.asProblem(err, "batch lookup")
		}
		if s.visible(ctx, rec, "id") != nil {
			continue // the index is the caller's own; this keeps the one rule anyway
		}
		recs = append(recs, rec)
	}
	if len(recs) == 0 {
		return nil, notFound
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].ID < recs[j].ID })
	return recs, nil
}

// cancelBatch cancels every queued or running job of a batch; finished jobs stay.
func (s *Service) cancelBatch(ctx context.Context, id string) (*BatchV2, error) {
	recs, err := s.batchJobs(ctx, id)
	if err != nil {
		return nil, err
	}
	for i, rec := range recs {
		if rec.Status.Final() {
			continue
		}
		c, err := s.cancel(ctx, rec.ID)
		var p *Problem
		switch {
		case errors.As(err, &p) && p.Code == "job_finished":
			// It finished meanwhile; show it as it ended.
			if c, err = s.jobs.Get(ctx, rec.ID); err != nil {
				return nil, s.asProblem(err, "cancel batch")
			}
		case err != nil:
			return nil, err
		}
		recs[i] = c
	}
	_, r := exchangeFrom(ctx)
	return s.batchView(id, recs, r), nil
}

// batchArchive streams the results of the batch's succeeded jobs as a ZIP read from
// object storage as it is written: <job id>/<result name><ext>, stored uncompressed
// (the results are compressed images already).
func (s *Service) batchArchive(ctx context.Context, id string) (*huma.StreamResponse, error) {
	recs, err := s.batchJobs(ctx, id)
	if err != nil {
		return nil, err
	}
	return &huma.StreamResponse{Body: func(hctx huma.Context) {
		hctx.SetHeader("Content-Type", "application/zip")
		hctx.SetHeader("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": "batch-" + id + ".zip"}))
		hctx.SetStatus(http.StatusOK)
		zw := zip.NewWriter(hctx.BodyWriter())
		for _, rec := range recs {
			if rec.Status != schemas.StatusSucceeded {
				continue
			}
			names := make([]string, 0, len(rec.Results))
			for name := range rec.Results {
				names = append(names, name)
			}
			sort.Strings(names)
			for _, name := range names {
				ref := rec.Results[name]
				if err := s.archiveObject(ctx, zw, rec.ID+"/"+name+path.Ext(ref.Key), ref.Key); err != nil {
					// The status is sent; a cut-off archive fails the client's unzip.
					s.log.WithError(err).WithFields(map[string]any{"batch": id, "job_id": rec.ID}).Warn("batch archive cut off")
					return
				}
				s.audit(ctx, auth.ActionDownload, ref.Key, auth.ResultAllowed)
			}
		}
		if err := zw.Close(); err != nil {
			s.log.WithError(err).WithField("batch", id).Warn("batch archive not finished")
		}
	}}, nil
}

func (s *Service) archiveObject(ctx context.Context, zw *zip.Writer, name, key string) error {
	rc, info, err := s.blobs.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("read %s: %w", key, err)
	}
	defer rc.Close()
	w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store, Modified: info.ModTime})
	if err != nil {
		return err
	}
	_, err = io.Copy(w, rc)
	return err
}

// batchView summarises a batch's jobs, in submission order.
func (s *Service) batchView(id string, recs []*schemas.JobRecord, r *http.Request) *BatchV2 {
	b := &BatchV2{ID: id, Status: "done", Total: len(recs), Jobs: []JobV2{}, Links: BatchLinks{Self: batchPath(id)}}
	if u, err := ulid.Parse(strings.ToUpper(id)); err == nil {
		b.SubmittedAt = ulid.Time(u.Time()).UTC()
	}
	sum := 0
	for _, rec := range recs {
		b.Task = rec.Task
		switch rec.Status {
		case schemas.StatusQueued:
			b.Counts.Queued++
		case schemas.StatusRunning:
			b.Counts.Running++
		case schemas.StatusSucceeded:
			b.Counts.Succeeded++
		case schemas.StatusFailed:
			b.Counts.Failed++
		case schemas.StatusCancelled:
			b.Counts.Cancelled++
		}
		if rec.Status.Final() {
			sum += 100
		} else {
			b.Status = "running"
			sum += rec.Percent
		}
		b.Jobs = append(b.Jobs, viewV2(rec, s.wsBase(r)))
	}
	b.Percent = sum / len(recs)
	if b.Status == "running" && sum > 0 && !b.SubmittedAt.IsZero() {
		frac := float64(sum) / float64(100*len(recs))
		eta := time.Since(b.SubmittedAt).Seconds() * (1 - frac) / frac
		eta = math.Round(eta*10) / 10
		b.ETASeconds = &eta
	}
	return b
}
