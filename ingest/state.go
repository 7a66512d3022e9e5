package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/creativeai-studio/studio/internal/jobs"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
)

// Ingest's state lives in two buckets that package jobs declares (and topology
// provisions): Idempotency-Key claims (jobs.BucketIdempotency) and the per-user job
// index with webhook targets (jobs.Index). Both are keyed by tenant and user, so
// erasure finds a user's entries with one subject filter.

// claim is what an idempotency key maps to. The job id is chosen when the key is first
// claimed, so a retry after a crash between claim and queueing submits the same id, and
// the job record's create-if-absent decides which attempt wins.
type claim struct {
	JobID       string    `json:"job_id"`
	Fingerprint string    `json:"fingerprint"`
	Created     time.Time `json:"created"`
}

func hashHex(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// idempotencyKey names a claim: "k.<tenant>.<user>.<hash of the key>". Tenant and user
// are subject tokens (checked at every entry), so a user's claims share one prefix.
func idempotencyKey(tenant, user, key string) string {
	return "k." + tenant + "." + user + "." + hashHex(key)
}

// fingerprint identifies what a request asks for, independent of its encoding
// (multipart boundaries, JSON key order): the same key with another fingerprint is a
// conflict. The tier is not part of it: it comes from the user record, not the
// request, so a retry after an admin changed the tier is still the same request.
func fingerprint(req *SubmitRequest, imageDigest string) string {
	params, _ := json.Marshal(req.Params) // encoding/json sorts map keys
	if len(req.Steps) > 0 {
		steps, _ := json.Marshal(req.Steps)
		params = append(params, steps...)
	}
	return hashHex(string(req.Task), req.Model, req.Version, string(params), req.CallbackURL, req.ImageKey, imageDigest)
}

var errClaimTaken = errors.New("claim taken")

// checkIdempotency looks up an earlier request with the same key. It returns the
// earlier job when there is one for the same request, a 409 problem for a different
// request, or (nil, "", nil) when the key is new. jobID is set when the key is claimed
// but no job exists yet (the first attempt died or is still running).
func (s *Service) checkIdempotency(ctx context.Context, key, fp string) (rec *schemas.JobRecord, jobID string, err error) {
	raw, err := s.idem.Get(ctx, key)
	if errors.Is(err, streams.ErrKeyNotFound) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", err
	}
	var c claim
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, "", fmt.Errorf("idempotency record %s: %w", key, err)
	}
	if c.Fingerprint != fp {
		return nil, "", problem(http.StatusConflict, "idempotency_conflict",
			"this Idempotency-Key was used for a different request (job "+c.JobID+"); use a new key for a new request",
			FieldProblem{Field: "Idempotency-Key", Constraint: "unique", Message: "already used with a different body"})
	}
	rec, err = s.jobs.Get(ctx, c.JobID)
	if errors.Is(err, jobs.ErrNotFound) {
		return nil, c.JobID, nil
	}
	if err != nil {
		return nil, "", err
	}
	return rec, c.JobID, nil
}

// claimIdempotency binds key to jobID for this request. If another request claimed it
// first, errClaimTaken is returned along with the other claim's job id when the
// requests are the same.
func (s *Service) claimIdempotency(ctx context.Context, key, fp, jobID string) (string, error) {
	data, _ := json.Marshal(claim{JobID: jobID, Fingerprint: fp, Created: time.Now().UTC()})
	err := s.idem.Create(ctx, key, data)
	if err == nil {
		return jobID, nil
	}
	if !errors.Is(err, streams.ErrKeyExists) {
		return "", err
	}
	_, other, err := s.checkIdempotency(ctx, key, fp)
	if err != nil {
		return "", err
	}
	return other, errClaimTaken
}

// listJobs returns a page of the caller's jobs, newest first, older than cursor.
func (s *Service) listJobs(ctx context.Context, tenant, user, cursor string, limit int) ([]*schemas.JobRecord, string, error) {
	if s.index == nil {
		return nil, "", problem(http.StatusServiceUnavailable, "unavailable", "this server keeps no job index; ask the operator to enable it")
	}
	all, err := s.index.List(ctx, tenant, user)
	if err != nil {
		return nil, "", err
	}
	ids := make([]string, 0, len(all))
	for _, id := range all {
		if cursor == "" || id < cursor {
			ids = append(ids, id)
		}
	}
	// Job ids are ULIDs: lexical order is submission order.
	sort.Sort(sort.Reverse(sort.StringSlice(ids)))
	var out []*schemas.JobRecord
	next := ""
	for _, id := range ids {
		if len(out) == limit {
			next = out[len(out)-1].ID
			break
		}
		rec, err := s.jobs.Get(ctx, id)
		if errors.Is(err, jobs.ErrNotFound) {
			continue // expired or erased
		}
		if err != nil {
			return nil, "", err
		}
		out = append(out, rec)
	}
	return out, next, nil
}

// indexJob records the job in its caller's index with its callback URL and the upload
// its input came from.
func (s *Service) indexJob(ctx context.Context, rec *schemas.JobRecord, req *SubmitRequest) error {
	if s.index == nil {
		return nil
	}
	e := jobs.IndexEntry{JobID: rec.ID, Task: rec.Task, CallbackURL: req.CallbackURL, Upload: req.ImageKey, StyleUpload: req.StyleKey, Batch: rec.Batch, SubmittedAt: rec.SubmittedAt}
	if err := s.index.Add(ctx, rec.Tenant, rec.User, e); err != nil {
		return fmt.Errorf("index job: %w", err)
	}
	return nil
}
