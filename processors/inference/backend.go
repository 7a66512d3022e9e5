// Package inference is the inference stage: it reads model-ready tensors from object
// storage, runs them through a model session and writes the outputs back. The runtime
// itself (ONNX Runtime through cgo) sits behind Backend, so everything else builds
// without cgo.
package inference

import (
	"context"
	"errors"

	"github.com/creativeai-studio/studio/internal/models"
	"github.com/creativeai-studio/studio/processors/artifact"
)

// ErrNoBackend is returned when the binary was built without an inference runtime.
var ErrNoBackend = errors.New("inference: no runtime in this build (rebuild with CGO_ENABLED=1)")

// Session runs one loaded model. Run may be called from one goroutine at a time per
// session; Pool shares sessions between goroutines.
type Session interface {
	// Run feeds input (the spec's input tensor) and returns the spec's output tensor.
	// It honours ctx: a cancelled or expired ctx stops the run early.
	Run(ctx context.Context, input artifact.Tensor) (artifact.Tensor, error)
	Close() error
}

// Backend opens sessions for model specs.
type Backend interface {
	Open(spec models.Spec) (Session, error)
	// Device names where sessions run ("cpu", "cuda:0").
	Device() string
}
