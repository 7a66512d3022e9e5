package artifact_test

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/internal/blob"
	"github.com/creativeai-studio/studio/internal/blob/natsobj"
	"github.com/creativeai-studio/studio/internal/models"
	"github.com/creativeai-studio/studio/processors/artifact"
	"github.com/creativeai-studio/studio/streams/streamstest"
)

func randomPixels(shape []int64, seed uint64) artifact.Pixels {
	rng := rand.New(rand.NewPCG(seed, 1))
	data := make([]byte, artifact.Elements(shape))
	for i := range data {
		data[i] = byte(rng.IntN(256))
	}
	return artifact.Pixels{Shape: shape, Data: data}
}

// Pixels are what preprocess stores and what postprocess reads: quantising a
// normalised image must give back exactly the pixels, for every colour order and
// normalisation the shipped manifests use.
func TestNormalizeAndQuantizeAreInverse(t *testing.T) {
	specs := map[string]models.Tensor{
		"isnet":      {Color: "RGB", Mean: [3]float32{128, 128, 128}, Std: [3]float32{256, 256, 256}},
		"realesrgan": {Color: "RGB", Std: [3]float32{255, 255, 255}},
		"imagenet":   {Color: "RGB", Mean: [3]float32{123.675, 116.28, 103.53}, Std: [3]float32{58.395, 57.12, 57.375}},
		"bgr":        {Color: "BGR", Mean: [3]float32{10, 20, 30}, Std: [3]float32{1, 2, 4}},
	}
	for name, spec := range specs {
		t.Run(name, func(t *testing.T) {
			p := randomPixels([]int64{1, 3, 7, 5}, 1)
			x, err := artifact.Normalize(p, spec)
			require.NoError(t, err)
			require.Equal(t, p.Shape, x.Shape)
			back, err := artifact.Quantize(x, spec)
			require.NoError(t, err)
			require.Equal(t, p, back)
		})
	}
}

// Normalize applies mean and std per R, G and B: for a BGR model the first plane is
// blue and takes the B entries.
func TestNormalizeUsesTheChannelOfEachPlane(t *testing.T) {
	spec := models.Tensor{Color: "BGR", Mean: [3]float32{1, 2, 3}, Std: [3]float32{10, 20, 30}}
	p := artifact.Pixels{Shape: []int64{1, 3, 1, 1}, Data: []byte{33, 42, 51}} // B, G, R planes
	x, err := artifact.Normalize(p, spec)
	require.NoError(t, err)
	require.InDeltaSlice(t, []float32{(33 - 3) / 30.0, (42 - 2) / 20.0, (51 - 1) / 10.0}, x.Data, 1e-6)
}

func TestQuantizeMasksAndClamps(t *testing.T) {
	nan := float32(math.NaN())
	inf := float32(math.Inf(1))
	mask := artifact.Tensor{Shape: []int64{1, 1, 1, 8}, Data: []float32{-0.5, 0, 0.001, 0.5, 0.998, 1, 3, nan}}
	px, err := artifact.Quantize(mask, models.Tensor{})
	require.NoError(t, err)
	require.Equal(t, []int64{1, 1, 1, 8}, px.Shape)
	require.Equal(t, []byte{0, 0, 0, 128, 254, 255, 255, 0}, px.Data)

	// [1,H,W] masks are accepted and come back as [1,1,H,W].
	px, err = artifact.Quantize(artifact.Tensor{Shape: []int64{1, 2, 2}, Data: []float32{0, 1, 1, 0}}, models.Tensor{})
	require.NoError(t, err)
	require.Equal(t, []int64{1, 1, 2, 2}, px.Shape)

	img := artifact.Tensor{Shape: []int64{1, 3, 1, 2}, Data: []float32{-1, 2, 0.5, inf, nan, 0.2}}
	px, err = artifact.Quantize(img, models.Tensor{Std: [3]float32{255, 255, 255}})
	require.NoError(t, err)
	require.Equal(t, []byte{0, 255, 128, 255, 0, 51}, px.Data)

	for _, bad := range []artifact.Tensor{
		{Shape: []int64{1, 2, 4, 4}, Data: make([]float32, 32)}, // two channels
		{Shape: []int64{1, 3, 2, 2}, Data: make([]float32, 5)},  // short
		{Shape: []int64{4}, Data: make([]float32, 4)},           // not an image
	} {
		_, err := artifact.Quantize(bad, models.Tensor{})
		require.Error(t, err, "shape %v", bad.Shape)
	}
}

// Stored pixels come back byte for byte, with a quarter of float32's size; LoadInput
// reads both the new 8-bit artifacts and float32 ones left by an older release.
func TestPixelsRoundTripThroughTheObjectStore(t *testing.T) {
	ctx := context.Background()
	s := streamstest.Start(t)
	store, err := natsobj.Open(ctx, s.JS, natsobj.Bucket)
	require.NoError(t, err)
	spec := models.Tensor{Color: "RGB", Mean: [3]float32{128, 128, 128}, Std: [3]float32{256, 256, 256}}
	p := randomPixels([]int64{1, 3, 64, 48}, 2)

	ref, err := artifact.PutPixels(ctx, store, "work/j/input.u8", p)
	require.NoError(t, err)
	require.Equal(t, artifact.DTypeUint8, ref.DType)
	require.EqualValues(t, len(p.Data), ref.Size)
	got, err := artifact.GetPixels(ctx, store, ref)
	require.NoError(t, err)
	require.Equal(t, p, got)

	want, err := artifact.Normalize(p, spec)
	require.NoError(t, err)
	fromPixels, err := artifact.LoadInput(ctx, store, ref, spec)
	require.NoError(t, err)
	require.Equal(t, want, fromPixels)
	fref, err := artifact.PutTensor(ctx, store, "work/j/input.f32", want)
	require.NoError(t, err)
	fromFloat, err := artifact.LoadInput(ctx, store, fref, spec)
	require.NoError(t, err)
	require.Equal(t, want, fromFloat)

	out, err := artifact.LoadOutput(ctx, store, fref, spec)
	require.NoError(t, err)
	require.Equal(t, p, out, "a float32 output is quantised on the way out")

	bad := ref
	bad.Shape = []int64{1, 3, 64, 47}
	_, err = artifact.GetPixels(ctx, store, bad)
	require.ErrorContains(t, err, "does not match")
	gone := ref
	gone.Key = "work/gone/input.u8"
	_, err = artifact.GetPixels(ctx, store, gone)
	require.ErrorIs(t, err, blob.ErrNotFound)
}
