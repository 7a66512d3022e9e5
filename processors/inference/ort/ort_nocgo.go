//go:build !cgo

// Package ort is the ONNX Runtime backend; this build has no cgo, so it only reports
// that inference is unavailable.
package ort

import (
	"github.com/creativeai-studio/studio/internal/models"
	"github.com/creativeai-studio/studio/processors/inference"
)

// Config mirrors the cgo build's configuration.
type Config struct {
	LibraryPath    string
	Device         string
	IntraOpThreads int
	Spin           bool
}

// Backend is never constructed without cgo.
type Backend struct{}

var _ inference.Backend = (*Backend)(nil)

// New always fails: ONNX Runtime needs cgo.
func New(Config) (*Backend, error) { return nil, inference.ErrNoBackend }

// Device implements inference.Backend.
func (*Backend) Device() string { return "none" }

// Fallback is never set without cgo.
func (*Backend) Fallback() error { return nil }

// Open implements inference.Backend; it always fails.
func (*Backend) Open(models.Spec) (inference.Session, error) { return nil, inference.ErrNoBackend }
