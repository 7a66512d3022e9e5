package quota_test

import (
	"errors"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/creativeai-studio/studio/internal/quota"
)

var t0 = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)

func hourly(limit int) quota.Window {
	return quota.Window{Limit: limit, Size: time.Hour, Slots: 60}
}

// admitAll runs requests at the given offsets from t0 and returns the decisions.
func admitAll(w quota.Window, offsets ...time.Duration) []quota.Decision {
	var st quota.WindowState
	var out []quota.Decision
	for _, off := range offsets {
		var d quota.Decision
		st, d = w.Admit(st, t0.Add(off))
		out = append(out, d)
	}
	return out
}

func TestWindowDecisions(t *testing.T) {
	tests := []struct {
		name    string
		window  quota.Window
		offsets []time.Duration
		allowed []bool
	}{
		{
			name:    "three requests within the limit are all admitted",
			window:  hourly(3),
			offsets: []time.Duration{0, time.Second, 2 * time.Second},
			allowed: []bool{true, true, true},
		},
		{
			name:    "the request over the limit is refused",
			window:  hourly(2),
			offsets: []time.Duration{0, time.Minute, 2 * time.Minute},
			allowed: []bool{true, true, false},
		},
		{
			name:    "a refused request does not use up capacity",
			window:  hourly(1),
			offsets: []time.Duration{0, time.Minute, 2 * time.Minute, 62 * time.Minute},
			allowed: []bool{true, false, false, true},
		},
		{
			name:    "a burst at the end of one hour does not buy another burst at the start of the next",
			window:  hourly(2),
			offsets: []time.Duration{59 * time.Minute, 59*time.Minute + 30*time.Second, 61 * time.Minute, 90 * time.Minute},
			allowed: []bool{true, true, false, false},
		},
		{
			name:    "a window without a limit admits everything",
			window:  hourly(0),
			offsets: []time.Duration{0, 0, 0, 0},
			allowed: []bool{true, true, true, true},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ds := admitAll(tc.window, tc.offsets...)
			for i, d := range ds {
				if d.Allowed != tc.allowed[i] {
					t.Fatalf("request %d at +%s: allowed=%v, want %v (%+v)", i, tc.offsets[i], d.Allowed, tc.allowed[i], d)
				}
			}
		})
	}
}

func TestARefusedRequestIsAdmittedExactlyAfterRetryAfter(t *testing.T) {
	w := hourly(3)
	var st quota.WindowState
	for _, off := range []time.Duration{0, 10 * time.Minute, 20 * time.Minute} {
		st, _ = w.Admit(st, t0.Add(off))
	}
	now := t0.Add(30 * time.Minute)
	_, d := w.Admit(st, now)
	if d.Allowed || d.Used != 3 || d.Limit != 3 {
		t.Fatalf("fourth request: %+v, want refused with 3 used", d)
	}
	// The first admission (slot of t0) stops counting when its slot is more than 60
	// slots old: at t0 + 61 minutes.
	if want := 31 * time.Minute; d.RetryAfter != want {
		t.Fatalf("RetryAfter = %s, want %s", d.RetryAfter, want)
	}
	if _, d := w.Admit(st, now.Add(d.RetryAfter-time.Nanosecond)); d.Allowed {
		t.Fatal("admitted a moment before RetryAfter")
	}
	if _, d := w.Admit(st, now.Add(d.RetryAfter)); !d.Allowed {
		t.Fatalf("refused at RetryAfter: %+v", d)
	}
	var ex *quota.Exceeded
	if err := d.Err(); !errors.As(err, &ex) || !errors.Is(err, quota.ErrRateLimited) || ex.Code() != "rate_limited" {
		t.Fatalf("Err() = %v, want a rate_limited *Exceeded", err)
	}
}

func TestWindowNeverAdmitsMoreThanTheLimitInAnyRollingHour(t *testing.T) {
	const limit = 20
	w := hourly(limit)
	rng := rand.New(rand.NewPCG(1, 2))
	var st quota.WindowState
	var admitted []time.Time
	now := t0
	for range 5000 {
		now = now.Add(time.Duration(rng.IntN(90)) * time.Second)
		var d quota.Decision
		st, d = w.Admit(st, now)
		if d.Allowed {
			admitted = append(admitted, now)
		}
		if len(st.Counts) > 61 {
			t.Fatalf("state grew to %d slots", len(st.Counts))
		}
	}
	sort.Slice(admitted, func(i, j int) bool { return admitted[i].Before(admitted[j]) })
	for i := range admitted {
		j := i
		for j < len(admitted) && admitted[j].Sub(admitted[i]) < time.Hour {
			j++
		}
		if j-i > limit {
			t.Fatalf("%d admissions in the hour from %s, limit %d", j-i, admitted[i], limit)
		}
	}
	if len(admitted) < 1000 {
		t.Fatalf("only %d admissions over ~62 hours at limit %d/h: the window refuses too much", len(admitted), limit)
	}
}
