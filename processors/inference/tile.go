package inference

import (
	"context"
	"fmt"

	"github.com/creativeai-studio/studio/processors/artifact"
)

// RunFunc runs a model on one (possibly batched) tensor.
type RunFunc func(ctx context.Context, x artifact.Tensor) (artifact.Tensor, error)

// span is one tile along an axis: the model sees [start, start+size) of the input and
// the output keeps only the core [core, core+coreLen), which tiles exactly.
type span struct{ start, size, core, coreLen int }

// spans cuts an axis of length n into the fewest windows of at most tile pixels whose
// cores partition the axis, each core at least overlap pixels from its window's edge
// except at the image border. All windows of an axis have the same size (so tiles
// batch together), chosen as small as the count allows to waste little work.
func spans(n, tile, overlap int) []span {
	if n <= tile {
		return []span{{0, n, 0, n}}
	}
	step := tile - 2*overlap
	k := (n - 2*overlap + step - 1) / step
	size := (n-2*overlap+k-1)/k + 2*overlap
	out := make([]span, 0, k)
	coreStart := 0
	for i := range k {
		start := min(i*(size-2*overlap), n-size)
		coreEnd := start + size - overlap
		if i == k-1 {
			coreEnd = n
		}
		out = append(out, span{start, size, coreStart, coreEnd - coreStart})
		coreStart = coreEnd
	}
	return out
}

// RunTiled runs a [1,C,H,W] image through run in overlapping tiles of tile x tile and
// stitches the cores of the outputs (scale x larger) into one [1,C',H*scale,W*scale]
// tensor. Each output pixel comes from a tile in which it lies at least overlap input
// pixels from the tile edge (or at the image border), so no seam shows as long as the
// model's receptive field fits in the overlap. Up to maxBatch tiles run per call.
func RunTiled(ctx context.Context, run RunFunc, x artifact.Tensor, tile, overlap, scale, maxBatch int) (artifact.Tensor, error) {
	if len(x.Shape) != 4 || x.Shape[0] != 1 {
		return artifact.Tensor{}, fmt.Errorf("tiling needs a [1,C,H,W] tensor, got %v", x.Shape)
	}
	c, h, w := int(x.Shape[1]), int(x.Shape[2]), int(x.Shape[3])
	ys, xs := spans(h, tile, overlap), spans(w, tile, overlap)
	th, tw := ys[0].size, xs[0].size
	maxBatch = max(1, maxBatch)

	type job struct{ y, x span }
	var jobs []job
	for _, sy := range ys {
		for _, sx := range xs {
			jobs = append(jobs, job{sy, sx})
		}
	}
	var out artifact.Tensor
	var oc int
	for i := 0; i < len(jobs); i += maxBatch {
		batch := jobs[i:min(i+maxBatch, len(jobs))]
		n := len(batch)
		in := artifact.Tensor{Shape: []int64{int64(n), int64(c), int64(th), int64(tw)}, Data: make([]float32, n*c*th*tw)}
		for b, j := range batch {
			for ch := range c {
				for yy := range th {
					src := x.Data[(ch*h+j.y.start+yy)*w+j.x.start:]
					dst := in.Data[((b*c+ch)*th+yy)*tw:]
					copy(dst[:tw], src[:tw])
				}
			}
		}
		y, err := run(ctx, in)
		if err != nil {
			return artifact.Tensor{}, err
		}
		if len(y.Shape) != 4 || int(y.Shape[0]) != n || int(y.Shape[2]) != th*scale || int(y.Shape[3]) != tw*scale {
			return artifact.Tensor{}, fmt.Errorf("tile output %v: want [%d,C,%d,%d] for x%d", y.Shape, n, th*scale, tw*scale, scale)
		}
		if out.Data == nil {
			oc = int(y.Shape[1])
			out = artifact.Tensor{Shape: []int64{1, int64(oc), int64(h * scale), int64(w * scale)}, Data: make([]float32, oc*h*scale*w*scale)}
		}
		ow, oth, otw := w*scale, th*scale, tw*scale
		for b, j := range batch {
			y0, x0 := (j.y.core-j.y.start)*scale, (j.x.core-j.x.start)*scale
			rows, cols := j.y.coreLen*scale, j.x.coreLen*scale
			for ch := range oc {
				for yy := range rows {
					src := y.Data[((b*oc+ch)*oth+y0+yy)*otw+x0:]
					dst := out.Data[(ch*h*scale+j.y.core*scale+yy)*ow+j.x.core*scale:]
					copy(dst[:cols], src[:cols])
				}
			}
		}
	}
	return out, nil
}
