package ingest

import "bytes"

// maxCutDepth bounds the nesting cutInlineData follows; deeper bodies take the full
// parse, which has its own bound.
const maxCutDepth = 64

// cutInlineData finds the base64 strings of image.data and style.data in a JSON job
// request without decoding anything else, and returns the body with each replaced by
// the stand-in (dataStandIn) together with the two strings (nil when absent, empty or
// not a string). The strings alias data.
//
// It only finds where tokens begin and end: the rest of the body is parsed and
// validated in full afterwards (decodeJobRequestDoc), and a string token replaced by
// another string token leaves a body exactly as valid as before. So ok is true only
// when the replacement cannot change what a JSON parser reads:
//   - the cut strings hold no escapes and no line breaks (a JSON string may not hold a
//     raw one, and base64 decoding would skip it: a body the full parse refuses could
//     otherwise be accepted); any other byte that is not base64 fails the decoding
//     later, and a refused request is decoded again by the full parse;
//   - "image", "style" and "data" appear once each where they are looked for, and no
//     key there holds an escape (a parser keeps the last of duplicate keys, and
//     "\u0069mage" is "image");
//   - the body is one object followed by nothing but white space.
func cutInlineData(data []byte) (rest, image, style []byte, ok bool) {
	c := cutter{b: data}
	c.space()
	if !c.consume('{') {
		return nil, nil, nil, false
	}
	var spans [2][2]int // image, style: the string token, quotes included
	seen := [2]bool{}
	c.space()
	if !c.consume('}') {
		for {
			c.space()
			key, esc, good := c.str()
			if !good || esc {
				return nil, nil, nil, false
			}
			c.space()
			if !c.consume(':') {
				return nil, nil, nil, false
			}
			c.space()
			field := -1
			switch string(key) {
			case "image":
				field = 0
			case "style":
				field = 1
			}
			switch {
			case field >= 0 && seen[field]:
				return nil, nil, nil, false
			case field >= 0 && c.peek() == '{':
				seen[field] = true
				span, good := c.dataOf()
				if !good {
					return nil, nil, nil, false
				}
				spans[field] = span
			default:
				if field >= 0 {
					seen[field] = true
				}
				if !c.skip(1) {
					return nil, nil, nil, false
				}
			}
			c.space()
			if c.consume(',') {
				continue
			}
			if c.consume('}') {
				break
			}
			return nil, nil, nil, false
		}
	}
	c.space()
	if c.i != len(data) || (spans[0] == [2]int{} && spans[1] == [2]int{}) {
		return nil, nil, nil, false
	}
	// Splice, in order of position, each found string for the stand-in.
	order := []int{0, 1}
	if spans[0] != [2]int{} && spans[1] != [2]int{} && spans[1][0] < spans[0][0] {
		order = []int{1, 0}
	}
	out := make([]byte, 0, 256)
	at := 0
	var found [2][]byte
	for _, f := range order {
		sp := spans[f]
		if sp == [2]int{} {
			continue
		}
		out = append(out, data[at:sp[0]]...)
		out = append(out, '"')
		out = append(out, dataStandIn...)
		out = append(out, '"')
		at = sp[1]
		found[f] = data[sp[0]+1 : sp[1]-1]
	}
	out = append(out, data[at:]...)
	return out, found[0], found[1], true
}

// cutter walks a JSON text by its token boundaries.
type cutter struct {
	b []byte
	i int
}

func (c *cutter) space() {
	for c.i < len(c.b) {
		switch c.b[c.i] {
		case ' ', '\t', '\n', '\r':
			c.i++
		default:
			return
		}
	}
}

func (c *cutter) peek() byte {
	if c.i < len(c.b) {
		return c.b[c.i]
	}
	return 0
}

func (c *cutter) consume(b byte) bool {
	if c.peek() == b {
		c.i++
		return true
	}
	return false
}

// str reads the string token at c.i and returns its contents; esc reports a
// backslash in it. A quote ends the string unless an odd number of backslashes
// precede it.
func (c *cutter) str() (s []byte, esc, ok bool) {
	if !c.consume('"') {
		return nil, false, false
	}
	start := c.i
	for from := start; ; {
		j := bytes.IndexByte(c.b[from:], '"')
		if j < 0 {
			return nil, false, false
		}
		q := from + j
		n := 0
		for q-1-n >= start && c.b[q-1-n] == '\\' {
			n++
		}
		if n%2 == 0 {
			s = c.b[start:q]
			c.i = q + 1
			return s, bytes.IndexByte(s, '\\') >= 0, true
		}
		from = q + 1
	}
}

// dataOf reads the object at c.i (an image or style input) and returns the span of
// its "data" string, quotes included; the zero span when it has none or it is empty.
// ok is false when the cut would be unsafe (see cutInlineData).
func (c *cutter) dataOf() (span [2]int, ok bool) {
	c.consume('{')
	c.space()
	if c.consume('}') {
		return span, true
	}
	seen := false
	for {
		c.space()
		key, esc, good := c.str()
		if !good || esc {
			return span, false
		}
		c.space()
		if !c.consume(':') {
			return span, false
		}
		c.space()
		if string(key) == "data" {
			if seen {
				return span, false
			}
			seen = true
			if c.peek() == '"' {
				start := c.i
				s, esc, good := c.str()
				if !good || esc || bytes.IndexByte(s, '\n') >= 0 || bytes.IndexByte(s, '\r') >= 0 {
					return span, false
				}
				if len(s) > 0 {
					span = [2]int{start, c.i}
				}
			} else if !c.skip(2) {
				return span, false
			}
		} else if !c.skip(2) {
			return span, false
		}
		c.space()
		if c.consume(',') {
			continue
		}
		if c.consume('}') {
			return span, true
		}
		return span, false
	}
}

// skip moves past the value at c.i, nested depth deep. It checks only what it needs
// to find where the value ends; the full parse judges the rest.
func (c *cutter) skip(depth int) bool {
	if depth > maxCutDepth {
		return false
	}
	switch c.peek() {
	case '"':
		_, _, ok := c.str()
		return ok
	case '{', '[':
		end := byte('}')
		if c.peek() == '[' {
			end = ']'
		}
		c.i++
		c.space()
		if c.consume(end) {
			return true
		}
		for {
			c.space()
			if end == '}' {
				if _, _, ok := c.str(); !ok {
					return false
				}
				c.space()
				if !c.consume(':') {
					return false
				}
				c.space()
			}
			if !c.skip(depth + 1) {
				return false
			}
			c.space()
			if c.consume(',') {
				continue
			}
			return c.consume(end)
		}
	case 0:
		return false
	}
	// A literal (number, true, false, null) runs to the next delimiter.
	start := c.i
	for c.i < len(c.b) {
		switch c.b[c.i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r', ':', '"', '{', '[':
			return c.i > start
		}
		c.i++
	}
	return c.i > start
}
