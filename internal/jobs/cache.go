package jobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
)

// CacheEntry is what a repeated request reuses: the results of the job that first
// computed them.
type CacheEntry struct {
	JobID   string                       `json:"job_id"`
	User    string                       `json:"user"`
	Results map[string]schemas.ObjectRef `json:"results"`
	Stored  time.Time                    `json:"stored"`
}

// Cache maps sha256(tenant, input digest, task, model version, parameters) to
// result references in the KV bucket "cache". Entries are scoped to a tenant, so a cache
// hit never reveals another tenant's results. Every call is bounded by CallTimeout, as
// a record's are: the store stage writes an entry on its way to the result, and a write
// whose reply is lost (a node cut off from the cluster) must fail and be retried, not
// hold the stage until its deadline fails the job. Safe for concurrent use.
type Cache struct {
	kv jetstream.KeyValue
}

// OpenCache opens the cache bucket, which Provision creates.
func OpenCache(ctx context.Context, js jetstream.JetStream) (*Cache, error) {
	kv, err := streams.BindKV(ctx, js, BucketCache)
	if err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	return &Cache{kv: kv}, nil
}

// CacheKey derives the entry key. Parameters are encoded with sorted keys so equal maps
// give equal keys.
func CacheKey(tenant, inputSHA256 string, task schemas.Task, model, version string, params map[string]any) string {
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s@%s", tenant, inputSHA256, task, model, version)
	for _, k := range keys {
		v, _ := json.Marshal(params[k])
		fmt.Fprintf(h, "\x00%s=%s", k, v)
	}
	return tenant + "." + hex.EncodeToString(h.Sum(nil))
}

// Get returns the entry under key, or ok=false.
func (c *Cache) Get(ctx context.Context, key string) (CacheEntry, bool, error) {
	cctx, cancel := context.WithTimeout(ctx, CallTimeout)
	defer cancel()
	e, err := c.kv.Get(cctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return CacheEntry{}, false, nil
	}
	if err != nil {
		return CacheEntry{}, false, fmt.Errorf("jobs: cache get: %w", err)
	}
	var ce CacheEntry
	if err := json.Unmarshal(e.Value(), &ce); err != nil {
		return CacheEntry{}, false, nil // a corrupt entry is a miss
	}
	return ce, true, nil
}

// Put stores an entry.
func (c *Cache) Put(ctx context.Context, key string, e CacheEntry) error {
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, CallTimeout)
	defer cancel()
	if _, err := c.kv.Put(cctx, key, data); err != nil {
		return fmt.Errorf("jobs: cache put: %w", err)
	}
	return nil
}

// Delete removes an entry.
func (c *Cache) Delete(ctx context.Context, key string) error {
	cctx, cancel := context.WithTimeout(ctx, CallTimeout)
	defer cancel()
	if err := c.kv.Purge(cctx, key); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("jobs: cache delete: %w", err)
	}
	return nil
}

// SkipSteps answers steps of a chained job out of the cache, in order from index from,
// while each step's input and parameters hit an entry whose objects all still exist
// (stat returns nil for an existing key). Step from takes input; each later step takes
// the image output of the step before it. An answered step gets its cached results
// under its step names, status succeeded and CacheHit. It returns the index of the
// first step that must run (len(chain) when the cache answered all). Cache trouble is
// a miss, never an error. It blocks on the cache bucket and stat.
func (c *Cache) SkipSteps(ctx context.Context, stat func(ctx context.Context, key string) error, tenant string, chain []schemas.ChainStep, from int, input schemas.ObjectRef, now time.Time) int {
	for j := from; j < len(chain); j++ {
		in := input
		if j > from {
			var ok bool
			if in, ok = schemas.StepInput(chain, j); !ok {
				return j
			}
		}
		st := &chain[j]
		key := CacheKey(tenant, in.SHA256, st.Task, st.Model, st.ModelVersion, st.Params)
		ce, ok, err := c.Get(ctx, key)
		if err != nil || !ok || len(ce.Results) == 0 {
			return j
		}
		for _, ref := range ce.Results {
			if stat(ctx, ref.Key) != nil {
				_ = c.Delete(ctx, key) // erased or expired results: recompute
				return j
			}
		}
		st.Results = make(map[string]schemas.ObjectRef, len(ce.Results))
		for name, ref := range ce.Results {
			st.Results[schemas.StepResultName(j, st.Task, name)] = ref
		}
		st.Status, st.CacheHit, st.FinishedAt = schemas.StatusSucceeded, true, now
	}
	return len(chain)
}
