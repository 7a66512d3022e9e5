package preprocess_test

import (
	"errors"
	"testing"

	"github.com/creativeai-studio/studio/processors"
	"github.com/creativeai-studio/studio/processors/preprocess"
	"github.com/creativeai-studio/studio/schemas"
)

func TestCheckParamsAcceptsOnlyKnownColourChoices(t *testing.T) {
	tests := []struct {
		name   string
		params map[string]any
		ok     bool
	}{
		{"no color keeps the input's profile", nil, true},
		{"color keep is accepted", map[string]any{"color": "keep"}, true},
		{"color srgb is accepted", map[string]any{"color": "srgb"}, true},
		{"another colour space is refused", map[string]any{"color": "cmyk"}, false},
		{"a number is refused", map[string]any{"color": 1.0}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := preprocess.CheckParams(schemas.TaskUpscale, tt.params)
			if tt.ok != (err == nil) {
				t.Fatalf("CheckParams(%v) = %v, want ok %v", tt.params, err, tt.ok)
			}
			var perm *schemas.JobError
			if err != nil && (!errors.As(err, &perm) || perm.Code != processors.CodeInvalidParams) {
				t.Errorf("error %v is not a permanent invalid_params error", err)
			}
		})
	}
}
