package erasure

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/creativeai-studio/studio/internal/blob"
	"github.com/creativeai-studio/studio/internal/jobs"
	"github.com/creativeai-studio/studio/schemas"
)

// Retention defaults.
const (
	// DefaultUploadTTL is how long a presigned upload is kept: a job copies the bytes
	// it uses, so an upload older than this serves nobody.
	DefaultUploadTTL = 24 * time.Hour
	// DefaultWorkTTL is how long the intermediate artifacts of a failed, cancelled or
	// forgotten job are kept (a running job's are never touched).
	DefaultWorkTTL = 24 * time.Hour
	// DefaultSweepInterval is how often Retention.Run sweeps.
	DefaultSweepInterval = 10 * time.Minute
)

// RecordGetter reads job records; jobs.Store implements it.
type RecordGetter interface {
	Get(ctx context.Context, id string) (*schemas.JobRecord, error)
}

// Retention deletes the objects nothing can reach any more, so that no image outlives
// the record that erasure finds it by:
//   - uploads (uploads/<tenant>/<user>/<id>) older than UploadTTL, used or not;
//   - job inputs and results (inputs|results/<tenant>/<job>/...) older than ObjectTTL
//     whose job record is gone (expired after 30 days, or erased);
//   - intermediate artifacts (work/<job>/...) older than WorkTTL whose job is gone or
//     final.
//
// With several replicas, run it under a lease (streams.Lease) so that one sweeps at a
// time. Run blocks; the fields must not change while it runs.
type Retention struct {
	Blobs blob.Store
	Jobs  RecordGetter
	// UploadTTL, WorkTTL and Interval default to DefaultUploadTTL, DefaultWorkTTL and
	// DefaultSweepInterval.
	UploadTTL, WorkTTL, Interval time.Duration
	// ObjectTTL must exceed the longest time a job record may point at an object: the
	// record's own age plus the result cache's (a cache hit points a new record at an
	// older job's results). Default: 30 + 7 days.
	ObjectTTL time.Duration
	Log       logrus.FieldLogger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Swept counts what one sweep deleted.
type Swept struct {
	Uploads, JobObjects, Work int
}

func (r *Retention) defaults() {
	if r.UploadTTL <= 0 {
		r.UploadTTL = DefaultUploadTTL
	}
	if r.WorkTTL <= 0 {
		r.WorkTTL = DefaultWorkTTL
	}
	if r.ObjectTTL <= 0 {
		r.ObjectTTL = 37 * 24 * time.Hour
	}
	if r.Interval <= 0 {
		r.Interval = DefaultSweepInterval
	}
	if r.Now == nil {
		r.Now = time.Now
	}
	if r.Log == nil {
		r.Log = logrus.StandardLogger()
	}
}

// Run sweeps now and every Interval until ctx ends; a failed sweep is logged and tried
// again at the next tick. It returns nil when ctx ends.
func (r *Retention) Run(ctx context.Context) error {
	r.defaults()
	t := time.NewTicker(r.Interval)
	defer t.Stop()
	for {
		s, err := r.Sweep(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			r.Log.WithError(err).Warn("retention sweep failed; trying again at the next interval")
		case err == nil && s.Uploads+s.JobObjects+s.Work > 0:
			r.Log.WithFields(logrus.Fields{"uploads": s.Uploads, "job_objects": s.JobObjects, "work": s.Work}).Info("retention: deleted unreachable objects")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Sweep runs one pass.
func (r *Retention) Sweep(ctx context.Context) (Swept, error) {
	r.defaults()
	var s Swept
	now := r.Now()
	objs, err := r.Blobs.List(ctx, schemas.UploadPrefix)
	if err != nil {
		return s, fmt.Errorf("retention: list uploads: %w", err)
	}
	for _, o := range objs {
		if now.Sub(o.ModTime) < r.UploadTTL {
			continue
		}
		if err := r.Blobs.Delete(ctx, o.Key); err != nil {
			return s, fmt.Errorf("retention: delete %s: %w", o.Key, err)
		}
		s.Uploads++
	}
	records := map[string]*schemas.JobRecord{} // nil: no record
	record := func(id string) (*schemas.JobRecord, error) {
		if rec, ok := records[id]; ok {
			return rec, nil
		}
		rec, err := r.Jobs.Get(ctx, id)
		if errors.Is(err, jobs.ErrNotFound) {
			rec, err = nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("retention: job %s: %w", id, err)
		}
		records[id] = rec
		return rec, nil
	}
	for _, prefix := range []string{"inputs/", "results/", "work/"} {
		objs, err := r.Blobs.List(ctx, prefix)
		if err != nil {
			return s, fmt.Errorf("retention: list %s: %w", prefix, err)
		}
		for _, o := range objs {
			id := objectJob(o.Key)
			if id == "" {
				continue
			}
			ttl := r.ObjectTTL
			if prefix == "work/" {
				ttl = r.WorkTTL
			}
			if now.Sub(o.ModTime) < ttl {
				continue
			}
			rec, err := record(id)
			if err != nil {
				return s, err
			}
			if rec != nil && (prefix != "work/" || !rec.Status.Final()) {
				continue
			}
			if err := r.Blobs.Delete(ctx, o.Key); err != nil {
				return s, fmt.Errorf("retention: delete %s: %w", o.Key, err)
			}
			if prefix == "work/" {
				s.Work++
			} else {
				s.JobObjects++
			}
		}
	}
	return s, nil
}

// objectJob returns the job id in an object key of a job ("" for other keys).
func objectJob(key string) string {
	parts := strings.SplitN(key, "/", 4)
	switch {
	case len(parts) >= 4 && (parts[0] == "inputs" || parts[0] == "results"):
		return parts[2]
	case len(parts) >= 3 && parts[0] == "work":
		return parts[1]
	}
	return ""
}
