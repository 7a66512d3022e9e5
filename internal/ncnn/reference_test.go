package ncnn

import "math"

// Go references for what ncnn computes, written from ncnn's layer sources
// (including their float32 rounding), independent of the ONNX mapping.

type convSpec struct {
	oc, kh, kw, sh, sw, dh, dw int
	pt, pl, pb, pr             int
}

func conv2d(x tensor, w, b []float32, s convSpec) tensor {
	ic := x.c
	oh := (x.h+s.pt+s.pb-s.dh*(s.kh-1)-1)/s.sh + 1
	ow := (x.w+s.pl+s.pr-s.dw*(s.kw-1)-1)/s.sw + 1
	out := newTensor(x.n, s.oc, oh, ow)
	for n := range x.n {
		for o := range s.oc {
			for y := range oh {
				for xx := range ow {
					var acc float64
					if b != nil {
						acc = float64(b[o])
					}
					for i := range ic {
						for ky := range s.kh {
							iy := y*s.sh - s.pt + ky*s.dh
							if iy < 0 || iy >= x.h {
								continue
							}
							for kx := range s.kw {
								ix := xx*s.sw - s.pl + kx*s.dw
								if ix < 0 || ix >= x.w {
									continue
								}
								acc += float64(w[((o*ic+i)*s.kh+ky)*s.kw+kx]) * float64(x.at(n, i, iy, ix))
							}
						}
					}
					out.set(n, o, y, xx, float32(acc))
				}
			}
		}
	}
	return out
}

// samePads returns ncnn's pads for -233 (upper) or -234 (lower).
func samePads(in, k, stride, dil int, upper bool) (before, after int) {
	ext := dil*(k-1) + 1
	total := max(0, ext+(in-1)/stride*stride-in)
	if upper {
		return total / 2, total - total/2
	}
	return total - total/2, total / 2
}

func sigmoid(v float32) float32 { return float32(1 / (1 + math.Exp(-float64(v)))) }

func mish(v float32) float32 {
	return float32(float64(v) * math.Tanh(math.Log1p(math.Exp(float64(v)))))
}

func hardswish(alpha, beta float32) func(int, float32) float32 {
	return func(_ int, v float32) float32 { return v * min(max(v*alpha+beta, 0), 1) }
}

func leaky(slope float32) func(int, float32) float32 {
	return func(_ int, v float32) float32 {
		if v < 0 {
			return v * slope
		}
		return v
	}
}

func prelu(slopes []float32) func(int, float32) float32 {
	return func(c int, v float32) float32 {
		if v >= 0 {
			return v
		}
		if len(slopes) == 1 {
			return v * slopes[0]
		}
		return v * slopes[c]
	}
}

// pixelShuffle follows ncnn's PixelShuffle::forward for both modes.
func pixelShuffle(x tensor, r, mode int) tensor {
	outc := x.c / (r * r)
	out := newTensor(x.n, outc, x.h*r, x.w*r)
	for n := range x.n {
		for p := range outc {
			for sh := range r {
				for sw := range r {
					q := p*r*r + sh*r + sw
					if mode == 1 {
						q = (sh*r+sw)*outc + p
					}
					for y := range x.h {
						for xx := range x.w {
							out.set(n, p, y*r+sh, xx*r+sw, x.at(n, q, y, xx))
						}
					}
				}
			}
		}
	}
	return out
}

// nearest follows ncnn's Interp nearest: out = (int)(in * scale) and
// in_y = min((int)(y * hs), h - 1) with hs = 1/scale, or in/out for a fixed
// size (oh, ow > 0).
func nearest(x tensor, hs, ws float32, oh, ow int) tensor {
	fy, fx := 1/hs, 1/ws
	if oh > 0 && ow > 0 {
		fy, fx = float32(x.h)/float32(oh), float32(x.w)/float32(ow)
	} else {
		oh, ow = int(float32(x.h)*hs), int(float32(x.w)*ws)
	}
	out := newTensor(x.n, x.c, oh, ow)
	for n := range x.n {
		for c := range x.c {
			for y := range oh {
				iy := min(int(float32(y)*fy), x.h-1)
				for xx := range ow {
					ix := min(int(float32(xx)*fx), x.w-1)
					out.set(n, c, y, xx, x.at(n, c, iy, ix))
				}
			}
		}
	}
	return out
}

// linearCoeffs follows ncnn's linear_coeffs.
func linearCoeffs(in, out int, align bool) (ofs []int, alpha [][2]float32) {
	scale := float64(in) / float64(out)
	if align {
		scale = float64(in-1) / float64(out-1)
	}
	for d := range out {
		f := float32((float64(d)+0.5)*scale - 0.5)
		if align {
			f = float32(float64(d) * scale)
		}
		s := int(math.Floor(float64(f)))
		f -= float32(s)
		if s < 0 {
			s, f = 0, 0
		}
		if s >= in-1 {
			s, f = in-2, 1
		}
		ofs = append(ofs, s)
		alpha = append(alpha, [2]float32{1 - f, f})
	}
	return ofs, alpha
}

func bilinear(x tensor, oh, ow int, align bool) tensor {
	yo, ya := linearCoeffs(x.h, oh, align)
	xo, xa := linearCoeffs(x.w, ow, align)
	out := newTensor(x.n, x.c, oh, ow)
	for n := range x.n {
		for c := range x.c {
			for y := range oh {
				for xx := range ow {
					row := func(r int) float32 {
						return x.at(n, c, r, xo[xx])*xa[xx][0] + x.at(n, c, r, xo[xx]+1)*xa[xx][1]
					}
					out.set(n, c, y, xx, row(yo[y])*ya[y][0]+row(yo[y]+1)*ya[y][1])
				}
			}
		}
	}
	return out
}

// cubicCoeffs follows ncnn's cubic_coeffs (A = -0.75). ncnn folds the taps
// that fall outside the image onto the edge pixel; clamping the tap index
// is the same thing.
func cubicCoeffs(in, out int, align bool) (ofs []int, alpha [][4]float32) {
	scale := float64(in) / float64(out)
	if align {
		scale = float64(in-1) / float64(out-1)
	}
	const a = -0.75
	for d := range out {
		f := float32((float64(d)+0.5)*scale - 0.5)
		if align {
			f = float32(float64(d) * scale)
		}
		s := int(math.Floor(float64(f)))
		f -= float32(s)
		f0, f1, f2 := f+1, f, 1-f
		c0 := a*f0*f0*f0 - 5*a*f0*f0 + 8*a*f0 - 4*a
		c1 := (a+2)*f1*f1*f1 - (a+3)*f1*f1 + 1
		c2 := (a+2)*f2*f2*f2 - (a+3)*f2*f2 + 1
		ofs = append(ofs, s)
		alpha = append(alpha, [4]float32{c0, c1, c2, 1 - c0 - c1 - c2})
	}
	return ofs, alpha
}

func bicubic(x tensor, oh, ow int, align bool) tensor {
	yo, ya := cubicCoeffs(x.h, oh, align)
	xo, xa := cubicCoeffs(x.w, ow, align)
	clamp := func(i, n int) int { return min(max(i, 0), n-1) }
	out := newTensor(x.n, x.c, oh, ow)
	for n := range x.n {
		for c := range x.c {
			for y := range oh {
				for xx := range ow {
					var v float32
					for i := range 4 {
						var r float32
						for j := range 4 {
							r += x.at(n, c, clamp(yo[y]-1+i, x.h), clamp(xo[xx]-1+j, x.w)) * xa[xx][j]
						}
						v += r * ya[y][i]
					}
					out.set(n, c, y, xx, v)
				}
			}
		}
	}
	return out
}

// zip combines two tensors of the same shape, or b broadcast over a's
// channels when b has one.
func zip(a, b tensor, f func(x, y float32) float32) tensor {
	out := newTensor(a.n, a.c, a.h, a.w)
	for n := range a.n {
		for c := range a.c {
			bc := c
			if b.c == 1 {
				bc = 0
			}
			for y := range a.h {
				for x := range a.w {
					out.set(n, c, y, x, f(a.at(n, c, y, x), b.at(n, bc, y, x)))
				}
			}
		}
	}
	return out
}

func concat(axis int, ts ...tensor) tensor {
	o := ts[0]
	switch axis {
	case 1:
		for _, t := range ts[1:] {
			o.c += t.c
		}
	case 2:
		for _, t := range ts[1:] {
			o.h += t.h
		}
	case 3:
		for _, t := range ts[1:] {
			o.w += t.w
		}
	}
	out := newTensor(o.n, o.c, o.h, o.w)
	off := 0
	for _, t := range ts {
		for n := range t.n {
			for c := range t.c {
				for y := range t.h {
					for x := range t.w {
						switch axis {
						case 1:
							out.set(n, c+off, y, x, t.at(n, c, y, x))
						case 2:
							out.set(n, c, y+off, x, t.at(n, c, y, x))
						case 3:
							out.set(n, c, y, x+off, t.at(n, c, y, x))
						}
					}
				}
			}
		}
		off += []int{0, t.c, t.h, t.w}[axis]
	}
	return out
}
