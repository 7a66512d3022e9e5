package quota

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/creativeai-studio/studio/schemas"
)

// RateWindow is the span the request rate limit counts over. It is fixed because the
// KV bucket that keeps the windows (quota.BucketRateLimit) expires idle state after
// it.
const RateWindow = time.Hour

// RateSlots is how many slots the window is cut into: a denied client learns when to
// retry to within RateWindow/RateSlots (one minute).
const RateSlots = 60

// Limits bound one user.
type Limits struct {
	// MaxActive is how many jobs may be queued or running at once; 0 means no cap.
	MaxActive int
	// RequestsPerHour caps requests in any rolling hour; 0 means no cap.
	RequestsPerHour int
}

// Window returns the sliding window that enforces RequestsPerHour.
func (l Limits) Window() Window {
	return Window{Limit: l.RequestsPerHour, Size: RateWindow, Slots: RateSlots}
}

// Policy holds the limits of each tier. The zero value has no caps; DefaultPolicy is
// what the service runs with. A Policy is read-only once built and safe to share.
type Policy struct {
	Default Limits
	// Tiers overrides Default per tier, field by field where set (> 0).
	Tiers map[schemas.Tier]Limits
	// AnalyticsPerHour caps one caller's requests for operations analytics (the
	// business report, the SQL box and `studio sql`) in any rolling hour, apart from
	// their job requests; 0 means no cap.
	AnalyticsPerHour int

	// envErr keeps a malformed STUDIO_*_TIERS value for Validate to report.
	envErr error
}

// DefaultPolicy allows 3 active jobs and 100 requests per hour in every tier, and 300
// analytics requests per hour per caller (an open dashboard reads the business report
// once a minute, 60 an hour).
func DefaultPolicy() Policy {
	return Policy{Default: Limits{MaxActive: 3, RequestsPerHour: 100}, AnalyticsPerHour: 300}
}

// AnalyticsWindow returns the sliding window that enforces AnalyticsPerHour.
func (p Policy) AnalyticsWindow() Window {
	return Window{Limit: p.AnalyticsPerHour, Size: RateWindow, Slots: RateSlots}
}

// For returns the limits of tier t.
func (p Policy) For(t schemas.Tier) Limits {
	l := p.Default
	if o, ok := p.Tiers[t]; ok {
		if o.MaxActive > 0 {
			l.MaxActive = o.MaxActive
		}
		if o.RequestsPerHour > 0 {
			l.RequestsPerHour = o.RequestsPerHour
		}
	}
	return l
}

// Validate reports a negative limit or an unknown tier.
func (p Policy) Validate() error {
	check := func(where string, l Limits) error {
		if l.MaxActive < 0 || l.RequestsPerHour < 0 {
			return fmt.Errorf("quota: %s: limits must not be negative (0 means no cap)", where)
		}
		return nil
	}
	if p.envErr != nil {
		return p.envErr
	}
	if p.AnalyticsPerHour < 0 {
		return errors.New("quota: --analytics-rate-limit must not be negative (0 means no cap)")
	}
	if err := check("default", p.Default); err != nil {
		return err
	}
	for t, l := range p.Tiers {
		if !t.Valid() {
			return fmt.Errorf("quota: unknown tier %q (want premium, normal or free)", t)
		}
		if err := check("tier "+string(t), l); err != nil {
			return err
		}
	}
	return nil
}

// RegisterFlags adds --max-active, --max-active-tiers, --rate-limit,
// --rate-limit-tiers and --analytics-rate-limit, with defaults from the STUDIO_* environment variables named in
// their help. A malformed environment value is reported by Validate.
func (p *Policy) RegisterFlags(fs *flag.FlagSet) {
	def := DefaultPolicy()
	if p.Tiers == nil {
		p.Tiers = map[schemas.Tier]Limits{}
	}
	fs.IntVar(&p.Default.MaxActive, "max-active", envInt("STUDIO_MAX_ACTIVE", def.Default.MaxActive),
		"jobs one user may have queued or running at once; 0 disables [STUDIO_MAX_ACTIVE]")
	fs.IntVar(&p.Default.RequestsPerHour, "rate-limit", envInt("STUDIO_RATE_LIMIT", def.Default.RequestsPerHour),
		"requests one user may make in any rolling hour; 0 disables [STUDIO_RATE_LIMIT]")
	fs.IntVar(&p.AnalyticsPerHour, "analytics-rate-limit", envInt("STUDIO_ANALYTICS_RATE_LIMIT", def.AnalyticsPerHour),
		"operations analytics requests (business report, SQL) one caller may make in any rolling hour; 0 disables [STUDIO_ANALYTICS_RATE_LIMIT]")
	fs.Var(&tierFlag{p: p, set: func(l *Limits, n int) { l.MaxActive = n }, value: os.Getenv("STUDIO_MAX_ACTIVE_TIERS")}, "max-active-tiers",
		"per-tier --max-active, e.g. premium=10,free=1 [STUDIO_MAX_ACTIVE_TIERS]")
	fs.Var(&tierFlag{p: p, set: func(l *Limits, n int) { l.RequestsPerHour = n }, value: os.Getenv("STUDIO_RATE_LIMIT_TIERS")}, "rate-limit-tiers",
		"per-tier --rate-limit, e.g. premium=1000,free=20 [STUDIO_RATE_LIMIT_TIERS]")
	for _, name := range []string{"max-active-tiers", "rate-limit-tiers"} {
		f := fs.Lookup(name).Value.(*tierFlag)
		if f.value != "" {
			if err := f.Set(f.value); err != nil && p.envErr == nil {
				p.envErr = fmt.Errorf("environment for --%s: %w", name, err)
			}
		}
	}
}

// ParseTiers reads "premium=10,free=1" into a map.
func ParseTiers(s string) (map[schemas.Tier]int, error) {
	out := map[schemas.Tier]int{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, val, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("quota: %q: want tier=number, e.g. premium=10", part)
		}
		t := schemas.Tier(strings.TrimSpace(name))
		if !t.Valid() {
			return nil, fmt.Errorf("quota: %q: unknown tier %q (want premium, normal or free)", part, t)
		}
		n, err := strconv.Atoi(strings.TrimSpace(val))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("quota: %q: %q is not a non-negative number", part, val)
		}
		out[t] = n
	}
	return out, nil
}

type tierFlag struct {
	p     *Policy
	set   func(*Limits, int)
	value string
}

func (f *tierFlag) String() string {
	if f == nil || f.p == nil {
		return ""
	}
	return f.value
}

func (f *tierFlag) Set(s string) error {
	m, err := ParseTiers(s)
	if err != nil {
		return err
	}
	if len(m) == 0 && strings.TrimSpace(s) != "" {
		return errors.New("quota: no tier=number pairs")
	}
	for t, n := range m {
		l := f.p.Tiers[t]
		f.set(&l, n)
		f.p.Tiers[t] = l
	}
	f.value = s
	return nil
}

func envInt(name string, def int) int {
	if v := os.Getenv(name); v != "" {
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
	}
	return def
}
