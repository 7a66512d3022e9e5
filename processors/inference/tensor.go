package inference

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"

	"github.com/creativeai-studio/studio/internal/blob"
	"github.com/creativeai-studio/studio/schemas"
)

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
	info, err := store.Put(ctx, key, bytes.NewReader(buf), int64(len(buf)), "application/octet-stream")
	if err != nil {
		return schemas.ObjectRef{}, err
	}
	return schemas.ObjectRef{Key: key, Size: info.Size, SHA256: info.SHA256, ContentType: info.ContentType, Shape: append([]int64(nil), t.Shape...), DType: DTypeFloat32}, nil
}

// GetTensor loads the tensor ref points at and checks its size against its shape.
func GetTensor(ctx context.Context, store blob.Store, ref schemas.ObjectRef) (Tensor, error) {
	if ref.DType != DTypeFloat32 {
		return Tensor{}, fmt.Errorf("tensor %s: dtype %q is not supported (want float32)", ref.Key, ref.DType)
	}
	n := Elements(ref.Shape)
	if n < 0 || n*4 != ref.Size {
		return Tensor{}, fmt.Errorf("tensor %s: shape %v does not match %d bytes", ref.Key, ref.Shape, ref.Size)
	}
	rc, _, err := store.Get(ctx, ref.Key)
	if err != nil {
		return Tensor{}, err
	}
	defer rc.Close()
	buf := make([]byte, ref.Size)
	if _, err := io.ReadFull(rc, buf); err != nil {
		return Tensor{}, fmt.Errorf("tensor %s: read: %w", ref.Key, err)
	}
	data := make([]float32, n)
	for i := range data {
		data[i] = math.Float32frombits(binary.LittleEndian.Uint32(buf[4*i:]))
	}
	return Tensor{Shape: append([]int64(nil), ref.Shape...), Data: data}, nil
}
