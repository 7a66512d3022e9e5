// Package preprocess is the first pipeline stage: it decodes the uploaded image by its
// sniffed type (never its name), refuses what is not a safe image, applies EXIF
// orientation (unless the manifest's input.orientation is stored), resizes as the
// manifest's input section states, and writes the model-ready tensor to object storage.
package preprocess

import (
	"context"
	"fmt"
	"image"

	"github.com/creativeai-studio/studio/internal/blob"
	"github.com/creativeai-studio/studio/internal/imageio"
	"github.com/creativeai-studio/studio/internal/models"
	"github.com/creativeai-studio/studio/internal/ocr"
	"github.com/creativeai-studio/studio/processors"
	"github.com/creativeai-studio/studio/processors/artifact"
	"github.com/creativeai-studio/studio/schemas"
)

// DefaultMaxOutputPixels bounds what an image-to-image model may produce (x4 of a
// 1024x1024 input): the float32 output tensor of 16 MP is 192 MB.
const DefaultMaxOutputPixels = 16 << 20

// Step is the preprocess stage. Safe for concurrent use.
type Step struct {
	Blobs   blob.Store
	Catalog *models.Catalog
	Limits  imageio.Limits
	// MaxOutputPixels bounds the model output of image-to-image tasks (default
	// DefaultMaxOutputPixels).
	MaxOutputPixels int64
}

var _ processors.Step = (*Step)(nil)

// Stage implements processors.Step.
func (s *Step) Stage() schemas.Stage { return schemas.StagePreprocess }

// Process implements processors.Step.
func (s *Step) Process(ctx context.Context, batch []*schemas.JobEvent) []error {
	errs := make([]error, len(batch))
	for i, ev := range batch {
		errs[i] = s.one(ctx, ev)
	}
	return errs
}

func (s *Step) one(ctx context.Context, ev *schemas.JobEvent) error {
	spec, err := s.Catalog.Get(ev.Model, ev.ModelVersion)
	if err != nil {
		return processors.Permanent(schemas.StagePreprocess, processors.CodeModelUnavailable, "%v", err)
	}
	if ev.Task == schemas.TaskGenerate {
		return s.generate(ctx, ev, spec)
	}
	img, hdr, err := artifact.LoadImage(ctx, s.Blobs, ev.Input, s.Limits)
	if err != nil {
		return err
	}
	ev.Image = &schemas.ImageInfo{Format: string(hdr.Format), Width: hdr.Width, Height: hdr.Height, Orientation: hdr.Orientation}
	if hdr.Profile != nil { // img is already sRGB; postprocess reads the profile again from the input
		ev.Image.ColorProfile = hdr.Profile.Name()
	}
	if err := CheckParams(ev.Task, ev.Params); err != nil {
		return err
	}
	if ev.Task == schemas.TaskOCR {
		return s.ocr(ctx, ev, img, spec)
	}
	upright := img
	if spec.Input.Orientation == "stored" {
		// The model's reference never rotates: it sees the pixels as stored, and
		// postprocess turns the result upright.
		img = imageio.Unorient(img, hdr.Orientation)
	}
	var px artifact.Pixels
	switch spec.Input.Resize {
	case "none":
		// The model takes any size (tiled if the manifest says so); only the output
		// must stay bounded.
		maxOut := s.MaxOutputPixels
		if maxOut <= 0 {
			maxOut = DefaultMaxOutputPixels
		}
		if out := int64(hdr.Width*spec.Scale) * int64(hdr.Height*spec.Scale); out > maxOut {
			return processors.Permanent(schemas.StagePreprocess, processors.CodeOutputTooLarge,
				"a %dx%d image becomes %dx%d (%d MP) at x%d, over the %d MP output limit: send an image of at most %d MP",
				hdr.Width, hdr.Height, hdr.Width*spec.Scale, hdr.Height*spec.Scale, out>>20, spec.Scale, maxOut>>20, maxOut/int64(spec.Scale*spec.Scale)>>20)
		}
		px = ToPixels(img, spec.Input)
	default:
		px = ResizeToPixels(img, spec.Input)
	}
	ref, err := artifact.PutPixels(ctx, s.Blobs, "work/"+ev.JobID+"/input.u8", px)
	if err != nil {
		return fmt.Errorf("store tensor: %w", err)
	}
	switch ev.Task {
	case schemas.TaskRemoveBackground, schemas.TaskUpscale, schemas.TaskStyleTransfer:
		// Postprocess composes its results with the input: hand the decoded pixels on
		// rather than decode the input twice.
		if err := artifact.PutDecoded(ctx, s.Blobs, ev, upright); err != nil {
			return err
		}
	}
	if ev.Artifacts == nil {
		ev.Artifacts = map[string]schemas.ObjectRef{}
	}
	ev.Artifacts["tensor"] = ref
	if spec.TakesStyle() {
		return s.style(ctx, ev, spec)
	}
	return nil
}

// style prepares the style image of an arbitrary-style job as the model's style input
// ("style"): decoded under the same limits as the content image, upright or as stored
// like the content, resized as the manifest's style section says.
func (s *Step) style(ctx context.Context, ev *schemas.JobEvent, spec models.Spec) error {
	if ev.Style == nil {
		return processors.Permanent(schemas.StagePreprocess, processors.CodeBadEvent,
			"model %s takes a style image and the job has none: submit it with a style image", spec.ID())
	}
	img, hdr, err := artifact.LoadImage(ctx, s.Blobs, *ev.Style, s.Limits)
	if err != nil {
		return err
	}
	if spec.Input.Orientation == "stored" {
		img = imageio.Unorient(img, hdr.Orientation)
	}
	st := *spec.Style
	var px artifact.Pixels
	if st.Resize != "none" {
		px = ResizeToPixels(img, st)
	} else {
		px = ToPixels(img, st)
	}
	ref, err := artifact.PutPixels(ctx, s.Blobs, "work/"+ev.JobID+"/style.u8", px)
	if err != nil {
		return fmt.Errorf("store style tensor: %w", err)
	}
	ev.Artifacts["style"] = ref
	return nil
}

// ocr stores what the OCR models need: the detector's input (the image resized as
// PaddleOCR's detector expects, see ocr.DetSize and ocr.ResizeLinear) as "tensor", and
// the upright image itself as "image", from which the inference stage cuts each text
// line at full resolution.
func (s *Step) ocr(ctx context.Context, ev *schemas.JobEvent, img *image.NRGBA, spec models.Spec) error {
	w, h := ocr.DetSize(img.Bounds().Dx(), img.Bounds().Dy(), ocr.DetLimitSide, ocr.DetMultiple)
	det, err := artifact.PutPixels(ctx, s.Blobs, "work/"+ev.JobID+"/input.u8", ToPixels(ocr.ResizeLinear(img, w, h), spec.Input))
	if err != nil {
		return fmt.Errorf("store detector input: %w", err)
	}
	full, err := artifact.PutPixels(ctx, s.Blobs, "work/"+ev.JobID+"/image.u8", artifact.RGBPixels(img))
	if err != nil {
		return fmt.Errorf("store image: %w", err)
	}
	if ev.Artifacts == nil {
		ev.Artifacts = map[string]schemas.ObjectRef{}
	}
	ev.Artifacts["tensor"], ev.Artifacts["image"] = det, full
	return nil
}

// CheckParams validates a task's parameters; a bad value is a permanent error.
func CheckParams(task schemas.Task, params map[string]any) error {
	if v, ok := params["color"]; ok && v != schemas.ColorKeep && v != schemas.ColorSRGB {
		return processors.Permanent(schemas.StagePreprocess, processors.CodeInvalidParams, "color %v: use %q or %q", v, schemas.ColorKeep, schemas.ColorSRGB)
	}
	if task == schemas.TaskUpscale {
		if v, ok := params["scale"]; ok {
			f, isNum := v.(float64)
			if !isNum || (f != 2 && f != 4) {
				return processors.Permanent(schemas.StagePreprocess, processors.CodeInvalidParams, "scale %v: use 2 or 4", v)
			}
		}
	}
	return nil
}

// ToPixels converts an image into [1,3,H,W] 8-bit channel planes in the spec's colour
// order (RGB, or reversed for BGR models). This is what preprocess stores: the inference
// stage normalises it with artifact.Normalize.
func ToPixels(img *image.NRGBA, spec models.Tensor) artifact.Pixels {
	w, h := img.Bounds().Dx(), img.Bounds().Dy()
	plane := w * h
	data := make([]byte, 3*plane)
	r, g, b := 0, plane, 2*plane
	if spec.Color == "BGR" {
		r, b = b, r
	}
	for y := range h {
		row := img.Pix[y*img.Stride : y*img.Stride+4*w]
		base := y * w
		for x := range w {
			p := row[4*x : 4*x+3 : 4*x+3]
			i := base + x
			data[r+i], data[g+i], data[b+i] = p[0], p[1], p[2]
		}
	}
	return artifact.Pixels{Shape: []int64{1, 3, int64(h), int64(w)}, Data: data}
}

// ResizeToPixels is ToPixels of the image resized to the spec's W x H with its
// Resampling, in one pass where the resampling allows (see
// imageio.Resampling.ResizePlanes): the same bytes, without the resized interleaved
// image between.
func ResizeToPixels(img *image.NRGBA, spec models.Tensor) artifact.Pixels {
	w, h := spec.W(), spec.H()
	plane := w * h
	data := make([]byte, 3*plane)
	r, g, b := data[:plane], data[plane:2*plane], data[2*plane:]
	if spec.Color == "BGR" {
		r, b = b, r
	}
	spec.Resampling().ResizePlanes(img, w, h, r, g, b)
	return artifact.Pixels{Shape: []int64{1, 3, int64(h), int64(w)}, Data: data}
}

// ToTensor converts an image into the model's [1,3,H,W] float32 input: ToPixels, then
// (v - mean) / std per channel, where mean and std are given for the image's R, G and B.
func ToTensor(img *image.NRGBA, spec models.Tensor) artifact.Tensor {
	t, err := artifact.Normalize(ToPixels(img, spec), spec)
	if err != nil {
		panic(err) // ToPixels always returns a [1,3,H,W] image
	}
	return t
}
