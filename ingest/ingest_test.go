package ingest_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"math/rand/v2"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/ingest"
	"github.com/creativeai-studio/studio/internal/blob/natsobj"
	"github.com/creativeai-studio/studio/internal/jobs"
	"github.com/creativeai-studio/studio/internal/models"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

// queueAhead is what the test depth func reports, so a new job is at position 3.
const queueAhead = 2

// env is ingest wired to a real embedded JetStream server: jobs KV, object store and
// request stream are the production ones.
type env struct {
	srv   *streamstest.Server
	jobs  *jobs.Store
	blobs *natsobj.ObjectStore
	svc   *ingest.Service
	api   *httptest.Server
	idem  *streams.KV
	index *jobs.Index
}

// newEnv wires ingest with its state buckets (idempotency keys, job index); the queue
// depth is a constant so a new job is at position queueAhead+1.
func newEnv(t *testing.T, cfg ingest.Config) *env {
	t.Helper()
	return newEnvWithDepth(t, cfg, func(context.Context, schemas.Tier) (int, error) { return queueAhead, nil })
}

func newEnvWithDepth(t *testing.T, cfg ingest.Config, depth ingest.QueueDepth) *env {
	t.Helper()
	return newEnvWithLog(t, cfg, depth, quietLog())
}

// newEnvWithLog is newEnvWithDepth whose service logs to log.
func newEnvWithLog(t *testing.T, cfg ingest.Config, depth ingest.QueueDepth, log logrus.FieldLogger) *env {
	t.Helper()
	ctx := context.Background()
	s := streamstest.Start(t)
	jobStore, err := jobs.Open(ctx, s.JS)
	require.NoError(t, err)
	blobs, err := natsobj.Open(ctx, s.JS, natsobj.Bucket)
	require.NoError(t, err)
	cat := models.NewCatalog()
	// Ingest only resolves the spec; it never opens the weights.
	require.NoError(t, cat.Add(models.ISNet("small", "/nonexistent")))
	idem, err := jobs.OpenIdempotency(ctx, s.JS)
	require.NoError(t, err)
	index, err := jobs.OpenIndex(ctx, s.JS)
	require.NoError(t, err)
	svc := ingest.NewService(cfg, jobStore, blobs, streams.JSPublisher{JS: s.JS}, cat, depth, nil, log,
		ingest.WithIdempotency(idem), ingest.WithJobIndex(index))
	api := httptest.NewServer(svc.Handler())
	t.Cleanup(api.Close)
	t.Cleanup(svc.Close) // ends open event streams before the server waits for them
	return &env{srv: s, jobs: jobStore, blobs: blobs, svc: svc, api: api, idem: idem, index: index}
}

func quietLog() logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

// requestMsgs returns every message in the REQUESTS stream.
func (e *env) requestMsgs(t *testing.T) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx := context.Background()
	st, err := e.srv.JS.Stream(ctx, schemas.StreamRequests)
	require.NoError(t, err)
	info, err := st.Info(ctx)
	require.NoError(t, err)
	var out []*jetstream.RawStreamMsg
	if info.State.Msgs == 0 {
		return nil
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		require.NoError(t, err)
		out = append(out, m)
	}
	return out
}

// requireNothingKept fails unless the request left no trace: no request message, no
// stored object and no job record.
func (e *env) requireNothingKept(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	require.Empty(t, e.requestMsgs(t), "a refused request must publish nothing")
	objs, err := e.blobs.List(ctx, "inputs/")
	require.NoError(t, err)
	require.Empty(t, objs, "a refused request must store no input")
	kv, err := e.srv.JS.KeyValue(ctx, jobs.Bucket)
	require.NoError(t, err)
	keys, err := kv.Keys(ctx)
	if !errors.Is(err, jetstream.ErrNoKeysFound) {
		require.NoError(t, err)
		require.Empty(t, keys, "a refused request must create no job record")
	}
}

func TestSubmitFillsDefaultsAndQueuesOneRequest(t *testing.T) {
	e := newEnv(t, ingest.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	img := encodePNG(t, gridImage(5, 3))
	traceparent := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

	rec, err := e.svc.Submit(ctx, ingest.SubmitRequest{Task: schemas.TaskRemoveBackground, Image: img, TraceParent: traceparent})
	require.NoError(t, err)

	require.Equal(t, "local", rec.Tenant)
	require.Equal(t, "local", rec.User)
	require.Equal(t, schemas.TierNormal, rec.Tier)
	require.Equal(t, "isnet", rec.Model)
	require.Equal(t, "small", rec.ModelVersion)
	require.Equal(t, "0af7651916cd43dd8448eb211c80319c", rec.TraceID, "a valid incoming traceparent is kept")
	require.Equal(t, 5, rec.Input.Width)
	require.Equal(t, 3, rec.Input.Height)

	msgs := e.requestMsgs(t)
	require.Len(t, msgs, 1)
	var ev schemas.JobEvent
	require.NoError(t, json.Unmarshal(msgs[0].Data, &ev))
	require.Equal(t, traceparent, ev.TraceParent)
	require.Equal(t, traceparent, msgs[0].Header.Get("traceparent"))
	require.Equal(t, rec.ID, msgs[0].Header.Get("Studio-Job-Id"))
}

func TestSubmitReplacesAMalformedTraceparent(t *testing.T) {
	e := newEnv(t, ingest.Config{})
	rec, err := e.svc.Submit(context.Background(), ingest.SubmitRequest{Task: schemas.TaskRemoveBackground, Image: encodePNG(t, gridImage(2, 2)), TraceParent: "not-a-traceparent"})
	require.NoError(t, err)
	require.Len(t, rec.TraceID, 32, "a fresh trace is started when the caller's is unusable")
}

func TestSubmitReturnsProblemsForInvalidRequests(t *testing.T) {
	e := newEnv(t, ingest.Config{})
	valid := encodePNG(t, gridImage(2, 2))
	tests := []struct {
		name   string
		req    ingest.SubmitRequest
		status int
		code   string
		field  string
	}{
		{"an unknown tier is refused", ingest.SubmitRequest{Tier: "gold", Task: schemas.TaskRemoveBackground, Image: valid}, 422, "invalid_tier", "tier"},
		{"a missing task is refused", ingest.SubmitRequest{Image: valid}, 422, "missing_field", "task"},
		{"a task no model serves is refused", ingest.SubmitRequest{Task: schemas.TaskOCR, Image: valid}, 422, "unknown_model", "task"},
		{"an unknown model version is refused", ingest.SubmitRequest{Task: schemas.TaskRemoveBackground, Model: "isnet", Version: "huge", Image: valid}, 422, "unknown_model", "task"},
		{"no image bytes are refused", ingest.SubmitRequest{Task: schemas.TaskRemoveBackground}, 400, "empty_image", "image"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.svc.Submit(context.Background(), tt.req)
			var p *ingest.Problem
			require.ErrorAs(t, err, &p)
			require.Equal(t, tt.status, p.Status)
			require.Equal(t, tt.code, p.Code)
			require.NotEmpty(t, p.Detail)
			require.Len(t, p.Errors, 1)
			require.Equal(t, tt.field, p.Errors[0].Field)
		})
	}
	e.requireNothingKept(t)
}

// --- test images, generated so each case says exactly which bytes it sends ---

// gridImage is a w x h image of distinct, saturated colours.
func gridImage(w, h int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.SetNRGBA(x, y, color.NRGBA{uint8(x * 255 / max(w-1, 1)), uint8(y * 255 / max(h-1, 1)), 128, 255})
		}
	}
	return img
}

// photoImage is a gradient with noise, which compresses like a photo.
func photoImage(w, h int) *image.NRGBA {
	rng := rand.New(rand.NewPCG(1, 2))
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			n := uint8(rng.IntN(32))
			img.SetNRGBA(x, y, color.NRGBA{uint8(x*255/w) ^ n, uint8(y*255/h) + n, uint8((x+y)*127/(w+h)) + n, 255})
		}
	}
	return img
}

func encodePNG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, png.Encode(&buf, img))
	return buf.Bytes()
}

func encodeJPEG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}))
	return buf.Bytes()
}

func encodeGIF(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	img := image.NewPaletted(image.Rect(0, 0, 4, 4), color.Palette{color.Black, color.White})
	require.NoError(t, gif.Encode(&buf, img, nil))
	return buf.Bytes()
}

// truncatedJPEG keeps the headers of a real photo-sized JPEG and cuts the entropy-coded
// data in half: DecodeConfig succeeds, Decode fails.
func truncatedJPEG(t testing.TB) []byte {
	t.Helper()
	full := encodeJPEG(t, photoImage(320, 240))
	return full[:len(full)/2]
}

func pngChunk(typ string, data []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
	b = append(b, typ...)
	b = append(b, data...)
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b[4:]))
}

// pngHeaderOnly is a PNG with a valid IHDR claiming w x h RGBA pixels and one empty
// IDAT: a few dozen bytes on disk, 40 GB if anything trusted it.
func pngHeaderOnly(w, h uint32) []byte {
	ihdr := binary.BigEndian.AppendUint32(nil, w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	ihdr = append(ihdr, 8, 6, 0, 0, 0) // 8-bit RGBA, deflate, no interlace
	b := []byte("\x89PNG\r\n\x1a\n")
	b = append(b, pngChunk("IHDR", ihdr)...)
	b = append(b, pngChunk("IDAT", []byte{0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01})...)
	return append(b, pngChunk("IEND", nil)...)
}

// damagedPNG has a valid signature and an IHDR whose CRC does not match.
func damagedPNG() []byte {
	b := pngHeaderOnly(4, 4)
	b[8+8+13] ^= 0xFF // first CRC byte of IHDR
	return b
}

// losslessWebP encodes a w x h two-colour lossless (VP8L) WebP, black and green in a
// checkerboard. x/image has no WebP encoder; with "simple" prefix codes each pixel
// costs one bit, which keeps this encoder tiny.
func losslessWebP(w, h int) []byte {
	var bw bitWriter
	bw.write(0x2f, 8) // VP8L signature
	bw.write(uint32(w-1), 14)
	bw.write(uint32(h-1), 14)
	bw.write(0, 1) // alpha hint
	bw.write(0, 3) // version
	bw.write(0, 1) // no transforms
	bw.write(0, 1) // no colour cache
	bw.write(0, 1) // no meta prefix codes
	// Green: simple code, two 8-bit symbols, 0 and 255.
	bw.write(1, 1)
	bw.write(1, 1)
	bw.write(1, 1)
	bw.write(0, 8)
	bw.write(255, 8)
	oneSymbol := func(v uint32) {
		bw.write(1, 1)
		bw.write(0, 1)
		bw.write(1, 1)
		bw.write(v, 8)
	}
	oneSymbol(0)   // red
	oneSymbol(0)   // blue
	oneSymbol(255) // alpha
	oneSymbol(0)   // distance
	for y := range h {
		for x := range w {
			bw.write(uint32((x+y)%2), 1)
		}
	}
	payload := bw.bytes()
	body := []byte("WEBPVP8L")
	body = binary.LittleEndian.AppendUint32(body, uint32(len(payload)))
	body = append(body, payload...)
	if len(payload)%2 == 1 {
		body = append(body, 0)
	}
	out := binary.LittleEndian.AppendUint32([]byte("RIFF"), uint32(len(body)))
	return append(out, body...)
}

// bitWriter packs bits least-significant first, as VP8L reads them.
type bitWriter struct {
	buf []byte
	acc uint64
	n   uint
}

func (w *bitWriter) write(v uint32, bits uint) {
	w.acc |= uint64(v) << w.n
	w.n += bits
	for w.n >= 8 {
		w.buf = append(w.buf, byte(w.acc))
		w.acc >>= 8
		w.n -= 8
	}
}

func (w *bitWriter) bytes() []byte {
	if w.n > 0 {
		return append(w.buf, byte(w.acc))
	}
	return w.buf
}

func randomBytes(n int) []byte {
	rng := rand.New(rand.NewPCG(3, 4))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}
