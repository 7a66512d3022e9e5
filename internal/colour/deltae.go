package colour

import "math"

// DeltaE2000 returns the CIEDE2000 colour difference between two Lab colours
// (kL = kC = kH = 1). About 1 is the smallest difference a trained eye sees
// side by side; photo workflows treat a mean under 1 as a match.
func DeltaE2000(x, y Lab) float64 {
	const deg = math.Pi / 180
	c1 := math.Hypot(x.A, x.B)
	c2 := math.Hypot(y.A, y.B)
	cm := (c1 + c2) / 2
	cm7 := math.Pow(cm, 7)
	g := 0.5 * (1 - math.Sqrt(cm7/(cm7+6103515625))) // 25^7
	a1, a2 := (1+g)*x.A, (1+g)*y.A
	cp1, cp2 := math.Hypot(a1, x.B), math.Hypot(a2, y.B)
	hue := func(b, a float64) float64 {
		if a == 0 && b == 0 {
			return 0
		}
		h := math.Atan2(b, a) / deg
		if h < 0 {
			h += 360
		}
		return h
	}
	h1, h2 := hue(x.B, a1), hue(y.B, a2)

	dL := y.L - x.L
	dC := cp2 - cp1
	var dh float64
	if cp1*cp2 != 0 {
		dh = h2 - h1
		switch {
		case dh > 180:
			dh -= 360
		case dh < -180:
			dh += 360
		}
	}
	dH := 2 * math.Sqrt(cp1*cp2) * math.Sin(dh/2*deg)

	lm := (x.L + y.L) / 2
	cpm := (cp1 + cp2) / 2
	hm := h1 + h2
	if cp1*cp2 != 0 {
		switch {
		case math.Abs(h1-h2) <= 180:
			hm /= 2
		case h1+h2 < 360:
			hm = (hm + 360) / 2
		default:
			hm = (hm - 360) / 2
		}
	}
	t := 1 - 0.17*math.Cos((hm-30)*deg) + 0.24*math.Cos(2*hm*deg) +
		0.32*math.Cos((3*hm+6)*deg) - 0.20*math.Cos((4*hm-63)*deg)
	l50 := (lm - 50) * (lm - 50)
	sl := 1 + 0.015*l50/math.Sqrt(20+l50)
	sc := 1 + 0.045*cpm
	sh := 1 + 0.015*cpm*t
	cpm7 := math.Pow(cpm, 7)
	rt := -2 * math.Sqrt(cpm7/(cpm7+6103515625)) * math.Sin(60*math.Exp(-((hm-275)/25)*((hm-275)/25))*deg)
	return math.Sqrt((dL/sl)*(dL/sl) + (dC/sc)*(dC/sc) + (dH/sh)*(dH/sh) + rt*(dC/sc)*(dH/sh))
}

// DeltaEStats summarises the colour error of a conversion.
type DeltaEStats struct {
	Mean, P99, Max float64
}

// CompareLab returns the CIEDE2000 statistics between two equally long Lab
// slices, pixel by pixel.
func CompareLab(got, want []Lab) DeltaEStats {
	if len(got) != len(want) || len(got) == 0 {
		return DeltaEStats{Mean: math.NaN(), P99: math.NaN(), Max: math.NaN()}
	}
	d := make([]float64, len(got))
	var sum, mx float64
	for i := range got {
		d[i] = DeltaE2000(got[i], want[i])
		sum += d[i]
		mx = max(mx, d[i])
	}
	// p99 by counting in 0.01 steps (capped at 50, far past any match).
	var hist [5001]int
	for _, v := range d {
		hist[min(5000, int(v*100))]++
	}
	var p99 float64
	need, seen := int(math.Ceil(0.99*float64(len(d)))), 0
	for i, n := range hist {
		seen += n
		if seen >= need {
			p99 = float64(i) / 100
			break
		}
	}
	return DeltaEStats{Mean: sum / float64(len(d)), P99: p99, Max: mx}
}
