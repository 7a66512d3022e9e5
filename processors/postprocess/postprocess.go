// Package postprocess turns model outputs back into images: for background removal it
// scales the mask to the original size, cuts the subject out as an RGBA PNG, and writes
// the mask and a thumbnail.
package postprocess

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"

	"github.com/creativeai-studio/studio/internal/blob"
	"github.com/creativeai-studio/studio/internal/imageio"
	"github.com/creativeai-studio/studio/processors"
	"github.com/creativeai-studio/studio/processors/inference"
	"github.com/creativeai-studio/studio/processors/preprocess"
	"github.com/creativeai-studio/studio/schemas"
)

// ThumbnailSide is the longest side of result thumbnails.
const ThumbnailSide = 256

// Step is the postprocess stage. Safe for concurrent use.
type Step struct {
	Blobs  blob.Store
	Limits imageio.Limits
}

var _ processors.Step = (*Step)(nil)

// Stage implements processors.Step.
func (s *Step) Stage() schemas.Stage { return schemas.StagePostprocess }

// Process implements processors.Step.
func (s *Step) Process(ctx context.Context, batch []*schemas.JobEvent) []error {
	errs := make([]error, len(batch))
	for i, ev := range batch {
		switch ev.Task {
		case schemas.TaskRemoveBackground:
			errs[i] = s.removeBackground(ctx, ev)
		default:
			errs[i] = processors.Permanent(schemas.StagePostprocess, processors.CodeBadEvent, "no postprocessing for task %q", ev.Task)
		}
	}
	return errs
}

func (s *Step) removeBackground(ctx context.Context, ev *schemas.JobEvent) error {
	outRef, ok := ev.Artifacts["output"]
	if !ok {
		return processors.Permanent(schemas.StagePostprocess, processors.CodeBadEvent, "event has no model output")
	}
	out, err := inference.GetTensor(ctx, s.Blobs, outRef)
	if err != nil {
		if errors.Is(err, blob.ErrNotFound) {
			return processors.Permanent(schemas.StagePostprocess, processors.CodeMissingObject, "model output is gone: %v", err)
		}
		return err
	}
	mask, err := MaskFromTensor(out)
	if err != nil {
		return processors.Permanent(schemas.StagePostprocess, processors.CodeInferenceFailed, "%v", err)
	}
	img, _, err := preprocess.LoadImage(ctx, s.Blobs, ev.Input, s.Limits)
	if err != nil {
		return err
	}
	full := ScaleMask(mask, img.Bounds().Dx(), img.Bounds().Dy())
	cut := Cutout(img, full)

	put := func(name string, im image.Image) error {
		var buf bytes.Buffer
		if err := imageio.EncodePNG(&buf, im); err != nil {
			return fmt.Errorf("encode %s: %w", name, err)
		}
		key := "work/" + ev.JobID + "/" + name + ".png"
		info, err := s.Blobs.Put(ctx, key, &buf, int64(buf.Len()), "image/png")
		if err != nil {
			return err
		}
		b := im.Bounds()
		ev.Artifacts[name] = schemas.ObjectRef{Key: key, Size: info.Size, SHA256: info.SHA256, ContentType: "image/png", Width: b.Dx(), Height: b.Dy()}
		return nil
	}
	if err := put("cutout", cut); err != nil {
		return err
	}
	if err := put("mask", full); err != nil {
		return err
	}
	return put("thumbnail", imageio.Thumbnail(cut, ThumbnailSide))
}

// MaskFromTensor converts a [1,1,H,W] (or [1,H,W]) probability map in 0..1 into an
// 8-bit mask, clamping values outside the range.
func MaskFromTensor(t inference.Tensor) (*image.Gray, error) {
	if len(t.Shape) < 2 {
		return nil, fmt.Errorf("mask tensor has shape %v, want [1,1,H,W]", t.Shape)
	}
	h, w := int(t.Shape[len(t.Shape)-2]), int(t.Shape[len(t.Shape)-1])
	if h <= 0 || w <= 0 || len(t.Data) < h*w {
		return nil, fmt.Errorf("mask tensor has shape %v with %d values", t.Shape, len(t.Data))
	}
	g := image.NewGray(image.Rect(0, 0, w, h))
	for i, v := range t.Data[:h*w] {
		g.Pix[i] = quantize(v)
	}
	return g, nil
}

func quantize(v float32) uint8 {
	switch {
	case !(v > 0): // also NaN
		return 0
	case v >= 1:
		return 255
	}
	return uint8(v*255 + 0.5)
}

// ScaleMask resizes a mask to w x h with bilinear filtering.
func ScaleMask(m *image.Gray, w, h int) *image.Gray {
	if m.Bounds().Dx() == w && m.Bounds().Dy() == h {
		return m
	}
	rgba := imageio.ResizeBilinear(m, w, h)
	g := image.NewGray(image.Rect(0, 0, w, h))
	for i := range w * h {
		g.Pix[i] = rgba.Pix[4*i]
	}
	return g
}

// Cutout returns img with the mask as its alpha channel.
func Cutout(img *image.NRGBA, mask *image.Gray) *image.NRGBA {
	b := img.Bounds()
	out := image.NewNRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	w := b.Dx()
	for y := range b.Dy() {
		src := img.Pix[y*img.Stride : y*img.Stride+4*w]
		dst := out.Pix[y*out.Stride : y*out.Stride+4*w]
		mrow := mask.Pix[y*mask.Stride : y*mask.Stride+w]
		for x := range w {
			dst[4*x], dst[4*x+1], dst[4*x+2] = src[4*x], src[4*x+1], src[4*x+2]
			dst[4*x+3] = uint8(uint16(mrow[x]) * uint16(src[4*x+3]) / 255)
		}
	}
	return out
}
