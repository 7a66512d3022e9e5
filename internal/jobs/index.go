package jobs

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
)

// Index indexes jobs by user in the KV bucket "userjobs" ("<tenant>.<user>.<job>"),
// so that a user's jobs can be listed, and erased, without scanning every job record.
// Entries expire with the job records (30 days). Safe for concurrent use.
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

// Add records that a user submitted a job. Adding twice is harmless.
func (u *Index) Add(ctx context.Context, tenant, user, jobID string, at time.Time) error {
	prefix, err := schemas.UserKey(tenant, user)
	if err != nil {
		return err
	}
	if err := schemas.ValidToken(jobID); err != nil {
		return fmt.Errorf("jobs: job id: %w", err)
	}
	if _, err := u.kv.Put(ctx, prefix+"."+jobID, []byte(at.UTC().Format(time.RFC3339Nano))); err != nil {
		return fmt.Errorf("jobs: index job %s: %w", jobID, err)
	}
	return nil
}

// List returns a user's job ids, oldest first (ids are time-ordered).
func (u *Index) List(ctx context.Context, tenant, user string) ([]string, error) {
	prefix, err := schemas.UserKey(tenant, user)
	if err != nil {
		return nil, err
	}
	lister, err := u.kv.ListKeysFiltered(ctx, prefix+".*")
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
