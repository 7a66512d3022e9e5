package imageio

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/png"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEncodePNG(t *testing.T) {
	src := photoImage(33, 17)
	src.Pix[3] = 7 // a translucent pixel forces the RGBA path
	t.Run("round-trips pixels exactly", func(t *testing.T) {
		var buf bytes.Buffer
		require.NoError(t, EncodePNG(&buf, src))
		got, err := png.Decode(&buf)
		require.NoError(t, err)
		assert.Equal(t, src.Pix, ToNRGBA(got).Pix)
	})
	t.Run("concurrent encodes share the buffer pool safely", func(t *testing.T) {
		want := new(bytes.Buffer)
		require.NoError(t, EncodePNG(want, src))
		for i := range 4 {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				t.Parallel()
				var buf bytes.Buffer
				require.NoError(t, EncodePNG(&buf, src))
				assert.Equal(t, want.Bytes(), buf.Bytes())
			})
		}
	})
	t.Run("a failing writer is reported", func(t *testing.T) {
		err := EncodePNG(failingWriter{}, src)
		require.ErrorIs(t, err, errDiskFull)
		assert.Contains(t, err.Error(), "encode PNG")
	})
	t.Run("an empty image is reported, not written", func(t *testing.T) {
		assert.Error(t, EncodePNG(new(bytes.Buffer), image.NewNRGBA(image.Rectangle{})))
	})
}

var errDiskFull = errors.New("disk full")

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errDiskFull }
