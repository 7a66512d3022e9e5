package ncnn

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// Tags that open a flagged weight array (ncnn ModelBin::load type 0).
const (
	tagFloat32 = 0x00000000
	tagFloat16 = 0x01306B47
	tagInt8    = 0x000D4B38
	tagScaled  = 0x0002C056 // raw float32 with scales stored elsewhere
)

// WeightFormat says how a flagged weight array was stored.
type WeightFormat string

// Weight encodings of a .bin file.
const (
	Float32   WeightFormat = "float32"
	Float16   WeightFormat = "float16"
	Quantized WeightFormat = "quantized" // 256-entry lookup table + uint8 indices
)

// binReader reads a .bin file the way ncnn's ModelBinFromDataReader does:
// arrays in layer order, with no index or padding between layers.
type binReader struct {
	r   *bufio.Reader
	off int64
	// formats counts flagged arrays by encoding.
	formats map[WeightFormat]int
}

func newBinReader(r io.Reader) *binReader {
	return &binReader{r: bufio.NewReaderSize(r, 1<<16), formats: map[WeightFormat]int{}}
}

// readN reads exactly n bytes. The buffer grows only as bytes arrive, so
// a corrupt count in the .param cannot make it allocate gigabytes up front.
func (b *binReader) readN(n int64, what string) ([]byte, error) {
	var buf bytes.Buffer
	got, err := io.CopyN(&buf, b.r, n)
	b.off += got
	if errors.Is(err, io.EOF) || (err == nil && got < n) {
		return nil, fmt.Errorf("%s: .bin ends at byte %d, %d bytes short (is it the .bin of this .param?): %w", what, b.off, n-got, ErrMalformed)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: reading .bin at byte %d: %w", what, b.off, err)
	}
	return buf.Bytes(), nil
}

// raw reads n float32 values stored without a tag (ncnn load type 1: biases,
// PReLU slopes).
func (b *binReader) raw(n int, what string) ([]float32, error) {
	start := b.off
	p, err := b.readN(int64(n)*4, what)
	if err != nil {
		return nil, err
	}
	return finite(decodeFloat32(p), what, start)
}

// flagged reads n values preceded by the 4-byte storage tag (ncnn load type
// 0: convolution weights).
func (b *binReader) flagged(n int, what string) ([]float32, error) {
	start := b.off
	t, err := b.readN(4, what+" storage tag")
	if err != nil {
		return nil, err
	}
	tag := binary.LittleEndian.Uint32(t)
	var out []float32
	switch {
	case tag == tagFloat32 || tag == tagScaled:
		p, err := b.readN(int64(n)*4, what)
		if err != nil {
			return nil, err
		}
		out = decodeFloat32(p)
		b.formats[Float32]++
	case tag == tagFloat16:
		p, err := b.readN(align4(int64(n)*2), what)
		if err != nil {
			return nil, err
		}
		out = make([]float32, n)
		for i := range out {
			out[i] = halfToFloat(binary.LittleEndian.Uint16(p[2*i:]))
		}
		b.formats[Float16]++
	case tag == tagInt8:
		return nil, fmt.Errorf("%s: int8-quantised weights at byte %d need the int8 scales ncnn keeps elsewhere; convert the float model instead: %w", what, start, ErrUnsupported)
	default:
		// ncnn reads every other non-zero tag as a 256-entry float table
		// followed by one uint8 index per weight.
		table, err := b.readN(256*4, what+" quantisation table")
		if err != nil {
			return nil, err
		}
		values := decodeFloat32(table)
		idx, err := b.readN(align4(int64(n)), what+" quantisation indices")
		if err != nil {
			return nil, err
		}
		out = make([]float32, n)
		for i := range out {
			out[i] = values[idx[i]]
		}
		b.formats[Quantized]++
	}
	return finite(out, what, start)
}

// end reports bytes left after the last layer: a .bin that is longer than
// the .param says belongs to another model.
func (b *binReader) end() error {
	n, err := io.Copy(io.Discard, b.r)
	if err != nil {
		return fmt.Errorf("ncnn: reading .bin at byte %d: %w", b.off, err)
	}
	if n > 0 {
		return fmt.Errorf("ncnn: .bin has %d bytes left after the last layer's weights (byte %d): it does not belong to this .param: %w", n, b.off, ErrMalformed)
	}
	return nil
}

// finite rejects NaN and Inf: in a real model they mean the bytes were read
// at the wrong offset or the file is damaged.
func finite(v []float32, what string, off int64) ([]float32, error) {
	for i, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return nil, fmt.Errorf("%s (from byte %d): value %d is %v: %w", what, off, i, x, ErrMalformed)
		}
	}
	return v, nil
}

func align4(n int64) int64 { return (n + 3) &^ 3 }

func decodeFloat32(p []byte) []float32 {
	out := make([]float32, len(p)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(p[4*i:]))
	}
	return out
}

// halfToFloat widens an IEEE 754 binary16 value exactly.
func halfToFloat(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch exp {
	case 0: // zero or subnormal: mant * 2^-24
		f := float32(mant) / (1 << 24)
		return math.Float32frombits(math.Float32bits(f) | sign)
	case 0x1f: // Inf or NaN
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	default:
		return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
	}
}
