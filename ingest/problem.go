package ingest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/creativeai-studio/studio/schemas"
)

// Problem is an RFC 9457 problem details body (the wire type lives in schemas so the
// NATS entry answers with the same shape).
type Problem = schemas.Problem

// FieldProblem names one invalid field and the constraint it broke.
type FieldProblem = schemas.FieldError

func problem(status int, code, detail string, fields ...FieldProblem) *Problem {
	return schemas.NewProblem(status, code, detail, fields...)
}

func init() {
	// huma builds its own errors for what it checks before a handler runs (path, query
	// and header parameters). They become our problems so every error a client sees
	// has a code and names fields the same way. huma offers only this package-level
	// hook; ingest is the only huma API in the binary.
	huma.NewError = newHumaProblem
}

func newHumaProblem(status int, msg string, errs ...error) huma.StatusError {
	code := "invalid_request"
	switch {
	case status == http.StatusNotFound:
		code = "not_found"
	case status == http.StatusNotAcceptable:
		code = "not_acceptable"
	case status >= 500:
		code = "internal"
	}
	p := problem(status, code, msg)
	for _, err := range errs {
		if err == nil {
			continue
		}
		var d *huma.ErrorDetail
		if errors.As(err, &d) {
			// Locations read "query.limit" or "header.Idempotency-Key": the field is
			// what follows the location kind; the message names the constraint.
			_, field, _ := strings.Cut(d.Location, ".")
			if name, ok := missingProperty(d.Message); ok {
				// huma reports a missing property at its parent ("body").
				if field != "" {
					field += "."
				}
				field += name
			}
			p.Errors = append(p.Errors, FieldProblem{Field: field, Constraint: constraintOf(d.Message), Message: d.Message})
			continue
		}
		p.Errors = append(p.Errors, FieldProblem{Message: err.Error()})
	}
	if len(p.Errors) > 0 && p.Detail == "validation failed" {
		p.Detail = "validation failed: " + p.Errors[0].Field + " " + p.Errors[0].Message
	}
	return p
}

// missingProperty reads huma's "expected required property X to be present".
func missingProperty(msg string) (string, bool) {
	rest, ok := strings.CutPrefix(msg, "expected required property ")
	if !ok {
		return "", false
	}
	name, _, ok := strings.Cut(rest, " ")
	return name, ok
}

// constraintOf guesses the JSON Schema keyword from a huma validation message.
func constraintOf(msg string) string {
	for _, kw := range []struct{ needle, keyword string }{
		{"length <=", "maxLength"}, {"length >=", "minLength"}, {"<=", "maximum"}, {">=", "minimum"},
		{"one of", "enum"}, {"required", "required"}, {"match pattern", "pattern"}, {"expected ", "type"},
	} {
		if strings.Contains(msg, kw.needle) {
			return kw.keyword
		}
	}
	return ""
}

// writeProblem writes p for routes that bypass huma (the middleware, raw streams).
func writeProblem(w http.ResponseWriter, r *http.Request, p *Problem) {
	p.Instance = r.URL.Path
	if p.RequestID == "" {
		p.RequestID = RequestIDFrom(r.Context())
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(p)
}

// asProblem returns err as a problem: a *Problem as it is, anything else as a 503 that
// tells the client to retry (the cause is logged, never shown).
func (s *Service) asProblem(err error, where string) *Problem {
	var p *Problem
	if errors.As(err, &p) {
		return p
	}
	s.log.WithError(err).WithField("endpoint", where).Error("request failed")
	return problem(http.StatusServiceUnavailable, "unavailable", "the service could not complete the request; retry shortly")
}

func fieldsDetail(fields []FieldProblem) string {
	parts := make([]string, 0, len(fields))
	for _, f := range fields {
		parts = append(parts, fmt.Sprintf("%s %s", f.Field, f.Message))
	}
	return strings.Join(parts, "; ")
}
