package quota_test

import (
	"flag"
	"testing"

	"github.com/creativeai-studio/studio/internal/quota"
	"github.com/creativeai-studio/studio/schemas"
)

func TestPolicyFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		tier    schemas.Tier
		want    quota.Limits
		wantErr bool
	}{
		{name: "the defaults are 3 active jobs and 100 requests per hour", tier: schemas.TierFree, want: quota.Limits{MaxActive: 3, RequestsPerHour: 100}},
		{
			name: "a tier override replaces only the fields it sets",
			args: []string{"--max-active-tiers", "premium=10", "--rate-limit-tiers", "free=20"},
			tier: schemas.TierPremium, want: quota.Limits{MaxActive: 10, RequestsPerHour: 100},
		},
		{
			name: "the environment sets tier overrides",
			env:  map[string]string{"STUDIO_RATE_LIMIT_TIERS": "free=20"},
			tier: schemas.TierFree, want: quota.Limits{MaxActive: 3, RequestsPerHour: 20},
		},
		{name: "an unknown tier is refused", args: []string{"--max-active-tiers", "gold=10"}, wantErr: true},
		{name: "a malformed pair is refused", args: []string{"--rate-limit-tiers", "free"}, wantErr: true},
		{name: "a malformed environment value is reported by Validate", env: map[string]string{"STUDIO_MAX_ACTIVE_TIERS": "free=-1"}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var p quota.Policy
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			fs.SetOutput(new(discard))
			p.RegisterFlags(fs)
			err := fs.Parse(tc.args)
			if err == nil {
				err = p.Validate()
			}
			if tc.wantErr {
				if err == nil {
					t.Fatal("no error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := p.For(tc.tier); got != tc.want {
				t.Fatalf("For(%s) = %+v, want %+v", tc.tier, got, tc.want)
			}
		})
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
