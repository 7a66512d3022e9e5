package diffusion

import "math"

// Noise draws standard normal numbers exactly as numpy's legacy
// numpy.random.RandomState(seed).randn does: the MT19937 Mersenne Twister (init_genrand
// seeding), 53-bit doubles from two 32-bit draws, and the Marsaglia polar method that
// keeps its second value for the next call. The algorithm is fixed and pure Go
// arithmetic, so a seed gives the same latents on every machine, and the same initial
// latents as diffusers' OnnxStableDiffusionPipeline given np.random.RandomState(seed).
// Not safe for concurrent use.
type Noise struct {
	mt      [624]uint32
	i       int
	hasNext bool
	next    float64
}

// NewNoise seeds a generator.
func NewNoise(seed uint32) *Noise {
	n := &Noise{}
	n.mt[0] = seed
	for i := 1; i < 624; i++ {
		n.mt[i] = 1812433253*(n.mt[i-1]^(n.mt[i-1]>>30)) + uint32(i)
	}
	n.i = 624
	return n
}

// Uint32 returns the next 32 random bits.
func (n *Noise) Uint32() uint32 {
	if n.i >= 624 {
		for k := range 624 {
			y := n.mt[k]&0x80000000 | n.mt[(k+1)%624]&0x7fffffff
			v := n.mt[(k+397)%624] ^ y>>1
			if y&1 != 0 {
				v ^= 0x9908b0df
			}
			n.mt[k] = v
		}
		n.i = 0
	}
	y := n.mt[n.i]
	n.i++
	y ^= y >> 11
	y ^= y << 7 & 0x9d2c5680
	y ^= y << 15 & 0xefc60000
	y ^= y >> 18
	return y
}

// Float64 returns a uniform number in [0, 1) with 53 random bits.
func (n *Noise) Float64() float64 {
	a, b := n.Uint32()>>5, n.Uint32()>>6
	return (float64(a)*67108864 + float64(b)) / 9007199254740992
}

// Norm returns a standard normal number.
func (n *Noise) Norm() float64 {
	if n.hasNext {
		n.hasNext = false
		return n.next
	}
	for {
		x1 := 2*n.Float64() - 1
		x2 := 2*n.Float64() - 1
		r2 := x1*x1 + x2*x2
		if r2 >= 1 || r2 == 0 {
			continue
		}
		f := math.Sqrt(-2 * math.Log(r2) / r2)
		n.next, n.hasNext = f*x1, true
		return f * x2
	}
}

// Fill sets every element of x to a standard normal number times scale, in order.
func (n *Noise) Fill(x []float32, scale float64) {
	for i := range x {
		x[i] = float32(n.Norm() * scale)
	}
}
