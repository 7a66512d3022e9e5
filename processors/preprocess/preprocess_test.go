package preprocess_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/internal/blob"
	"github.com/creativeai-studio/studio/internal/blob/natsobj"
	"github.com/creativeai-studio/studio/internal/imageio"
	"github.com/creativeai-studio/studio/internal/models"
	"github.com/creativeai-studio/studio/processors"
	"github.com/creativeai-studio/studio/processors/artifact"
	"github.com/creativeai-studio/studio/processors/preprocess"
	"github.com/creativeai-studio/studio/schemas"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

// knownPixels is a 3x2 image (wider than tall, so a width/height mix-up shows) whose
// values make every normalisation below exact in float32:
//
//	(0,128,255)  (64,32,16)    (255,0,128) alpha 0
//	(1,2,3)      (200,100,50)  (128,128,128)
var knownPixels = [][]color.NRGBA{
	{{0, 128, 255, 255}, {64, 32, 16, 255}, {255, 0, 128, 0}},
	{{1, 2, 3, 255}, {200, 100, 50, 128}, {128, 128, 128, 255}},
}

// paint draws knownPixels with its top-left corner at (x0, y0).
func paint(img *image.NRGBA, x0, y0 int) {
	for y, row := range knownPixels {
		for x, c := range row {
			img.SetNRGBA(x0+x, y0+y, c)
		}
	}
}

func TestToTensorNormalisesIntoPlanarRGB(t *testing.T) {
	exact := image.NewNRGBA(image.Rect(0, 0, 3, 2))
	paint(exact, 0, 0)
	// A sub-image keeps its parent's stride and a non-zero origin.
	parent := image.NewNRGBA(image.Rect(0, 0, 6, 5))
	for i := range parent.Pix {
		parent.Pix[i] = 0xEE
	}
	paint(parent, 2, 1)
	sub := parent.SubImage(image.Rect(2, 1, 5, 3)).(*image.NRGBA)

	isnet := models.ISNet("small", "").Input
	perChannel := models.Tensor{Mean: [3]float32{0, 64, 255}, Std: [3]float32{1, 2, 0.5}}
	// Plane order R, G, B; within a plane, row-major. Alpha is ignored: the pixels
	// are straight (non-premultiplied) NRGBA.
	isnetWant := []float32{
		-0.5, -0.25, 0.49609375, -0.49609375, 0.28125, 0, // R: (v-128)/256
		0, -0.375, -0.5, -0.4921875, -0.109375, 0, // G
		0.49609375, -0.4375, 0, -0.48828125, -0.3046875, 0, // B
	}
	perChannelWant := []float32{
		0, 64, 255, 1, 200, 128, // R: (v-0)/1
		32, -16, -32, -31, 18, 32, // G: (v-64)/2
		0, -478, -254, -504, -410, -254, // B: (v-255)/0.5
	}
	tests := []struct {
		name string
		img  *image.NRGBA
		spec models.Tensor
		want []float32
	}{
		{"IS-Net maps each value to (v-128)/256", exact, isnet, isnetWant},
		{"each channel uses its own mean and std", exact, perChannel, perChannelWant},
		{"a sub-image is read from its own origin and stride", sub, isnet, isnetWant},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := preprocess.ToTensor(tt.img, tt.spec)
			require.Equal(t, []int64{1, 3, 2, 3}, got.Shape, "NCHW with H=2, W=3")
			require.Equal(t, tt.want, got.Data)
		})
	}
}

func TestClassifyMapsEachImageErrorToAStableCode(t *testing.T) {
	tests := []struct {
		name string
		err  error
		code string
	}{
		{"an empty file", imageio.ErrEmpty, processors.CodeEmptyImage},
		{"an unsupported format", imageio.ErrUnsupportedFormat, processors.CodeUnsupportedImage},
		{"bytes that are not an image", imageio.ErrNotImage, processors.CodeNotAnImage},
		{"an image over the limits", imageio.ErrTooLarge, processors.CodeImageTooLarge},
		{"a damaged image", imageio.ErrCorrupt, processors.CodeCorruptImage},
		{"an error imageio does not classify", errors.New("something else"), processors.CodeInvalidImage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := artifact.Classify(fmt.Errorf("decode: %w", tt.err))
			var jerr *schemas.JobError
			require.ErrorAs(t, err, &jerr, "image errors are permanent")
			require.Equal(t, tt.code, jerr.Code)
			require.Equal(t, schemas.StagePreprocess, jerr.Stage)
			require.Contains(t, jerr.Message, tt.err.Error())
		})
	}
}

func openStore(t *testing.T) *natsobj.ObjectStore {
	t.Helper()
	s := streamstest.Start(t)
	store, err := natsobj.Open(context.Background(), s.JS, natsobj.Bucket)
	require.NoError(t, err)
	return store
}

func put(t *testing.T, store blob.Store, key string, data []byte) schemas.ObjectRef {
	t.Helper()
	info, err := store.Put(context.Background(), key, bytes.NewReader(data), int64(len(data)), "")
	require.NoError(t, err)
	return schemas.ObjectRef{Key: key, Size: info.Size, SHA256: info.SHA256}
}

func TestLoadImageClassifiesStoredInputs(t *testing.T) {
	store := openStore(t)
	lim := imageio.Limits{MaxBytes: 64 << 10}
	big := encodePNG(t, noiseImage(160, 160))
	require.Greater(t, len(big), 64<<10, "the over-limit object must be over the limit")

	tests := []struct {
		name    string
		data    []byte // nil with missing set: no object at all
		missing bool
		code    string // "" for success
		message string
	}{
		{"a PNG decodes", encodePNG(t, noiseImage(5, 3)), false, "", ""},
		{"a JPEG decodes", encodeJPEG(t, noiseImage(24, 16)), false, "", ""},
		{"an empty object is an empty image", []byte{}, false, processors.CodeEmptyImage, "empty"},
		{"a GIF is an unsupported format", encodeGIF(t), false, processors.CodeUnsupportedImage, "GIF"},
		{"random bytes are not an image", randomBytes(2048), false, processors.CodeNotAnImage, "not an image"},
		{"a PNG claiming 100000x100000 pixels is too large", pngHeaderOnly(100000, 100000), false, processors.CodeImageTooLarge, "100000x100000"},
		{"a JPEG cut in half is corrupt", truncatedJPEG(t), false, processors.CodeCorruptImage, "damaged or incomplete"},
		{"an object over the byte limit is too large before it is read", big, false, processors.CodeImageTooLarge, "byte limit"},
		{"a missing object is reported as missing", nil, true, processors.CodeMissingObject, "is gone"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ref := schemas.ObjectRef{Key: fmt.Sprintf("inputs/local/case%d/original", i)}
			if !tt.missing {
				ref = put(t, store, ref.Key, tt.data)
			}
			img, hdr, err := artifact.LoadImage(context.Background(), store, ref, lim)
			if tt.code == "" {
				require.NoError(t, err)
				want, _, err := imageio.Decode(tt.data, lim)
				require.NoError(t, err)
				require.Equal(t, want.Rect, img.Rect)
				require.Equal(t, want.Pix, img.Pix)
				require.Equal(t, img.Rect.Dx(), hdr.Width)
				return
			}
			require.Nil(t, img)
			var jerr *schemas.JobError
			require.ErrorAs(t, err, &jerr, "bad input is a permanent error, never retried")
			require.Equal(t, tt.code, jerr.Code)
			require.Equal(t, schemas.StagePreprocess, jerr.Stage)
			require.Contains(t, jerr.Message, tt.message)
		})
	}
}

func TestLoadImageLeavesStorageFailuresRetryable(t *testing.T) {
	store := openStore(t)
	ref := put(t, store, "inputs/local/x/original.png", encodePNG(t, noiseImage(2, 2)))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	_, _, err := artifact.LoadImage(ctx, store, ref, imageio.Limits{})

	require.Error(t, err)
	var jerr *schemas.JobError
	require.False(t, errors.As(err, &jerr), "a storage failure must be retried, not fail the job: %v", err)
}

func TestProcessStoresTheTensorAndFailsOnlyTheBadEvent(t *testing.T) {
	store := openStore(t)
	cat := models.NewCatalog()
	require.NoError(t, cat.Add(models.ISNet("small", "/nonexistent")))
	step := &preprocess.Step{Blobs: store, Catalog: cat}
	ev := func(id, model string, input schemas.ObjectRef) *schemas.JobEvent {
		return &schemas.JobEvent{JobID: id, Tenant: "local", Tier: schemas.TierNormal, Task: schemas.TaskRemoveBackground, Model: model, ModelVersion: "small", Input: input}
	}
	good := ev("good", "isnet", put(t, store, "inputs/local/good/original.png", encodePNG(t, noiseImage(40, 30))))
	corrupt := ev("corrupt", "isnet", put(t, store, "inputs/local/corrupt/original.jpg", truncatedJPEG(t)))
	unknownModel := ev("unknown", "nope", good.Input)

	errs := step.Process(context.Background(), []*schemas.JobEvent{corrupt, good, unknownModel})

	require.Len(t, errs, 3)
	codeOf := func(err error) string {
		var jerr *schemas.JobError
		require.ErrorAs(t, err, &jerr)
		return jerr.Code
	}
	require.Equal(t, processors.CodeCorruptImage, codeOf(errs[0]))
	require.NoError(t, errs[1])
	require.Equal(t, processors.CodeModelUnavailable, codeOf(errs[2]))

	require.Equal(t, &schemas.ImageInfo{Format: "png", Width: 40, Height: 30, Orientation: 1}, good.Image)
	ref, ok := good.Artifacts["tensor"]
	require.True(t, ok, "the good event carries its tensor")
	require.Equal(t, "work/good/input.u8", ref.Key)
	require.Equal(t, []int64{1, 3, 1024, 1024}, ref.Shape)
	require.Equal(t, artifact.DTypeUint8, ref.DType)
	require.EqualValues(t, 3*1024*1024, ref.Size, "8-bit planes: a quarter of float32")
	spec, err := cat.Get("isnet", "small")
	require.NoError(t, err)
	tensor, err := artifact.LoadInput(context.Background(), store, ref, spec.Input)
	require.NoError(t, err)
	for i, v := range tensor.Data {
		if v < -0.5 || v >= 0.5 {
			t.Fatalf("value %d is %v, outside IS-Net's [-0.5, 0.5) range", i, v)
		}
	}
	decoded, ok := good.Artifacts[artifact.Decoded]
	require.True(t, ok, "remove-background hands the decoded input on to postprocess")
	require.Equal(t, "work/good/decoded.u8", decoded.Key)
	require.Equal(t, []int64{1, 30, 40, 4}, decoded.Shape)
	require.Empty(t, corrupt.Artifacts, "a failed event gets no tensor")
}

// --- test images, generated so each case says exactly which bytes it uses ---

func noiseImage(w, h int) *image.NRGBA {
	rng := rand.New(rand.NewPCG(1, 2))
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = byte(rng.Uint32())
	}
	for i := 3; i < len(img.Pix); i += 4 {
		img.Pix[i] = 255
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
	require.NoError(t, gif.Encode(&buf, image.NewPaletted(image.Rect(0, 0, 4, 4), color.Palette{color.Black, color.White}), nil))
	return buf.Bytes()
}

// truncatedJPEG keeps a real JPEG's headers and cuts its scan data in half.
func truncatedJPEG(t testing.TB) []byte {
	t.Helper()
	full := encodeJPEG(t, noiseImage(64, 64))
	return full[:len(full)/2]
}

// pngHeaderOnly is a PNG whose valid IHDR claims w x h RGBA pixels, with no pixel data.
func pngHeaderOnly(w, h uint32) []byte {
	chunk := func(typ string, data []byte) []byte {
		b := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
		b = append(append(b, typ...), data...)
		return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b[4:]))
	}
	ihdr := binary.BigEndian.AppendUint32(nil, w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	ihdr = append(ihdr, 8, 6, 0, 0, 0)
	b := []byte("\x89PNG\r\n\x1a\n")
	b = append(b, chunk("IHDR", ihdr)...)
	b = append(b, chunk("IDAT", []byte{0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01})...)
	return append(b, chunk("IEND", nil)...)
}

func randomBytes(n int) []byte {
	rng := rand.New(rand.NewPCG(3, 4))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// TestResizeToPixelsIsToPixelsOfTheResize checks the one-pass resize into planes
// against ToPixels of ResizeNRGBA, byte for byte: IS-Net's exact two-tap contract (the
// integer path) and a BGR antialiased one (the float path), from odd sizes.
func TestResizeToPixelsIsToPixelsOfTheResize(t *testing.T) {
	aa := true
	bgr := models.Tensor{Name: "input", Shape: []int64{1, 3, 224, 160}, Color: "BGR", Resize: "bilinear", Coordinates: "half_pixel", Antialias: &aa, Rounding: "round"}
	for _, spec := range []models.Tensor{models.ISNet("small", "").Input, bgr} {
		for _, img := range []*image.NRGBA{noiseImage(451, 300), noiseImage(1500, 999), noiseImage(1, 1)} {
			want := preprocess.ToPixels(spec.Resampling().ResizeNRGBA(img, spec.W(), spec.H()), spec)
			got := preprocess.ResizeToPixels(img, spec)
			require.Equal(t, want.Shape, got.Shape)
			require.True(t, bytes.Equal(want.Data, got.Data), "%s from %v: the planes differ", spec.Resampling(), img.Bounds())
		}
	}
}
