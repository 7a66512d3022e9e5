package models

import (
	"context"
	"fmt"

	"github.com/creativeai-studio/studio/internal/assets"
)

// fetchNCNN is replaced once the ncnn importer lands.
func fetchNCNN(ctx context.Context, cache *assets.Cache, m Manifest) (Spec, error) {
	return Spec{}, fmt.Errorf("%s: ncnn sources need the importer", m.File)
}
