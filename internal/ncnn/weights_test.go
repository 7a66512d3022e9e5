package ncnn

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func TestHalfToFloatMatchesTheIEEEFormulaForEveryHalf(t *testing.T) {
	for h := range 1 << 16 {
		sign := 1.0
		if h&0x8000 != 0 {
			sign = -1
		}
		e, m := (h>>10)&0x1f, float64(h&0x3ff)
		var want float64
		switch e {
		case 0:
			want = sign * m * math.Exp2(-24)
		case 0x1f:
			want = math.Inf(int(sign))
			if m != 0 {
				want = math.NaN()
			}
		default:
			want = sign * (1 + m/1024) * math.Exp2(float64(e-15))
		}
		got := float64(halfToFloat(uint16(h)))
		if math.IsNaN(want) != math.IsNaN(got) || (!math.IsNaN(want) && (got != want || math.Signbit(got) != math.Signbit(want))) {
			t.Fatalf("halfToFloat(%#04x) = %v, want %v", h, got, want)
		}
	}
}

func le(v ...any) []byte {
	var b bytes.Buffer
	for _, x := range v {
		_ = binary.Write(&b, binary.LittleEndian, x)
	}
	return b.Bytes()
}

func TestBinReaderDecodesEveryNCNNStorage(t *testing.T) {
	table := make([]float32, 256)
	for i := range table {
		table[i] = float32(i) / 4
	}
	file := slices.Concat(
		le(uint32(tagFloat32), []float32{1.5, -2}),
		le(uint32(tagFloat16), []uint16{0x3c00, 0xc000, 0x3800}, uint16(0)), // 1, -2, 0.5 + padding
		le(uint32(tagScaled), []float32{3}),
		le(uint32(0x00000101), table, []uint8{4, 255, 0}, uint8(0)), // lookup table, indices padded to 4
		le([]float32{7, 8}), // untagged (bias)
	)
	b := newBinReader(bytes.NewReader(file))
	steps := []struct {
		flagged bool
		n       int
		want    []float32
	}{
		{true, 2, []float32{1.5, -2}},
		{true, 3, []float32{1, -2, 0.5}},
		{true, 1, []float32{3}},
		{true, 3, []float32{1, 63.75, 0}},
		{false, 2, []float32{7, 8}},
	}
	for i, s := range steps {
		var got []float32
		var err error
		if s.flagged {
			got, err = b.flagged(s.n, "w")
		} else {
			got, err = b.raw(s.n, "w")
		}
		if err != nil || !slices.Equal(got, s.want) {
			t.Fatalf("array %d = %v, %v; want %v", i, got, err, s.want)
		}
	}
	if err := b.end(); err != nil {
		t.Fatalf("end: %v", err)
	}
	if b.off != int64(len(file)) {
		t.Errorf("consumed %d of %d bytes", b.off, len(file))
	}
	want := map[WeightFormat]int{Float32: 2, Float16: 1, Quantized: 1}
	for k, v := range want {
		if b.formats[k] != v {
			t.Errorf("formats = %v, want %v", b.formats, want)
		}
	}
}

func TestBinReaderRejectsBadWeights(t *testing.T) {
	nan := math.Float32frombits(0x7fc00000)
	tests := []struct {
		name    string
		file    []byte
		flagged bool
		n       int
		kind    error
		want    string
	}{
		{"a file that ends inside the array", le(uint32(0), []float32{1}), true, 2, ErrMalformed, "4 bytes short"},
		{"a file that ends inside the tag", []byte{0, 0}, true, 1, ErrMalformed, "storage tag"},
		{"a file that ends inside fp16 padding", le(uint32(tagFloat16), uint16(0x3c00)), true, 1, ErrMalformed, "2 bytes short"},
		{"int8 weights", le(uint32(tagInt8), []int8{1, 2, 3, 4}), true, 4, ErrUnsupported, "int8"},
		{"a NaN weight", le(uint32(0), []float32{1, nan}), true, 2, ErrMalformed, "value 1 is NaN"},
		{"an infinite fp16 weight", le(uint32(tagFloat16), []uint16{0x7c00, 0}), true, 1, ErrMalformed, "+Inf"},
		{"a NaN bias", le([]float32{nan}), false, 1, ErrMalformed, "NaN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBinReader(bytes.NewReader(tt.file))
			var err error
			if tt.flagged {
				_, err = b.flagged(tt.n, "weights")
			} else {
				_, err = b.raw(tt.n, "bias")
			}
			if !errors.Is(err, tt.kind) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %v mentioning %q", err, tt.kind, tt.want)
			}
		})
	}
}

func TestBinReaderEndRejectsLeftoverBytes(t *testing.T) {
	b := newBinReader(bytes.NewReader(le([]float32{1, 2, 3})))
	if _, err := b.raw(2, "bias"); err != nil {
		t.Fatal(err)
	}
	err := b.end()
	if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "4 bytes left") {
		t.Fatalf("end = %v, want ErrMalformed about 4 leftover bytes", err)
	}
}

func TestBinReaderDoesNotAllocateWhatTheParamClaims(t *testing.T) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b := newBinReader(bytes.NewReader(le(uint32(0), []float32{1})))
	if _, err := b.flagged(1<<30, "weights"); !errors.Is(err, ErrMalformed) {
		t.Fatalf("err = %v, want ErrMalformed", err)
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
		t.Errorf("a 4 GiB claim against an 8-byte file allocated %d MiB", grew>>20)
	}
}
