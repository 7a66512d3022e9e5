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
	rc, info, err := store.Get(ctx, ref.Key)
	if err != nil {
		if errors.Is(err, blob.ErrNotFound) {
			return nil, imageio.Header{}, processors.Permanent(schemas.StagePreprocess, processors.CodeMissingObject, "input image %s is gone", ref.Key)
		}
		return nil, imageio.Header{}, err
	}
	defer rc.Close()
	max := lim.MaxBytes
	if max <= 0 {
		max = imageio.DefaultLimits().MaxBytes
	}
	if info.Size > max {
		return nil, imageio.Header{}, processors.Permanent(schemas.StagePreprocess, processors.CodeImageTooLarge, "input is %d bytes, over the %d byte limit", info.Size, max)
	}
	data, err := io.ReadAll(io.LimitReader(rc, max+1))
	if err != nil {
		return nil, imageio.Header{}, fmt.Errorf("read input %s: %w", ref.Key, err)
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
