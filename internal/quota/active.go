package quota

import (
	"sort"
	"time"
)

// ActiveSet is the set of one user's jobs that are queued or running, with when each
// took its slot. It is the value of one key in quota.BucketActive; adding and removing
// a job id are idempotent, so a redelivered submit or result never counts twice.
type ActiveSet struct {
	Jobs map[string]time.Time `json:"jobs"`
}

// Add takes a slot for jobID. It returns false with no error when the job already holds
// one, and an *Exceeded (ErrTooManyActive) when limit slots are taken; limit 0 means no
// cap.
func (s *ActiveSet) Add(jobID string, now time.Time, limit int) (bool, error) {
	if _, ok := s.Jobs[jobID]; ok {
		return false, nil
	}
	if limit > 0 && len(s.Jobs) >= limit {
		return false, &Exceeded{Kind: ErrTooManyActive, Limit: limit, Used: len(s.Jobs), Active: s.IDs()}
	}
	if s.Jobs == nil {
		s.Jobs = map[string]time.Time{}
	}
	s.Jobs[jobID] = now.UTC()
	return true, nil
}

// Remove frees jobID's slot and reports whether it held one.
func (s *ActiveSet) Remove(jobID string) bool {
	if _, ok := s.Jobs[jobID]; !ok {
		return false
	}
	delete(s.Jobs, jobID)
	return true
}

// IDs lists the jobs holding slots, sorted (job ids are time-ordered ULIDs).
func (s *ActiveSet) IDs() []string {
	ids := make([]string, 0, len(s.Jobs))
	for id := range s.Jobs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}
