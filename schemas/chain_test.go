package schemas

import (
	"reflect"
	"testing"
)

func TestParseSteps(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []StepRequest
		bad  bool
	}{
		{name: "tasks alone are steps without parameters", in: "remove-background,upscale",
			want: []StepRequest{{Task: "remove-background"}, {Task: "upscale"}}},
		{name: "parameters follow a colon, separated by semicolons", in: "remove-background:feather=2, upscale:scale=2;denoise=0.3",
			want: []StepRequest{{Task: "remove-background", Params: map[string]any{"feather": 2.0}}, {Task: "upscale", Params: map[string]any{"scale": 2.0, "denoise": 0.3}}}},
		{name: "a model and version follow @", in: "upscale@realesrgan@general-x4v3:color=srgb",
			want: []StepRequest{{Task: "upscale", Model: "realesrgan", Version: "general-x4v3", Params: map[string]any{"color": "srgb"}}}},
		{name: "a JSON array is read as JSON", in: `[{"task":"upscale","params":{"scale":2}}]`,
			want: []StepRequest{{Task: "upscale", Params: map[string]any{"scale": 2.0}}}},
		{name: "an empty step is refused", in: "upscale,,ocr", bad: true},
		{name: "a parameter without a value is refused", in: "upscale:scale", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSteps(tt.in)
			if tt.bad {
				if err == nil {
					t.Fatalf("ParseSteps(%q) = %+v, want an error", tt.in, got)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseSteps(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestValidateStepsNamesTheStep(t *testing.T) {
	tests := []struct {
		name  string
		steps []StepRequest
		field string // "" when valid
	}{
		{name: "cut out then upscale is valid", steps: []StepRequest{{Task: TaskRemoveBackground}, {Task: TaskUpscale, Params: map[string]any{"scale": 2.0}}}},
		{name: "text from ocr cannot be upscaled", steps: []StepRequest{{Task: TaskOCR}, {Task: TaskUpscale}}, field: "steps.1.task"},
		{name: "generate takes no image so cannot follow a step", steps: []StepRequest{{Task: TaskUpscale}, {Task: TaskGenerate, Params: map[string]any{"prompt": "x"}}}, field: "steps.1.task"},
		{name: "an unknown task is named with its index", steps: []StepRequest{{Task: TaskUpscale}, {Task: TaskUpscale}, {Task: "sharpen"}}, field: "steps.2.task"},
		{name: "a parameter out of range is named with its step", steps: []StepRequest{{Task: TaskRemoveBackground}, {Task: TaskUpscale, Params: map[string]any{"scale": 9.0}}}, field: "steps.1.params.scale"},
		{name: "more than MaxSteps steps are refused", steps: make([]StepRequest, MaxSteps+1), field: "steps"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := ValidateSteps(tt.steps)
			if tt.field == "" {
				if len(errs) > 0 {
					t.Fatalf("valid chain refused: %+v", errs)
				}
				return
			}
			if len(errs) == 0 || errs[0].Field != tt.field {
				t.Fatalf("errors = %+v, want the first on %s", errs, tt.field)
			}
		})
	}
}

func TestChainResultsNameEveryStepAndAliasTheLast(t *testing.T) {
	chain := []ChainStep{
		{Task: TaskRemoveBackground, Status: StatusSucceeded, Results: map[string]ObjectRef{"step0.remove-background.cutout": {Key: "a"}}},
		{Task: TaskUpscale, Status: StatusSucceeded, Results: map[string]ObjectRef{"step1.upscale.image": {Key: "b"}}},
	}
	got := ChainResults(chain)
	want := map[string]ObjectRef{"step0.remove-background.cutout": {Key: "a"}, "step1.upscale.image": {Key: "b"}, "image": {Key: "b"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ChainResults = %+v, want %+v", got, want)
	}
	if in, ok := StepInput(chain, 1); !ok || in.Key != "a" {
		t.Fatalf("StepInput(1) = %+v %v, want the cut-out", in, ok)
	}
	if p := ChainPercent(1, 2, 10); p != 55 {
		t.Fatalf("ChainPercent(1, 2, 10) = %d, want 55", p)
	}
}
