package quota_test

import (
	"errors"
	"testing"

	"github.com/creativeai-studio/studio/internal/quota"
)

func TestActiveSet(t *testing.T) {
	tests := []struct {
		name      string
		steps     func(s *quota.ActiveSet) error
		wantIDs   []string
		wantError error
	}{
		{
			name: "adding the same job twice takes one slot",
			steps: func(s *quota.ActiveSet) error {
				if _, err := s.Add("a", t0, 3); err != nil {
					return err
				}
				added, err := s.Add("a", t0, 3)
				if added {
					t.Error("second Add reported a new slot")
				}
				return err
			},
			wantIDs: []string{"a"},
		},
		{
			name: "the job over the limit is refused with the running ids",
			steps: func(s *quota.ActiveSet) error {
				for _, id := range []string{"a", "b", "c", "d"} {
					if _, err := s.Add(id, t0, 3); err != nil {
						var ex *quota.Exceeded
						if !errors.As(err, &ex) || ex.Used != 3 || ex.Limit != 3 || len(ex.Active) != 3 {
							t.Errorf("error %v does not say 3 of 3 are running", err)
						}
						return err
					}
				}
				return nil
			},
			wantIDs:   []string{"a", "b", "c"},
			wantError: quota.ErrTooManyActive,
		},
		{
			name: "a removed job frees its slot and removing it again is harmless",
			steps: func(s *quota.ActiveSet) error {
				_, _ = s.Add("a", t0, 1)
				if !s.Remove("a") || s.Remove("a") {
					t.Error("Remove did not report true then false")
				}
				_, err := s.Add("b", t0, 1)
				return err
			},
			wantIDs: []string{"b"},
		},
		{
			name: "limit zero means no cap",
			steps: func(s *quota.ActiveSet) error {
				for _, id := range []string{"a", "b", "c", "d", "e"} {
					if _, err := s.Add(id, t0, 0); err != nil {
						return err
					}
				}
				return nil
			},
			wantIDs: []string{"a", "b", "c", "d", "e"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var s quota.ActiveSet
			err := tc.steps(&s)
			if !errors.Is(err, tc.wantError) && !(err == nil && tc.wantError == nil) {
				t.Fatalf("error %v, want %v", err, tc.wantError)
			}
			if got := s.IDs(); len(got) != len(tc.wantIDs) || (len(got) > 0 && got[0] != tc.wantIDs[0]) {
				t.Fatalf("ids %v, want %v", got, tc.wantIDs)
			}
		})
	}
}
