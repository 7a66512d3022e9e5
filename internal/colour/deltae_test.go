package colour

import (
	"math"
	"testing"
)

// The test pairs of Sharma, Wu and Dalal, "The CIEDE2000 color-difference
// formula: implementation notes, supplementary test data, and mathematical
// observations" (2005), table 1.
func TestDeltaE2000MatchesThePublishedTestData(t *testing.T) {
	tests := []struct {
		a, b Lab
		want float64
	}{
		{Lab{50, 2.6772, -79.7751}, Lab{50, 0, -82.7485}, 2.0425},
		{Lab{50, 3.1571, -77.2803}, Lab{50, 0, -82.7485}, 2.8615},
		{Lab{50, 2.8361, -74.0200}, Lab{50, 0, -82.7485}, 3.4412},
		{Lab{50, -1.3802, -84.2814}, Lab{50, 0, -82.7485}, 1.0000},
		{Lab{50, 0, 0}, Lab{50, -1, 2}, 2.3669},
		{Lab{50, 2.49, -0.001}, Lab{50, -2.49, 0.0009}, 7.1792},
		{Lab{50, 2.5, 0}, Lab{73, 25, -18}, 27.1492},
		{Lab{60.2574, -34.0099, 36.2677}, Lab{60.4626, -34.1751, 39.4387}, 1.2644},
		{Lab{22.7233, 20.0904, -46.6940}, Lab{23.0331, 14.9730, -42.5619}, 2.0373},
		{Lab{90.9257, -0.5406, -0.9208}, Lab{88.6381, -0.8985, -0.7239}, 1.5381},
		{Lab{2.0776, 0.0795, -1.1350}, Lab{0.9033, -0.0636, -0.5514}, 0.9082},
	}
	for _, tt := range tests {
		if got := DeltaE2000(tt.a, tt.b); math.Abs(got-tt.want) > 1e-4 {
			t.Errorf("DeltaE2000(%v, %v) = %.4f, want %.4f", tt.a, tt.b, got, tt.want)
		}
		if got := DeltaE2000(tt.b, tt.a); math.Abs(got-tt.want) > 1e-4 {
			t.Errorf("DeltaE2000 is not symmetric for %v, %v: %.4f", tt.b, tt.a, got)
		}
	}
}
