package artifact_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/internal/blob"
	"github.com/creativeai-studio/studio/internal/blob/natsobj"
	"github.com/creativeai-studio/studio/processors/artifact"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

// TestSmallScratchArtifactsTravelInline checks where Put leaves an artifact: a scratch
// artifact up to InlineMax in its reference and not in the store, a larger one or one
// outside work/ in the store; Open reads both kinds alike and refuses inline bytes that
// do not match their reference.
func TestSmallScratchArtifactsTravelInline(t *testing.T) {
	ctx := context.Background()
	s := streamstest.Start(t)
	store, err := natsobj.Open(ctx, s.JS, natsobj.Bucket)
	require.NoError(t, err)

	cases := []struct {
		name   string
		key    string
		size   int
		inline bool
	}{
		{"an empty scratch artifact is inline", "work/j1/empty.bin", 0, true},
		{"a scratch artifact of InlineMax bytes is inline", "work/j1/small.png", artifact.InlineMax, true},
		{"a scratch artifact one byte over is stored", "work/j1/large.png", artifact.InlineMax + 1, false},
		{"a small object outside work/ is stored", "results/acme/j1/image.png", 10, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data := bytes.Repeat([]byte{7, 1, 9}, c.size/3+1)[:c.size]
			ref, err := artifact.Put(ctx, store, c.key, data, "image/png")
			require.NoError(t, err)
			require.Equal(t, c.key, ref.Key)
			require.EqualValues(t, c.size, ref.Size)
			require.Equal(t, "image/png", ref.ContentType)
			require.Len(t, ref.SHA256, 64)
			_, statErr := store.Stat(ctx, c.key)
			if c.inline {
				require.Equal(t, data, ref.Inline)
				require.False(t, artifact.Stored(ref))
				require.True(t, errors.Is(statErr, blob.ErrNotFound), "an inline artifact is not stored: %v", statErr)
			} else {
				require.Nil(t, ref.Inline)
				require.True(t, artifact.Stored(ref))
				require.NoError(t, statErr)
			}
			rc, info, err := artifact.Open(ctx, store, ref)
			require.NoError(t, err)
			got, err := io.ReadAll(rc)
			require.NoError(t, rc.Close())
			require.NoError(t, err)
			require.Equal(t, data, got)
			require.Equal(t, ref.SHA256, info.SHA256)
			require.EqualValues(t, c.size, info.Size)
		})
	}

	ref, err := artifact.Put(ctx, store, "work/j1/tampered.bin", []byte("pixels"), "")
	require.NoError(t, err)
	ref.Inline = []byte("pixelz")
	_, _, err = artifact.Open(ctx, store, ref)
	require.Error(t, err, "inline bytes that do not match their digest")
	ref.Inline = []byte("pixels!")
	_, _, err = artifact.Open(ctx, store, ref)
	require.Error(t, err, "inline bytes that do not match their size")
}
