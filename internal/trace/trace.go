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

// Valid reports whether tp is a well-formed version-00 traceparent with non-zero ids
// ("00-<32 lowercase hex>-<16 lowercase hex>-<2 lowercase hex>"). It allocates
// nothing: the consume engine calls it for every message.
func Valid(tp string) bool {
	if len(tp) != 55 || tp[0] != '0' || tp[1] != '0' || tp[2] != '-' || tp[35] != '-' || tp[52] != '-' {
		return false
	}
	for i := 3; i < 55; i++ {
		if i == 35 || i == 52 {
			continue
		}
		if c := tp[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return strings.Trim(tp[3:35], "0") != "" && strings.Trim(tp[36:52], "0") != ""
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
