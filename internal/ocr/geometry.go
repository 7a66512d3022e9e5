package ocr

import (
	"math"
	"sort"
)

// Point is a position in pixels.
type Point struct{ X, Y float64 }

// Quad is a quadrilateral: top-left, top-right, bottom-right, bottom-left.
type Quad [4]Point

// hull returns the convex hull of pts (Andrew's monotone chain), counter-clockwise in
// image coordinates, without collinear points.
func hull(pts []Point) []Point {
	if len(pts) < 3 {
		return append([]Point(nil), pts...)
	}
	p := append([]Point(nil), pts...)
	sort.Slice(p, func(i, j int) bool {
		if p[i].X != p[j].X {
			return p[i].X < p[j].X
		}
		return p[i].Y < p[j].Y
	})
	cross := func(o, a, b Point) float64 { return (a.X-o.X)*(b.Y-o.Y) - (a.Y-o.Y)*(b.X-o.X) }
	h := make([]Point, 0, 2*len(p))
	for _, q := range p {
		for len(h) >= 2 && cross(h[len(h)-2], h[len(h)-1], q) <= 0 {
			h = h[:len(h)-1]
		}
		h = append(h, q)
	}
	lower := len(h) + 1
	for i := len(p) - 2; i >= 0; i-- {
		q := p[i]
		for len(h) >= lower && cross(h[len(h)-2], h[len(h)-1], q) <= 0 {
			h = h[:len(h)-1]
		}
		h = append(h, q)
	}
	return h[:len(h)-1]
}

// minAreaRect returns the corners of the smallest-area rectangle enclosing pts (as
// OpenCV's minAreaRect followed by boxPoints) and its two side lengths. It tries each
// hull edge as a side (rotating calipers).
func minAreaRect(pts []Point) (corners [4]Point, w, h float64) {
	hl := hull(pts)
	switch len(hl) {
	case 0:
		return corners, 0, 0
	case 1:
		return [4]Point{hl[0], hl[0], hl[0], hl[0]}, 0, 0
	}
	best := math.Inf(1)
	for i := range hl {
		a, b := hl[i], hl[(i+1)%len(hl)]
		dx, dy := b.X-a.X, b.Y-a.Y
		n := math.Hypot(dx, dy)
		if n == 0 {
			continue
		}
		ux, uy := dx/n, dy/n // along the edge
		vx, vy := -uy, ux    // across it
		minU, maxU, minV, maxV := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
		for _, p := range hl {
			u := (p.X-a.X)*ux + (p.Y-a.Y)*uy
			v := (p.X-a.X)*vx + (p.Y-a.Y)*vy
			minU, maxU = math.Min(minU, u), math.Max(maxU, u)
			minV, maxV = math.Min(minV, v), math.Max(maxV, v)
		}
		if area := (maxU - minU) * (maxV - minV); area < best {
			best = area
			at := func(u, v float64) Point { return Point{a.X + u*ux + v*vx, a.Y + u*uy + v*vy} }
			corners = [4]Point{at(minU, minV), at(maxU, minV), at(maxU, maxV), at(minU, maxV)}
			w, h = maxU-minU, maxV-minV
		}
	}
	return corners, w, h
}

// miniBox orders a rectangle's corners as PaddleOCR's get_mini_boxes does: sorted by
// x, the upper of the two leftmost is the top left and the upper of the two rightmost
// the top right.
func miniBox(c [4]Point) Quad {
	p := c
	sort.SliceStable(p[:], func(i, j int) bool { return p[i].X < p[j].X })
	i1, i4 := 1, 0
	if p[1].Y > p[0].Y {
		i1, i4 = 0, 1
	}
	i2, i3 := 3, 2
	if p[3].Y > p[2].Y {
		i2, i3 = 2, 3
	}
	return Quad{p[i1], p[i2], p[i3], p[i4]}
}

// orderClockwise orders four corners as PaddleOCR's order_points_clockwise: the top
// left has the smallest x+y, the bottom right the largest, and of the other two the top
// right has the smaller y-x.
func orderClockwise(q Quad) Quad {
	minS, maxS := 0, 0
	for i, p := range q {
		if p.X+p.Y < q[minS].X+q[minS].Y {
			minS = i
		}
		if p.X+p.Y > q[maxS].X+q[maxS].Y {
			maxS = i
		}
	}
	if minS == maxS { // degenerate: all corners on one anti-diagonal
		return q
	}
	var rest []Point
	for i, p := range q {
		if i != minS && i != maxS {
			rest = append(rest, p)
		}
	}
	tr, bl := rest[0], rest[1]
	if tr.Y-tr.X > bl.Y-bl.X {
		tr, bl = bl, tr
	}
	return Quad{q[minS], tr, q[maxS], bl}
}

func dist(a, b Point) float64 { return math.Hypot(a.X-b.X, a.Y-b.Y) }

// SortReadingOrder sorts boxes top to bottom, then left to right, as PaddleOCR's
// sorted_boxes does: by the top-left corner's (y, x), then a box whose top differs from
// the previous one's by less than 10 pixels and starts left of it moves before it, so
// the words of one line read left to right. It returns the permutation applied.
func SortReadingOrder(qs []Quad) []int {
	idx := make([]int, len(qs))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool {
		p, q := qs[idx[a]][0], qs[idx[b]][0]
		if p.Y != q.Y {
			return p.Y < q.Y
		}
		return p.X < q.X
	})
	for i := 0; i < len(idx)-1; i++ {
		for j := i; j >= 0; j-- {
			a, b := qs[idx[j]][0], qs[idx[j+1]][0]
			if math.Abs(b.Y-a.Y) < 10 && b.X < a.X {
				idx[j], idx[j+1] = idx[j+1], idx[j]
			} else {
				break
			}
		}
	}
	sorted := make([]Quad, len(qs))
	for i, k := range idx {
		sorted[i] = qs[k]
	}
	copy(qs, sorted)
	return idx
}
