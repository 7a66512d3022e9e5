//go:build cgo

package postprocess

import (
	"testing"

	"github.com/creativeai-studio/studio/internal/colour"
)

func TestOutputProfileFollowsTheColorParameter(t *testing.T) {
	parse := func(make func() ([]byte, error)) *colour.Profile {
		b, err := make()
		if err != nil {
			t.Fatal(err)
		}
		p, err := colour.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	adobe, gray := parse(colour.AdobeRGB), parse(colour.GrayGamma22)
	tests := []struct {
		name   string
		params map[string]any
		input  *colour.Profile
		want   *colour.Profile
	}{
		{"by default the input's profile is kept", nil, adobe, adobe},
		{"color keep keeps the input's profile", map[string]any{"color": "keep"}, adobe, adobe},
		{"color keep keeps a grey profile", map[string]any{"color": "keep"}, gray, gray},
		{"color srgb writes sRGB", map[string]any{"color": "srgb"}, adobe, nil},
		{"an untagged input gives sRGB", nil, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := OutputProfile(tt.params, tt.input); got != tt.want {
				t.Errorf("OutputProfile = %v, want %v", got, tt.want)
			}
		})
	}
}
