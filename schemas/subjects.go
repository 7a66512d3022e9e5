package schemas

import (
	"fmt"
	"strings"
)

// Stream names and subject roots. A subject token never contains a dot, so model
// versions (which may) travel in the event body, not the subject.
const (
	StreamRequests      = "REQUESTS"
	StreamPreprocessed  = "PREPROCESSED"
	StreamInferred      = "INFERRED"
	StreamPostprocessed = "POSTPROCESSED"
	StreamResults       = "RESULTS"
	StreamTelemetry     = "TELEMETRY"
	StreamAudit         = "AUDIT"
	StreamFeedback      = "FEEDBACK"
	StreamDLQ           = "DLQ"
)

// Subject roots of the pipeline: a stream holds "<root>.>", and a subject's next token
// is the tier (the result root's is the tenant).
const (
	RootRequests      = "studio.requests"
	RootPreprocessed  = "studio.preprocessed"
	RootInferred      = "studio.inferred"
	RootPostprocessed = "studio.postprocessed"
	RootResults       = "studio.results"
)

// TierSubjects matches every subject of one tier under root: <root>.<tier>.>.
func TierSubjects(root string, t Tier) string { return root + "." + string(t) + ".>" }

// RequestSubject is where ingest publishes a new job: studio.requests.<tier>.<task>.
func RequestSubject(t Tier, task Task) string {
	return RootRequests + "." + string(t) + "." + string(task)
}

// PreprocessedSubject carries model-ready inputs: studio.preprocessed.<tier>.<model>.
func PreprocessedSubject(t Tier, model string) string {
	return RootPreprocessed + "." + string(t) + "." + model
}

// InferredSubject carries model outputs: studio.inferred.<tier>.<task>.
func InferredSubject(t Tier, task Task) string {
	return RootInferred + "." + string(t) + "." + string(task)
}

// PostprocessedSubject carries encoded results awaiting storage:
// studio.postprocessed.<tier>.<task>.
func PostprocessedSubject(t Tier, task Task) string {
	return RootPostprocessed + "." + string(t) + "." + string(task)
}

// ResultSubject carries final job outcomes: studio.results.<tenant>.<task>.
func ResultSubject(tenant string, task Task) string {
	return RootResults + "." + tenant + "." + string(task)
}

// TelemetrySubject carries stage-run records: studio.telemetry.<stage>.
func TelemetrySubject(s Stage) string { return "studio.telemetry." + string(s) }

// DLQSubject carries poison messages from a stage: studio.dlq.<stage>.
func DLQSubject(s Stage) string { return "studio.dlq." + string(s) }

// SubmitSubject is where upstream systems send job requests: studio.submit.<task>.
func SubmitSubject(task Task) string { return "studio.submit." + string(task) }

// ValidToken reports whether s can be used as one subject token (tenant ids, model
// names): non-empty, at most 64 bytes, letters, digits, '-' and '_' only.
func ValidToken(s string) error {
	if s == "" {
		return fmt.Errorf("empty name: use letters, digits, '-' or '_'")
	}
	if len(s) > 64 {
		return fmt.Errorf("name %q is longer than 64 bytes", s)
	}
	if i := strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	}); i >= 0 {
		return fmt.Errorf("name %q has %q at byte %d: use letters, digits, '-' or '_'", s, s[i], i)
	}
	return nil
}
