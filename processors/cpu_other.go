//go:build !linux

package processors

import "time"

// threadCPU is unavailable off Linux: MeasureCPU then records nothing.
func threadCPU() (time.Duration, bool) { return 0, false }
