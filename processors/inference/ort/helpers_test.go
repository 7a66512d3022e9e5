//go:build cgo

package ort

import "github.com/creativeai-studio/studio/processors/inference"

func tensor(x []float32) inference.Tensor {
	return inference.Tensor{Shape: []int64{1, 3, 1024, 1024}, Data: x}
}
