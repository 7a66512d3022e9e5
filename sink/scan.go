package sink

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	json "github.com/goccy/go-json"

	"github.com/creativeai-studio/studio/schemas"
)

// scanner reads the JSON of one message for the decoders of the sink's busiest rows
// (stage runs in a TelemetryBatch). The message is copied into one string first, so a
// string value without escapes is a substring of it and costs no allocation. It reads
// strict JSON only: anything else, and any value it cannot convert, is an error
// wrapping errSyntax, and the caller leaves the message to json.Unmarshal.
type scanner struct {
	s string
	i int
}

var errSyntax = errors.New("invalid JSON")

func (p *scanner) fail(what string) error {
	return fmt.Errorf("%w: %s at offset %d", errSyntax, what, p.i)
}

// ws skips white space and returns the next byte (0 at the end).
func (p *scanner) ws() byte {
	for p.i < len(p.s) {
		switch c := p.s[p.i]; c {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return c
		}
	}
	return 0
}

// null consumes a null literal if one is next.
func (p *scanner) null() bool {
	if p.ws() == 'n' && strings.HasPrefix(p.s[p.i:], "null") {
		p.i += 4
		return true
	}
	return false
}

// str reads a string value.
func (p *scanner) str() (string, error) {
	if p.ws() != '"' {
		return "", p.fail("expected a string")
	}
	start := p.i
	p.i++
	escaped := false
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			if !escaped {
				return p.s[start+1 : p.i-1], nil
			}
			var v string
			if err := json.Unmarshal([]byte(p.s[start:p.i]), &v); err != nil {
				return "", fmt.Errorf("%w: string at offset %d: %v", errSyntax, start, err)
			}
			return v, nil
		case c == '\\':
			escaped = true
			p.i += 2
		case c < 0x20:
			return "", p.fail("control character in a string")
		default:
			p.i++
		}
	}
	return "", p.fail("unterminated string")
}

// number reads a number literal (checked by the caller's strconv parse).
func (p *scanner) number() (string, error) {
	p.ws()
	start := p.i
	for p.i < len(p.s) {
		c := p.s[p.i]
		if (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' {
			p.i++
			continue
		}
		break
	}
	if p.i == start {
		return "", p.fail("expected a number")
	}
	return p.s[start:p.i], nil
}

func (p *scanner) float() (float64, error) {
	lit, err := p.number()
	if err != nil {
		return 0, err
	}
	if lit[0] == '+' || lit[0] == '.' || (len(lit) > 1 && lit[0] == '0' && lit[1] >= '0' && lit[1] <= '9') {
		return 0, p.fail("malformed number " + lit)
	}
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", errSyntax, err)
	}
	return f, nil
}

func (p *scanner) int() (int, error) {
	lit, err := p.number()
	if err != nil {
		return 0, err
	}
	if lit[0] == '+' {
		return 0, p.fail("malformed number " + lit)
	}
	n, err := strconv.Atoi(lit)
	if err != nil {
		return 0, fmt.Errorf("%w: %s is not an integer: %v", errSyntax, lit, err)
	}
	return n, nil
}

// skip reads any value.
func (p *scanner) skip() error {
	switch c := p.ws(); {
	case c == '"':
		_, err := p.str()
		return err
	case c == '{':
		return p.object(func(string) error { return p.skip() })
	case c == '[':
		return p.array(p.skip)
	case c == 't' && strings.HasPrefix(p.s[p.i:], "true"):
		p.i += 4
	case c == 'f' && strings.HasPrefix(p.s[p.i:], "false"):
		p.i += 5
	case p.null():
	default:
		lit, err := p.number()
		if err != nil {
			return err
		}
		if _, err := strconv.ParseFloat(lit, 64); err != nil {
			return p.fail("malformed number " + lit)
		}
	}
	return nil
}

// object reads an object, calling field for each key with the scanner at its value;
// field must read the value.
func (p *scanner) object(field func(key string) error) error {
	if p.ws() != '{' {
		return p.fail("expected an object")
	}
	p.i++
	if p.ws() == '}' {
		p.i++
		return nil
	}
	for {
		key, err := p.str()
		if err != nil {
			return err
		}
		if p.ws() != ':' {
			return p.fail("expected ':'")
		}
		p.i++
		if err := field(key); err != nil {
			return err
		}
		switch p.ws() {
		case ',':
			p.i++
		case '}':
			p.i++
			return nil
		default:
			return p.fail("expected ',' or '}'")
		}
	}
}

// array reads an array, calling elem with the scanner at each element.
func (p *scanner) array(elem func() error) error {
	if p.ws() != '[' {
		return p.fail("expected an array")
	}
	p.i++
	if p.ws() == ']' {
		p.i++
		return nil
	}
	for {
		if err := elem(); err != nil {
			return err
		}
		switch p.ws() {
		case ',':
			p.i++
		case ']':
			p.i++
			return nil
		default:
			return p.fail("expected ',' or ']'")
		}
	}
}

// end checks that nothing but white space follows the value.
func (p *scanner) end() error {
	if p.ws() != 0 {
		return p.fail("data after the value")
	}
	return nil
}

// fieldName folds a key as goccy/go-json matches the keys of a small struct
// (case-insensitively); the usual lower-case key is returned as is.
func fieldName(key string) string {
	for i := 0; i < len(key); i++ {
		if c := key[i]; c >= 'A' && c <= 'Z' || c >= 0x80 {
			return strings.ToLower(key)
		}
	}
	return key
}

// timeValue reads an RFC 3339 time as time.Time's UnmarshalJSON does; the common form
// (UTC, "Z", up to nine fractional digits) is parsed here, any other by the time
// package.
func (p *scanner) timeValue() (time.Time, error) {
	start := p.i
	s, err := p.str()
	if err != nil {
		return time.Time{}, err
	}
	if t, ok := parseUTC(s); ok {
		return t, nil
	}
	var t time.Time
	if err := t.UnmarshalJSON([]byte(p.s[start:p.i])); err != nil {
		return time.Time{}, fmt.Errorf("%w: %v", errSyntax, err)
	}
	return t, nil
}

// parseUTC parses "2006-01-02T15:04:05[.fraction]Z", reporting false for anything
// else, including values the time package would refuse.
func parseUTC(s string) (time.Time, bool) {
	if len(s) < 20 || s[len(s)-1] != 'Z' || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	num := func(from, to int) (int, bool) {
		n := 0
		for i := from; i < to; i++ {
			c := s[i]
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	y, ok1 := num(0, 4)
	mo, ok2 := num(5, 7)
	d, ok3 := num(8, 10)
	h, ok4 := num(11, 13)
	mi, ok5 := num(14, 16)
	sec, ok6 := num(17, 19)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 59 {
		return time.Time{}, false
	}
	if d > daysIn(time.Month(mo), y) {
		return time.Time{}, false
	}
	ns := 0
	if frac := s[19 : len(s)-1]; frac != "" {
		digits := len(frac) - 1
		if frac[0] != '.' || digits < 1 || digits > 9 {
			return time.Time{}, false
		}
		n, ok := num(20, 20+digits)
		if !ok {
			return time.Time{}, false
		}
		for range 9 - digits {
			n *= 10
		}
		ns = n
	}
	return time.Date(y, time.Month(mo), d, h, mi, sec, ns, time.UTC), true
}

func daysIn(m time.Month, year int) int {
	return time.Date(year, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// stageRun reads a stage-run object into r (zeroed by the caller), as json.Unmarshal
// into schemas.StageRun does.
func (p *scanner) stageRun(r *schemas.StageRun) error {
	return p.object(func(key string) error {
		if p.null() {
			return nil // a null leaves the zero value
		}
		var err error
		var s string
		switch key { // exact: goccy/go-json matches a struct of this many fields so
		case "schema":
			r.Schema, err = p.str()
		case "job_id":
			r.JobID, err = p.str()
		case "tenant":
			r.Tenant, err = p.str()
		case "user":
			r.User, err = p.str()
		case "tier":
			s, err = p.str()
			r.Tier = schemas.Tier(s)
		case "task":
			s, err = p.str()
			r.Task = schemas.Task(s)
		case "model":
			r.Model, err = p.str()
		case "model_version":
			r.ModelVersion, err = p.str()
		case "stage":
			s, err = p.str()
			r.Stage = schemas.Stage(s)
		case "worker":
			r.Worker, err = p.str()
		case "attempt":
			r.Attempt, err = p.int()
		case "batch_size":
			r.BatchSize, err = p.int()
		case "outcome":
			r.Outcome, err = p.str()
		case "error":
			r.Error, err = p.str()
		case "started_at":
			r.StartedAt, err = p.timeValue()
		case "duration_ms":
			r.DurationMS, err = p.float()
		case "queue_wait_ms":
			r.QueueWaitMS, err = p.float()
		case "traceparent":
			r.TraceParent, err = p.str()
		default:
			err = p.skip()
		}
		if err != nil {
			return fmt.Errorf("stage run field %q: %w", key, err)
		}
		return nil
	})
}
