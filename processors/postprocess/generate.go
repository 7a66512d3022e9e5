package postprocess

import (
	"context"
	"fmt"
	"image"
	"slices"

	"github.com/creativeai-studio/studio/internal/imageio"
	"github.com/creativeai-studio/studio/processors"
	"github.com/creativeai-studio/studio/processors/artifact"
	"github.com/creativeai-studio/studio/schemas"
)

// GeneratedName is the result name of generated image k (0-based): "image" for the
// first, then "image-2", "image-3", ...
func GeneratedName(k int) string {
	if k == 0 {
		return "image"
	}
	return fmt.Sprintf("image-%d", k+1)
}

// generate encodes each generated image ([N,3,H,W] 8-bit planes from inference) in
// the job's output format and adds a thumbnail of the first.
func (s *Step) generate(ctx context.Context, ev *schemas.JobEvent) error {
	ref, ok := ev.Artifacts["output"]
	if !ok {
		return processors.Permanent(schemas.StagePostprocess, processors.CodeBadEvent, "event has no generated images")
	}
	px, err := artifact.GetPixels(ctx, s.Blobs, ref)
	if err != nil {
		return err
	}
	imgs, err := Generated(px)
	if err != nil {
		return processors.Permanent(schemas.StagePostprocess, processors.CodeInferenceFailed, "%v", err)
	}
	format, err := outputFormat(ev)
	if err != nil {
		return err
	}
	for k, img := range imgs {
		if err := s.putImage(ctx, ev, GeneratedName(k), img, format, nil); err != nil { // generated in sRGB, tagged so
			return err
		}
		markUnsafe(ev, k, GeneratedName(k))
	}
	if err := s.putImage(ctx, ev, "thumbnail", imageio.Thumbnail(imgs[0], ThumbnailSide), format, nil); err != nil {
		return err
	}
	markUnsafe(ev, 0, "thumbnail")
	return nil
}

// markUnsafe flags the result name, made from generated image k, when the safety
// checker flagged that image (JobEvent.Unsafe).
func markUnsafe(ev *schemas.JobEvent, k int, name string) {
	if !slices.Contains(ev.Unsafe, k) {
		return
	}
	ref := ev.Artifacts[name]
	ref.Flags = []string{schemas.FlagUnsafe}
	ev.Artifacts[name] = ref
}

// Generated splits [N,3,H,W] RGB planes into N opaque images.
func Generated(p artifact.Pixels) ([]*image.NRGBA, error) {
	if len(p.Shape) != 4 || p.Shape[0] < 1 || p.Shape[1] != 3 || artifact.Elements(p.Shape) != int64(len(p.Data)) {
		return nil, fmt.Errorf("generated images have shape %v with %d values, want [N,3,H,W]", p.Shape, len(p.Data))
	}
	n, h, w := int(p.Shape[0]), int(p.Shape[2]), int(p.Shape[3])
	plane := h * w
	out := make([]*image.NRGBA, n)
	for i := range n {
		img := image.NewNRGBA(image.Rect(0, 0, w, h))
		base := i * 3 * plane
		for k := range plane {
			img.Pix[4*k] = p.Data[base+k]
			img.Pix[4*k+1] = p.Data[base+plane+k]
			img.Pix[4*k+2] = p.Data[base+2*plane+k]
			img.Pix[4*k+3] = 255
		}
		out[i] = img
	}
	return out, nil
}
