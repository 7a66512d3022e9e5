//go:build cgo

package ort

import "github.com/creativeai-studio/studio/processors/artifact"

func tensor(x []float32) artifact.Tensor {
	return artifact.Tensor{Shape: []int64{1, 3, 1024, 1024}, Data: x}
}
