// Package postprocess turns model outputs back into images: for background removal it
// scales the mask to the original size as the manifest's output section says, cuts the
// subject out, and writes the cut-out, the mask and a thumbnail; for OCR it draws the
// text boxes over the input. Image results are written in the input's colour profile
// (embedded) or in sRGB (tagged), as the job's color parameter says, and in the file
// format its format, quality and background parameters say (Encode: PNG by default,
// JPEG flattened onto the background, or WebP); masks and OCR overlays are always
// PNG, thumbnails and OCR overlays always sRGB.
package postprocess

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"io"

	"github.com/creativeai-studio/studio/internal/blob"
	"github.com/creativeai-studio/studio/internal/colour"
	"github.com/creativeai-studio/studio/internal/imageio"
	"github.com/creativeai-studio/studio/internal/models"
	"github.com/creativeai-studio/studio/internal/ocr"
	"github.com/creativeai-studio/studio/processors"
	"github.com/creativeai-studio/studio/processors/artifact"
	"github.com/creativeai-studio/studio/schemas"
)

// ThumbnailSide is the longest side of result thumbnails.
const ThumbnailSide = 256

// Step is the postprocess stage. Safe for concurrent use.
type Step struct {
	Blobs   blob.Store
	Catalog *models.Catalog
	Limits  imageio.Limits
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
		case schemas.TaskUpscale, schemas.TaskStyleTransfer:
			errs[i] = s.imageToImage(ctx, ev)
		case schemas.TaskOCR:
			errs[i] = s.ocr(ctx, ev)
		case schemas.TaskGenerate:
			errs[i] = s.generate(ctx, ev)
		default:
			errs[i] = processors.Permanent(schemas.StagePostprocess, processors.CodeBadEvent, "no postprocessing for task %q", ev.Task)
		}
	}
	return errs
}

func (s *Step) removeBackground(ctx context.Context, ev *schemas.JobEvent) error {
	spec, err := s.Catalog.Get(ev.Model, ev.ModelVersion)
	if err != nil {
		return processors.Permanent(schemas.StagePostprocess, processors.CodeModelUnavailable, "%v", err)
	}
	format, err := outputFormat(ev)
	if err != nil {
		return err
	}
	out, err := s.output(ctx, ev, spec)
	if err != nil {
		return err
	}
	mask, err := MaskFromPixels(out)
	if err != nil {
		return processors.Permanent(schemas.StagePostprocess, processors.CodeInferenceFailed, "%v", err)
	}
	img, hdr, err := artifact.LoadDecoded(ctx, s.Blobs, ev, s.Limits)
	if err != nil {
		return err
	}
	w, h, o := img.Bounds().Dx(), img.Bounds().Dy(), 1
	if spec.Input.Orientation == "stored" {
		// The model saw the pixels as stored: scale the mask to that size, then
		// turn it upright with the image.
		if o = hdr.Orientation; imageio.SwapsAxes(o) {
			w, h = h, w
		}
	}
	full := imageio.OrientGray(ScaleMask(mask, w, h, spec.Output.Resampling()), o)
	if t, ok := ev.Params["threshold"].(float64); ok && t > 0 && t < 1 {
		Threshold(full, t)
	}
	cut := Cutout(img, full)

	if err := s.putImage(ctx, ev, "cutout", cut, format, OutputProfile(ev.Params, hdr.Profile)); err != nil {
		return err
	}
	if err := s.put(ctx, ev, "mask", full, pngOut.Ext(), pngOut.ContentType(), imageio.EncodePNG); err != nil {
		return err
	}
	return s.putImage(ctx, ev, "thumbnail", imageio.Thumbnail(cut, ThumbnailSide), format, nil)
}

// OutputProfile returns the colour profile a result is written in: the
// input's own (params color=keep, the default) when it has one that PNG can
// hold, or nil for sRGB (color=srgb, an untagged input, or a CMYK input:
// PNG has no CMYK).
func OutputProfile(params map[string]any, input *colour.Profile) *colour.Profile {
	if input == nil || params["color"] == schemas.ColorSRGB || input.Space() == colour.SpaceCMYK {
		return nil
	}
	return input
}

// putImage stores the sRGB image img as the job's output format says (Encode):
// flattened onto a background where that applies, in profile's colour space with
// the profile embedded or, for a nil profile, in sRGB. img itself is not changed.
func (s *Step) putImage(ctx context.Context, ev *schemas.JobEvent, name string, img *image.NRGBA, out schemas.OutputFormat, profile *colour.Profile) error {
	return s.put(ctx, ev, name, img, out.Ext(), out.ContentType(), func(w io.Writer, im image.Image) error {
		if err := Encode(w, img, out, profile); err != nil {
			return processors.Permanent(schemas.StagePostprocess, processors.CodeInvalidImage, "write the %s: %v", name, err)
		}
		return nil
	})
}

// outputFormat reads the job's format, quality and background parameters.
func outputFormat(ev *schemas.JobEvent) (schemas.OutputFormat, error) {
	out, err := schemas.OutputFormatOf(ev.Params)
	if err != nil {
		return out, processors.Permanent(schemas.StagePostprocess, processors.CodeInvalidParams, "%v", err)
	}
	return out, nil
}

// pngOut is the output format of results that are always PNG: masks and OCR overlays.
var pngOut = schemas.OutputFormat{Format: schemas.FormatPNG}

// ocr draws the boxes of the lines the inference stage read over the input (the
// "overlay" result, with a thumbnail); the lines themselves ("text") are already a
// result.
func (s *Step) ocr(ctx context.Context, ev *schemas.JobEvent) error {
	ref, ok := ev.Artifacts["text"]
	if !ok {
		return processors.Permanent(schemas.StagePostprocess, processors.CodeBadEvent, "ocr event has no text")
	}
	res, err := artifact.GetOCR(ctx, s.Blobs, ref)
	switch {
	case errors.Is(err, blob.ErrNotFound):
		return processors.Permanent(schemas.StagePostprocess, processors.CodeMissingObject, "OCR result is gone: %v", err)
	case err != nil:
		return err
	}
	img, _, err := artifact.LoadImage(ctx, s.Blobs, ev.Input, s.Limits)
	if err != nil {
		return err
	}
	over := ocr.Overlay(img, res.Lines)
	if err := s.putImage(ctx, ev, "overlay", over, pngOut, nil); err != nil {
		return err
	}
	return s.putImage(ctx, ev, "thumbnail", imageio.Thumbnail(over, ThumbnailSide), pngOut, nil)
}

// put encodes im under work/<job>/<name><ext> and records it as an artifact of
// content type ctype.
func (s *Step) put(ctx context.Context, ev *schemas.JobEvent, name string, im image.Image, ext, ctype string, encode func(io.Writer, image.Image) error) error {
	var buf bytes.Buffer
	if err := encode(&buf, im); err != nil {
		return fmt.Errorf("encode %s: %w", name, err)
	}
	key := "work/" + ev.JobID + "/" + name + ext
	ref, err := artifact.Put(ctx, s.Blobs, key, buf.Bytes(), ctype)
	if err != nil {
		return err
	}
	b := im.Bounds()
	ref.ContentType, ref.Width, ref.Height = ctype, b.Dx(), b.Dy()
	ev.Artifacts[name] = ref
	return nil
}

// imageToImage turns an image-shaped model output into the result image: it undoes
// the normalisation, brings the image to the size the job asked for (input x scale
// parameter for upscaling, the input size for style transfer), and carries the input's
// alpha channel over.
func (s *Step) imageToImage(ctx context.Context, ev *schemas.JobEvent) error {
	spec, err := s.Catalog.Get(ev.Model, ev.ModelVersion)
	if err != nil {
		return processors.Permanent(schemas.StagePostprocess, processors.CodeModelUnavailable, "%v", err)
	}
	format, err := outputFormat(ev)
	if err != nil {
		return err
	}
	out, err := s.output(ctx, ev, spec)
	if err != nil {
		return err
	}
	img, err := ImageFromPixels(out, spec.Output)
	if err != nil {
		return processors.Permanent(schemas.StagePostprocess, processors.CodeInferenceFailed, "%v", err)
	}
	src, hdr, err := artifact.LoadDecoded(ctx, s.Blobs, ev, s.Limits)
	if err != nil {
		return err
	}
	w, h := src.Bounds().Dx(), src.Bounds().Dy()
	factor := 1
	if ev.Task == schemas.TaskUpscale {
		factor = spec.Scale
		if v, ok := ev.Params["scale"].(float64); ok && int(v) > 0 && int(v) <= spec.Scale {
			factor = int(v)
		}
	}
	w, h = w*factor, h*factor
	if b := img.Bounds(); b.Dx() != w || b.Dy() != h {
		img = imageio.Resize(img, w, h)
	}
	if hasAlpha(src) {
		alpha := imageio.ResizeBilinear(src, w, h)
		for i := 3; i < len(img.Pix); i += 4 {
			img.Pix[i] = alpha.Pix[i]
		}
	}
	if err := s.putImage(ctx, ev, "image", img, format, OutputProfile(ev.Params, hdr.Profile)); err != nil {
		return err
	}
	return s.putImage(ctx, ev, "thumbnail", imageio.Thumbnail(img, ThumbnailSide), format, nil)
}

// output loads the event's model output as 8-bit pixels.
func (s *Step) output(ctx context.Context, ev *schemas.JobEvent, spec models.Spec) (artifact.Pixels, error) {
	ref, ok := ev.Artifacts["output"]
	if !ok {
		return artifact.Pixels{}, processors.Permanent(schemas.StagePostprocess, processors.CodeBadEvent, "event has no model output")
	}
	px, err := artifact.LoadOutput(ctx, s.Blobs, ref, spec.Output)
	switch {
	case errors.Is(err, blob.ErrNotFound):
		return px, processors.Permanent(schemas.StagePostprocess, processors.CodeMissingObject, "model output is gone: %v", err)
	case err != nil && ref.DType != artifact.DTypeUint8 && ref.DType != artifact.DTypeFloat32:
		return px, processors.Permanent(schemas.StagePostprocess, processors.CodeBadEvent, "%v", err)
	}
	return px, err
}

// FromTensor converts a [1,3,H,W] model output into an opaque image, undoing
// (v-mean)/std.
func FromTensor(t artifact.Tensor, spec models.Tensor) (*image.NRGBA, error) {
	px, err := artifact.Quantize(t, spec)
	if err != nil {
		return nil, err
	}
	return ImageFromPixels(px, spec)
}

// ImageFromPixels interleaves [1,3,H,W] planes, in the spec's colour order, into an
// opaque image.
func ImageFromPixels(p artifact.Pixels, spec models.Tensor) (*image.NRGBA, error) {
	if len(p.Shape) != 4 || p.Shape[0] != 1 || p.Shape[1] != 3 || artifact.Elements(p.Shape) != int64(len(p.Data)) {
		return nil, fmt.Errorf("image output has shape %v with %d values, want [1,3,H,W]", p.Shape, len(p.Data))
	}
	h, w := int(p.Shape[2]), int(p.Shape[3])
	plane := w * h
	r, g, b := p.Data[:plane], p.Data[plane:2*plane], p.Data[2*plane:]
	if spec.Color == "BGR" {
		r, b = b, r
	}
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	// One 32-bit store a pixel, over slices the compiler sees are long enough.
	r, g, b = r[:plane], g[:plane], b[:plane]
	pix := img.Pix[:4*plane]
	for i := range r {
		binary.LittleEndian.PutUint32(pix[4*i:], uint32(r[i])|uint32(g[i])<<8|uint32(b[i])<<16|0xff<<24)
	}
	return img, nil
}

func hasAlpha(img *image.NRGBA) bool {
	for i := 3; i < len(img.Pix); i += 4 {
		if img.Pix[i] != 255 {
			return true
		}
	}
	return false
}

// MaskFromTensor converts a [1,1,H,W] (or [1,H,W]) probability map in 0..1 into an
// 8-bit mask as spec.Quantize says (round or truncate), clamping values outside the
// range.
func MaskFromTensor(t artifact.Tensor, spec models.Tensor) (*image.Gray, error) {
	px, err := artifact.Quantize(t, spec)
	if err != nil {
		return nil, err
	}
	return MaskFromPixels(px)
}

// MaskFromPixels wraps a [1,1,H,W] 8-bit mask as an image without copying.
func MaskFromPixels(p artifact.Pixels) (*image.Gray, error) {
	if len(p.Shape) != 4 || p.Shape[0] != 1 || p.Shape[1] != 1 || artifact.Elements(p.Shape) != int64(len(p.Data)) {
		return nil, fmt.Errorf("mask output has shape %v with %d values, want [1,1,H,W]", p.Shape, len(p.Data))
	}
	h, w := int(p.Shape[2]), int(p.Shape[3])
	return &image.Gray{Pix: p.Data, Stride: w, Rect: image.Rect(0, 0, w, h)}, nil
}

// Threshold makes a mask binary: values at or above t (0..1) become opaque, the rest
// transparent. It trades soft hair and fur edges for crisp, predictable ones.
func Threshold(m *image.Gray, t float64) {
	cut := uint8(t*255 + 0.5)
	for i, v := range m.Pix {
		if v >= cut {
			m.Pix[i] = 255
		} else {
			m.Pix[i] = 0
		}
	}
}

// ScaleMask resizes a mask to w x h as r says (the manifest's output section:
// models.Tensor.Resampling). A mask that is already that size is returned as is.
func ScaleMask(m *image.Gray, w, h int, r imageio.Resampling) *image.Gray {
	if m.Bounds().Dx() == w && m.Bounds().Dy() == h {
		return m
	}
	return r.ResizeGray(m, w, h)
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
