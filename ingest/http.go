package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/internal/blob"
	"github.com/creativeai-studio/studio/internal/imageio"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
)

// JobResponse is the public view of a job.
type JobResponse struct {
	*schemas.JobRecord
	StatusURL string            `json:"status_url"`
	EventsURL string            `json:"events_url"`
	Downloads map[string]string `json:"downloads,omitempty"`
}

// Handler returns the HTTP API.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/jobs", s.handleSubmit)
	mux.HandleFunc("GET /v1/jobs/{id}", s.handleGet)
	mux.HandleFunc("GET /v1/jobs/{id}/results/{name}", s.handleResult)
	mux.HandleFunc("GET /v1/jobs/{id}/input", s.handleInput)
	mux.HandleFunc("GET /v1/jobs/{id}/events", s.handleEvents)
	mux.HandleFunc("GET /v1/models", s.handleModels)
	mux.HandleFunc("GET /health/live", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /health/ready", s.handleReady)
	mux.HandleFunc("GET /health", s.handleReady)
	mux.HandleFunc("GET /{$}", s.handleIndex)
	return s.logRequests(mux)
}

func (s *Service) handleSubmit(w http.ResponseWriter, r *http.Request) {
	lim := s.cfg.Limits
	if lim.MaxBytes <= 0 {
		lim = imageio.DefaultLimits()
	}
	// The form around the file costs a little; anything past that is refused while
	// reading instead of after buffering it.
	r.Body = http.MaxBytesReader(w, r.Body, lim.MaxBytes+64<<10)
	req, p := s.parseMultipart(r, lim.MaxBytes)
	if p != nil {
		writeProblem(w, r, p)
		return
	}
	req.TraceParent = r.Header.Get("traceparent")
	rec, err := s.Submit(r.Context(), req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/jobs/"+rec.ID)
	writeJSON(w, http.StatusAccepted, s.view(rec))
}

func (s *Service) parseMultipart(r *http.Request, maxImage int64) (SubmitRequest, *Problem) {
	var req SubmitRequest
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" {
		return req, problem(415, "unsupported_media_type", "send multipart/form-data with an image part and a task field", FieldProblem{"Content-Type", "must be multipart/form-data"})
	}
	mr, err := r.MultipartReader()
	if err != nil {
		return req, problem(400, "bad_multipart", err.Error())
	}
	sawImage := false
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return req, problem(413, "image_too_large", fmt.Sprintf("the upload is larger than the %d byte limit", maxImage), FieldProblem{"image", "over the size limit"})
			}
			return req, problem(400, "bad_multipart", "the multipart body is malformed: "+err.Error())
		}
		name := part.FormName()
		switch name {
		case "image":
			data, err := io.ReadAll(io.LimitReader(part, maxImage+1))
			if err != nil {
				var mbe *http.MaxBytesError
				if errors.As(err, &mbe) {
					return req, problem(413, "image_too_large", fmt.Sprintf("the upload is larger than the %d byte limit", maxImage), FieldProblem{"image", "over the size limit"})
				}
				return req, problem(400, "bad_multipart", "reading the image part: "+err.Error())
			}
			if int64(len(data)) > maxImage {
				return req, problem(413, "image_too_large", fmt.Sprintf("the image is larger than the %d byte limit: compress or resize it", maxImage), FieldProblem{"image", "over the size limit"})
			}
			req.Image, sawImage = data, true
		case "task", "model", "version", "tier", "params":
			v, err := io.ReadAll(io.LimitReader(part, 64<<10))
			if err != nil {
				return req, problem(400, "bad_multipart", "reading field "+name+": "+err.Error())
			}
			val := strings.TrimSpace(string(v))
			switch name {
			case "task":
				req.Task = schemas.Task(val)
			case "model":
				req.Model = val
			case "version":
				req.Version = val
			case "tier":
				req.Tier = schemas.Tier(val)
			case "params":
				if val != "" {
					if err := json.Unmarshal([]byte(val), &req.Params); err != nil {
						return req, problem(422, "invalid_params", "params must be a JSON object: "+err.Error(), FieldProblem{"params", "must be a JSON object"})
					}
				}
			}
		}
		part.Close()
	}
	if !sawImage {
		return req, problem(422, "missing_field", "the image part is required", FieldProblem{"image", "required: a JPEG, PNG or WebP file"})
	}
	return req, nil
}

func (s *Service) handleGet(w http.ResponseWriter, r *http.Request) {
	rec, ok := s.lookup(w, r)
	if !ok {
		return
	}
	writeJSON(w, 200, s.view(rec))
}

func (s *Service) handleResult(w http.ResponseWriter, r *http.Request) {
	rec, ok := s.lookup(w, r)
	if !ok {
		return
	}
	name := r.PathValue("name")
	ref, ok := rec.Results[strings.TrimSuffix(name, path.Ext(name))]
	if !ok {
		writeProblem(w, r, problem(404, "no_such_result", fmt.Sprintf("job %s has no result %q (status %s)", rec.ID, name, rec.Status)))
		return
	}
	s.serveObject(w, r, ref, rec.ID+"-"+path.Base(ref.Key))
}

func (s *Service) handleInput(w http.ResponseWriter, r *http.Request) {
	rec, ok := s.lookup(w, r)
	if !ok {
		return
	}
	s.serveObject(w, r, rec.Input, rec.ID+"-"+path.Base(rec.Input.Key))
}

func (s *Service) serveObject(w http.ResponseWriter, r *http.Request, ref schemas.ObjectRef, filename string) {
	rc, info, err := s.blobs.Get(r.Context(), ref.Key)
	if err != nil {
		if errors.Is(err, blob.ErrNotFound) {
			writeProblem(w, r, problem(404, "object_gone", "the file is no longer stored"))
			return
		}
		s.fail(w, r, err)
		return
	}
	defer rc.Close()
	ct := info.ContentType
	if ct == "" {
		ct = ref.ContentType
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Length", strconv.FormatInt(info.Size, 10))
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": filename}))
	w.Header().Set("ETag", `"`+info.SHA256+`"`)
	w.Header().Set("Cache-Control", "private, max-age=3600, immutable")
	_, _ = io.Copy(w, rc)
}

// ModelInfo is one model version in GET /v1/models.
type ModelInfo struct {
	ID       string       `json:"id"`
	Name     string       `json:"name"`
	Version  string       `json:"version"`
	Task     schemas.Task `json:"task"`
	Default  bool         `json:"default"`
	Weight   int          `json:"weight,omitempty"`
	Fallback string       `json:"fallback,omitempty"`
	Scale    int          `json:"scale,omitempty"`
	License  string       `json:"license,omitempty"`
	// Loaded is set when this process runs inference and has the version in memory.
	Loaded *bool `json:"loaded,omitempty"`
}

func (s *Service) handleModels(w http.ResponseWriter, r *http.Request) {
	loaded := map[string]bool{}
	if s.loaded != nil {
		for _, id := range s.loaded() {
			loaded[id] = true
		}
	}
	out := []ModelInfo{}
	for _, m := range s.catalog.All() {
		mi := ModelInfo{ID: m.ID(), Name: m.Name, Version: m.Version, Task: m.Task, Default: s.catalog.IsDefault(m),
			Weight: m.Weight, Fallback: m.Fallback, Scale: m.Scale, License: m.License}
		if s.loaded != nil {
			l := loaded[m.ID()]
			mi.Loaded = &l
		}
		out = append(out, mi)
	}
	writeJSON(w, 200, map[string]any{"models": out})
}

func (s *Service) handleReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	if s.ready != nil {
		if err := s.ready(ctx); err != nil {
			writeJSON(w, 503, map[string]string{"status": "unavailable", "reason": err.Error()})
			return
		}
	}
	writeJSON(w, 200, map[string]string{"status": "ok"})
}

func (s *Service) lookup(w http.ResponseWriter, r *http.Request) (*schemas.JobRecord, bool) {
	id := r.PathValue("id")
	rec, err := s.jobs.Get(r.Context(), id)
	if errors.Is(err, streams.ErrJobNotFound) {
		writeProblem(w, r, problem(404, "job_not_found", fmt.Sprintf("no job %q", id)))
		return nil, false
	}
	if err != nil {
		s.fail(w, r, err)
		return nil, false
	}
	return rec, true
}

func (s *Service) view(rec *schemas.JobRecord) JobResponse {
	v := JobResponse{JobRecord: rec, StatusURL: "/v1/jobs/" + rec.ID, EventsURL: "/v1/jobs/" + rec.ID + "/events"}
	if len(rec.Results) > 0 {
		v.Downloads = map[string]string{}
		for name, ref := range rec.Results {
			v.Downloads[name] = "/v1/jobs/" + rec.ID + "/results/" + name + path.Ext(ref.Key)
		}
	}
	return v
}

func (s *Service) fail(w http.ResponseWriter, r *http.Request, err error) {
	var p *Problem
	if errors.As(err, &p) {
		writeProblem(w, r, p)
		return
	}
	s.log.WithError(err).WithField("endpoint", r.URL.Path).Error("request failed")
	writeProblem(w, r, problem(503, "unavailable", "the service could not complete the request; retry shortly"))
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (s *Service) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: 200}
		defer func() {
			if p := recover(); p != nil {
				s.log.WithField("panic", fmt.Sprint(p)).Error("handler panicked")
				writeProblem(sw, r, problem(500, "internal", "unexpected error"))
			}
			s.log.WithFields(logrus.Fields{
				"endpoint": r.URL.Path, "method": r.Method, "status_code": sw.status,
				"latency_ms": float64(time.Since(start).Microseconds()) / 1000,
			}).Info("http request")
		}()
		next.ServeHTTP(sw, r)
	})
}

// handleEvents streams the job record as server-sent events: the current state first,
// then every change, ending after a final state.
func (s *Service) handleEvents(w http.ResponseWriter, r *http.Request) {
	rec, ok := s.lookup(w, r)
	if !ok {
		return
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		writeProblem(w, r, problem(500, "no_streaming", "this server cannot stream responses"))
		return
	}
	updates, err := s.jobs.Watch(r.Context(), rec.ID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	ping := time.NewTicker(30 * time.Second)
	defer ping.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-ping.C:
			_, _ = io.WriteString(w, ": ping\n\n")
			flusher.Flush()
		case rec, ok := <-updates:
			if !ok {
				return
			}
			data, _ := json.Marshal(s.view(rec))
			fmt.Fprintf(w, "event: job\ndata: %s\n\n", data)
			flusher.Flush()
			if rec.Status.Final() {
				return
			}
		}
	}
}
