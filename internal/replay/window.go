package replay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/creativeai-studio/studio/internal/jobs"
	"github.com/creativeai-studio/studio/schemas"
)

// Window selects past requests to replay.
type Window struct {
	// Task is the task whose requests are read (every tier's).
	Task schemas.Task
	// Since is the earliest publication time read; the stream's retention
	// (Topology.RequestsMaxAge, 7 days by default) bounds how far back it can reach.
	Since time.Time
	// Sample is the share of requests kept, in (0, 1]; 0 keeps all. The choice hashes
	// the job id, so the same window and sample select the same jobs every time.
	Sample float64
	// Limit bounds the requests returned (0: no bound).
	Limit int
}

// Validate reports the first problem that makes w unusable.
func (w Window) Validate() error {
	switch {
	case schemas.ValidToken(string(w.Task)) != nil:
		return fmt.Errorf("replay: task %q is not a task name", w.Task)
	case w.Since.IsZero():
		return errors.New("replay: the window needs a start time (--since)")
	case w.Sample < 0 || w.Sample > 1:
		return fmt.Errorf("replay: sample %v is not a share between 0 and 1 (10%% is 0.1)", w.Sample)
	case w.Limit < 0:
		return fmt.Errorf("replay: limit %d is negative", w.Limit)
	}
	return nil
}

// Request is one past request selected for replay: its event as ingest published it
// and the original job's record (its results and timings are the reference).
type Request struct {
	Seq       uint64
	Published time.Time
	Event     schemas.JobEvent
	Original  *schemas.JobRecord
}

// Skipped counts the requests of the window that were not selected, by reason.
type Skipped struct {
	// Erased: the user was erased after submitting it (an erasure request on
	// studio.audit.erasure); such a request is never replayed.
	Erased int `json:"erased"`
	// NotSampled: left out by Window.Sample.
	NotSampled int `json:"not_sampled"`
	// Unfinished: the original job has not succeeded (still running, failed or
	// cancelled), so there is nothing to compare with.
	Unfinished int `json:"unfinished"`
	// Gone: the original job's record expired or was erased.
	Gone int `json:"gone"`
	// OverLimit: read once Window.Limit requests were selected (not checked further).
	OverLimit int `json:"over_limit"`
	// Malformed: not a job request event.
	Malformed int `json:"malformed"`
	// Shadow: a replay's own run (JobEvent.Shadow), never replayed again.
	Shadow int `json:"shadow"`
	// Chained: a step of a chained job (JobEvent.Chain): its input is the previous
	// step's output and its outputs feed the next, so it is not replayed alone.
	Chained int `json:"chained"`
}

// ReadWindow reads the requests of w from the REQUESTS stream with an ordered
// consumer starting at w.Since, up to the last message stored when it began. It
// returns the selected requests in stream order and what it left out. Requests of a
// user erased after submitting them are never returned: every erasure request on
// studio.audit.erasure (kept in AUDIT for good) is read first, and a request submitted
// before its user's erasure is skipped, even if erasure has not yet removed it from the
// stream. It blocks on the server; records are read from store.
func ReadWindow(ctx context.Context, js jetstream.JetStream, store *jobs.Store, w Window) ([]Request, Skipped, error) {
	var skipped Skipped
	if err := w.Validate(); err != nil {
		return nil, skipped, err
	}
	erased, err := Erasures(ctx, js)
	if err != nil {
		return nil, skipped, err
	}
	st, err := js.Stream(ctx, schemas.StreamRequests)
	if err != nil {
		return nil, skipped, fmt.Errorf("replay: stream %s: %w", schemas.StreamRequests, err)
	}
	filter := schemas.RootRequests + ".*." + string(w.Task)
	var out []Request
	err = scan(ctx, st, filter, &w.Since, func(seq uint64, published time.Time, data []byte) (bool, error) {
		var ev schemas.JobEvent
		if json.Unmarshal(data, &ev) != nil || ev.Schema != schemas.SchemaJobRequested || ev.JobID == "" {
			skipped.Malformed++
			return true, nil
		}
		if ev.Shadow {
			skipped.Shadow++
			return true, nil
		}
		if len(ev.Chain) > 0 {
			skipped.Chained++
			return true, nil
		}
		if at, ok := erased[userKey(ev.Tenant, ev.User)]; ok && !at.Before(ev.SubmittedAt) {
			skipped.Erased++
			return true, nil
		}
		if !sampled(ev.JobID, w.Sample) {
			skipped.NotSampled++
			return true, nil
		}
		if w.Limit > 0 && len(out) >= w.Limit {
			skipped.OverLimit++
			return true, nil
		}
		rec, err := store.Get(ctx, ev.JobID)
		switch {
		case errors.Is(err, jobs.ErrNotFound):
			skipped.Gone++
			return true, nil
		case err != nil:
			return false, fmt.Errorf("replay: read job %s: %w", ev.JobID, err)
		case rec.Status != schemas.StatusSucceeded:
			skipped.Unfinished++
			return true, nil
		}
		out = append(out, Request{Seq: seq, Published: published, Event: ev, Original: rec})
		return true, nil
	})
	return out, skipped, err
}

// Erasures returns when each erased user was last erased ("<tenant>.<user>" ->
// requested_at), from the erasure requests on studio.audit.erasure.
func Erasures(ctx context.Context, js jetstream.JetStream) (map[string]time.Time, error) {
	st, err := js.Stream(ctx, schemas.StreamAudit)
	if err != nil {
		return nil, fmt.Errorf("replay: stream %s: %w", schemas.StreamAudit, err)
	}
	out := map[string]time.Time{}
	err = scan(ctx, st, schemas.SubjectErasure, nil, func(_ uint64, _ time.Time, data []byte) (bool, error) {
		var r schemas.ErasureRequest
		if json.Unmarshal(data, &r) != nil || r.Validate() != nil {
			return true, nil
		}
		if k := userKey(r.Tenant, r.User); r.RequestedAt.After(out[k]) {
			out[k] = r.RequestedAt
		}
		return true, nil
	})
	return out, err
}

func userKey(tenant, user string) string { return tenant + "." + user }

// sampled keeps a job when the hash of its id falls in the first share of the range.
func sampled(jobID string, share float64) bool {
	if share <= 0 || share >= 1 {
		return true
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(jobID))
	return float64(h.Sum64()%1_000_000) < share*1_000_000
}

// scan reads filter's messages through an ordered consumer (from since, or the
// beginning) up to the stream's last sequence when the scan began, calling visit for
// each until it returns false.
func scan(ctx context.Context, st jetstream.Stream, filter string, since *time.Time, visit func(seq uint64, published time.Time, data []byte) (bool, error)) error {
	info, err := st.Info(ctx)
	if err != nil {
		return fmt.Errorf("replay: stream info: %w", err)
	}
	last := info.State.LastSeq
	if info.State.Msgs == 0 {
		return nil
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}}
	if since != nil {
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, since
	}
	c, err := st.OrderedConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("replay: read %s: %w", filter, err)
	}
	for {
		batch, err := c.Fetch(500, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return fmt.Errorf("replay: read %s: %w", filter, err)
		}
		got := 0
		for msg := range batch.Messages() {
			got++
			meta, err := msg.Metadata()
			if err != nil {
				return err
			}
			if meta.Sequence.Stream > last {
				return nil
			}
			more, err := visit(meta.Sequence.Stream, meta.Timestamp, msg.Data())
			if err != nil || !more {
				return err
			}
			if meta.NumPending == 0 || meta.Sequence.Stream == last {
				return nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return fmt.Errorf("replay: read %s: %w", filter, err)
		}
		if got == 0 {
			return ctx.Err() // nothing (more) in the window
		}
	}
}
