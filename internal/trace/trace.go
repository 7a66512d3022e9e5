// Package trace creates and parses W3C trace context (traceparent) values, which the
// pipeline carries from ingest through every stage, log line and result event.
package trace

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
)

// New returns a fresh traceparent with a random trace id and span id, sampled.
func New() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return "00-" + hex.EncodeToString(b[:16]) + "-" + hex.EncodeToString(b[16:]) + "-01"
}

// Valid reports whether tp is a well-formed version-00 traceparent with non-zero ids.
func Valid(tp string) bool {
	parts := strings.Split(tp, "-")
	if len(parts) != 4 || parts[0] != "00" || len(parts[1]) != 32 || len(parts[2]) != 16 || len(parts[3]) != 2 {
		return false
	}
	for _, p := range parts[1:] {
		if _, err := hex.DecodeString(p); err != nil || strings.ToLower(p) != p {
			return false
		}
	}
	return strings.Trim(parts[1], "0") != "" && strings.Trim(parts[2], "0") != ""
}

// ID returns the trace id of tp, or "" if tp is not valid.
func ID(tp string) string {
	if !Valid(tp) {
		return ""
	}
	return tp[3:35]
}

// Child returns a traceparent with the same trace id and a new span id, for the next
// hop; an invalid parent starts a new trace.
func Child(tp string) string {
	if !Valid(tp) {
		return New()
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	return tp[:36] + hex.EncodeToString(b[:]) + tp[52:]
}
