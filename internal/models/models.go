// Package models describes the models the pipeline runs: which task each serves, where
// its weights are, and how images become tensors and back (manifest.go). Preprocess,
// inference and postprocess read the same Spec, so the stages always agree on a model's
// contract. The Catalog routes jobs to versions: explicit, default, weighted (canary),
// and names each version's fallback.
package models

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"sync"

	"github.com/creativeai-studio/studio/schemas"
)

// ErrUnknownModel is returned for a model or version the catalog does not have.
var ErrUnknownModel = errors.New("models: unknown model")

//go:embed manifests/*.yaml
var shipped embed.FS

// Shipped returns the manifests of the models this repository knows how to fetch.
func Shipped() ([]Manifest, error) {
	sub, err := fs.Sub(shipped, "manifests")
	if err != nil {
		return nil, err
	}
	return LoadManifests(sub, "internal/models/manifests")
}

// Spec is a manifest resolved to a local ONNX file.
type Spec struct {
	Manifest
	// Path is the ONNX file on local disk.
	Path string
	// Local are the local files of the manifest's Parts and Files, by role.
	Local map[string]string
	// VariantPaths are the fetched files of the manifest's Variants, by device kind
	// (FetchVariant); PathFor picks one.
	VariantPaths map[string]string
}

// Part returns the spec of the part model role (see Manifest.Parts): its own tensors
// and file, named "<name>-<role>" so it loads and is observed as a model of its own.
func (s Spec) Part(role string) (Spec, error) {
	p, ok := s.Parts[role]
	if !ok {
		return Spec{}, fmt.Errorf("%w: %s has no part %q", ErrUnknownModel, s.ID(), role)
	}
	path, ok := s.Local[role]
	if !ok {
		return Spec{}, fmt.Errorf("models: %s: part %q was not fetched (run `studio fetch models`)", s.ID(), role)
	}
	m := s.Manifest
	m.Name = s.Name + "-" + role
	m.Default, m.Weight, m.Fallback = false, 0, ""
	m.Source, m.Input, m.Output = p.Source, p.Input, p.Output
	m.Parts, m.Files = nil, nil
	return Spec{Manifest: m, Path: path}, nil
}

// File returns the local path of the data file role (see Manifest.Files).
func (s Spec) File(role string) (string, error) {
	if _, ok := s.Manifest.Files[role]; !ok {
		return "", fmt.Errorf("%w: %s has no file %q", ErrUnknownModel, s.ID(), role)
	}
	p, ok := s.Local[role]
	if !ok {
		return "", fmt.Errorf("models: %s: file %q was not fetched (run `studio fetch models`)", s.ID(), role)
	}
	return p, nil
}

// H and W return the fixed spatial size of a tensor, or 0 for dynamic dimensions.
func (t Tensor) H() int { return dim(t.Shape, 2) }

// W returns the fixed width, or 0 when dynamic.
func (t Tensor) W() int { return dim(t.Shape, 3) }

func dim(s []int64, i int) int {
	if len(s) > i && s[i] > 0 {
		return int(s[i])
	}
	return 0
}

// ISNet returns the IS-Net background-removal contract with weights at path, whatever
// the version is called: the tensors of the shipped isnet-small manifest (RGB,
// 1024x1024 by @imgly's resize, (v-128)/256, one-channel mask out, batch fixed at 1).
func ISNet(version, path string) Spec {
	ms, err := Shipped()
	if err != nil {
		panic(fmt.Sprintf("models: shipped manifests: %v", err)) // embedded and tested
	}
	for _, m := range ms {
		if m.Name == "isnet" && m.Version == "small" {
			return Spec{Path: path, Manifest: Manifest{
				Name: "isnet", Version: version, Task: schemas.TaskRemoveBackground, Default: version == "small",
				License: m.License, Provider: "auto", Scale: 1, Input: m.Input, Output: m.Output,
			}}
		}
	}
	panic("models: no shipped isnet-small manifest")
}

// Catalog holds the available model versions. Safe for concurrent use.
type Catalog struct {
	mu       sync.RWMutex
	specs    map[string]Spec // by ID
	order    []string
	defaults map[schemas.Task]string
	routing  map[schemas.Task]Routing // runtime weight tables (rollouts), replacing manifest weights
}

// Routing is a task's weight table set at runtime (by a rollout): it replaces the
// manifests' weight lines for the unversioned jobs of Model. It is applied whole, so a
// reader sees either the old table or the new one, never a mix.
type Routing struct {
	// Model is the model name whose versions the table routes between.
	Model string `json:"model"`
	// Weights maps a version to its share; versions at 0 or absent get no new jobs.
	Weights map[string]int `json:"weights"`
}

// NewCatalog returns an empty catalog.
func NewCatalog() *Catalog {
	return &Catalog{specs: map[string]Spec{}, defaults: map[schemas.Task]string{}, routing: map[schemas.Task]Routing{}}
}

// Add registers a spec. A spec marked Default becomes its task's default; otherwise the
// first spec of a task is.
func (c *Catalog) Add(s Spec) error {
	if err := schemas.ValidToken(s.Name); err != nil {
		return fmt.Errorf("models: model name: %w", err)
	}
	if s.Version == "" {
		return fmt.Errorf("models: %s has no version", s.Name)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.specs[s.ID()]; !ok {
		c.order = append(c.order, s.ID())
	}
	c.specs[s.ID()] = s
	if cur, ok := c.defaults[s.Task]; !ok || (s.Default && !c.specs[cur].Default) {
		c.defaults[s.Task] = s.ID()
	}
	return nil
}

// SetRouting replaces task's runtime weight table; a nil or empty table removes it, and
// the manifests' weights apply again. Safe for concurrent use with Resolve.
func (c *Catalog) SetRouting(task schemas.Task, r *Routing) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r == nil || len(r.Weights) == 0 {
		delete(c.routing, task)
		return
	}
	w := make(map[string]int, len(r.Weights))
	for v, n := range r.Weights {
		w[v] = n
	}
	c.routing[task] = Routing{Model: r.Model, Weights: w}
}

// RoutingFor returns task's runtime weight table, if one is set.
func (c *Catalog) RoutingFor(task schemas.Task) (Routing, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	r, ok := c.routing[task]
	return r, ok
}

// Resolve picks the version for a job that names task and optionally a model and a
// version. With no version, a runtime weight table for the task and model (SetRouting)
// decides; otherwise versions of the model that carry a Weight share the jobs by weight
// (u is a uniform random number in [0,1) supplied by the caller, so routing is
// testable); without weights the default version runs.
func (c *Catalog) Resolve(task schemas.Task, name, version string, u float64) (Spec, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if name == "" {
		id, ok := c.defaults[task]
		if !ok {
			return Spec{}, fmt.Errorf("%w: no model serves task %q", ErrUnknownModel, task)
		}
		name = c.specs[id].Name
	}
	if version != "" {
		s, ok := c.specs[name+"@"+version]
		if !ok || s.Task != task {
			return Spec{}, fmt.Errorf("%w: %s@%s for task %q", ErrUnknownModel, name, version, task)
		}
		return s, nil
	}
	if r, ok := c.routing[task]; ok && r.Model == name {
		if s, ok := c.pickRouted(task, r, u); ok {
			return s, nil
		}
	}
	var weighted []Spec
	total := 0
	var first, def *Spec
	for _, id := range c.order {
		s := c.specs[id]
		if s.Name != name || s.Task != task {
			continue
		}
		if first == nil {
			first = &s
		}
		if c.defaults[task] == id {
			def = &s
		}
		if s.Weight > 0 {
			weighted = append(weighted, s)
			total += s.Weight
		}
	}
	if first == nil {
		return Spec{}, fmt.Errorf("%w: %q for task %q", ErrUnknownModel, name, task)
	}
	if total > 0 {
		pick := u * float64(total)
		for _, s := range weighted {
			if pick < float64(s.Weight) {
				return s, nil
			}
			pick -= float64(s.Weight)
		}
		return weighted[len(weighted)-1], nil
	}
	if def != nil {
		return *def, nil
	}
	return *first, nil
}

// pickRouted picks a version from a runtime table, in version order so that u maps to
// the same version on every replica. Versions this catalog lacks are skipped; ok is false
// when none is left.
func (c *Catalog) pickRouted(task schemas.Task, r Routing, u float64) (Spec, bool) {
	versions := make([]string, 0, len(r.Weights))
	total := 0
	for v, w := range r.Weights {
		if s, ok := c.specs[r.Model+"@"+v]; ok && w > 0 && s.Task == task {
			versions = append(versions, v)
			total += w
		}
	}
	if total == 0 {
		return Spec{}, false
	}
	sort.Strings(versions)
	pick := u * float64(total)
	for _, v := range versions {
		if w := r.Weights[v]; pick < float64(w) {
			return c.specs[r.Model+"@"+v], true
		}
		pick -= float64(r.Weights[v])
	}
	return c.specs[r.Model+"@"+versions[len(versions)-1]], true
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

// Fallback returns the version to run when s fails, if it has one in the catalog.
func (c *Catalog) Fallback(s Spec) (Spec, bool) {
	if s.Fallback == "" {
		return Spec{}, false
	}
	f, err := c.Get(s.Name, s.Fallback)
	return f, err == nil
}

// IsDefault reports whether s is its task's default version.
func (c *Catalog) IsDefault(s Spec) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.defaults[s.Task] == s.ID()
}

// All returns every spec, sorted by task and id.
func (c *Catalog) All() []Spec {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]Spec, 0, len(c.specs))
	for _, s := range c.specs {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Task != out[j].Task {
			return out[i].Task < out[j].Task
		}
		return out[i].ID() < out[j].ID()
	})
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
