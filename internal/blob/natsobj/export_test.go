package natsobj

import (
	"testing"
	"time"
)

// SetCallTimeout shortens the per-call bound for one test.
func SetCallTimeout(t testing.TB, d time.Duration) {
	old := callTimeout
	callTimeout = d
	t.Cleanup(func() { callTimeout = old })
}
