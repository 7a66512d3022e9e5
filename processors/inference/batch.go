package inference

import (
	"fmt"

	"github.com/creativeai-studio/studio/processors/artifact"
)

// Stack joins [1,...] tensors of one shape into a single [N,...] tensor, so N jobs run
// as one batched call. It reports false when the shapes differ.
func Stack(ts []artifact.Tensor) (artifact.Tensor, bool) {
	if len(ts) == 0 || len(ts[0].Shape) == 0 || ts[0].Shape[0] != 1 {
		return artifact.Tensor{}, false
	}
	shape := fmt.Sprint(ts[0].Shape)
	n := len(ts[0].Data)
	data := make([]float32, 0, n*len(ts))
	for _, t := range ts {
		if fmt.Sprint(t.Shape) != shape || len(t.Data) != n {
			return artifact.Tensor{}, false
		}
		data = append(data, t.Data...)
	}
	out := artifact.Tensor{Shape: append([]int64{int64(len(ts))}, ts[0].Shape[1:]...), Data: data}
	return out, true
}

// Unstack cuts an [N,...] tensor into N [1,...] tensors sharing its memory.
func Unstack(t artifact.Tensor, n int) ([]artifact.Tensor, error) {
	if len(t.Shape) == 0 || t.Shape[0] != int64(n) || len(t.Data)%n != 0 {
		return nil, fmt.Errorf("batched output %v does not hold %d results", t.Shape, n)
	}
	per := len(t.Data) / n
	out := make([]artifact.Tensor, n)
	for i := range out {
		out[i] = artifact.Tensor{Shape: append([]int64{1}, t.Shape[1:]...), Data: t.Data[i*per : (i+1)*per : (i+1)*per]}
	}
	return out, nil
}
