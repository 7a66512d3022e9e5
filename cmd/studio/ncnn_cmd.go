package main

import (
	"context"
	"errors"
	"io"
)

func importNCNN(ctx context.Context, args []string, stdout io.Writer) error {
	return errors.New("import-ncnn: not available in this build")
}
