package streams

import (
	"testing"
	"time"
)

// SetBindWait shortens BindKV's wait for a missing bucket for one test.
func SetBindWait(t testing.TB, d time.Duration) {
	old := bindWait
	bindWait = d
	t.Cleanup(func() { bindWait = old })
}
