// Package artifact reads and writes what the stages hand each other through object
// storage: model-ready pixels and tensors (claim checks: events carry only the object
// ref) and decoded input images. Every stage package uses it; no stage package imports
// another.
package artifact

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"

	"github.com/creativeai-studio/studio/internal/blob"
	"github.com/creativeai-studio/studio/internal/models"
	"github.com/creativeai-studio/studio/schemas"
)

// Tensor is a dense float32 tensor in row-major order.
type Tensor struct {
	Shape []int64
	Data  []float32
}

// DTypeFloat32 is the only tensor element type stored today.
const DTypeFloat32 = "float32"

// Elements returns the element count of shape, or -1 if a dimension is negative.
func Elements(shape []int64) int64 {
	n := int64(1)
	for _, d := range shape {
		if d < 0 {
			return -1
		}
		n *= d
	}
	return n
}

// PutTensor stores t as raw little-endian float32 under key and returns its reference.
func PutTensor(ctx context.Context, store blob.Store, key string, t Tensor) (schemas.ObjectRef, error) {
	if n := Elements(t.Shape); n != int64(len(t.Data)) {
		return schemas.ObjectRef{}, fmt.Errorf("tensor %s: shape %v holds %d values, data has %d", key, t.Shape, n, len(t.Data))
	}
	buf := make([]byte, 4*len(t.Data))
	for i, v := range t.Data {
		binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
	}
	return putRaw(ctx, store, key, buf, t.Shape, DTypeFloat32)
}

// putRaw stores the raw bytes of a tensor of shape and dtype under key.
func putRaw(ctx context.Context, store blob.Store, key string, data []byte, shape []int64, dtype string) (schemas.ObjectRef, error) {
	ref, err := Put(ctx, store, key, data, "application/octet-stream")
	if err != nil {
		return schemas.ObjectRef{}, err
	}
	ref.Shape, ref.DType = append([]int64(nil), shape...), dtype
	return ref, nil
}

// getRaw reads the raw bytes of the tensor ref points at, after checking that its dtype
// is want and its size is the shape's element count times size bytes.
func getRaw(ctx context.Context, store blob.Store, ref schemas.ObjectRef, want string, size int64) ([]byte, error) {
	if ref.DType != want {
		return nil, fmt.Errorf("tensor %s: dtype %q is not %s", ref.Key, ref.DType, want)
	}
	n := Elements(ref.Shape)
	if n < 0 || n*size != ref.Size {
		return nil, fmt.Errorf("tensor %s: shape %v does not match %d bytes", ref.Key, ref.Shape, ref.Size)
	}
	rc, _, err := Open(ctx, store, ref)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	buf := make([]byte, ref.Size)
	if _, err := io.ReadFull(rc, buf); err != nil {
		return nil, fmt.Errorf("tensor %s: read: %w", ref.Key, err)
	}
	return buf, nil
}

// GetTensor loads the float32 tensor ref points at and checks its size against its
// shape.
func GetTensor(ctx context.Context, store blob.Store, ref schemas.ObjectRef) (Tensor, error) {
	buf, err := getRaw(ctx, store, ref, DTypeFloat32, 4)
	if err != nil {
		return Tensor{}, err
	}
	data := make([]float32, len(buf)/4)
	for i := range data {
		data[i] = math.Float32frombits(binary.LittleEndian.Uint32(buf[4*i:]))
	}
	return Tensor{Shape: append([]int64(nil), ref.Shape...), Data: data}, nil
}

// DTypeUint8 marks a tensor of 8-bit pixel values (0..255), channel planes in the
// model's colour order. Images travel between stages in this form: stage inputs are
// 8-bit images and stage outputs become 8-bit images, so it loses nothing, and it moves
// a quarter of the bytes of float32 through object storage.
const DTypeUint8 = "uint8"

// Pixels is a dense tensor of 8-bit pixel values in row-major order: [1,C,H,W].
type Pixels struct {
	Shape []int64
	Data  []byte
}

// PutPixels stores p as raw bytes under key and returns its reference.
func PutPixels(ctx context.Context, store blob.Store, key string, p Pixels) (schemas.ObjectRef, error) {
	if n := Elements(p.Shape); n != int64(len(p.Data)) {
		return schemas.ObjectRef{}, fmt.Errorf("pixels %s: shape %v holds %d values, data has %d", key, p.Shape, n, len(p.Data))
	}
	return putRaw(ctx, store, key, p.Data, p.Shape, DTypeUint8)
}

// GetPixels loads the uint8 tensor ref points at and checks its size against its shape.
func GetPixels(ctx context.Context, store blob.Store, ref schemas.ObjectRef) (Pixels, error) {
	data, err := getRaw(ctx, store, ref, DTypeUint8, 1)
	if err != nil {
		return Pixels{}, err
	}
	return Pixels{Shape: append([]int64(nil), ref.Shape...), Data: data}, nil
}

// LoadInput reads a model input: a float32 tensor as stored, or pixels normalised for
// spec with Normalize.
func LoadInput(ctx context.Context, store blob.Store, ref schemas.ObjectRef, spec models.Tensor) (Tensor, error) {
	if ref.DType != DTypeUint8 {
		return GetTensor(ctx, store, ref)
	}
	p, err := GetPixels(ctx, store, ref)
	if err != nil {
		return Tensor{}, err
	}
	return Normalize(p, spec)
}

// LoadOutput reads a model output as pixels: stored pixels as they are, or a float32
// tensor quantised for spec with Quantize.
func LoadOutput(ctx context.Context, store blob.Store, ref schemas.ObjectRef, spec models.Tensor) (Pixels, error) {
	if ref.DType == DTypeUint8 {
		return GetPixels(ctx, store, ref)
	}
	t, err := GetTensor(ctx, store, ref)
	if err != nil {
		return Pixels{}, err
	}
	return Quantize(t, spec)
}

// planeChannel returns which of the spec's R, G, B mean/std entries applies to channel
// plane k of a tensor in the spec's colour order.
func planeChannel(k int, spec models.Tensor) int {
	if spec.Color == "BGR" {
		return 2 - k
	}
	return k
}

// Normalize turns [1,3,H,W] pixels into the model's float input: (v - mean) / std per
// channel, where mean and std are given for R, G and B and the planes are in the spec's
// colour order.
func Normalize(p Pixels, spec models.Tensor) (Tensor, error) {
	if len(p.Shape) != 4 || p.Shape[0] != 1 || p.Shape[1] != 3 || Elements(p.Shape) != int64(len(p.Data)) {
		return Tensor{}, fmt.Errorf("pixels of shape %v with %d values are not a [1,3,H,W] image", p.Shape, len(p.Data))
	}
	plane := len(p.Data) / 3
	data := make([]float32, len(p.Data))
	for k := range 3 {
		c := planeChannel(k, spec)
		mean, scale := spec.Mean[c], 1/spec.Std[c]
		src, dst := p.Data[k*plane:(k+1)*plane], data[k*plane:(k+1)*plane]
		for i, v := range src {
			dst[i] = (float32(v) - mean) * scale
		}
	}
	return Tensor{Shape: append([]int64(nil), p.Shape...), Data: data}, nil
}

// Quantize turns a model output into 8-bit pixels. A [1,3,H,W] image undoes the
// normalisation (v*std + mean, as Normalize's inverse); a one-channel output
// ([1,1,H,W], [1,H,W] or [H,W]) is a probability map whose 0..1 becomes 0..255. Values
// are rounded, or truncated where spec.Quantize says truncate (a mask's v*255 is then
// computed in float64, as JavaScript does); values outside the range clamp; NaN
// becomes 0.
func Quantize(t Tensor, spec models.Tensor) (Pixels, error) {
	trunc := spec.Quantize == "truncate"
	if len(t.Shape) == 4 && t.Shape[0] == 1 && t.Shape[1] == 3 {
		if Elements(t.Shape) != int64(len(t.Data)) {
			return Pixels{}, fmt.Errorf("image tensor %v has %d values", t.Shape, len(t.Data))
		}
		plane := len(t.Data) / 3
		data := make([]byte, len(t.Data))
		for k := range 3 {
			c := planeChannel(k, spec)
			mean, std := spec.Mean[c], spec.Std[c]
			src, dst := t.Data[k*plane:(k+1)*plane], data[k*plane:(k+1)*plane]
			for i, v := range src {
				if trunc {
					dst[i] = truncByte(float64(v*std + mean))
				} else {
					dst[i] = clampByte(v*std + mean)
				}
			}
		}
		return Pixels{Shape: append([]int64(nil), t.Shape...), Data: data}, nil
	}
	if len(t.Shape) < 2 || Elements(t.Shape[:len(t.Shape)-2]) != 1 {
		return Pixels{}, fmt.Errorf("tensor of shape %v is neither a [1,3,H,W] image nor a [1,1,H,W] mask", t.Shape)
	}
	h, w := t.Shape[len(t.Shape)-2], t.Shape[len(t.Shape)-1]
	if h <= 0 || w <= 0 || int64(len(t.Data)) != h*w {
		return Pixels{}, fmt.Errorf("mask tensor has shape %v with %d values", t.Shape, len(t.Data))
	}
	data := make([]byte, len(t.Data))
	if trunc {
		for i, v := range t.Data {
			data[i] = truncByte(float64(v) * 255)
		}
	} else {
		for i, v := range t.Data {
			data[i] = clampByte(v * 255)
		}
	}
	return Pixels{Shape: []int64{1, 1, h, w}, Data: data}, nil
}

// truncByte drops v's fraction, clamping to 0..255; NaN becomes 0.
func truncByte(v float64) uint8 {
	switch {
	case !(v > 0):
		return 0
	case v >= 255:
		return 255
	}
	return uint8(v)
}

// clampByte rounds v to the nearest of 0..255; NaN becomes 0.
func clampByte(v float32) uint8 {
	switch {
	case !(v > 0):
		return 0
	case v >= 255:
		return 255
	}
	return uint8(v + 0.5)
}
