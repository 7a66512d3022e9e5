package ocr

import (
	"math"
	"testing"
)

// fillRotatedRect paints probability p over a w x h rectangle centred at (cx, cy),
// turned by deg degrees, in a W x H map.
func fillRotatedRect(prob []float32, W, H int, cx, cy, w, h, deg float64, p float32) {
	s, c := math.Sincos(deg * math.Pi / 180)
	for y := range H {
		for x := range W {
			dx, dy := float64(x)-cx, float64(y)-cy
			u, v := c*dx+s*dy, -s*dx+c*dy
			if math.Abs(u) <= w/2 && math.Abs(v) <= h/2 {
				prob[y*W+x] = p
			}
		}
	}
}

func TestBoxes(t *testing.T) {
	const W, H = 200, 100
	tests := []struct {
		name      string
		paint     func([]float32)
		srcW      int
		srcH      int
		wantBoxes int
		check     func(t *testing.T, bs []Box)
	}{
		{
			name:  "an upright text kernel becomes one box grown by the unclip distance",
			paint: func(p []float32) { fillRotatedRect(p, W, H, 100, 50, 101, 11, 0, 0.9) },
			srcW:  W, srcH: H, wantBoxes: 1,
			check: func(t *testing.T, bs []Box) {
				// Kernel pixels 50..150 x 45..55: a 100x10 rectangle through the pixel
				// centres; unclip distance 100*10*1.5/220 = 6.8.
				q := bs[0].Quad
				if q[0].X != 43 || q[0].Y != 38 || q[2].X != 157 || q[2].Y != 62 {
					t.Errorf("box %v, want (43,38)-(157,62)", q)
				}
				if math.Abs(bs[0].Score-0.9) > 1e-6 {
					t.Errorf("score %.4f, want 0.9", bs[0].Score)
				}
			},
		},
		{
			name:  "a rotated kernel gives a rotated box with corners clockwise from the top left",
			paint: func(p []float32) { fillRotatedRect(p, W, H, 100, 50, 120, 14, 10, 0.8) },
			srcW:  W, srcH: H, wantBoxes: 1,
			check: func(t *testing.T, bs []Box) {
				q := bs[0].Quad
				angle := math.Atan2(q[1].Y-q[0].Y, q[1].X-q[0].X) * 180 / math.Pi
				if math.Abs(angle-10) > 1.5 {
					t.Errorf("top edge at %.1f degrees, want about 10: %v", angle, q)
				}
				if !(q[0].X < q[1].X && q[1].Y < q[2].Y && q[2].X > q[3].X && q[3].Y > q[0].Y) {
					t.Errorf("corners not clockwise from the top left: %v", q)
				}
			},
		},
		{
			name:  "boxes scale from the map to the source image",
			paint: func(p []float32) { fillRotatedRect(p, W, H, 100, 50, 101, 11, 0, 0.9) },
			srcW:  400, srcH: 200, wantBoxes: 1,
			check: func(t *testing.T, bs []Box) {
				q := bs[0].Quad
				if q[0].X != 86 || q[0].Y != 76 || q[2].X != 314 || q[2].Y != 124 {
					t.Errorf("box %v, want (86,76)-(314,124) at twice the map's size", q)
				}
			},
		},
		{
			name:  "a region with low mean probability is dropped",
			paint: func(p []float32) { fillRotatedRect(p, W, H, 100, 50, 101, 11, 0, 0.5) },
			srcW:  W, srcH: H, wantBoxes: 0,
		},
		{
			name:  "a region thinner than three pixels is dropped",
			paint: func(p []float32) { fillRotatedRect(p, W, H, 100, 50, 101, 2, 0, 0.95) },
			srcW:  W, srcH: H, wantBoxes: 0,
		},
		{
			name: "two separate lines are two boxes",
			paint: func(p []float32) {
				fillRotatedRect(p, W, H, 100, 25, 150, 11, 0, 0.9)
				fillRotatedRect(p, W, H, 100, 70, 150, 11, 0, 0.9)
			},
			srcW: W, srcH: H, wantBoxes: 2,
		},
		{
			name:  "nothing above the threshold gives no boxes",
			paint: func(p []float32) { fillRotatedRect(p, W, H, 100, 50, 101, 11, 0, 0.3) },
			srcW:  W, srcH: H, wantBoxes: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prob := make([]float32, W*H)
			tt.paint(prob)
			bs := Boxes(prob, W, H, tt.srcW, tt.srcH, DefaultDBOptions())
			if len(bs) != tt.wantBoxes {
				t.Fatalf("%d boxes %v, want %d", len(bs), bs, tt.wantBoxes)
			}
			if tt.check != nil {
				tt.check(t, bs)
			}
		})
	}
}

func TestFastScoreCountsTheRectangleNotTheRegion(t *testing.T) {
	const W, H = 200, 100
	prob := make([]float32, W*H)
	// A bent line: two halves offset by 6 pixels; its rectangle takes in background.
	fillRotatedRect(prob, W, H, 70, 47, 61, 9, 0, 0.9)
	fillRotatedRect(prob, W, H, 130, 53, 61, 9, 0, 0.9)
	fast := DefaultDBOptions()
	fast.SlowScore = false
	if bs := Boxes(prob, W, H, W, H, fast); len(bs) != 0 {
		t.Errorf("fast score kept %v: want the bent line dropped under 0.6", bs)
	}
	if bs := Boxes(prob, W, H, W, H, DefaultDBOptions()); len(bs) != 1 || math.Abs(bs[0].Score-0.9) > 1e-6 {
		t.Errorf("slow score gave %v, want one box scoring 0.9", bs)
	}
}

func TestMinAreaRect(t *testing.T) {
	tests := []struct {
		name string
		pts  []Point
		w, h float64
	}{
		{"an axis-aligned rectangle", []Point{{0, 0}, {10, 0}, {10, 4}, {0, 4}, {5, 2}}, 10, 4},
		{"a diamond is its own rectangle", []Point{{5, 0}, {10, 5}, {5, 10}, {0, 5}}, math.Sqrt(50), math.Sqrt(50)},
		{"collinear points have no height", []Point{{0, 0}, {1, 1}, {2, 2}}, math.Sqrt(8), 0},
		{"one point has no size", []Point{{3, 3}}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, w, h := minAreaRect(tt.pts)
			if w < h {
				w, h = h, w
			}
			if math.Abs(w-max(tt.w, tt.h)) > 1e-9 || math.Abs(h-min(tt.w, tt.h)) > 1e-9 {
				t.Errorf("rectangle %gx%g, want %gx%g", w, h, tt.w, tt.h)
			}
		})
	}
}

func TestSortReadingOrder(t *testing.T) {
	box := func(x, y float64) Quad { return Quad{{x, y}, {x + 50, y}, {x + 50, y + 10}, {x, y + 10}} }
	tests := []struct {
		name string
		in   []Quad
		want []int
	}{
		{"lines read top to bottom", []Quad{box(0, 50), box(0, 10), box(0, 30)}, []int{1, 2, 0}},
		{"words of one slightly uneven line read left to right", []Quad{box(100, 12), box(0, 15), box(200, 10)}, []int{1, 0, 2}},
		{"a word 10 pixels lower starts the next line", []Quad{box(100, 20), box(0, 10)}, []int{1, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			qs := append([]Quad(nil), tt.in...)
			got := SortReadingOrder(qs)
			for i, k := range tt.want {
				if got[i] != k || qs[i] != tt.in[k] {
					t.Fatalf("order %v, want %v", got, tt.want)
				}
			}
		})
	}
}

func TestDetSize(t *testing.T) {
	tests := []struct {
		name       string
		w, h       int
		wantW, wwH int
	}{
		{"a small image keeps its scale, rounded to multiples of 32", 384, 191, 384, 192},
		{"a large image shrinks to 960 on its long side", 1920, 1080, 960, 544},
		{"halves round to the even multiple (1.5 to 2, 2.5 to 2) as Python does", 48, 80, 64, 64},
		{"a tiny image is at least 32 each way", 10, 5, 32, 32},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, h := DetSize(tt.w, tt.h, DetLimitSide, DetMultiple)
			if w != tt.wantW || h != tt.wwH {
				t.Errorf("DetSize(%d, %d) = %dx%d, want %dx%d", tt.w, tt.h, w, h, tt.wantW, tt.wwH)
			}
		})
	}
}
