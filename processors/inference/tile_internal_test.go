package inference

import "testing"

func TestSpansPartitionTheAxis(t *testing.T) {
	for _, n := range []int{1, 100, 256, 257, 300, 451, 1000, 4097} {
		for _, tc := range [][2]int{{256, 16}, {128, 16}, {64, 8}} {
			tile, overlap := tc[0], tc[1]
			ss := spans(n, tile, overlap)
			next := 0
			for i, s := range ss {
				if s.size != ss[0].size || s.size > tile || s.start < 0 || s.start+s.size > n {
					t.Fatalf("n=%d tile=%d: window %d = %+v out of range or uneven", n, tile, i, s)
				}
				if s.core != next || s.coreLen <= 0 {
					t.Fatalf("n=%d tile=%d: core %d starts at %d, want %d", n, tile, i, s.core, next)
				}
				if (s.core > 0 && s.core-s.start < overlap) || (s.core+s.coreLen < n && s.start+s.size-(s.core+s.coreLen) < overlap) {
					t.Fatalf("n=%d tile=%d: core %d of %+v is closer than %d to its window's inner edge", n, tile, i, s, overlap)
				}
				next = s.core + s.coreLen
			}
			if next != n {
				t.Fatalf("n=%d: cores end at %d", n, next)
			}
		}
	}
	if got := spans(300, 256, 16); len(got) != 2 || got[0].size != 166 {
		t.Errorf("spans(300) = %+v, want 2 windows of 166", got)
	}
}
