package ocr

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Dictionary maps the recogniser's classes to characters, as PaddleOCR's
// CTCLabelDecode builds them: class 0 is the CTC blank, then one class per line of the
// dictionary file, then a space (use_space_char). Safe for concurrent use (read-only).
type Dictionary struct {
	chars []string
}

// ReadDictionary reads a PaddleOCR dictionary: one character per line, UTF-8.
func ReadDictionary(r io.Reader) (*Dictionary, error) {
	d := &Dictionary{chars: []string{""}}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		d.chars = append(d.chars, strings.TrimRight(sc.Text(), "\r\n"))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("ocr: read dictionary: %w", err)
	}
	if len(d.chars) == 1 {
		return nil, errors.New("ocr: the dictionary is empty")
	}
	d.chars = append(d.chars, " ")
	return d, nil
}

// Classes is how many classes the recogniser must output: blank, the dictionary, space.
func (d *Dictionary) Classes() int { return len(d.chars) }

// Decode reads one recogniser output of t time steps by c classes (softmax
// probabilities, row-major) with CTC greedy decoding: the most likely class of each
// step, repeats collapsed, blanks dropped. The confidence is the mean probability of
// the kept steps (0 when none is kept), as PaddleOCR reports it.
func (d *Dictionary) Decode(probs []float32, t, c int) (string, float64, error) {
	if c != len(d.chars) {
		return "", 0, fmt.Errorf("ocr: the recogniser has %d classes but the dictionary gives %d (blank + %d characters + space): the model and dictionary do not belong together", c, len(d.chars), len(d.chars)-2)
	}
	if len(probs) != t*c {
		return "", 0, fmt.Errorf("ocr: recogniser output has %d values, want %d x %d", len(probs), t, c)
	}
	var sb strings.Builder
	var sum float64
	kept := 0
	prev := -1
	for s := range t {
		row := probs[s*c : (s+1)*c]
		best, p := 0, row[0]
		for k, v := range row {
			if v > p {
				best, p = k, v
			}
		}
		if best != 0 && best != prev {
			sb.WriteString(d.chars[best])
			sum += float64(p)
			kept++
		}
		prev = best
	}
	if kept == 0 {
		return "", 0, nil
	}
	return sb.String(), sum / float64(kept), nil
}
