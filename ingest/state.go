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
	"strings"
	"time"

	"github.com/creativeai-studio/studio/internal/jobs"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
)

// Buckets of ingest's own state.
const (
	// BucketIdempotency maps (tenant, user, Idempotency-Key) to the job it created.
	BucketIdempotency = "idempotency"
	// BucketJobIndex lists each caller's jobs (one key per job, the id last) and holds
	// what only ingest needs about a job, such as its callback URL.
	BucketJobIndex = "job_index"
)

// IdempotencyTTL is how long a key is remembered; a key reused later creates a new job.
const IdempotencyTTL = 24 * time.Hour

// StateBuckets returns the KV settings of ingest's buckets; the process wiring opens
// them with streams.OpenKV and passes them in with WithIdempotency and WithJobIndex.
func StateBuckets(replicas int) (idempotency, index streams.KVConfig) {
	return streams.KVConfig{Bucket: BucketIdempotency, Description: "Idempotency-Key -> job id, per tenant and user", TTL: IdempotencyTTL, Replicas: replicas},
		streams.KVConfig{Bucket: BucketJobIndex, Description: "per-caller job index and webhook targets", TTL: 30 * 24 * time.Hour, Replicas: replicas}
}

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

func idempotencyKey(tenant, user, key string) string {
	return "k." + tenant + "." + hashHex(user, key)
}

// userToken names a user in KV keys, which allow fewer characters than user ids.
func userToken(user string) string { return hashHex(user)[:32] }

func indexKey(tenant, user, jobID string) string {
	return "j." + tenant + "." + userToken(user) + "." + jobID
}

// indexEntry is the per-job value in the job index.
type indexEntry struct {
	JobID       string       `json:"job_id"`
	Task        schemas.Task `json:"task"`
	CallbackURL string       `json:"callback_url,omitempty"`
	SubmittedAt time.Time    `json:"submitted_at"`
}

// fingerprint identifies what a request asks for, independent of its encoding
// (multipart boundaries, JSON key order): the same key with another fingerprint is a
// conflict.
func fingerprint(req *SubmitRequest, imageDigest string) string {
	params, _ := json.Marshal(req.Params) // encoding/json sorts map keys
	return hashHex(string(req.Task), req.Model, req.Version, string(req.Tier), string(params), req.CallbackURL, req.ImageKey, imageDigest)
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
	keys, err := s.index.Keys(ctx, "j."+tenant+"."+userToken(user)+".*")
	if err != nil {
		return nil, "", err
	}
	ids := make([]string, 0, len(keys))
	for _, k := range keys {
		id := k[strings.LastIndexByte(k, '.')+1:]
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
