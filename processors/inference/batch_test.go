package inference

import (
	"testing"

	"github.com/creativeai-studio/studio/processors/artifact"
)

func TestStackAndUnstack(t *testing.T) {
	a := artifact.Tensor{Shape: []int64{1, 2, 2}, Data: []float32{1, 2, 3, 4}}
	b := artifact.Tensor{Shape: []int64{1, 2, 2}, Data: []float32{5, 6, 7, 8}}
	s, ok := Stack([]artifact.Tensor{a, b})
	if !ok || len(s.Shape) != 3 || s.Shape[0] != 2 || s.Data[4] != 5 {
		t.Fatalf("Stack = %v %v", s, ok)
	}
	parts, err := Unstack(s, 2)
	if err != nil || parts[1].Data[3] != 8 || parts[0].Shape[0] != 1 {
		t.Fatalf("Unstack = %v %v", parts, err)
	}
	if _, ok := Stack([]artifact.Tensor{a, {Shape: []int64{1, 4}, Data: []float32{1, 2, 3, 4}}}); ok {
		t.Error("tensors of different shapes were stacked")
	}
	if _, err := Unstack(s, 3); err == nil {
		t.Error("a batch of 2 was cut into 3")
	}
}
