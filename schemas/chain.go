package schemas

import (
	"encoding/json"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"
)

// MaxSteps bounds the steps of one chained job: each step is a full pass through the
// pipeline, so a longer chain would hold a user's active-job slot for too long.
const MaxSteps = 4

// SchemaJobStep identifies a StepEvent.
const SchemaJobStep = "studio.job.step/v1"

// StreamSteps holds the per-step events of chained jobs, on studio.steps.<tenant>.<task>.
const (
	StreamSteps = "STEPS"
	RootSteps   = "studio.steps"
)

// StepSubject carries the event of one finished step of a chained job:
// studio.steps.<tenant>.<task of the step>.
func StepSubject(tenant string, task Task) string {
	return RootSteps + "." + tenant + "." + string(task)
}

// StepRequest is one step of a chained job request (JobRequest.Steps): a task with its
// own model, version and parameters. Step i+1 takes step i's image output as its input.
type StepRequest struct {
	Task    Task           `json:"task" jsonschema:"description=what this step does with the previous step's image (the first step: the input image)"`
	Model   string         `json:"model,omitempty" jsonschema:"pattern=^[A-Za-z0-9_-]{1\\,64}$,description=model name (default: the task's default)"`
	Version string         `json:"version,omitempty" jsonschema:"pattern=^[a-z0-9][a-z0-9._-]{0\\,63}$,description=model version"`
	Params  map[string]any `json:"params,omitempty" jsonschema:"description=the step's parameters; see GET /v1/tasks for names and ranges"`
}

// ChainStep is one step of a chained job as the job record and the pipeline events
// carry it: the resolved model and, once the step is done, its named outputs.
type ChainStep struct {
	Task         Task           `json:"task"`
	Model        string         `json:"model"`
	ModelVersion string         `json:"model_version"`
	Params       map[string]any `json:"params,omitempty"`
	// Status is empty until the step is done, then succeeded.
	Status Status `json:"status,omitempty"`
	// Results are the step's outputs, named StepResultName(index, task, name).
	Results map[string]ObjectRef `json:"results,omitempty"`
	// CacheHit is set when the step reused an identical earlier run instead of running.
	CacheHit   bool      `json:"cache_hit,omitempty"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	// DurationsMS holds each stage's processing time of this step in milliseconds (the
	// record's stages show the last step's).
	DurationsMS map[Stage]float64 `json:"durations_ms,omitempty"`
}

// StepEvent is published on studio.steps.<tenant>.<task> when one step of a chained
// job is done. The job's one ResultEvent still comes at the end; subscribe here for
// the steps in between.
type StepEvent struct {
	Schema string `json:"schema"`
	JobID  string `json:"job_id"`
	Tenant string `json:"tenant"`
	User   string `json:"user"`
	// Step is the index of the finished step (0 is the first); Steps the chain's length.
	Step         int                  `json:"step"`
	Steps        int                  `json:"steps"`
	Task         Task                 `json:"task"`
	Model        string               `json:"model"`
	ModelVersion string               `json:"model_version"`
	Results      map[string]ObjectRef `json:"results"`
	CacheHit     bool                 `json:"cache_hit,omitempty"`
	// Percent is the whole job's progress once this step is done.
	Percent     int       `json:"percent"`
	TraceParent string    `json:"traceparent,omitempty"`
	FinishedAt  time.Time `json:"finished_at"`
}

// StepResultName names output name of step index of a chain: "step0.remove-background.cutout".
// The result objects live under the same name (results/<tenant>/<job>/<name>.<ext>).
func StepResultName(index int, task Task, name string) string {
	return "step" + strconv.Itoa(index) + "." + string(task) + "." + name
}

// outputs says what each task returns that a next step could take: its image result,
// or nothing ("" for a task whose result is text).
var outputs = map[Task]string{
	TaskRemoveBackground: "cutout",
	TaskUpscale:          "image",
	TaskStyleTransfer:    "image",
	TaskGenerate:         "image",
	TaskOCR:              "",
}

// ImageOutput is the name of the image result of task t that the next step of a chain
// takes as its input; ok is false when t returns no image (ocr returns text).
func ImageOutput(t Task) (name string, ok bool) {
	name = outputs[t]
	return name, name != ""
}

// ValidateSteps checks a chain as submitted: 1 to MaxSteps steps of known tasks with
// valid parameters, each step after the first taking an image that the step before it
// returns. Fields are named "steps.<index>.<field>", so a problem names the step.
func ValidateSteps(steps []StepRequest) []FieldError {
	if len(steps) > MaxSteps {
		return []FieldError{{Field: "steps", Constraint: "maxItems",
			Message: fmt.Sprintf("a chain has at most %d steps; this one has %d: split it into several jobs", MaxSteps, len(steps))}}
	}
	var errs []FieldError
	for i, st := range steps {
		field := "steps." + strconv.Itoa(i)
		if _, ok := TaskSpecFor(st.Task); !ok {
			errs = append(errs, FieldError{Field: field + ".task", Constraint: "enum",
				Message: fmt.Sprintf("step %d: unknown task %q; GET /v1/tasks lists the tasks", i, st.Task)})
			continue
		}
		for _, fe := range ValidateParams(st.Task, st.Params) {
			fe.Field = field + "." + fe.Field
			fe.Message = fmt.Sprintf("step %d: %s", i, fe.Message)
			errs = append(errs, fe)
		}
		if i == 0 {
			continue
		}
		prev := steps[i-1].Task
		if _, ok := TaskSpecFor(prev); !ok {
			continue
		}
		if !TakesImage(st.Task) {
			errs = append(errs, FieldError{Field: field + ".task", Constraint: "chain",
				Message: fmt.Sprintf("step %d: %s takes no input image, so it can only be the first step", i, st.Task)})
		} else if _, ok := ImageOutput(prev); !ok {
			errs = append(errs, FieldError{Field: field + ".task", Constraint: "chain",
				Message: fmt.Sprintf("step %d: %s needs an image, but step %d (%s) returns text", i, st.Task, i-1, prev)})
		}
	}
	return errs
}

// ParseSteps reads the compact chain syntax of `studio submit --steps` and the
// multipart form field steps: steps separated by ",", each "task" or
// "task:name=value[;name=value…]" ("remove-background,upscale:scale=2;denoise=0.3"), a
// model as "task@model" or "task@model@version". Numbers and true/false become JSON
// numbers and booleans. A value starting with "[" is read as the JSON array instead.
func ParseSteps(s string) ([]StepRequest, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	var out []StepRequest
	if strings.HasPrefix(s, "[") {
		if err := json.Unmarshal([]byte(s), &out); err != nil {
			return nil, fmt.Errorf("steps is not a JSON array of {task, model, version, params}: %w", err)
		}
		return out, nil
	}
	for i, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		head, params, _ := strings.Cut(part, ":")
		task, model, _ := strings.Cut(head, "@")
		model, version, _ := strings.Cut(model, "@")
		if task == "" {
			return nil, fmt.Errorf("step %d is empty: write steps as task[:name=value;…], separated by commas", i)
		}
		st := StepRequest{Task: Task(task), Model: model, Version: version}
		for _, kv := range strings.Split(params, ";") {
			if strings.TrimSpace(kv) == "" {
				continue
			}
			k, v, ok := strings.Cut(kv, "=")
			if !ok || strings.TrimSpace(k) == "" {
				return nil, fmt.Errorf("step %d: parameter %q is not name=value", i, kv)
			}
			if st.Params == nil {
				st.Params = map[string]any{}
			}
			st.Params[strings.TrimSpace(k)] = paramValue(strings.TrimSpace(v))
		}
		out = append(out, st)
	}
	return out, nil
}

func paramValue(v string) any {
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		return f
	}
	if b, err := strconv.ParseBool(v); err == nil {
		return b
	}
	return v
}

// NextStep is the index of the first step of chain not yet done; len(chain) when all are.
func NextStep(chain []ChainStep) int {
	for i, st := range chain {
		if st.Status != StatusSucceeded {
			return i
		}
	}
	return len(chain)
}

// StepInput is the image a chain's step i (> 0) takes: step i-1's image output.
func StepInput(chain []ChainStep, i int) (ObjectRef, bool) {
	if i <= 0 || i > len(chain) {
		return ObjectRef{}, false
	}
	prev := chain[i-1]
	name, ok := ImageOutput(prev.Task)
	if !ok {
		return ObjectRef{}, false
	}
	ref, ok := prev.Results[StepResultName(i-1, prev.Task, name)]
	return ref, ok
}

// ChainResults are the results of a finished chain: every step's outputs under their
// step names, and the last step's outputs also under their plain names ("image"), so
// a client that reads a one-step job's results reads a chain's final output the same way.
func ChainResults(chain []ChainStep) map[string]ObjectRef {
	out := map[string]ObjectRef{}
	for _, st := range chain {
		maps.Copy(out, st.Results)
	}
	if n := len(chain); n > 0 {
		last := chain[n-1]
		prefix := StepResultName(n-1, last.Task, "")
		for name, ref := range last.Results {
			if plain, ok := strings.CutPrefix(name, prefix); ok {
				out[plain] = ref
			}
		}
	}
	return out
}

// ChainPercent maps a stage's progress p (0-100) within step i of an n-step chain to
// the whole job's progress: one bar across all steps.
func ChainPercent(i, n, p int) int {
	if n <= 1 {
		return p
	}
	return (i*100 + p) / n
}
