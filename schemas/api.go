package schemas

import (
	"fmt"
	"math"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Schema identifiers of the submission API (HTTP JSON body and the NATS entry).
const (
	SchemaJobSubmit    = "studio.job.submit/v1"
	SchemaJobSubmitted = "studio.job.submitted/v1"
)

// SubmitSubjectPattern is what the NATS entry listens on; the last token is the task.
const SubmitSubjectPattern = "studio.submit.*"

// MaxInlineImageBytes bounds an image sent inline as base64 (ImageInput.Data). Larger
// images go to the object store first (a presigned upload) and travel as a key: a NATS
// server's default max_payload is 1 MiB, and base64 adds a third.
const MaxInlineImageBytes = 512 << 10

// UploadPrefix is where presigned uploads and upstream systems put images that a job
// request then references by key: uploads/<tenant>/<name>. A request may only reference
// keys under its own tenant's prefix.
const UploadPrefix = "uploads/"

// JobRequest asks for one job. It is the JSON body of POST /v1/jobs (Content-Type
// application/json) and the message body on studio.submit.<task>. Upstream publishers
// validate it against schemas/jsonschema/job-request.json.
type JobRequest struct {
	// Schema is optional; when set it must be studio.job.submit/v1.
	Schema string `json:"schema,omitempty" jsonschema:"enum=studio.job.submit/v1"`
	// Task is required over HTTP. On NATS the subject names it; a body task must agree.
	Task    Task   `json:"task,omitempty" jsonschema:"description=what to do with the image"`
	Model   string `json:"model,omitempty" jsonschema:"pattern=^[A-Za-z0-9_-]{1\\,64}$,description=model name (default: the task's default)"`
	Version string `json:"version,omitempty" jsonschema:"pattern=^[a-z0-9][a-z0-9._-]{0\\,63}$,description=model version"`
	Tier    Tier   `json:"tier,omitempty" jsonschema:"enum=premium,enum=normal,enum=free,description=priority tier (default normal)"`
	// Params are the task's parameters; TaskSpecs lists names and ranges.
	Params map[string]any `json:"params,omitempty" jsonschema:"description=task parameters; see GET /v1/tasks for names and ranges"`
	// Image is required by every task that takes one (TakesImage); generate takes none.
	Image *ImageInput `json:"image,omitempty"`
	// Style is the style image of a style-transfer job whose model takes one
	// (arbitrary-style models; GET /v1/models says which): key or data, like Image.
	Style *ImageInput `json:"style,omitempty"`
	// Steps chains tasks: each step runs on the previous step's image output. With
	// steps, task is optional (it must equal the first step's) and model, version and
	// params go in the steps.
	Steps []StepRequest `json:"steps,omitempty" jsonschema:"minItems=1,maxItems=4,description=chained steps run in order on the previous step's image (at most 4)"`
	// CallbackURL receives the final state as a signed POST (see the README, Webhooks).
	CallbackURL string `json:"callback_url,omitempty" jsonschema:"format=uri,maxLength=2048,pattern=^https?://"`
	// IdempotencyKey makes a retried request return the first job instead of creating a
	// second. Over HTTP the Idempotency-Key header is used instead.
	IdempotencyKey string `json:"idempotency_key,omitempty" jsonschema:"minLength=1,maxLength=255"`
	// Tenant and User say on whose behalf an upstream system submits (NATS only; HTTP
	// callers are identified by the server).
	Tenant string `json:"tenant,omitempty" jsonschema:"pattern=^[A-Za-z0-9_-]{1\\,64}$"`
	User   string `json:"user,omitempty" jsonschema:"maxLength=256"`
	// TraceParent continues the caller's W3C trace.
	TraceParent string `json:"traceparent,omitempty" jsonschema:"pattern=^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"`
}

// BatchRequest is the JSON body of POST /v2/batches: one task and parameter set for
// many uploaded images (POST /v1/uploads), one job each.
type BatchRequest struct {
	Task    Task           `json:"task"`
	Model   string         `json:"model,omitempty"`
	Version string         `json:"version,omitempty"`
	Params  map[string]any `json:"params,omitempty"`
	// Images name uploaded objects by key; inline data is not taken in a batch.
	Images []ImageInput `json:"images" jsonschema:"minItems=1"`
	// CallbackURL receives one signed POST with a BatchCompleted summary once every
	// job of the batch has ended; the batch's jobs send no webhook of their own.
	CallbackURL string `json:"callback_url,omitempty" jsonschema:"format=uri,maxLength=2048,pattern=^https?://"`
}

// Schema identifiers of batches.
const (
	SchemaBatchSubmitted = "studio.batch.submitted/v1"
	SchemaBatchCompleted = "studio.batch.completed/v1"
)

// SubmitBatchSubjectPattern is where the NATS entry takes batches (a BatchRequest):
// studio.submit.batch.<task>. It lies under studio.submit.>, so the accounts that may
// submit jobs may submit batches.
const SubmitBatchSubjectPattern = "studio.submit.batch.*"

// SubmitBatchSubject is the NATS subject for a batch of task.
func SubmitBatchSubject(task Task) string { return "studio.submit.batch." + string(task) }

// BatchReply answers a batch on studio.submit.batch.<task>: the batch, its jobs (in
// request order) and the images that were refused.
type BatchReply struct {
	Schema  string         `json:"schema" jsonschema:"enum=studio.batch.submitted/v1"`
	BatchID string         `json:"batch_id"`
	Jobs    []BatchJob     `json:"jobs"`
	Refused []BatchRefused `json:"refused,omitempty"`
	// StatusURL is GET /v2/batches/{id} on the HTTP API.
	StatusURL string `json:"status_url"`
}

// BatchJob is one admitted job of a batch.
type BatchJob struct {
	Index  int    `json:"index" jsonschema:"description=the image's position in the request, from 0"`
	JobID  string `json:"job_id"`
	Status Status `json:"status"`
}

// BatchRefused is one image of a batch that admission refused, with the problem.
type BatchRefused struct {
	Index   int     `json:"index"`
	Key     string  `json:"key,omitempty"`
	Problem Problem `json:"problem"`
}

// BatchCounts counts a batch's jobs by status.
type BatchCounts struct {
	Queued    int `json:"queued"`
	Running   int `json:"running"`
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
	Cancelled int `json:"cancelled"`
}

// BatchCompleted is the body of the batch webhook, sent once when every job of a
// batch has ended (Studio-Event: studio.batch.completed/v1).
type BatchCompleted struct {
	Schema      string      `json:"schema" jsonschema:"enum=studio.batch.completed/v1"`
	BatchID     string      `json:"batch_id"`
	Tenant      string      `json:"tenant"`
	User        string      `json:"user"`
	Task        Task        `json:"task"`
	Total       int         `json:"total"`
	Counts      BatchCounts `json:"counts"`
	JobIDs      []string    `json:"job_ids"`
	CompletedAt time.Time   `json:"completed_at"`
}

// ImageInput is the image of a JobRequest: exactly one of Key (an object already in the
// object store under uploads/<tenant>/) or Data (the file itself, base64 in JSON, at most
// MaxInlineImageBytes).
type ImageInput struct {
	Key  string `json:"key,omitempty" jsonschema:"minLength=1,maxLength=1024,description=object key under uploads/<tenant>/"`
	Data []byte `json:"data,omitempty" jsonschema:"contentEncoding=base64"`
}

// SubmitReply answers a JobRequest on the NATS entry.
type SubmitReply struct {
	Schema string `json:"schema"`
	JobID  string `json:"job_id"`
	Status Status `json:"status"`
	// QueuePosition is 1 for the next job to run in its tier; 0 once running.
	QueuePosition int `json:"queue_position"`
	// StatusURL, EventsURL and WebSocketURL are paths on the HTTP API.
	StatusURL    string `json:"status_url"`
	EventsURL    string `json:"events_url"`
	WebSocketURL string `json:"websocket_url"`
	// ResultSubject is where the final ResultEvent is published.
	ResultSubject string `json:"result_subject"`
	// Replayed is set when an idempotency key matched an earlier request.
	Replayed bool   `json:"replayed,omitempty"`
	TraceID  string `json:"trace_id,omitempty"`
}

// Problem is an RFC 9457 problem details body, used by the HTTP API and as the body of
// an error reply on the NATS entry. Code is stable and meant for programs; Errors name
// the offending fields and the constraint each one broke.
type Problem struct {
	Type      string       `json:"type"`
	Title     string       `json:"title"`
	Status    int          `json:"status"`
	Detail    string       `json:"detail,omitempty"`
	Instance  string       `json:"instance,omitempty"`
	Code      string       `json:"code,omitempty"`
	RequestID string       `json:"request_id,omitempty"`
	Errors    []FieldError `json:"errors,omitempty"`
}

// FieldError names one invalid field: Field is a dotted path ("params.threshold"),
// Constraint the JSON Schema keyword it broke ("maximum", "required", "enum", ...).
type FieldError struct {
	Field      string `json:"field"`
	Constraint string `json:"constraint,omitempty"`
	Message    string `json:"message"`
}

// NewProblem builds a problem whose type points at the error code's documentation.
func NewProblem(status int, code, detail string, fields ...FieldError) *Problem {
	return &Problem{
		Type:   "/docs/problems#" + code,
		Title:  http.StatusText(status),
		Status: status,
		Detail: detail,
		Code:   code,
		Errors: fields,
	}
}

func (p *Problem) Error() string { return p.Title + ": " + p.Detail }

// GetStatus returns the HTTP status (the huma.StatusError contract).
func (p *Problem) GetStatus() int { return p.Status }

// ContentType maps a negotiated JSON type to the problem type (huma.ContentTypeFilter).
func (p *Problem) ContentType(ct string) string {
	if ct == "application/json" || ct == "" {
		return "application/problem+json"
	}
	return ct
}

// ParamSpec describes one task parameter. Sliders in the web studio map to Minimum,
// Maximum and Step.
type ParamSpec struct {
	Name        string   `json:"name"`
	Type        string   `json:"type" jsonschema:"enum=number,enum=integer,enum=boolean,enum=string"`
	Description string   `json:"description"`
	Minimum     *float64 `json:"minimum,omitempty"`
	Maximum     *float64 `json:"maximum,omitempty"`
	Step        float64  `json:"step,omitempty"`
	Default     any      `json:"default,omitempty"`
	MaxLength   int      `json:"max_length,omitempty"`
	// Pattern is a regular expression (RE2, anchored) a string parameter must match.
	Pattern string `json:"pattern,omitempty"`
	// Enum lists the accepted values of a string parameter; empty means any.
	Enum []string `json:"enum,omitempty"`
	// Required parameters must be present (generate's prompt).
	Required bool `json:"required,omitempty"`
}

// TaskSpec describes a task and its parameters.
type TaskSpec struct {
	Task        Task        `json:"task"`
	Description string      `json:"description"`
	Params      []ParamSpec `json:"params"`
}

func ptr(v float64) *float64 { return &v }

// Values of the color parameter of tasks that return an image.
const (
	// ColorKeep writes the result in the input's colour space with the input's
	// ICC profile embedded (sRGB, tagged, when the input had none).
	ColorKeep = "keep"
	// ColorSRGB writes the result in sRGB, tagged sRGB, whatever the input was.
	ColorSRGB = "srgb"
)

// colorParam is the output colour space choice of every task that returns an image.
var colorParam = ParamSpec{Name: "color", Type: "string", Enum: []string{ColorKeep, ColorSRGB}, Default: ColorKeep,
	Description: "colour space of the result: keep = the input's ICC profile, embedded (what you sent); srgb = converted to sRGB and tagged sRGB"}

// Values of the format parameter of tasks that return an image: the file format of
// the image results.
const (
	// FormatPNG is lossless, with transparency (the default).
	FormatPNG = "png"
	// FormatJPEG is lossy and has no alpha channel: transparent pixels are flattened
	// onto the background parameter (white unless set).
	FormatJPEG = "jpeg"
	// FormatWebP is lossy WebP with a lossless alpha channel.
	FormatWebP = "webp"
)

// DefaultQuality is the quality of jpeg and webp results when the job names none.
const DefaultQuality = 90

// DefaultBackground is what a jpeg result's transparent pixels are flattened onto
// when the job names no background.
const DefaultBackground = "#ffffff"

// outputParams choose the file format of every task that returns an image
// (OutputFormat reads them); ValidateParams also refuses a quality with png.
var outputParams = []ParamSpec{
	{Name: "format", Type: "string", Enum: []string{FormatPNG, FormatJPEG, FormatWebP}, Default: FormatPNG,
		Description: "file format of the image results and thumbnail (remove-background's mask stays PNG): png = lossless with transparency; jpeg = lossy, no transparency (flattened onto background); webp = lossy with transparency"},
	{Name: "quality", Type: "integer", Minimum: ptr(1), Maximum: ptr(100), Step: 1, Default: DefaultQuality,
		Description: "jpeg and webp quality, 1 (smallest file) to 100 (best); refused with png, which is lossless"},
	{Name: "background", Type: "string", Pattern: "^#[0-9a-fA-F]{6}$",
		Description: "colour #rrggbb that transparent pixels are flattened onto: for jpeg always (default #ffffff, white), for png and webp only when set (they keep transparency otherwise)"},
}

// withOutput appends the output format parameters to a task's own.
func withOutput(ps ...ParamSpec) []ParamSpec { return append(ps, outputParams...) }

// OutputFormat is the file format a job's image results are written in, read from
// its (validated) params: Format is FormatPNG, FormatJPEG or FormatWebP, Quality is
// 1-100 for jpeg and webp, and Background is the colour transparent pixels are
// flattened onto, or nil to keep transparency (png and webp without a background).
type OutputFormat struct {
	Format     string
	Quality    int
	Background *[3]uint8
}

// OutputFormatOf reads the format, quality and background params (validated at
// admission, so a bad value is an error here only for events that skipped it).
func OutputFormatOf(params map[string]any) (OutputFormat, error) {
	o := OutputFormat{Format: FormatPNG}
	if v, ok := params["format"]; ok {
		s, _ := v.(string)
		if s != FormatPNG && s != FormatJPEG && s != FormatWebP {
			return o, fmt.Errorf("format %v: use png, jpeg or webp", v)
		}
		o.Format = s
	}
	if o.Format != FormatPNG {
		o.Quality = DefaultQuality
		if v, ok := params["quality"]; ok {
			f, _ := v.(float64)
			if f < 1 || f > 100 || f != math.Trunc(f) {
				return o, fmt.Errorf("quality %v: use a whole number from 1 to 100", v)
			}
			o.Quality = int(f)
		}
	}
	bg, set := params["background"]
	if !set && o.Format == FormatJPEG {
		bg, set = DefaultBackground, true
	}
	if set {
		s, _ := bg.(string)
		rgb, ok := ParseHexColour(s)
		if !ok {
			return o, fmt.Errorf("background %v: use #rrggbb", bg)
		}
		o.Background = &rgb
	}
	return o, nil
}

// Ext is the file name extension of the format, with its dot.
func (o OutputFormat) Ext() string {
	if o.Format == FormatJPEG {
		return ".jpg"
	}
	return "." + o.Format
}

// ContentType is the MIME type of the format.
func (o OutputFormat) ContentType() string { return "image/" + o.Format }

// ParseHexColour reads "#rrggbb" (either case).
func ParseHexColour(s string) ([3]uint8, bool) {
	var rgb [3]uint8
	if len(s) != 7 || s[0] != '#' {
		return rgb, false
	}
	for i := range 3 {
		v, err := strconv.ParseUint(s[1+2*i:3+2*i], 16, 8)
		if err != nil {
			return rgb, false
		}
		rgb[i] = uint8(v)
	}
	return rgb, true
}

// taskSpecs is the parameter contract of every task. Ranges are what the models and
// post-processing accept; a request outside them is refused at the edge.
var taskSpecs = []TaskSpec{
	{Task: TaskRemoveBackground, Description: "cut the subject out of its background", Params: withOutput(
		ParamSpec{Name: "threshold", Type: "number", Description: "mask values below this become fully transparent; 0 keeps the soft mask", Minimum: ptr(0), Maximum: ptr(1), Step: 0.01, Default: 0.0},
		ParamSpec{Name: "feather", Type: "integer", Description: "edge softening radius in pixels", Minimum: ptr(0), Maximum: ptr(64), Step: 1, Default: 0},
		colorParam,
	)},
	{Task: TaskUpscale, Description: "enlarge an image with a super-resolution model", Params: withOutput(
		ParamSpec{Name: "scale", Type: "integer", Description: "output size as a multiple of the input", Minimum: ptr(2), Maximum: ptr(4), Step: 1, Default: 4},
		ParamSpec{Name: "denoise", Type: "number", Description: "noise removal strength", Minimum: ptr(0), Maximum: ptr(1), Step: 0.05, Default: 0.5},
		colorParam,
	)},
	{Task: TaskStyleTransfer, Description: "repaint an image in a model's style", Params: withOutput(
		ParamSpec{Name: "strength", Type: "number", Description: "blend of stylised and original pixels", Minimum: ptr(0), Maximum: ptr(1), Step: 0.05, Default: 1.0},
		colorParam,
	)},
	{Task: TaskOCR, Description: "find and read text", Params: []ParamSpec{
		{Name: "min_confidence", Type: "number", Description: "drop text lines recognised with less confidence", Minimum: ptr(0), Maximum: ptr(1), Step: 0.05, Default: 0.5},
	}},
	{Task: TaskGenerate, Description: "generate images from a prompt with a Stable Diffusion model; takes no input image", Params: withOutput(
		ParamSpec{Name: "prompt", Type: "string", Description: "what to draw", MaxLength: 1000, Required: true},
		ParamSpec{Name: "negative_prompt", Type: "string", Description: "what to steer away from (used when guidance > 1)", MaxLength: 1000},
		ParamSpec{Name: "seed", Type: "integer", Description: "random seed; the same seed and settings repeat a result (drawn when left out)", Minimum: ptr(0), Maximum: ptr(math.MaxUint32), Step: 1},
		ParamSpec{Name: "steps", Type: "integer", Description: "denoising steps (default: the model's, 1 for SD-Turbo)", Minimum: ptr(1), Maximum: ptr(150), Step: 1},
		ParamSpec{Name: "guidance", Type: "number", Description: "classifier-free guidance scale; 0 or 1 turns it off (default: the model's, 0 for SD-Turbo)", Minimum: ptr(0), Maximum: ptr(30), Step: 0.5},
		ParamSpec{Name: "width", Type: "integer", Description: "image width in pixels, a multiple of 8 (default: the model's)", Minimum: ptr(64), Maximum: ptr(1024), Step: 8},
		ParamSpec{Name: "height", Type: "integer", Description: "image height in pixels, a multiple of 8 (default: the model's)", Minimum: ptr(64), Maximum: ptr(1024), Step: 8},
		ParamSpec{Name: "num_images", Type: "integer", Description: "images to make from the prompt", Minimum: ptr(1), Maximum: ptr(4), Step: 1, Default: 1},
	)},
}

// TakesImage reports whether jobs of task t need an input image; generate makes its
// images from a prompt.
func TakesImage(t Task) bool { return t != TaskGenerate }

// TaskSpecs returns every task with its parameters.
func TaskSpecs() []TaskSpec {
	out := make([]TaskSpec, len(taskSpecs))
	copy(out, taskSpecs)
	return out
}

// TaskSpecFor returns the spec of one task.
func TaskSpecFor(t Task) (TaskSpec, bool) {
	for _, s := range taskSpecs {
		if s.Task == t {
			return s, true
		}
	}
	return TaskSpec{}, false
}

// ValidateParams checks params against the task's ParamSpecs and returns one FieldError
// per problem, sorted by field. Unknown names are refused so that a typo never silently
// falls back to a default. Numbers are float64 as encoding/json decodes them.
func ValidateParams(t Task, params map[string]any) []FieldError {
	spec, ok := TaskSpecFor(t)
	if !ok {
		return nil // the task itself is refused elsewhere
	}
	byName := map[string]ParamSpec{}
	names := make([]string, 0, len(spec.Params))
	for _, p := range spec.Params {
		byName[p.Name] = p
		names = append(names, p.Name)
	}
	var errs []FieldError
	for name, v := range params {
		field := "params." + name
		p, ok := byName[name]
		if !ok {
			msg := fmt.Sprintf("%s has no parameter %q; it takes %s", t, name, strings.Join(names, ", "))
			if slices.ContainsFunc(outputParams, func(o ParamSpec) bool { return o.Name == name }) {
				msg = fmt.Sprintf("%s returns no image whose format you can choose (its overlay is always PNG, its text JSON): leave %s out", t, name)
			}
			errs = append(errs, FieldError{Field: field, Constraint: "additionalProperties", Message: msg})
			continue
		}
		if fe, bad := checkParam(p, v); bad {
			fe.Field = field
			errs = append(errs, fe)
		}
	}
	if _, ok := params["quality"]; ok && byName["quality"].Name != "" {
		if f, _ := params["format"].(string); f == "" || f == FormatPNG {
			errs = append(errs, FieldError{Field: "params.quality", Constraint: "dependentSchemas",
				Message: "quality applies to jpeg and webp; png is lossless: set format to jpeg or webp, or leave quality out"})
		}
	}
	for _, p := range spec.Params {
		if _, ok := params[p.Name]; p.Required && !ok {
			errs = append(errs, FieldError{Field: "params." + p.Name, Constraint: "required", Message: fmt.Sprintf("%s needs %s: %s", t, p.Name, p.Description)})
		}
	}
	sort.Slice(errs, func(i, j int) bool { return errs[i].Field < errs[j].Field })
	return errs
}

func checkParam(p ParamSpec, v any) (FieldError, bool) {
	switch p.Type {
	case "string":
		s, ok := v.(string)
		if !ok {
			return FieldError{Constraint: "type", Message: "must be a string"}, true
		}
		if p.MaxLength > 0 && len([]rune(s)) > p.MaxLength {
			return FieldError{Constraint: "maxLength", Message: fmt.Sprintf("must be at most %d characters", p.MaxLength)}, true
		}
		if len(p.Enum) > 0 && !slices.Contains(p.Enum, s) {
			return FieldError{Constraint: "enum", Message: fmt.Sprintf("must be one of %s, not %q", strings.Join(p.Enum, ", "), s)}, true
		}
		if p.Pattern != "" && !regexp.MustCompile(p.Pattern).MatchString(s) {
			return FieldError{Constraint: "pattern", Message: fmt.Sprintf("must match %s, not %q", p.Pattern, s)}, true
		}
		return FieldError{}, false
	case "boolean":
		if _, ok := v.(bool); !ok {
			return FieldError{Constraint: "type", Message: "must be true or false"}, true
		}
		return FieldError{}, false
	}
	f, ok := v.(float64)
	if !ok {
		return FieldError{Constraint: "type", Message: "must be a " + p.Type}, true
	}
	if p.Type == "integer" && f != math.Trunc(f) {
		return FieldError{Constraint: "type", Message: "must be a whole number"}, true
	}
	if p.Minimum != nil && f < *p.Minimum {
		return FieldError{Constraint: "minimum", Message: fmt.Sprintf("must be >= %v", *p.Minimum)}, true
	}
	if p.Maximum != nil && f > *p.Maximum {
		return FieldError{Constraint: "maximum", Message: fmt.Sprintf("must be <= %v", *p.Maximum)}, true
	}
	if p.Type == "integer" && p.Step > 1 && math.Mod(f, p.Step) != 0 {
		return FieldError{Constraint: "multipleOf", Message: fmt.Sprintf("must be a multiple of %v", p.Step)}, true
	}
	return FieldError{}, false
}
