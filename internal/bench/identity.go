package bench

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/creativeai-studio/studio/internal/models"
	"github.com/creativeai-studio/studio/schemas"
)

// The identity model of TaskIdentity. It is a synthetic graph written by the bench, never
// a real model: it exists to measure what the pipeline costs around a model.
const (
	IdentityModel   = "bench-identity"
	IdentityVersion = "v1"
	// IdentitySide is the side of the identity bench's square inputs.
	IdentitySide = 8
)

// WriteIdentityModel writes, into dir, an ncnn graph with one 1x1 convolution whose
// weights are the 3x3 identity matrix (zero bias), converts it to ONNX with the
// repository's ncnn converter, as `studio models import-ncnn` would, and writes a
// style-transfer manifest for it (any size, untiled). Serve dir with --model-dir.
func WriteIdentityModel(dir string) error {
	param := "7767517\n2 2\nInput input 0 1 data 0=0 1=0 2=3\nConvolution conv 1 1 data out 0=3 1=1 5=1 6=9\n"
	var bin bytes.Buffer
	_ = binary.Write(&bin, binary.LittleEndian, uint32(0)) // flag: float32 weights follow
	for o := range 3 {
		for i := range 3 {
			w := float32(0)
			if o == i {
				w = 1
			}
			_ = binary.Write(&bin, binary.LittleEndian, math.Float32bits(w))
		}
	}
	for range 3 {
		_ = binary.Write(&bin, binary.LittleEndian, math.Float32bits(0))
	}
	pp, bp := filepath.Join(dir, "identity.param"), filepath.Join(dir, "identity.bin")
	if err := os.WriteFile(pp, []byte(param), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(bp, bin.Bytes(), 0o644); err != nil {
		return err
	}
	onnx, err := models.ConvertNCNN(pp, bp)
	if err != nil {
		return fmt.Errorf("bench: identity model: %w", err)
	}
	const file = "bench-identity.onnx"
	if err := os.WriteFile(filepath.Join(dir, file), onnx, 0o644); err != nil {
		return err
	}
	m := models.ImageManifest(IdentityModel, IdentityVersion, string(schemas.TaskStyleTransfer), 1, file, onnx, "synthetic-test-graph")
	// Untiled: an 8x8 image is one run either way, and the tile copy is not what this
	// bench is after.
	if i := strings.Index(m, "tile:\n"); i >= 0 {
		m = m[:i]
	}
	return os.WriteFile(filepath.Join(dir, "bench-identity.yaml"), []byte(m), 0o644)
}
