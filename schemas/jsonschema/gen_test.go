package jsonschema

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"testing"

	invopop "github.com/invopop/jsonschema"
	santhosh "github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/creativeai-studio/studio/schemas"
)

var update = flag.Bool("update", false, "rewrite the committed schema files from the Go types")

// exported lists every file and its type. Requests are strict (unknown fields are
// refused, so a typo never passes silently); events allow additional properties,
// because a schema version gains fields without a new version suffix.
var exported = []struct {
	file   string
	v      any
	strict bool
	title  string
}{
	{JobRequest, schemas.JobRequest{}, true, "Job request: POST /v1/jobs (JSON) and studio.submit.<task>"},
	{SubmitReply, schemas.SubmitReply{}, false, "Reply on studio.submit.<task>"},
	{Problem, schemas.Problem{}, false, "RFC 9457 problem details: HTTP errors and NATS error replies"},
	{JobEvent, schemas.JobEvent{}, false, "Pipeline event: studio.requests|preprocessed|inferred|postprocessed.<tier>.<…>"},
	{ResultEvent, schemas.ResultEvent{}, false, "Final job outcome: studio.results.<tenant>.<task>"},
	{StageRun, schemas.StageRun{}, false, "Stage telemetry: studio.telemetry.<stage>"},
	{JobRecord, schemas.JobRecord{}, false, "Job record: KV bucket jobs"},
	{Feedback, schemas.Feedback{}, false, "User feedback: studio.feedback"},
	{AuditEvent, schemas.AuditEvent{}, false, "Audit trail: studio.audit.<action>"},
	{ErasureRequest, schemas.ErasureRequest{}, false, "Erasure request: studio.audit.erasure"},
	{HTTPRequest, schemas.HTTPRequest{}, false, "HTTP telemetry: studio.telemetry.http"},
	{OCRResult, schemas.OCRResult{}, false, "OCR result: the text.json result of an ocr job"},
	{BatchRequest, schemas.BatchRequest{}, true, "Batch request: POST /v2/batches (JSON) and studio.submit.batch.<task>"},
	{BatchReply, schemas.BatchReply{}, false, "Reply on studio.submit.batch.<task>"},
	{BatchCompleted, schemas.BatchCompleted{}, false, "Batch webhook body: every job of a batch has ended"},
	{ReplayResult, schemas.ReplayResult{}, false, "Shadow replay row: studio.telemetry.replay"},
	{StepEvent, schemas.StepEvent{}, false, "Finished step of a chained job: studio.steps.<tenant>.<task>"},
	{TelemetryBatch, schemas.TelemetryBatch{}, false, "Batched telemetry rows: studio.telemetry.batch"},
	{AuditBatch, schemas.AuditBatch{}, false, "Batched audit events: studio.audit.batch"},
}

// generate renders every schema file from the Go types.
func generate(t *testing.T) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, e := range exported {
		r := &invopop.Reflector{AllowAdditionalProperties: !e.strict, DoNotReference: false}
		s := r.Reflect(e.v)
		s.Title = e.title
		if _, ok := e.v.(schemas.JobRequest); ok {
			extendJobRequest(s)
		}
		b, err := json.MarshalIndent(s, "", "  ")
		if err != nil {
			t.Fatalf("%s: %v", e.file, err)
		}
		out[e.file] = append(b, '\n')
	}
	return out
}

// extendJobRequest adds what struct tags cannot say: the task list, one image source,
// and each task's parameter names and ranges (from schemas.TaskSpecs, the same table
// the server checks with schemas.ValidateParams).
func extendJobRequest(root *invopop.Schema) {
	def := root.Definitions["JobRequest"]
	img := root.Definitions["ImageInput"]
	img.OneOf = []*invopop.Schema{{Required: []string{"key"}}, {Required: []string{"data"}}}
	// invopop ignores tags on []byte fields.
	data, _ := img.Properties.Get("data")
	one := uint64(1)
	data.MinLength = &one
	data.Description = fmt.Sprintf("the image file itself, base64 (at most %d bytes decoded)", schemas.MaxInlineImageBytes)
	task, _ := def.Properties.Get("task")
	stepTask, _ := root.Definitions["StepRequest"].Properties.Get("task")
	for _, ts := range schemas.TaskSpecs() {
		task.Enum = append(task.Enum, string(ts.Task))
		stepTask.Enum = append(stepTask.Enum, string(ts.Task))
		props := invopop.NewProperties()
		for _, p := range ts.Params {
			ps := &invopop.Schema{Type: p.Type, Description: p.Description}
			if p.Minimum != nil {
				ps.Minimum = json.Number(strconv.FormatFloat(*p.Minimum, 'f', -1, 64))
			}
			if p.Maximum != nil {
				ps.Maximum = json.Number(strconv.FormatFloat(*p.Maximum, 'f', -1, 64))
			}
			if p.MaxLength > 0 {
				n := uint64(p.MaxLength)
				ps.MaxLength = &n
			}
			ps.Pattern = p.Pattern
			if p.Default != nil {
				ps.Default = p.Default
			}
			for _, v := range p.Enum {
				ps.Enum = append(ps.Enum, v)
			}
			if p.Type == "integer" && p.Step > 1 {
				ps.MultipleOf = json.Number(strconv.FormatFloat(p.Step, 'f', -1, 64))
			}
			props.Set(p.Name, ps)
		}
		var required []string
		for _, p := range ts.Params {
			if p.Required {
				required = append(required, p.Name)
			}
		}
		ifTask := invopop.NewProperties()
		ifTask.Set("task", &invopop.Schema{Const: string(ts.Task)})
		thenParams := invopop.NewProperties()
		// Rules between parameters (a quality needs format jpeg or webp) are
		// ValidateParams' alone, so that they have one place and one message.
		thenParams.Set("params", &invopop.Schema{Type: "object", Properties: props, AdditionalProperties: invopop.FalseSchema, Required: required})
		then := &invopop.Schema{Properties: thenParams}
		if schemas.TakesImage(ts.Task) {
			then.Required = []string{"image"}
		} else {
			thenParams.Set("image", invopop.FalseSchema) // generate takes no image
		}
		if ts.Task != schemas.TaskStyleTransfer {
			thenParams.Set("style", invopop.FalseSchema) // only arbitrary-style models take one
		}
		if len(required) > 0 {
			then.Required = append(then.Required, "params")
		}
		def.AllOf = append(def.AllOf, &invopop.Schema{
			If:   &invopop.Schema{Properties: ifTask, Required: []string{"task"}},
			Then: then,
		})
	}
}

func TestCommittedSchemasAreUpToDate(t *testing.T) {
	want := generate(t)
	if *update {
		for name, b := range want {
			if err := os.WriteFile(name, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, b := range want {
		got, err := os.ReadFile(name)
		if err != nil {
			t.Errorf("%s is missing: run `go test ./schemas/jsonschema -update`", name)
			continue
		}
		if !bytes.Equal(got, b) {
			t.Errorf("%s differs from the Go types: run `go test ./schemas/jsonschema -update` and commit it", name)
		}
	}
	files, _ := filepath.Glob("*.json")
	var stale []string
	for _, f := range files {
		if _, ok := want[f]; !ok {
			stale = append(stale, f)
		}
	}
	sort.Strings(stale)
	if len(stale) > 0 && !*update {
		t.Errorf("schema files no type exports any more: %v (delete them)", stale)
	}
	// Every exported type has its file constant and is embedded.
	for _, e := range exported {
		if _, err := File(e.file); err != nil {
			t.Errorf("%s (%s) is not embedded: %v", e.file, reflect.TypeOf(e.v), err)
		}
	}
}

// compileRequestSchema compiles the committed job-request.json as a publisher would.
func compileRequestSchema(t *testing.T) *santhosh.Schema {
	t.Helper()
	doc, err := santhosh.UnmarshalJSON(bytes.NewReader(mustFile(t, JobRequest)))
	if err != nil {
		t.Fatal(err)
	}
	c := santhosh.NewCompiler()
	if err := c.AddResource(JobRequest, doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(JobRequest)
	if err != nil {
		t.Fatalf("job-request.json does not compile: %v", err)
	}
	return s
}

func mustFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := File(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestJobRequestSchemaAcceptsAndRefusesLikeTheServer(t *testing.T) {
	s := compileRequestSchema(t)
	tests := []struct {
		name string
		body string
		ok   bool
	}{
		{"a request with an object key is valid", `{"task":"remove-background","image":{"key":"uploads/acme/a.png"}}`, true},
		{"a request with inline data is valid", `{"task":"remove-background","tier":"premium","image":{"data":"iVBORw0KGgo="},"params":{"threshold":0.4,"feather":2}}`, true},
		{"a request without a task is valid (the NATS subject names it)", `{"image":{"key":"uploads/acme/a.png"}}`, true},
		{"a missing image is refused", `{"task":"remove-background"}`, false},
		{"a generate request needs no image", `{"task":"generate","params":{"prompt":"a red cat","seed":7}}`, true},
		{"a generate request with an image is refused", `{"task":"generate","image":{"key":"uploads/a/b"},"params":{"prompt":"a red cat"}}`, false},
		{"a generate request without a prompt is refused", `{"task":"generate","params":{"seed":7}}`, false},
		{"a generate size that is not a multiple of 8 is refused", `{"task":"generate","params":{"prompt":"x","width":500}}`, false},
		{"an image with both key and data is refused", `{"task":"ocr","image":{"key":"uploads/a/b","data":"AAAA"}}`, false},
		{"an unknown field is refused", `{"task":"ocr","image":{"key":"uploads/a/b"},"priority":1}`, false},
		{"an unknown tier is refused", `{"task":"ocr","tier":"gold","image":{"key":"uploads/a/b"}}`, false},
		{"an unknown task is refused", `{"task":"paint-a-cat","image":{"key":"uploads/a/b"}}`, false},
		{"a callback that is not http(s) is refused", `{"task":"ocr","image":{"key":"uploads/a/b"},"callback_url":"ftp://x/y"}`, false},
		{"an output colour choice is valid", `{"task":"upscale","image":{"key":"uploads/a/b"},"params":{"color":"srgb"}}`, true},
		{"an unknown output colour choice is refused", `{"task":"upscale","image":{"key":"uploads/a/b"},"params":{"color":"cmyk"}}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := santhosh.UnmarshalJSON(bytes.NewReader([]byte(tt.body)))
			if err != nil {
				t.Fatal(err)
			}
			err = s.Validate(v)
			if tt.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tt.ok && err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// The per-task parameter rules in the schema and schemas.ValidateParams come from the
// same table; this checks that both say the same about each case.
func TestJobRequestSchemaAndValidateParamsAgree(t *testing.T) {
	s := compileRequestSchema(t)
	cases := []struct {
		task   schemas.Task
		params string
	}{
		{schemas.TaskRemoveBackground, `{"threshold":0.5}`},
		{schemas.TaskRemoveBackground, `{"threshold":1.01}`},
		{schemas.TaskRemoveBackground, `{"threshold":-0.1}`},
		{schemas.TaskRemoveBackground, `{"feather":2}`},
		{schemas.TaskRemoveBackground, `{"feather":2.5}`},
		{schemas.TaskRemoveBackground, `{"feather":65}`},
		{schemas.TaskRemoveBackground, `{"feather":"2"}`},
		{schemas.TaskRemoveBackground, `{"radius":2}`},
		{schemas.TaskUpscale, `{"scale":4,"denoise":0}`},
		{schemas.TaskUpscale, `{"scale":8}`},
		{schemas.TaskOCR, `{"min_confidence":true}`},
		{schemas.TaskGenerate, `{"prompt":"a cat","steps":150,"seed":4294967295}`},
		{schemas.TaskGenerate, `{"steps":0}`},
		{schemas.TaskGenerate, `{"seed":4294967296}`},
		{schemas.TaskGenerate, `{"prompt":"a cat","width":512,"height":768,"num_images":4}`},
		{schemas.TaskGenerate, `{"prompt":"a cat","width":500}`},
		{schemas.TaskGenerate, `{"prompt":"a cat","num_images":5}`},
		{schemas.TaskGenerate, `{"negative_prompt":"no prompt"}`},
		{schemas.TaskStyleTransfer, `{}`},
	}
	for _, c := range cases {
		var params map[string]any
		if err := json.Unmarshal([]byte(c.params), &params); err != nil {
			t.Fatal(err)
		}
		goOK := len(schemas.ValidateParams(c.task, params)) == 0
		image := `"image":{"key":"uploads/a/b"},`
		if !schemas.TakesImage(c.task) {
			image = ""
		}
		body := `{"task":"` + string(c.task) + `",` + image + `"params":` + c.params + `}`
		v, err := santhosh.UnmarshalJSON(bytes.NewReader([]byte(body)))
		if err != nil {
			t.Fatal(err)
		}
		schemaOK := s.Validate(v) == nil
		if goOK != schemaOK {
			t.Errorf("%s %s: ValidateParams ok=%v, schema ok=%v", c.task, c.params, goOK, schemaOK)
		}
	}
}
