// Package store is the last pipeline stage: it promotes a job's results from the
// scratch area (work/<job>/) to their final keys (results/<tenant>/<job>/), lets the
// handler mark the job succeeded and publish the result, and then removes the scratch
// objects (Finished).
package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/creativeai-studio/studio/internal/blob"
	"github.com/creativeai-studio/studio/internal/jobs"
	"github.com/creativeai-studio/studio/processors"
	"github.com/creativeai-studio/studio/processors/artifact"
	"github.com/creativeai-studio/studio/schemas"
)

// ResultNames are the artifacts kept as results, per task.
var ResultNames = map[schemas.Task][]string{
	schemas.TaskRemoveBackground: {"cutout", "mask", "thumbnail"},
	schemas.TaskUpscale:          {"image", "thumbnail"},
	schemas.TaskStyleTransfer:    {"image", "thumbnail"},
	schemas.TaskOCR:              {"text", "overlay", "thumbnail"},
	// generate also keeps "image-2" ... "image-N" when a job asked for several images.
	schemas.TaskGenerate: {"image", "thumbnail"},
}

// Step is the store stage. Safe for concurrent use.
type Step struct {
	Blobs blob.Store
	// Cache, when set, remembers the results so an identical request completes at
	// ingest without inference.
	Cache *jobs.Cache
}

var (
	_ processors.Step     = (*Step)(nil)
	_ processors.Finisher = (*Step)(nil)
)

// Stage implements processors.Step.
func (s *Step) Stage() schemas.Stage { return schemas.StageStore }

// Process implements processors.Step.
func (s *Step) Process(ctx context.Context, batch []*schemas.JobEvent) []error {
	errs := make([]error, len(batch))
	for i, ev := range batch {
		errs[i] = s.one(ctx, ev)
	}
	return errs
}

// ResultKey is where a job's named result lives.
func ResultKey(tenant, jobID, name, ext string) string {
	return "results/" + tenant + "/" + jobID + "/" + name + ext
}

func (s *Step) one(ctx context.Context, ev *schemas.JobEvent) error {
	names, ok := ResultNames[ev.Task]
	if !ok {
		return processors.Permanent(schemas.StageStore, processors.CodeBadEvent, "no results defined for task %q", ev.Task)
	}
	if ev.Task == schemas.TaskGenerate {
		names = append(slices.Clone(names), extraImages(ev.Artifacts)...)
	}
	chained := len(ev.Chain) > 0
	if chained && ev.ChainStep >= len(ev.Chain) {
		return processors.Permanent(schemas.StageStore, processors.CodeBadEvent, "chain step %d of %d does not exist", ev.ChainStep, len(ev.Chain))
	}
	final := make(map[string]schemas.ObjectRef, len(names))
	plain := make(map[string]schemas.ObjectRef, len(names)) // by task output name, for the cache
	for _, name := range names {
		src, ok := ev.Artifacts[name]
		if !ok {
			if ref, done := ev.Artifacts[schemas.StepResultName(ev.ChainStep, ev.Task, name)]; chained && done {
				// A redelivery after the step's results were promoted and renamed.
				final[schemas.StepResultName(ev.ChainStep, ev.Task, name)], plain[name] = ref, ref
				continue
			}
			return processors.Permanent(schemas.StageStore, processors.CodeBadEvent, "event lacks result %q", name)
		}
		dst := src
		dst.Inline = nil // results are stored, never carried
		// A chained job keeps every step's outputs, named for the step.
		outName := name
		if chained {
			outName = schemas.StepResultName(ev.ChainStep, ev.Task, name)
		}
		dst.Key = ResultKey(ev.Tenant, ev.JobID, outName, ext(src.Key))
		plain[name] = dst
		// A redelivery finds the result already promoted (and the scratch copy gone).
		if info, err := s.Blobs.Stat(ctx, dst.Key); err == nil && info.SHA256 == src.SHA256 {
			final[outName] = dst
			continue
		}
		if err := promote(ctx, s.Blobs, src, dst.Key); err != nil {
			if errors.Is(err, blob.ErrNotFound) {
				return processors.Permanent(schemas.StageStore, processors.CodeMissingObject, "result %q is gone: %v", name, err)
			}
			return err
		}
		final[outName] = dst
	}
	// The scratch objects stay until the record says succeeded (Finished): a stale
	// redelivery of an earlier stage may still read them until then.
	ev.Artifacts = final
	now := time.Now().UTC()
	if s.Cache != nil && !ev.Shadow { // a shadow run answers no one's request
		input := ev.Input.SHA256
		if ev.Style != nil {
			input += "+" + ev.Style.SHA256 // as ingest looks it up: another style, another picture
		}
		key := jobs.CacheKey(ev.Tenant, input, ev.Task, ev.Model, ev.ModelVersion, ev.Params)
		if err := s.Cache.Put(ctx, key, jobs.CacheEntry{JobID: ev.JobID, User: ev.User, Results: plain, Stored: now}); err != nil {
			return err
		}
	}
	if chained {
		s.advance(ctx, ev, final, now)
	}
	return nil
}

// Finished implements processors.Finisher: once the job's record says succeeded it
// deletes the job's scratch objects. Every scratch object of the job is one of the
// artifacts its event carried, so they are deleted by key: listing the bucket would cost
// O(objects in the store) per job. Deleting a key already gone is no error.
func (s *Step) Finished(ctx context.Context, ev *schemas.JobEvent, inputs map[string]schemas.ObjectRef) error {
	var errs []error
	for _, ref := range inputs {
		if artifact.Stored(ref) && strings.HasPrefix(ref.Key, "work/"+ev.JobID+"/") {
			if err := s.Blobs.Delete(ctx, ref.Key); err != nil {
				errs = append(errs, fmt.Errorf("delete scratch %s: %w", ref.Key, err))
			}
		}
	}
	return errors.Join(errs...)
}

// advance records a chain step's outputs in ev.Chain and answers the following steps
// from the cache where it can; the handler then hands the job to the first step left
// (or finishes it, with every step's results).
func (s *Step) advance(ctx context.Context, ev *schemas.JobEvent, final map[string]schemas.ObjectRef, now time.Time) {
	chain := slices.Clone(ev.Chain)
	st := &chain[ev.ChainStep]
	if st.Status != schemas.StatusSucceeded {
		st.Status, st.FinishedAt = schemas.StatusSucceeded, now
	}
	st.Results, st.ModelVersion = final, ev.ModelVersion
	if s.Cache != nil && ev.Style == nil && ev.ChainStep+1 < len(chain) { // a style image is not part of SkipSteps' keys
		if in, ok := schemas.StepInput(chain, ev.ChainStep+1); ok {
			stat := func(ctx context.Context, key string) error { _, err := s.Blobs.Stat(ctx, key); return err }
			s.Cache.SkipSteps(ctx, stat, ev.Tenant, chain, ev.ChainStep+1, in, now)
		}
	}
	ev.Chain = chain
	if schemas.NextStep(chain) == len(chain) {
		ev.Artifacts = schemas.ChainResults(chain)
	}
}

// promote stores the result src under dst: its inline bytes (see artifact.InlineMax),
// or a copy of the scratch object.
func promote(ctx context.Context, bs blob.Store, src schemas.ObjectRef, dst string) error {
	if artifact.Stored(src) {
		return Copy(ctx, bs, src.Key, dst, src.ContentType)
	}
	if err := artifact.CheckInline(src); err != nil {
		return processors.Permanent(schemas.StageStore, processors.CodeBadEvent, "%v", err)
	}
	out, err := bs.Put(ctx, dst, blob.NewBytesReader(src.Inline), src.Size, src.ContentType)
	if err != nil {
		return fmt.Errorf("store %s: %w", dst, err)
	}
	if out.SHA256 != src.SHA256 {
		return fmt.Errorf("store %s: digest changed (%s -> %s)", dst, src.SHA256, out.SHA256)
	}
	return nil
}

// Copy streams src to dst within one store and checks the digest survived.
func Copy(ctx context.Context, bs blob.Store, src, dst, contentType string) error {
	rc, info, err := bs.Get(ctx, src)
	if err != nil {
		return err
	}
	defer rc.Close()
	out, err := bs.Put(ctx, dst, rc, info.Size, contentType)
	if err != nil {
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	if info.SHA256 != "" && out.SHA256 != info.SHA256 {
		return fmt.Errorf("copy %s to %s: digest changed (%s -> %s)", src, dst, info.SHA256, out.SHA256)
	}
	return nil
}

func ext(key string) string {
	if i := strings.LastIndexByte(key, '.'); i >= 0 && !strings.Contains(key[i:], "/") {
		return key[i:]
	}
	return ""
}

// extraImages are the "image-<k>" artifacts of a generate job that asked for several
// images, in order.
func extraImages(artifacts map[string]schemas.ObjectRef) []string {
	var out []string
	for name := range artifacts {
		if strings.HasPrefix(name, "image-") {
			out = append(out, name)
		}
	}
	slices.SortFunc(out, func(a, b string) int { return cmp.Compare(len(a), len(b))*2 + cmp.Compare(a, b) })
	return out
}
