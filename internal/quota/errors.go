package quota

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors, matched with errors.Is on an *Exceeded.
var (
	// ErrTooManyActive: the user already has the maximum number of jobs queued or running.
	ErrTooManyActive = errors.New("quota: too many active jobs")
	// ErrRateLimited: the user made too many requests in the sliding window.
	ErrRateLimited = errors.New("quota: rate limit exceeded")
	// ErrDailyQuota: an API key used up its requests for the day (UTC).
	ErrDailyQuota = errors.New("quota: daily quota exhausted")
)

// Exceeded reports which limit a request hit. HTTP callers answer 429 with Code as the
// problem code and RetryAfter (rounded up to whole seconds) as the Retry-After header.
type Exceeded struct {
	// Kind is ErrTooManyActive, ErrRateLimited or ErrDailyQuota.
	Kind error
	// Limit is the cap that applies; Used is how much of it is taken.
	Limit, Used int
	// RetryAfter is how long until the request could succeed. It is zero for
	// ErrTooManyActive, where the wait depends on running jobs.
	RetryAfter time.Duration
	// Active lists the job ids holding the slots (ErrTooManyActive only).
	Active []string
	// Purpose names the rate budget that ran out (ErrRateLimited only): "" for job
	// requests, PurposeAnalytics for operations analytics.
	Purpose string
}

func (e *Exceeded) Error() string {
	switch e.Kind {
	case ErrTooManyActive:
		return fmt.Sprintf("%d jobs are already queued or running (the limit is %d); wait for one to finish", e.Used, e.Limit)
	case ErrRateLimited:
		what := "requests"
		if e.Purpose != "" {
			what = e.Purpose + " requests"
		}
		return fmt.Sprintf("%d %s in the last hour (the limit is %d); retry in %s", e.Used, what, e.Limit, RetryAfterSeconds(e.RetryAfter)+"s")
	case ErrDailyQuota:
		return fmt.Sprintf("the API key used %d of its %d requests for today (UTC); retry in %ss", e.Used, e.Limit, RetryAfterSeconds(e.RetryAfter))
	}
	return fmt.Sprintf("%v: %d of %d", e.Kind, e.Used, e.Limit)
}

// Unwrap makes errors.Is(err, ErrRateLimited) and friends work.
func (e *Exceeded) Unwrap() error { return e.Kind }

// Code is the stable problem code for clients: too_many_active_jobs, rate_limited or
// quota_exceeded.
func (e *Exceeded) Code() string {
	switch e.Kind {
	case ErrTooManyActive:
		return "too_many_active_jobs"
	case ErrRateLimited:
		return "rate_limited"
	case ErrDailyQuota:
		return "quota_exceeded"
	}
	return "limit_exceeded"
}

// RetryAfterSeconds formats d for a Retry-After header: whole seconds, rounded up, at
// least 1 so that a client never retries in a tight loop.
func RetryAfterSeconds(d time.Duration) string {
	s := int64((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return fmt.Sprint(s)
}
