package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/creativeai-studio/studio/internal/auth"
	"github.com/creativeai-studio/studio/schemas"
)

// Event frame types on GET /v1/jobs/{id}/events.
const (
	// FrameState is the first frame of every connection: the job as it is now, so a
	// client that reconnects mid-job resumes from the current state.
	FrameState = "state"
	// FrameProgress follows every change of the job record (status, stage, percent).
	FrameProgress = "progress"
	// FrameQueue reports a new queue position while the job waits.
	FrameQueue = "queue"
)

// EventFrame is one WebSocket text message (JSON) on GET /v1/jobs/{id}/events. The
// connection closes normally after the frame with a final status.
type EventFrame struct {
	Type          string         `json:"type" enum:"state,progress,queue"`
	Status        schemas.Status `json:"status"`
	Stage         schemas.Stage  `json:"stage"`
	Percent       int            `json:"percent"`
	QueuePosition int            `json:"queue_position,omitempty"`
	// Step and Steps count the denoising steps of a generate job while it runs.
	Step  int         `json:"step,omitempty"`
	Steps int         `json:"steps,omitempty"`
	Job   JobResponse `json:"job"`
}

// errClosing ends event streams when the service shuts down.
var errClosing = errors.New("ingest: shutting down")

// isWebSocket reports whether r asks to upgrade to a WebSocket.
func isWebSocket(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket") &&
		slices.ContainsFunc(strings.Split(r.Header.Get("Connection"), ","), func(v string) bool {
			return strings.EqualFold(strings.TrimSpace(v), "upgrade")
		})
}

// errUserGone ends an event stream whose user was deleted while it ran.
var errUserGone = errors.New("the stream's user no longer exists")

// stillActive returns errUserGone once the caller's user record is gone (deleted or
// erased), errUserDisabled while it is disabled, and errKeyRevoked or errKeyExpired
// once the API key the stream was opened with (or a key above it) is revoked or
// expired: a stream outlives no credential. A lookup that fails for another reason is
// tried again at the next ping.
func (s *Service) stillActive(ctx context.Context) error {
	if s.sec == nil {
		return nil
	}
	p := s.principal(ctx)
	u, err := s.sec.Users.Get(ctx, p.Tenant, p.User)
	switch {
	case errors.Is(err, auth.ErrUserNotFound):
		return errUserGone
	case err == nil && u.Disabled:
		return errUserDisabled
	}
	if p.KeyID != "" && s.sec.Keys != nil {
		_, err := s.sec.Keys.Lineage(ctx, p.KeyID)
		return keyEnded(err)
	}
	return nil
}

// isRevoked reports whether err ended a stream because its credential no longer holds.
func isRevoked(err error) bool {
	_, ok := revoked(err)
	return ok
}

// revoked reports whether err ended a stream because its credential no longer
// holds, and says why for the client.
func revoked(err error) (string, bool) {
	switch {
	case errors.Is(err, errUserGone):
		return "your user no longer exists", true
	case errors.Is(err, errUserDisabled):
		return "your user was disabled", true
	case errors.Is(err, errKeyRevoked):
		return "your API key was revoked", true
	case errors.Is(err, errKeyExpired):
		return "your API key expired", true
	}
	return "", false
}

// follow calls emit with the job's current state, then after every change and every
// queue move, until the job is final, ctx ends or emit fails. tick runs every
// PingInterval (keep-alives), after checking that the caller's credential still holds
// (stillActive); disabling or deleting the user, or revoking the API key, ends the
// stream at once (trackStream).
func (s *Service) follow(ctx context.Context, rec *schemas.JobRecord, emit func(kind string, rec *schemas.JobRecord) error, tick func() error) error {
	ctx, done := s.trackStream(ctx)
	defer done()
	// A disable, deletion or revocation between authentication and trackStream reached
	// no watcher: check once now that the stream is registered.
	if err := s.stillActive(ctx); err != nil {
		return err
	}
	updates, err := s.jobs.Watch(ctx, rec.ID)
	if err != nil {
		if cause := context.Cause(ctx); isRevoked(cause) {
			return cause // ended while the watch was being set up
		}
		return err
	}
	ping := time.NewTicker(s.cfg.PingInterval)
	defer ping.Stop()
	queue := time.NewTicker(s.cfg.QueueInterval)
	defer queue.Stop()
	first := true
	var last *schemas.JobRecord
	for {
		select {
		case <-ctx.Done():
			if cause := context.Cause(ctx); isRevoked(cause) {
				return cause
			}
			return ctx.Err()
		case <-s.closing:
			return errClosing
		case <-ping.C:
			if err := s.stillActive(ctx); err != nil {
				return err
			}
			if err := tick(); err != nil {
				return err
			}
		case <-queue.C:
			if last == nil || last.Status != schemas.StatusQueued {
				continue
			}
			if pos := s.queuePosition(ctx, last); pos != last.QueuePosition {
				cp := *last
				cp.QueuePosition = pos
				last = &cp
				if err := emit(FrameQueue, last); err != nil {
					return err
				}
			}
		case r, ok := <-updates:
			if !ok {
				return nil
			}
			kind := FrameProgress
			if first {
				kind, first = FrameState, false
			}
			if last != nil && r.Status == schemas.StatusQueued && last.QueuePosition > 0 {
				r.QueuePosition = min(r.QueuePosition, last.QueuePosition) // keep the refreshed position
			}
			last = r
			if err := emit(kind, r); err != nil {
				return err
			}
			if r.Status.Final() {
				return nil
			}
		}
	}
}

// queuePosition re-estimates a waiting job's place from its tier's backlog. Jobs only
// leave the queue ahead of it, so the position never grows: the backlog (which also
// counts jobs behind it) bounds it from above, as does the last known position.
func (s *Service) queuePosition(ctx context.Context, rec *schemas.JobRecord) int {
	if s.depth == nil {
		return rec.QueuePosition
	}
	n, err := s.depth(ctx, rec.Tier)
	if err != nil {
		return rec.QueuePosition
	}
	pos := n
	if rec.QueuePosition > 0 {
		pos = min(pos, rec.QueuePosition)
	}
	return max(pos, 1)
}

// serveEvents streams a job's progress as a WebSocket when the client asks to upgrade,
// and as server-sent events otherwise.
func (s *Service) serveEvents(w http.ResponseWriter, r *http.Request, rec *schemas.JobRecord) {
	liftDeadlines(w)
	if isWebSocket(r) {
		s.serveWebSocket(w, r, rec)
		return
	}
	s.serveSSE(w, r, rec)
}

// liftDeadlines exempts a long-lived event stream from the server's read and write
// timeouts (a job may run for many minutes); its pings and per-frame write deadlines
// notice a client that went away. Without it the read timeout would also cancel the
// request context of an SSE stream.
func liftDeadlines(w http.ResponseWriter) {
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
}

func (s *Service) serveWebSocket(w http.ResponseWriter, r *http.Request, rec *schemas.JobRecord) {
	opts := &websocket.AcceptOptions{}
	if slices.Contains(s.cfg.CORSOrigins, "*") {
		opts.InsecureSkipVerify = true // any origin may read progress, as for CORS
	} else {
		for _, o := range s.cfg.CORSOrigins {
			opts.OriginPatterns = append(opts.OriginPatterns, strings.TrimPrefix(strings.TrimPrefix(o, "https://"), "http://"))
		}
	}
	c, err := websocket.Accept(w, r, opts)
	if err != nil {
		return // Accept has answered the client
	}
	defer c.CloseNow()
	// The client sends nothing; CloseRead handles its pongs and close frame and ends
	// ctx when it goes away.
	ctx := c.CloseRead(context.WithoutCancel(r.Context()))
	ws := s.wsBase(r)
	write := func(v any) error {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return wsjson.Write(wctx, c, v)
	}
	emit := func(kind string, rec *schemas.JobRecord) error {
		return write(EventFrame{Type: kind, Status: rec.Status, Stage: rec.Stage, Percent: rec.Percent, QueuePosition: rec.QueuePosition, Step: rec.Step, Steps: rec.Steps, Job: viewV1(rec, ws)})
	}
	ping := func() error {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return c.Ping(pctx)
	}
	err = s.follow(ctx, rec, emit, ping)
	if errors.Is(err, errClosing) {
		c.Close(websocket.StatusGoingAway, "server shutting down; reconnect")
		return
	}
	if why, ok := revoked(err); ok {
		c.Close(websocket.StatusPolicyViolation, why)
		return
	}
	if err != nil {
		if ctx.Err() == nil {
			s.log.WithError(err).WithField("job_id", rec.ID).Warn("job event stream failed")
			c.Close(websocket.StatusInternalError, "event stream failed; reconnect")
		}
		return
	}
	final, _ := s.jobs.Get(ctx, rec.ID)
	reason := "job finished"
	if final != nil {
		reason = "job " + string(final.Status)
	}
	c.Close(websocket.StatusNormalClosure, reason)
}

// serveSSE streams the job record as server-sent events: "job" events with the record
// (the current state first), "queue" events with a new position, ": ping" comments.
func (s *Service) serveSSE(w http.ResponseWriter, r *http.Request, rec *schemas.JobRecord) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		writeProblem(w, r, problem(500, "no_streaming", "this server cannot stream responses"))
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	flusher.Flush()
	ws := s.wsBase(r)
	emit := func(kind string, rec *schemas.JobRecord) error {
		var err error
		if kind == FrameQueue {
			_, err = fmt.Fprintf(w, "event: queue\ndata: {\"queue_position\":%d}\n\n", rec.QueuePosition)
		} else {
			data, _ := json.Marshal(viewV1(rec, ws))
			_, err = fmt.Fprintf(w, "event: job\ndata: %s\n\n", data)
		}
		flusher.Flush()
		return err
	}
	tick := func() error {
		_, err := io.WriteString(w, ": ping\n\n")
		flusher.Flush()
		return err
	}
	err := s.follow(r.Context(), rec, emit, tick)
	why, isRevoked := revoked(err)
	switch {
	case isRevoked:
		_, _ = io.WriteString(w, "event: revoked\ndata: "+why+"\n\n")
		flusher.Flush()
	case err != nil && r.Context().Err() == nil && !errors.Is(err, errClosing):
		s.log.WithError(err).WithField("job_id", rec.ID).Warn("job event stream failed")
	}
}
