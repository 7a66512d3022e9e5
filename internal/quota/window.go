package quota

import (
	"sort"
	"time"
)

// Window is a sliding-window limit: at most Limit admissions in any span of Size.
//
// Time is cut into Slots slots of Size/Slots each, and the state keeps one count per
// slot. A request sees the admissions of the current slot and of the Slots slots before
// it, a span between Size and Size+Size/Slots long. So "never more than Limit in any
// rolling Size" holds exactly, state stays at most Slots+1 small counters whatever the
// limit, and a refused client waits at most one slot longer than an exact per-request
// log would make it. A fixed window would be simpler but lets 2×Limit through around
// each boundary.
type Window struct {
	// Limit is the cap; 0 or less means no cap.
	Limit int
	Size  time.Duration
	Slots int
}

// WindowState is the stored state of one window: admissions per slot, oldest first.
type WindowState struct {
	Counts []SlotCount `json:"counts,omitempty"`
}

// SlotCount is the number of admissions in one slot; Slot is the slot's index since
// the Unix epoch.
type SlotCount struct {
	Slot int64 `json:"s"`
	N    int   `json:"n"`
}

// Decision is the outcome of one request against a window.
type Decision struct {
	Allowed bool
	// Limit is the cap that applied (0: none).
	Limit int
	// Used counts admissions in the window, including this one when allowed.
	Used int
	// Remaining is how many more requests the window admits now.
	Remaining int
	// RetryAfter is, for a refused request, how long until one would be admitted.
	RetryAfter time.Duration
	// Reset is when the oldest admission in the window stops counting.
	Reset time.Time
	// Purpose names the budget (RateLimiter.AllowFor); "" is job requests.
	Purpose string
}

func (w Window) slotLen() time.Duration {
	n := w.Slots
	if n < 1 {
		n = 1
	}
	g := w.Size / time.Duration(n)
	if g <= 0 {
		g = time.Nanosecond
	}
	return g
}

// Admit decides one request at now and returns the state to store (unchanged when
// refused or when there is no cap, so callers can skip the write).
func (w Window) Admit(st WindowState, now time.Time) (WindowState, Decision) {
	if w.Limit <= 0 {
		return st, Decision{Allowed: true}
	}
	g := w.slotLen()
	slots := int64(w.Size / g)
	cur := now.UnixNano() / int64(g)
	// Keep what still counts: slots cur-slots .. cur.
	kept := make([]SlotCount, 0, len(st.Counts)+1)
	used := 0
	for _, c := range st.Counts {
		if c.Slot >= cur-slots && c.Slot <= cur && c.N > 0 {
			kept = append(kept, c)
			used += c.N
		}
	}
	sort.Slice(kept, func(i, j int) bool { return kept[i].Slot < kept[j].Slot })
	expiry := func(slot int64) time.Time { return time.Unix(0, (slot+slots+1)*int64(g)) }

	d := Decision{Limit: w.Limit}
	if used < w.Limit {
		if n := len(kept); n > 0 && kept[n-1].Slot == cur {
			kept[n-1].N++
		} else {
			kept = append(kept, SlotCount{Slot: cur, N: 1})
		}
		d.Allowed, d.Used, d.Remaining = true, used+1, w.Limit-used-1
		d.Reset = expiry(kept[0].Slot)
		return WindowState{Counts: kept}, d
	}
	d.Used = used
	d.Reset = expiry(kept[0].Slot)
	left := used
	for _, c := range kept {
		left -= c.N
		if left < w.Limit {
			d.RetryAfter = expiry(c.Slot).Sub(now)
			break
		}
	}
	return st, d
}

// Err returns the *Exceeded of a refused decision, or nil.
func (d Decision) Err() error {
	if d.Allowed {
		return nil
	}
	return &Exceeded{Kind: ErrRateLimited, Limit: d.Limit, Used: d.Used, RetryAfter: d.RetryAfter, Purpose: d.Purpose}
}
