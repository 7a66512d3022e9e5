package ocr

import (
	"math"
)

// DBOptions are the DB post-processing settings; DefaultDBOptions holds PaddleOCR's
// inference defaults (det_db_thresh 0.3, det_db_box_thresh 0.6, det_db_unclip_ratio
// 1.5, max_candidates 1000, min_size 3, score_mode "fast", no dilation).
type DBOptions struct {
	// Thresh binarises the probability map.
	Thresh float32
	// BoxThresh drops a box whose mean probability inside is lower.
	BoxThresh float64
	// UnclipRatio grows a box by area*ratio/perimeter on every side: the network
	// predicts shrunk text kernels.
	UnclipRatio float64
	// MaxCandidates bounds the regions looked at.
	MaxCandidates int
	// MinSize drops regions whose shorter side is below it (before growing; MinSize+2
	// after).
	MinSize float64
	// SlowScore scores a region by its mean probability over the region itself
	// (PaddleOCR's score_mode "slow") instead of over its rotated rectangle ("fast").
	SlowScore bool
}

// DefaultDBOptions returns PaddleOCR's defaults, except the score mode: "slow" (the
// region's own pixels) instead of "fast" (its rotated rectangle). On a photographed
// page the lines bend, their rectangles take in background, and the fast score dropped
// two of six lines of scikit-image's page.png (0.56 and 0.51 under the 0.6 threshold).
func DefaultDBOptions() DBOptions {
	return DBOptions{Thresh: 0.3, BoxThresh: 0.6, UnclipRatio: 1.5, MaxCandidates: 1000, MinSize: 3, SlowScore: true}
}

// Box is a detected text region in source-image pixels with the detector's mean
// probability inside it.
type Box struct {
	Quad  Quad
	Score float64
}

// Boxes turns the detector's w x h probability map into text boxes in a srcW x srcH
// image, as PaddleOCR's DBPostProcess and filter_tag_det_res do: threshold the map,
// take each connected region (8-connected; PaddleOCR traces contours, which bound the
// same regions), fit the minimum-area rotated rectangle, drop it if its short side is
// under MinSize or its mean probability (inside the rectangle) under BoxThresh, grow it
// by the unclip distance, rescale it to the source, round and clip it, order its
// corners clockwise and drop boxes 3 pixels or less across.
func Boxes(prob []float32, w, h, srcW, srcH int, o DBOptions) []Box {
	if len(prob) != w*h || w <= 0 || h <= 0 {
		return nil
	}
	var out []Box
	regions := components(prob, w, h, o.Thresh)
	if o.MaxCandidates > 0 && len(regions) > o.MaxCandidates {
		regions = regions[:o.MaxCandidates]
	}
	for _, reg := range regions {
		corners, rw, rh := minAreaRect(reg.edges)
		if math.Min(rw, rh) < o.MinSize {
			continue
		}
		q := miniBox(corners)
		score := reg.sum / float64(reg.n)
		if !o.SlowScore {
			score = scoreFast(prob, w, h, q)
		}
		if score < o.BoxThresh {
			continue
		}
		grown, gw, gh := unclip(corners, rw, rh, o.UnclipRatio)
		if math.Min(gw, gh) < o.MinSize+2 {
			continue
		}
		q = miniBox(grown)
		for i := range q {
			q[i].X = clampF(math.RoundToEven(q[i].X/float64(w)*float64(srcW)), 0, float64(srcW))
			q[i].Y = clampF(math.RoundToEven(q[i].Y/float64(h)*float64(srcH)), 0, float64(srcH))
		}
		q = orderClockwise(q)
		for i := range q {
			q[i].X = clampF(q[i].X, 0, float64(srcW-1))
			q[i].Y = clampF(q[i].Y, 0, float64(srcH-1))
		}
		if int(dist(q[0], q[1])) <= 3 || int(dist(q[0], q[3])) <= 3 {
			continue
		}
		out = append(out, Box{Quad: q, Score: score})
	}
	return out
}

// region is one connected region of the thresholded map: the leftmost and rightmost
// pixel of every row it covers (enough for its convex hull), and the sum and count of
// its probabilities.
type region struct {
	edges []Point
	sum   float64
	n     int
}

// components labels the 8-connected regions of prob > thresh, in raster order of their
// first pixel.
func components(prob []float32, w, h int, thresh float32) []region {
	label := make([]int32, w*h)
	var regions []region
	var stack []int
	for start, p := range prob {
		if !(p > thresh) || label[start] != 0 {
			continue
		}
		id := int32(len(regions) + 1)
		label[start] = id
		stack = append(stack[:0], start)
		rowMin := map[int]int{}
		rowMax := map[int]int{}
		var sum float64
		n := 0
		for len(stack) > 0 {
			i := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			sum += float64(prob[i])
			n++
			x, y := i%w, i/w
			if v, ok := rowMin[y]; !ok || x < v {
				rowMin[y] = x
			}
			if v, ok := rowMax[y]; !ok || x > v {
				rowMax[y] = x
			}
			for dy := -1; dy <= 1; dy++ {
				for dx := -1; dx <= 1; dx++ {
					nx, ny := x+dx, y+dy
					if nx < 0 || ny < 0 || nx >= w || ny >= h {
						continue
					}
					j := ny*w + nx
					if label[j] == 0 && prob[j] > thresh {
						label[j] = id
						stack = append(stack, j)
					}
				}
			}
		}
		pts := make([]Point, 0, 2*len(rowMin))
		for y, x0 := range rowMin {
			pts = append(pts, Point{float64(x0), float64(y)}, Point{float64(rowMax[y]), float64(y)})
		}
		regions = append(regions, region{edges: pts, sum: sum, n: n})
	}
	return regions
}

// scoreFast is PaddleOCR's box_score_fast: the mean probability over the pixels of the
// box's bounding rectangle that lie inside the box (corners truncated to integers, as
// cv2.fillPoly receives them; edge pixels count as inside).
func scoreFast(prob []float32, w, h int, q Quad) float64 {
	minX, maxX, minY, maxY := q[0].X, q[0].X, q[0].Y, q[0].Y
	for _, p := range q[1:] {
		minX, maxX = math.Min(minX, p.X), math.Max(maxX, p.X)
		minY, maxY = math.Min(minY, p.Y), math.Max(maxY, p.Y)
	}
	x0 := clampI(int(math.Floor(minX)), 0, w-1)
	x1 := clampI(int(math.Ceil(maxX)), 0, w-1)
	y0 := clampI(int(math.Floor(minY)), 0, h-1)
	y1 := clampI(int(math.Ceil(maxY)), 0, h-1)
	var poly Quad
	for i, p := range q {
		poly[i] = Point{math.Trunc(p.X - float64(x0)), math.Trunc(p.Y - float64(y0))}
	}
	var sum float64
	n := 0
	for y := y0; y <= y1; y++ {
		for x := x0; x <= x1; x++ {
			if insideConvex(poly, Point{float64(x - x0), float64(y - y0)}) {
				sum += float64(prob[y*w+x])
				n++
			}
		}
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}

// insideConvex reports whether p lies in the convex quadrilateral q or on its edges.
func insideConvex(q Quad, p Point) bool {
	pos, neg := false, false
	for i := range q {
		a, b := q[i], q[(i+1)%4]
		c := (b.X-a.X)*(p.Y-a.Y) - (b.Y-a.Y)*(p.X-a.X)
		// Half a pixel of slack: fillPoly colours the pixels its edges pass through.
		slack := 0.5 * math.Hypot(b.X-a.X, b.Y-a.Y)
		if c > slack {
			pos = true
		} else if c < -slack {
			neg = true
		}
	}
	return !(pos && neg)
}

// unclip grows a w x h rectangle by PaddleOCR's unclip distance, area*ratio/perimeter,
// on every side. PaddleOCR offsets the polygon with rounded joins (pyclipper) and takes
// the minimum-area rectangle of the result, which for a rectangle is the rectangle
// grown by the distance.
func unclip(c [4]Point, w, h, ratio float64) ([4]Point, float64, float64) {
	if w == 0 || h == 0 {
		return c, w, h
	}
	d := w * h * ratio / (2 * (w + h))
	// c is a rectangle in order: c[0]->c[1] one side, c[1]->c[2] the next.
	ux, uy := (c[1].X-c[0].X)/w, (c[1].Y-c[0].Y)/w
	vx, vy := (c[3].X-c[0].X)/h, (c[3].Y-c[0].Y)/h
	move := func(p Point, su, sv float64) Point {
		return Point{p.X + su*d*ux + sv*d*vx, p.Y + su*d*uy + sv*d*vy}
	}
	return [4]Point{move(c[0], -1, -1), move(c[1], 1, -1), move(c[2], 1, 1), move(c[3], -1, 1)}, w + 2*d, h + 2*d
}

func clampF(v, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, v)) }

func clampI(v, lo, hi int) int { return max(lo, min(hi, v)) }
