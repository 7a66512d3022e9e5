package inference

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/creativeai-studio/studio/internal/blob"
	"github.com/creativeai-studio/studio/internal/models"
	"github.com/creativeai-studio/studio/internal/ocr"
	"github.com/creativeai-studio/studio/processors"
	"github.com/creativeai-studio/studio/processors/artifact"
	"github.com/creativeai-studio/studio/schemas"
)

// DefaultMinConfidence drops OCR lines read with less confidence when the job's
// min_confidence parameter is absent (PaddleOCR's drop_score).
const DefaultMinConfidence = 0.5

// ocr runs a text-reading job: the detector on the preprocessed tensor, then the angle
// classifier and the recogniser on the lines cut from the stored image (batches of
// ocr.BatchSize crops per call), each part on its own session pool. The lines go to
// object storage as the "text" artifact (schemas.OCRResult JSON).
func (s *Step) ocr(ctx context.Context, ev *schemas.JobEvent, spec models.Spec) error {
	detRef, ok := ev.Artifacts["tensor"]
	imgRef, ok2 := ev.Artifacts["image"]
	if !ok || !ok2 {
		return processors.Permanent(schemas.StageInference, processors.CodeBadEvent, "ocr event lacks its preprocessed tensor or image")
	}
	missing := func(what string, err error) error {
		if errors.Is(err, blob.ErrNotFound) {
			return processors.Permanent(schemas.StageInference, processors.CodeMissingObject, "preprocessed %s is gone: %v", what, err)
		}
		return err
	}
	x, err := artifact.LoadInput(ctx, s.Blobs, detRef, spec.Input)
	if err != nil {
		return missing("tensor", err)
	}
	px, err := artifact.GetPixels(ctx, s.Blobs, imgRef)
	if err != nil {
		return missing("image", err)
	}
	img, err := artifact.RGBImage(px)
	if err != nil {
		return processors.Permanent(schemas.StageInference, processors.CodeBadEvent, "preprocessed image: %v", err)
	}
	dict, err := s.dictionary(spec)
	if err != nil {
		return processors.Permanent(schemas.StageInference, processors.CodeModelUnavailable, "model %s: %v", spec.ID(), err)
	}
	model := func(role string) (ocr.Model, error) {
		part := spec
		if role != "" {
			if part, err = spec.Part(role); err != nil {
				return nil, err
			}
		}
		return func(ctx context.Context, x ocr.Tensor) (ocr.Tensor, error) {
			y, err := s.runPart(ctx, part, artifact.Tensor(x))
			return ocr.Tensor(y), err
		}, nil
	}
	r := &ocr.Reader{Dict: dict, MinConfidence: DefaultMinConfidence}
	if v, ok := ev.Params["min_confidence"].(float64); ok {
		r.MinConfidence = v
	}
	if r.Det, err = model(""); err != nil {
		return processors.Permanent(schemas.StageInference, processors.CodeModelUnavailable, "%v", err)
	}
	if r.Rec, err = model("rec"); err != nil {
		return processors.Permanent(schemas.StageInference, processors.CodeModelUnavailable, "%v", err)
	}
	if _, ok := spec.Parts["cls"]; ok {
		if r.Cls, err = model("cls"); err != nil {
			return processors.Permanent(schemas.StageInference, processors.CodeModelUnavailable, "%v", err)
		}
	}
	lines, err := r.Read(ctx, img, ocr.Tensor(x))
	if err != nil {
		var jerr *schemas.JobError
		if errors.As(err, &jerr) || ctx.Err() != nil {
			return err
		}
		// A model run that failed for a reason other than a timeout (kept transient
		// by runPart) or a malformed output is a permanent failure of this input.
		if !isTransient(err) {
			return processors.Permanent(schemas.StageInference, processors.CodeInferenceFailed, "model %s failed on this input: %v", spec.ID(), err)
		}
		return err
	}
	res := schemas.OCRResult{Schema: schemas.SchemaOCRResult, Width: img.Bounds().Dx(), Height: img.Bounds().Dy(), Lines: lines, Text: ocr.Join(lines)}
	ref, err := artifact.PutOCR(ctx, s.Blobs, "work/"+ev.JobID+"/text.json", res)
	if err != nil {
		return err
	}
	ev.Artifacts["text"] = ref
	return nil
}

// transientError marks a model run stopped by its deadline: retried, not failed.
type transientError struct{ error }

func (e transientError) Unwrap() error { return e.error }

func isTransient(err error) bool {
	var t transientError
	return errors.As(err, &t)
}

// runPart runs one of a multi-model task's models on a session from its pool, within
// the run timeout, and reports the run to the observer.
func (s *Step) runPart(ctx context.Context, spec models.Spec, x artifact.Tensor) (artifact.Tensor, error) {
	p, err := s.pool(spec)
	if err != nil {
		return artifact.Tensor{}, processors.Permanent(schemas.StageInference, processors.CodeModelUnavailable, "model %s cannot be loaded: %v", spec.ID(), err)
	}
	sess, err := p.acquire(ctx)
	if err != nil {
		return artifact.Tensor{}, err
	}
	defer p.release(sess)
	rctx, cancel := context.WithTimeout(ctx, s.runTimeout())
	defer cancel()
	start := time.Now()
	y, err := sess.Run(rctx, x)
	if err != nil {
		if rctx.Err() != nil {
			return artifact.Tensor{}, transientError{fmt.Errorf("model %s: %w", spec.ID(), err)}
		}
		return artifact.Tensor{}, err
	}
	if s.Observe != nil {
		s.Observe.InferenceRun(spec.Name, spec.Version, s.Backend.Device(), time.Since(start))
	}
	return y, nil
}

// dictionary returns the recogniser's dictionary of spec, read once per model version.
func (s *Step) dictionary(spec models.Spec) (*ocr.Dictionary, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d, ok := s.dicts[spec.ID()]; ok {
		return d, nil
	}
	path, err := spec.File("dict")
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open dictionary: %w (run `studio fetch models`)", err)
	}
	defer f.Close()
	d, err := ocr.ReadDictionary(f)
	if err != nil {
		return nil, err
	}
	if s.dicts == nil {
		s.dicts = map[string]*ocr.Dictionary{}
	}
	s.dicts[spec.ID()] = d
	return d, nil
}
