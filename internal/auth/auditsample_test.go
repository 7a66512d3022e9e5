package auth

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/creativeai-studio/studio/schemas"
)

type recordingAuditor struct {
	mu     sync.Mutex
	events []schemas.AuditEvent
	err    error
}

func (r *recordingAuditor) Audit(_ context.Context, e schemas.AuditEvent) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	r.events = append(r.events, e)
	return nil
}

type counts struct {
	mu            sync.Mutex
	sampled, lost map[string]int
}

func (c *counts) AuditSampledOut(a string) { c.mu.Lock(); c.sampled[a]++; c.mu.Unlock() }
func (c *counts) AuditLost(a string)       { c.mu.Lock(); c.lost[a]++; c.mu.Unlock() }

func TestSampledAuditorStoresASampleOfAnonymousFailures(t *testing.T) {
	anon := func(ip string) schemas.AuditEvent {
		return Event(Principal{}, ActionAuthenticate, "", ResultDenied, Request{IP: ip})
	}
	tests := []struct {
		name            string
		events          func() []schemas.AuditEvent
		stored, counted int
	}{
		{"a flood from one address stores the first 3 a minute", func() []schemas.AuditEvent {
			var out []schemas.AuditEvent
			for range 1000 {
				out = append(out, anon("203.0.113.9"))
			}
			return out
		}, 3, 997},
		{"a flood from many addresses stores at most the total", func() []schemas.AuditEvent {
			var out []schemas.AuditEvent
			for i := range 1000 {
				out = append(out, anon(fmt.Sprintf("2001:db8::%x", i)))
			}
			return out
		}, 5, 995},
		{"identified callers are stored one by one", func() []schemas.AuditEvent {
			var out []schemas.AuditEvent
			for range 50 {
				out = append(out, Event(Principal{Tenant: "t", User: "u"}, ActionJobSubmit, "", ResultDenied, Request{IP: "203.0.113.9"}))
			}
			return out
		}, 50, 0},
		{"allowed anonymous decisions are not sampled", func() []schemas.AuditEvent {
			var out []schemas.AuditEvent
			for range 20 {
				out = append(out, Event(Principal{}, ActionLogin, "", ResultAllowed, Request{IP: "203.0.113.9"}))
			}
			return out
		}, 20, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recordingAuditor{}
			c := &counts{sampled: map[string]int{}, lost: map[string]int{}}
			s := NewSampledAuditor(rec, 3, 5, c)
			s.now = func() time.Time { return time.Date(2026, 12, 7, 16, 0, 30, 0, time.UTC) }
			for _, e := range tt.events() {
				require.NoError(t, s.Audit(context.Background(), e))
			}
			require.Len(t, rec.events, tt.stored)
			total := 0
			for _, n := range c.sampled {
				total += n
			}
			require.Equal(t, tt.counted, total)
		})
	}
}

func TestSampledAuditorStartsAFreshSampleEachMinute(t *testing.T) {
	rec := &recordingAuditor{}
	s := NewSampledAuditor(rec, 2, 100, nil)
	now := time.Date(2026, 12, 7, 16, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	for range 10 {
		require.NoError(t, s.Audit(context.Background(), Event(Principal{}, ActionAuthenticate, "", ResultDenied, Request{IP: "198.51.100.1"})))
	}
	now = now.Add(time.Minute)
	for range 10 {
		require.NoError(t, s.Audit(context.Background(), Event(Principal{}, ActionAuthenticate, "", ResultDenied, Request{IP: "198.51.100.1"})))
	}
	require.Len(t, rec.events, 4)
}

func TestSampledAuditorCountsEventsItCouldNotStore(t *testing.T) {
	rec := &recordingAuditor{err: errors.New("stream unavailable")}
	c := &counts{sampled: map[string]int{}, lost: map[string]int{}}
	s := NewSampledAuditor(rec, 0, 0, c)
	err := s.Audit(context.Background(), Event(Principal{Tenant: "t", User: "u"}, ActionJobSubmit, "", ResultAllowed, Request{}))
	require.Error(t, err, "the caller still learns the event is lost (authentication refuses unaudited requests)")
	require.Equal(t, 1, c.lost[ActionJobSubmit])
}
