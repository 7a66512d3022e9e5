package artifact

import (
	"context"
	"errors"
	"fmt"
	"image"
	"io"

	"github.com/creativeai-studio/studio/internal/blob"
	"github.com/creativeai-studio/studio/internal/imageio"
	"github.com/creativeai-studio/studio/processors"
	"github.com/creativeai-studio/studio/schemas"
)

// LoadImage reads the object ref points at and decodes it upright. Image problems are
// permanent job errors with a stable code; storage problems are returned as they are
// (retried), and so is a decode that ctx stopped (see imageio.DecodeContext).
func LoadImage(ctx context.Context, store blob.Store, ref schemas.ObjectRef, lim imageio.Limits) (*image.NRGBA, imageio.Header, error) {
	data, err := readInput(ctx, store, ref, lim)
	if err != nil {
		return nil, imageio.Header{}, err
	}
	img, hdr, err := imageio.DecodeContext(ctx, data, lim)
	if err != nil && ctx.Err() != nil {
		// Stopped by the stage's deadline or a shutdown: the handler decides (see
		// processors.Stage.Deadline), not the image's classification.
		return nil, imageio.Header{}, fmt.Errorf("decode input %s: %w", ref.Key, err)
	}
	if err != nil {
		return nil, imageio.Header{}, Classify(err)
	}
	return img, hdr, nil
}

// readInput reads the input image's bytes, refusing more than lim.MaxBytes.
func readInput(ctx context.Context, store blob.Store, ref schemas.ObjectRef, lim imageio.Limits) ([]byte, error) {
	rc, info, err := Open(ctx, store, ref)
	if err != nil {
		if errors.Is(err, blob.ErrNotFound) {
			return nil, processors.Permanent(schemas.StagePreprocess, processors.CodeMissingObject, "input image %s is gone", ref.Key)
		}
		return nil, err
	}
	defer rc.Close()
	max := lim.MaxBytes
	if max <= 0 {
		max = imageio.DefaultLimits().MaxBytes
	}
	if info.Size > max {
		return nil, processors.Permanent(schemas.StagePreprocess, processors.CodeImageTooLarge, "input is %d bytes, over the %d byte limit", info.Size, max)
	}
	data, err := io.ReadAll(io.LimitReader(rc, max+1))
	if err != nil {
		return nil, fmt.Errorf("read input %s: %w", ref.Key, err)
	}
	return data, nil
}

// Decoded is the artifact name of the upright decoded input that preprocess hands on
// to postprocess (PutDecoded), so the input is decoded once per job.
const Decoded = "decoded"

// MaxDecodedPixels bounds the images whose decoded pixels are handed on: 4 bytes a
// pixel in object storage, 16 MiB at most. Larger inputs are decoded again.
const MaxDecodedPixels = 4 << 20

// PutDecoded stores img, the upright decoded input, as its raw NRGBA bytes ([1,H,W,4]
// uint8) under work/<job>/decoded.u8 and records it as the Decoded artifact. An image
// over MaxDecodedPixels is not stored and the event is left as it is.
func PutDecoded(ctx context.Context, store blob.Store, ev *schemas.JobEvent, img *image.NRGBA) error {
	w, h := img.Rect.Dx(), img.Rect.Dy()
	if int64(w)*int64(h) > MaxDecodedPixels || w == 0 || h == 0 {
		return nil
	}
	pix := img.Pix
	if img.Stride != 4*w || len(pix) != 4*w*h {
		pix = imageio.ToNRGBA(img).Pix
	}
	ref, err := PutPixels(ctx, store, "work/"+ev.JobID+"/decoded.u8", Pixels{Shape: []int64{1, int64(h), int64(w), 4}, Data: pix})
	if err != nil {
		return fmt.Errorf("store decoded input: %w", err)
	}
	if ev.Artifacts == nil {
		ev.Artifacts = map[string]schemas.ObjectRef{}
	}
	ev.Artifacts[Decoded] = ref
	return nil
}

// LoadDecoded is LoadImage of ev.Input that takes the pixels from the event's Decoded
// artifact when it has one of the input's size, reading only the input's header (its
// orientation and colour profile); otherwise it decodes the input.
func LoadDecoded(ctx context.Context, store blob.Store, ev *schemas.JobEvent, lim imageio.Limits) (*image.NRGBA, imageio.Header, error) {
	ref, ok := ev.Artifacts[Decoded]
	if !ok || len(ref.Shape) != 4 || ref.Shape[0] != 1 || ref.Shape[3] != 4 {
		return LoadImage(ctx, store, ev.Input, lim)
	}
	data, err := readInput(ctx, store, ev.Input, lim)
	if err != nil {
		return nil, imageio.Header{}, err
	}
	hdr, err := imageio.Inspect(data, lim)
	if err != nil {
		return nil, imageio.Header{}, Classify(err)
	}
	if int64(hdr.Width) != ref.Shape[2] || int64(hdr.Height) != ref.Shape[1] {
		return LoadImage(ctx, store, ev.Input, lim)
	}
	px, err := GetPixels(ctx, store, ref)
	if err != nil {
		if ctx.Err() != nil {
			return nil, imageio.Header{}, err
		}
		// Gone (a redelivery after cleanup) or not what it claims: decode instead.
		return LoadImage(ctx, store, ev.Input, lim)
	}
	img := &image.NRGBA{Pix: px.Data, Stride: 4 * hdr.Width, Rect: image.Rect(0, 0, hdr.Width, hdr.Height)}
	return img, hdr, nil
}

// Classify maps an imageio error to a permanent job error with a stable code.
func Classify(err error) error {
	code := processors.CodeInvalidImage
	switch {
	case errors.Is(err, imageio.ErrNotImage):
		code = processors.CodeNotAnImage
	case errors.Is(err, imageio.ErrEmpty):
		code = processors.CodeEmptyImage
	case errors.Is(err, imageio.ErrUnsupportedFormat):
		code = processors.CodeUnsupportedImage
	case errors.Is(err, imageio.ErrTooLarge):
		code = processors.CodeImageTooLarge
	case errors.Is(err, imageio.ErrCorrupt):
		code = processors.CodeCorruptImage
	}
	return processors.Permanent(schemas.StagePreprocess, code, "%v", err)
}
