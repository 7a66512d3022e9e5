package auth

import (
	"context"
	"sync"
	"time"

	"github.com/creativeai-studio/studio/schemas"
)

// Defaults of SampledAuditor.
const (
	// DefaultAnonPerSource is how many unauthenticated failures of one source address
	// are stored per minute; the rest are counted.
	DefaultAnonPerSource = 10
	// DefaultAnonTotal is how many unauthenticated failures, all sources together, are
	// stored per minute: many addresses (an IPv6 /64) cannot fill AUDIT either.
	DefaultAnonTotal = 600
)

// AuditCounter is told what SampledAuditor did not store; internal/metrics implements
// it. It is called from many goroutines and must not block.
type AuditCounter interface {
	// AuditSampledOut counts an unauthenticated failure counted but not stored.
	AuditSampledOut(action string)
	// AuditLost counts an event the audit log could not store (publish failure).
	AuditLost(action string)
}

// SampledAuditor stores every decision about an identified caller, but only a sample of
// the failures of unidentified ones (actor Anonymous, result denied or error): the
// first PerSource per source address and minute, and at most Total per minute in all.
// The others are counted (AuditCounter), not stored one by one, so an anonymous flood
// costs the AUDIT stream a few hundred events a minute instead of one per request.
// Memory is bounded too: at most Total addresses are tracked per minute. Safe for
// concurrent use.
type SampledAuditor struct {
	next      Auditor
	perSource int
	total     int
	count     AuditCounter
	now       func() time.Time

	mu      sync.Mutex
	window  time.Time // the minute being counted
	stored  int
	sources map[string]int
}

var _ Auditor = (*SampledAuditor)(nil)

// NewSampledAuditor samples next's unauthenticated failures: perSource and total per
// minute (0 or less: DefaultAnonPerSource, DefaultAnonTotal); count may be nil.
func NewSampledAuditor(next Auditor, perSource, total int, count AuditCounter) *SampledAuditor {
	if perSource <= 0 {
		perSource = DefaultAnonPerSource
	}
	if total <= 0 {
		total = DefaultAnonTotal
	}
	return &SampledAuditor{next: next, perSource: perSource, total: total, count: count, now: time.Now, sources: map[string]int{}}
}

// Audit stores e unless it is an unauthenticated failure over the sample; a failure to
// store is counted and returned.
func (s *SampledAuditor) Audit(ctx context.Context, e schemas.AuditEvent) error {
	if e.Actor == Anonymous && e.Result != ResultAllowed && !s.admit(e.IP) {
		if s.count != nil {
			s.count.AuditSampledOut(e.Action)
		}
		return nil
	}
	err := s.next.Audit(ctx, e)
	if err != nil && s.count != nil {
		s.count.AuditLost(e.Action)
	}
	return err
}

// admit reports whether one more unauthenticated failure of source is stored.
func (s *SampledAuditor) admit(source string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w := s.now().Truncate(time.Minute); !w.Equal(s.window) {
		s.window, s.stored = w, 0
		clear(s.sources)
	}
	if s.stored >= s.total || s.sources[source] >= s.perSource {
		return false
	}
	s.stored++
	s.sources[source]++
	return true
}
