package colour

import (
	"encoding/binary"
	"math"
)

// looksSRGB reports whether icc is an RGB matrix/TRC profile whose colorants
// and tone curves are sRGB's, read in pure Go. Builds without cgo use it to
// accept the sRGB profiles most cameras, phones and editors embed (the
// 3144-byte HP/Microsoft "sRGB IEC61966-2.1" among them) without Little CMS:
// their pixels need no conversion. Anything else is left to Little CMS.
func looksSRGB(icc []byte) bool {
	if len(icc) < 132 || string(icc[16:20]) != "RGB " || string(icc[36:40]) != "acsp" {
		return false
	}
	tags := map[string][]byte{}
	n := int(binary.BigEndian.Uint32(icc[128:]))
	for i := 0; i < n && 132+12*i+12 <= len(icc); i++ {
		e := icc[132+12*i:]
		off, size := uint64(binary.BigEndian.Uint32(e[4:])), uint64(binary.BigEndian.Uint32(e[8:]))
		if off+size > uint64(len(icc)) {
			return false
		}
		tags[string(e[:4])] = icc[off : off+size]
	}
	// sRGB's colorants adapted to D50 (Bradford), as every ICC sRGB profile stores them.
	want := map[string][3]float64{
		"rXYZ": {0.4361, 0.2225, 0.0139},
		"gXYZ": {0.3851, 0.7169, 0.0971},
		"bXYZ": {0.1431, 0.0606, 0.7141},
	}
	for sig, w := range want {
		t := tags[sig]
		if len(t) < 20 || string(t[:4]) != "XYZ " {
			return false
		}
		for c := range 3 {
			v := float64(int32(binary.BigEndian.Uint32(t[8+4*c:]))) / 65536
			if math.Abs(v-w[c]) > 0.003 {
				return false
			}
		}
	}
	for _, sig := range []string{"rTRC", "gTRC", "bTRC"} {
		if !srgbCurve(tags[sig]) {
			return false
		}
	}
	return true
}

// srgbCurve reports whether an ICC curve tag follows the sRGB transfer
// function within half an 8-bit level at 33 points.
func srgbCurve(t []byte) bool {
	eval, ok := curveFunc(t)
	if !ok {
		return false
	}
	for i := 0; i <= 32; i++ {
		x := float64(i) / 32
		ref := x / 12.92
		if x > 0.04045 {
			ref = math.Pow((x+0.055)/1.055, 2.4)
		}
		if math.Abs(eval(x)-ref) > 0.5/255 {
			return false
		}
	}
	return true
}

// curveFunc returns the function of a 'curv' table (two entries or more) or a
// 'para' curve of type 3 or 4; pure gamma curves are never sRGB.
func curveFunc(t []byte) (func(float64) float64, bool) {
	if len(t) < 12 {
		return nil, false
	}
	switch string(t[:4]) {
	case "curv":
		n := int(binary.BigEndian.Uint32(t[8:]))
		if n < 2 || len(t) < 12+2*n {
			return nil, false
		}
		return func(x float64) float64 {
			p := x * float64(n-1)
			i := min(int(p), n-2)
			a := float64(binary.BigEndian.Uint16(t[12+2*i:])) / 65535
			b := float64(binary.BigEndian.Uint16(t[14+2*i:])) / 65535
			return a + (b-a)*(p-float64(i))
		}, true
	case "para":
		fn := binary.BigEndian.Uint16(t[8:])
		if (fn != 3 && fn != 4) || len(t) < 12+4*5 {
			return nil, false
		}
		var g [5]float64
		for i := range g {
			g[i] = float64(int32(binary.BigEndian.Uint32(t[12+4*i:]))) / 65536
		}
		return func(x float64) float64 { // type 4's E and F offsets are 0 in sRGB
			if x >= g[4] {
				return math.Pow(g[1]*x+g[2], g[0])
			}
			return g[3] * x
		}, true
	}
	return nil, false
}

// descriptionOf reads an ICC v2 'desc' or v4 'mluc' description, ASCII
// only; "" when there is none.
func descriptionOf(icc []byte) string {
	if len(icc) < 132 {
		return ""
	}
	n := int(binary.BigEndian.Uint32(icc[128:]))
	for i := 0; i < n && 132+12*i+12 <= len(icc); i++ {
		e := icc[132+12*i:]
		if string(e[:4]) != "desc" {
			continue
		}
		off, size := uint64(binary.BigEndian.Uint32(e[4:])), uint64(binary.BigEndian.Uint32(e[8:]))
		if off+size > uint64(len(icc)) || size < 12 {
			return ""
		}
		t := icc[off : off+size]
		var raw []byte
		switch string(t[:4]) {
		case "desc":
			l := uint64(binary.BigEndian.Uint32(t[8:]))
			if 12+l <= uint64(len(t)) {
				raw = t[12 : 12+l]
			}
		case "mluc":
			if len(t) >= 28 {
				l, o := uint64(binary.BigEndian.Uint32(t[20:])), uint64(binary.BigEndian.Uint32(t[24:]))
				if o+l <= uint64(len(t)) {
					for j := o + 1; j < o+l; j += 2 { // UTF-16BE, ASCII subset
						raw = append(raw, t[j])
					}
				}
			}
		}
		out := make([]byte, 0, len(raw))
		for _, c := range raw {
			if c >= 0x20 && c < 0x7f {
				out = append(out, c)
			}
		}
		return string(out)
	}
	return ""
}
