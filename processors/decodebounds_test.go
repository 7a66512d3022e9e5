package processors_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/internal/app"
	"github.com/creativeai-studio/studio/internal/imageio/imagetest"
	"github.com/creativeai-studio/studio/processors"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

// An upstream publisher skips ingest's checks, so the preprocess stage must bound the
// decoding work itself: the scan count before decoding, and the stage deadline during.
func TestPreprocessBoundsDecodingWork(t *testing.T) {
	tests := []struct {
		name    string
		set     func(*app.Config)
		img     []byte
		code    string
		message string
	}{
		{
			name:    "a progressive JPEG with thousands of scans is refused before decoding",
			set:     func(*app.Config) {},
			img:     imagetest.ManyScanJPEG(4096, 4096, 3000),
			code:    processors.CodeImageTooLarge,
			message: "more than 100 scans",
		},
		{
			name: "a decode that runs past the stage deadline fails the job instead of holding the worker",
			set: func(c *app.Config) {
				c.MaxJPEGScans = 100000
				// Long enough for the good photo's preprocess under -race on a busy
				// machine, far shorter than the crafted decode.
				c.StageDeadline = 15 * time.Second
			},
			// About 100 s of decoding (5 ms a scan at 16.8 MP; many minutes under -race).
			img:     imagetest.ManyScanJPEG(4096, 4096, 20000),
			code:    processors.CodeStageDeadline,
			message: "ran past its deadline of 15s",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			p := newPipelineWith(t, func(c *app.Config) { c.Concurrency = 1; tt.set(c) })
			slow := p.upstream(t, "upstream-scans", "isnet", tt.img)
			good := p.submit(t, encodeJPEG(t, photoImage(640, 480)))
			start := time.Now()
			p.run(t)

			var rec *schemas.JobRecord
			streamstest.Eventually(t, settle, func() bool {
				var err error
				rec, err = p.jobs.Get(ctx, slow.ID)
				return err == nil && rec.Status == schemas.StatusFailed
			}, "job %s never failed", slow.ID)
			require.Equal(t, tt.code, rec.Error.Code, rec.Error.Message)
			require.Contains(t, rec.Error.Message, tt.message)
			require.Equal(t, 1, rec.Stages[schemas.StagePreprocess].Attempts, "failed on its first delivery, not retried")
			results := p.endResults(t, slow.ID)
			require.Len(t, results, 1)
			require.Equal(t, tt.code, results[0].Error.Code)

			// The only worker is free again: the job queued behind goes through.
			p.requireForwarded(t, good, 640, 480)
			held := rec.FinishedAt.Sub(rec.Stages[schemas.StagePreprocess].StartedAt)
			t.Logf("the worker held the job %s (%s after the stage started)", held, time.Since(start))
			require.Less(t, held, 45*time.Second, "the worker was held for the deadline, not the decode")
		})
	}
}

func TestEveryStageHasADeadlineWithinItsTimeout(t *testing.T) {
	for _, s := range processors.Stages {
		t.Run(string(s.Name), func(t *testing.T) {
			require.Positive(t, s.Deadline, "a stage without a deadline can hold a worker for MaxDeliver x Timeout")
			require.Less(t, s.Deadline, s.Timeout, "the deadline must end a run before the transient timeout does")
		})
	}
}

// The PNG and WebP counterparts of the scan bound, published upstream (past ingest):
// each crafted file fails its job on the first delivery with the code that names the
// problem, quickly, and the only worker goes on to the next job.
func TestPreprocessBoundsPNGAndWebPDecodingWork(t *testing.T) {
	still := imagetest.VP8X(40, 30, 0)
	tests := []struct {
		name    string
		img     []byte
		code    string
		message string
	}{
		{name: "a PNG of 100,000 IDAT chunks", img: imagetest.PNG(512, 512, 100_000, 0, 0),
			code: processors.CodeImageTooLarge, message: "more than 4096 chunks"},
		{name: "a PNG with 8 MiB of ancillary chunks", img: imagetest.PNG(16, 16, 1, 8, 1<<20),
			code: processors.CodeImageTooLarge, message: "of metadata"},
		{name: "a 36-megapixel interlaced PNG", img: imagetest.PNGHeader(6000, 6000, 8, 6, true),
			code: processors.CodeImageTooLarge, message: "interlaced"},
		{name: "a zlib bomb: a 64x64 PNG whose IDAT inflates to 64 MiB", img: imagetest.InflateBombPNG(64, 64, 64<<20),
			code: processors.CodeCorruptImage, message: "too much pixel data"},
		{name: "a PNG declaring 36 megapixels over 40 bytes of data", img: imagetest.PNGHeader(6000, 6000, 8, 6, false),
			code: processors.CodeCorruptImage, message: "cannot inflate"},
		{name: "a WebP of 100,000 RIFF chunks", img: imagetest.WebP(append([][]byte{still}, repeatChunk(imagetest.WebPChunk("prVt", nil), 100_000)...)...),
			code: processors.CodeImageTooLarge, message: "more than 4096 chunks"},
		{name: "an animated WebP of 3000 frames without the animation flag", img: imagetest.WebP(append([][]byte{still}, repeatChunk(imagetest.WebPChunk("ANMF", make([]byte, 16)), 3000)...)...),
			code: processors.CodeUnsupportedImage, message: "3000 frames"},
		{name: "a WebP whose image data is larger than its canvas", img: imagetest.WebP(still, imagetest.VP8L(6000, 6000)),
			code: processors.CodeCorruptImage, message: "declared 40x30"},
	}
	p := newPipelineWith(t, func(c *app.Config) { c.Concurrency = 1 })
	p.run(t)
	ctx := context.Background()
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := p.upstream(t, fmt.Sprint("upstream-work-", i), "isnet", tt.img)
			good := p.submit(t, encodeJPEG(t, photoImage(64, 48)))
			var rec *schemas.JobRecord
			streamstest.Eventually(t, settle, func() bool {
				var err error
				rec, err = p.jobs.Get(ctx, bad.ID)
				return err == nil && rec.Status == schemas.StatusFailed
			}, "job %s never failed", bad.ID)
			require.Equal(t, tt.code, rec.Error.Code, rec.Error.Message)
			require.Contains(t, rec.Error.Message, tt.message)
			require.Equal(t, 1, rec.Stages[schemas.StagePreprocess].Attempts, "failed on its first delivery, not retried")
			held := rec.FinishedAt.Sub(rec.Stages[schemas.StagePreprocess].StartedAt)
			require.Less(t, held, 10*time.Second, "refused from the chunk headers, not after decoding")
			p.requireForwarded(t, good, 64, 48)
		})
	}
}

func repeatChunk(b []byte, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = b
	}
	return out
}
