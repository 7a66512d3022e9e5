package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
)

// IndexEntry is what the index keeps about one job: enough to list it, to call its
// webhook and to erase what it was made from.
type IndexEntry struct {
	JobID string       `json:"job_id"`
	Task  schemas.Task `json:"task,omitempty"`
	// CallbackURL receives the job's final state (webhooks), when the caller gave one.
	CallbackURL string `json:"callback_url,omitempty"`
	// Upload is the uploads/ object the job's input was read from, when it was
	// submitted by key; erasure deletes it with the job.
	Upload string `json:"upload,omitempty"`
	// StyleUpload is the uploads/ object the job's style image was read from, when
	// it was submitted by key; erasure deletes it with the job.
	StyleUpload string `json:"style_upload,omitempty"`
	// Batch is the batch the job belongs to, when it came in one (POST /v2/batches).
	Batch       string    `json:"batch,omitempty"`
	SubmittedAt time.Time `json:"submitted_at"`
}

// Index indexes jobs by user in the KV bucket "userjobs" ("<tenant>.<user>.<job>" ->
// IndexEntry), so that a user's jobs can be listed, their webhooks found and their data
// erased without scanning every job record. Entries expire with the job records
// (30 days). It is the one per-user job index: ingest lists and calls webhooks from it,
// erasure reads it. Safe for concurrent use.
type Index struct {
	kv jetstream.KeyValue
}

// OpenIndex opens the userjobs bucket, which Provision creates.
func OpenIndex(ctx context.Context, js jetstream.JetStream) (*Index, error) {
	kv, err := streams.BindKV(ctx, js, BucketIndex)
	if err != nil {
		return nil, err
	}
	return &Index{kv: kv}, nil
}

// indexKey names one job of one user; it fails for ids that are not subject tokens.
func indexKey(tenant, user, jobID string) (string, error) {
	prefix, err := schemas.UserKey(tenant, user)
	if err != nil {
		return "", err
	}
	if err := schemas.ValidToken(jobID); err != nil {
		return "", fmt.Errorf("jobs: job id: %w", err)
	}
	return prefix + "." + jobID, nil
}

// Add records that a user submitted a job. Adding again replaces the entry.
func (u *Index) Add(ctx context.Context, tenant, user string, e IndexEntry) error {
	key, err := indexKey(tenant, user, e.JobID)
	if err != nil {
		return err
	}
	data, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("jobs: encode index entry %s: %w", e.JobID, err)
	}
	if _, err := u.kv.Put(ctx, key, data); err != nil {
		return fmt.Errorf("jobs: index job %s: %w", e.JobID, err)
	}
	return nil
}

// Get returns one job's entry; ok is false when the user has no such job indexed
// (including ids that could never have been indexed).
func (u *Index) Get(ctx context.Context, tenant, user, jobID string) (e IndexEntry, ok bool, err error) {
	key, err := indexKey(tenant, user, jobID)
	if err != nil {
		return IndexEntry{}, false, nil
	}
	_, ok, err = streams.GetJSON(ctx, u.kv, key, &e)
	return e, ok, err
}

// List returns a user's job ids, oldest first (ids are time-ordered).
func (u *Index) List(ctx context.Context, tenant, user string) ([]string, error) {
	prefix, err := schemas.UserKey(tenant, user)
	if err != nil {
		return nil, err
	}
	lister, err := u.kv.ListKeysFiltered(ctx, prefix+".*")
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("jobs: list jobs of %s: %w", prefix, err)
	}
	var ids []string
	for k := range lister.Keys() {
		ids = append(ids, strings.TrimPrefix(k, prefix+"."))
	}
	if err := ctx.Err(); err != nil {
		return nil, err // the lister stops quietly when ctx ends
	}
	sort.Strings(ids)
	return ids, nil
}

// Entries returns every entry of a user, in no particular order.
func (u *Index) Entries(ctx context.Context, tenant, user string) ([]IndexEntry, error) {
	prefix, err := schemas.UserKey(tenant, user)
	if err != nil {
		return nil, err
	}
	var out []IndexEntry
	err = streams.ScanJSON(ctx, u.kv, prefix+".*", func(_ string, e IndexEntry) error {
		out = append(out, e)
		return nil
	})
	return out, err
}
