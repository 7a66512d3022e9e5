package ingest_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/internal/auth"
	"github.com/creativeai-studio/studio/internal/imageio/imagetest"
	"github.com/creativeai-studio/studio/schemas"
)

// The PNG and WebP decoding-work bounds at admission, on both entries: each crafted
// file is refused from its chunk headers with the problem that names it, quickly, and
// nothing is queued. (A zlib bomb, whose headers are within bounds, is refused by the
// preprocess stage: TestPreprocessBoundsPNGAndWebPDecodingWork in processors.)
func TestPNGAndWebPFilesOverTheirDecodingBoundsAreRefusedAtAdmissionOnBothEntries(t *testing.T) {
	still := imagetest.VP8X(40, 30, 0)
	chunks := func(c []byte, n int) [][]byte {
		out := []([]byte){still}
		for range n {
			out = append(out, c)
		}
		return out
	}
	tests := []struct {
		name   string
		img    []byte
		status int
		code   string
		says   string
	}{
		{name: "a PNG of 5000 IDAT chunks", img: imagetest.PNG(256, 256, 5000, 0, 0),
			status: http.StatusRequestEntityTooLarge, code: "image_too_large", says: "more than 4096 chunks"},
		{name: "a 36-megapixel PNG at 16 bits per sample", img: imagetest.PNGHeader(6000, 6000, 16, 6, false),
			status: http.StatusRequestEntityTooLarge, code: "image_too_large", says: "16 bits per sample"},
		{name: "an interlaced 36-megapixel PNG", img: imagetest.PNGHeader(6000, 6000, 8, 6, true),
			status: http.StatusRequestEntityTooLarge, code: "image_too_large", says: "interlaced"},
		{name: "a WebP of 5000 RIFF chunks", img: imagetest.WebP(append(chunks(imagetest.WebPChunk("prVt", nil), 5000), imagetest.VP8L(40, 30))...),
			status: http.StatusRequestEntityTooLarge, code: "image_too_large", says: "more than 4096 chunks"},
		{name: "an animated WebP without the animation flag", img: imagetest.WebP(chunks(imagetest.WebPChunk("ANMF", make([]byte, 16)), 300)...),
			status: http.StatusUnsupportedMediaType, code: "unsupported_format", says: "300 frames"},
		{name: "a WebP whose image data is larger than its canvas", img: imagetest.WebP(still, imagetest.VP8L(6000, 6000)),
			status: http.StatusUnprocessableEntity, code: "corrupt_image", says: "declared 40x30"},
		{name: "a 2.4 KB lossy WebP declaring 12000x3333 pixels", img: imagetest.LossyWebPDeclaring(12000, 3333),
			status: http.StatusUnprocessableEntity, code: "corrupt_image", says: "too few for the modes of its macroblocks"},
	}
	for _, entry := range admissionEntries {
		t.Run(entry.name, func(t *testing.T) {
			e := newAdmissionEnv(t)
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					body := jobBody(t)
					body.Image = &schemas.ImageInput{Data: tt.img}
					start := time.Now()
					out := entry.submit(t, e.secureEnv, submission{bearer: e.tokens["bob"], body: body})
					require.Equal(t, tt.status, out.status, "%s", out.raw)
					require.Equal(t, tt.code, out.code)
					require.Contains(t, string(out.raw), tt.says)
					require.Less(t, time.Since(start), 10*time.Second)
					e.audit.requireEvent(t, auth.ActionJobSubmit, auth.ResultDenied, tt.code, "")
				})
			}
			// Nothing was queued: a normal job is the first message of REQUESTS.
			out := entry.submit(t, e.secureEnv, submission{bearer: e.tokens["bob"], body: jobBody(t)})
			require.Equal(t, http.StatusAccepted, out.status, "%s", out.raw)
			st, err := e.srv.JS.Stream(t.Context(), schemas.StreamRequests)
			require.NoError(t, err)
			info, err := st.Info(t.Context())
			require.NoError(t, err)
			require.EqualValues(t, 1, info.State.Msgs, "only the valid job was queued")
		})
	}
}
