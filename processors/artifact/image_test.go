package artifact_test

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/png"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/internal/blob/natsobj"
	"github.com/creativeai-studio/studio/internal/imageio"
	"github.com/creativeai-studio/studio/processors/artifact"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

// TestLoadDecodedHandsOnWhatLoadImageDecodes stores a decoded input the way preprocess
// does and checks that postprocess's LoadDecoded returns LoadImage's pixels and header
// from it, and decodes the input itself when the stored pixels are missing, gone or of
// another size.
func TestLoadDecodedHandsOnWhatLoadImageDecodes(t *testing.T) {
	ctx := context.Background()
	s := streamstest.Start(t)
	store, err := natsobj.Open(ctx, s.JS, natsobj.Bucket)
	require.NoError(t, err)

	// 30x20: its decoded pixels (2,400 bytes) are over InlineMax, so they are stored.
	src := image.NewNRGBA(image.Rect(0, 0, 30, 20))
	for i := range src.Pix {
		src.Pix[i] = byte(i * 37)
	}
	src.SetNRGBA(3, 2, color.NRGBA{10, 20, 30, 0}) // a transparent pixel keeps its colour
	var buf bytes.Buffer
	require.NoError(t, png.Encode(&buf, src))
	info, err := store.Put(ctx, "inputs/a.png", bytes.NewReader(buf.Bytes()), int64(buf.Len()), "image/png")
	require.NoError(t, err)
	input := schemas.ObjectRef{Key: "inputs/a.png", Size: info.Size, SHA256: info.SHA256}

	want, wantHdr, err := artifact.LoadImage(ctx, store, input, imageio.Limits{})
	require.NoError(t, err)

	ev := &schemas.JobEvent{JobID: "j1", Input: input}
	got, hdr, err := artifact.LoadDecoded(ctx, store, ev, imageio.Limits{})
	require.NoError(t, err, "without the artifact it decodes")
	require.Equal(t, want.Pix, got.Pix)

	require.NoError(t, artifact.PutDecoded(ctx, store, ev, want))
	ref, ok := ev.Artifacts[artifact.Decoded]
	require.True(t, ok)
	require.Equal(t, "work/j1/decoded.u8", ref.Key)
	require.Equal(t, []int64{1, 20, 30, 4}, ref.Shape)
	require.Nil(t, ref.Inline, "stored, not inline")

	got, hdr, err = artifact.LoadDecoded(ctx, store, ev, imageio.Limits{})
	require.NoError(t, err)
	require.Equal(t, want.Rect, got.Rect)
	require.Equal(t, want.Pix, got.Pix)
	require.Equal(t, wantHdr, hdr)

	// Stored pixels of another size than the input's header are not used.
	other := &schemas.JobEvent{JobID: "j2", Input: input}
	require.NoError(t, artifact.PutDecoded(ctx, store, other, imageio.ToNRGBA(want.SubImage(image.Rect(0, 0, 6, 5)))))
	got, _, err = artifact.LoadDecoded(ctx, store, other, imageio.Limits{})
	require.NoError(t, err)
	require.Equal(t, want.Pix, got.Pix)

	// Gone (deleted after an earlier delivery finished): decoded again.
	require.NoError(t, store.Delete(ctx, ref.Key))
	got, _, err = artifact.LoadDecoded(ctx, store, ev, imageio.Limits{})
	require.NoError(t, err)
	require.Equal(t, want.Pix, got.Pix)
}
