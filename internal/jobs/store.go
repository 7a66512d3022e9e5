package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
)

// ErrNotFound is returned when no record exists for a job id.
var ErrNotFound = errors.New("jobs: job not found")

// ErrExists is returned by Create when the id is taken.
var ErrExists = errors.New("jobs: job already exists")

// CallTimeout bounds one read or write of a record (one round trip to the bucket's
// stream leader). A call that outlasts it (a node paused or partitioned, a leader
// election) fails instead of holding its stage for the stage's whole timeout; the stage
// retries the message. Callers' own shorter deadlines still apply.
const CallTimeout = 10 * time.Second

// Store keeps job records in the KV bucket "jobs". Updates are compare-and-swap loops,
// so stages and ingest (cancellation) can change one record concurrently without
// losing writes. Safe for concurrent use.
type Store struct {
	kv  jetstream.KeyValue
	now func() time.Time
}

// Open opens the jobs bucket, which Provision creates.
func Open(ctx context.Context, js jetstream.JetStream) (*Store, error) {
	kv, err := streams.BindKV(ctx, js, Bucket)
	if err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	return &Store{kv: kv, now: time.Now}, nil
}

// Create stores a new record; it fails with ErrExists if the id is taken.
func (j *Store) Create(ctx context.Context, rec *schemas.JobRecord) error {
	rec.UpdatedAt = j.now().UTC()
	data, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("jobs: encode job %s: %w", rec.ID, err)
	}
	cctx, cancel := context.WithTimeout(ctx, CallTimeout)
	defer cancel()
	if _, err := j.kv.Create(cctx, rec.ID, data); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("%w: %s", ErrExists, rec.ID)
		}
		return fmt.Errorf("jobs: create job %s: %w", rec.ID, err)
	}
	return nil
}

// Get returns the current record.
func (j *Store) Get(ctx context.Context, id string) (*schemas.JobRecord, error) {
	rec, _, err := j.get(ctx, id)
	return rec, err
}

func (j *Store) get(ctx context.Context, id string) (*schemas.JobRecord, uint64, error) {
	cctx, cancel := context.WithTimeout(ctx, CallTimeout)
	defer cancel()
	e, err := j.kv.Get(cctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
		return nil, 0, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("jobs: get job %s: %w", id, err)
	}
	var rec schemas.JobRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return nil, 0, fmt.Errorf("jobs: job %s has a corrupt record: %w", id, err)
	}
	return &rec, e.Revision(), nil
}

// Version is a job record with its revision in the bucket, as this Store read or wrote
// it: UpdateFrom starts from it instead of reading the record again.
type Version struct {
	Record   *schemas.JobRecord
	Revision uint64
}

// Read returns the current record and its revision.
func (j *Store) Read(ctx context.Context, id string) (Version, error) {
	rec, rev, err := j.get(ctx, id)
	if err != nil {
		return Version{}, err
	}
	return Version{Record: rec, Revision: rev}, nil
}

// Update applies fn to the current record and writes it back with compare-and-swap,
// retrying on conflicts. If fn returns streams.ErrNoChange nothing is written and Update
// returns the unchanged record with a nil error.
func (j *Store) Update(ctx context.Context, id string, fn func(*schemas.JobRecord) error) (*schemas.JobRecord, error) {
	v, err := j.UpdateFrom(ctx, id, Version{}, fn)
	return v.Record, err
}

// UpdateFrom is Update starting from a version of the record this caller read or wrote
// (from.Record nil: none): fn is applied to from.Record, which it may change, and the
// result is written only if the record is still at from.Revision; if someone wrote in
// between, the record is read again and fn applied again, as in Update. It saves the
// read of a record a stage has just read or written itself. It returns the record as
// written (or as read, when fn returned streams.ErrNoChange) with its revision.
func (j *Store) UpdateFrom(ctx context.Context, id string, from Version, fn func(*schemas.JobRecord) error) (Version, error) {
	for attempt := 0; ; attempt++ {
		rec, rev := from.Record, from.Revision
		from = Version{}
		if rec == nil {
			var err error
			if rec, rev, err = j.get(ctx, id); err != nil {
				return Version{}, err
			}
		}
		if err := fn(rec); err != nil {
			if errors.Is(err, streams.ErrNoChange) {
				return Version{Record: rec, Revision: rev}, nil
			}
			return Version{Record: rec, Revision: rev}, err
		}
		rec.UpdatedAt = j.now().UTC()
		data, err := json.Marshal(rec)
		if err != nil {
			return Version{}, fmt.Errorf("jobs: encode job %s: %w", id, err)
		}
		cctx, cancel := context.WithTimeout(ctx, CallTimeout)
		rev, err = j.kv.Update(cctx, id, data, rev)
		cancel()
		if err == nil {
			return Version{Record: rec, Revision: rev}, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) || attempt >= 50 {
			return Version{}, fmt.Errorf("jobs: update job %s: %w", id, err)
		}
		// Someone else wrote in between; read again and reapply.
	}
}

// Watch streams the record of one job: first its current value, then every change,
// until ctx is cancelled. The channel closes when the watch ends.
func (j *Store) Watch(ctx context.Context, id string) (<-chan *schemas.JobRecord, error) {
	records, err := streams.WatchJSON(ctx, j.kv, id, func(_ string, rec *schemas.JobRecord) (*schemas.JobRecord, bool) {
		return rec, rec != nil // a deleted record is not sent
	})
	if err != nil {
		return nil, fmt.Errorf("jobs: watch job %s: %w", id, err)
	}
	return records, nil
}

// Change is one write to the jobs bucket as WatchAll reports it: the record now stored
// under ID, or nil when the record was deleted or purged.
type Change struct {
	ID     string
	Record *schemas.JobRecord
}

// WatchAll streams every job: first the current record of each, then every change,
// until ctx is cancelled. The channel closes when the watch ends; a corrupt record is
// skipped. It reads the whole bucket once at start.
func (j *Store) WatchAll(ctx context.Context) (<-chan Change, error) {
	changes, err := streams.WatchJSON(ctx, j.kv, jetstream.AllKeys, func(id string, rec *schemas.JobRecord) (Change, bool) {
		return Change{ID: id, Record: rec}, true
	})
	if err != nil {
		return nil, fmt.Errorf("jobs: watch the %s bucket: %w", Bucket, err)
	}
	return changes, nil
}

// Delete removes a record (used by erasure).
func (j *Store) Delete(ctx context.Context, id string) error {
	if err := j.kv.Purge(ctx, id); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("jobs: delete job %s: %w", id, err)
	}
	return nil
}
