package diffusion

import (
	"bufio"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"regexp"
	"strings"
	"sync"
	"unicode/utf8"
)

// ContextLength is CLIP's text context: every prompt becomes exactly this many token
// ids (bos, at most 75 tokens, eos, padding).
const ContextLength = 77

// The special tokens of CLIP's vocabulary.
const (
	StartOfText = "<|startoftext|>"
	EndOfText   = "<|endoftext|>"
)

// clipPattern is the pre-tokenizer of transformers' CLIPTokenizer (tokenization_clip.py),
// applied case-insensitively to the lower-cased, whitespace-cleaned prompt: the special
// tokens, English contractions, runs of letters, single digits, and runs of anything
// else that is neither space, letter nor digit.
var clipPattern = regexp.MustCompile(`(?i)<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+`)

var spaces = regexp.MustCompile(`\s+`)

// Tokenizer is CLIP's byte-level BPE tokenizer, read from an export's vocab.json and
// merges.txt. Safe for concurrent use.
type Tokenizer struct {
	vocab   map[string]int32
	ranks   map[[2]string]int
	bos     int32
	eos     int32
	pad     int32
	byteEnc [256]string

	mu    sync.Mutex
	cache map[string][]string
}

// NewTokenizer reads a vocab.json (token -> id) and a merges.txt (a "#version" line,
// then one "left right" merge per line, highest priority first). pad names the padding
// token: "<|endoftext|>" for SD 1.x, "!" for SD 2.x and SD-Turbo; "" means
// "<|endoftext|>".
func NewTokenizer(vocab, merges io.Reader, pad string) (*Tokenizer, error) {
	t := &Tokenizer{vocab: map[string]int32{}, ranks: map[[2]string]int{}, cache: map[string][]string{}}
	if err := json.NewDecoder(vocab).Decode(&t.vocab); err != nil {
		return nil, fmt.Errorf("diffusion: vocab.json: %w", err)
	}
	sc := bufio.NewScanner(merges)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 0; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), "\r")
		if n == 0 && strings.HasPrefix(line, "#version") || line == "" {
			continue
		}
		l, r, ok := strings.Cut(line, " ")
		if !ok {
			return nil, fmt.Errorf("diffusion: merges.txt line %d: %q is not two symbols", n+1, line)
		}
		if _, dup := t.ranks[[2]string{l, r}]; !dup {
			t.ranks[[2]string{l, r}] = len(t.ranks)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("diffusion: merges.txt: %w", err)
	}
	if pad == "" {
		pad = EndOfText
	}
	for _, s := range []struct {
		tok string
		id  *int32
	}{{StartOfText, &t.bos}, {EndOfText, &t.eos}, {pad, &t.pad}} {
		id, ok := t.vocab[s.tok]
		if !ok {
			return nil, fmt.Errorf("diffusion: vocab.json has no %q token: is this a CLIP tokenizer?", s.tok)
		}
		*s.id = id
	}
	t.byteEnc = bytesToUnicode()
	return t, nil
}

// bytesToUnicode is GPT-2's reversible byte -> printable rune table that CLIP uses:
// printable Latin-1 bytes map to themselves, the others to U+0100 onwards.
func bytesToUnicode() [256]string {
	var out [256]string
	n := 0
	for b := range 256 {
		if b >= '!' && b <= '~' || b >= 0xA1 && b <= 0xAC || b >= 0xAE && b <= 0xFF {
			out[b] = string(rune(b))
			continue
		}
		out[b] = string(rune(256 + n))
		n++
	}
	return out
}

// Normalize is CLIPTokenizer's text cleaning without ftfy: HTML entities unescaped
// (twice, as the reference does), whitespace runs collapsed to one space, trimmed,
// lower-cased.
func Normalize(text string) string {
	text = html.UnescapeString(html.UnescapeString(text))
	text = strings.TrimSpace(spaces.ReplaceAllString(text, " "))
	return strings.ToLower(text)
}

// PreTokenize splits a normalised prompt into the words BPE runs on.
func PreTokenize(text string) []string { return clipPattern.FindAllString(text, -1) }

// Tokens returns the BPE tokens of text (no bos/eos), as strings of the vocabulary.
func (t *Tokenizer) Tokens(text string) []string {
	var out []string
	for _, word := range PreTokenize(Normalize(text)) {
		if word == StartOfText || word == EndOfText {
			out = append(out, word)
			continue
		}
		var b strings.Builder
		for i := 0; i < len(word); i++ {
			b.WriteString(t.byteEnc[word[i]])
		}
		out = append(out, t.bpe(b.String())...)
	}
	return out
}

// Encode returns the ContextLength ids of a prompt: bos, the tokens (truncated to
// ContextLength-2), eos, then the padding id. Unknown tokens cannot occur with a
// complete CLIP vocabulary (every byte has an id); with an incomplete one they are
// dropped.
func (t *Tokenizer) Encode(text string) []int32 {
	ids := make([]int32, 0, ContextLength)
	ids = append(ids, t.bos)
	for _, tok := range t.Tokens(text) {
		if len(ids) == ContextLength-1 {
			break
		}
		if id, ok := t.vocab[tok]; ok {
			ids = append(ids, id)
		}
	}
	ids = append(ids, t.eos)
	for len(ids) < ContextLength {
		ids = append(ids, t.pad)
	}
	return ids
}

// bpe merges the symbols of one word (already byte-encoded) by merge rank; the last
// symbol carries the end-of-word marker "</w>".
func (t *Tokenizer) bpe(word string) []string {
	t.mu.Lock()
	if c, ok := t.cache[word]; ok {
		t.mu.Unlock()
		return c
	}
	t.mu.Unlock()
	var syms []string
	for i, r := range word {
		s := string(r)
		if i+utf8.RuneLen(r) == len(word) {
			s += "</w>"
		}
		syms = append(syms, s)
	}
	for len(syms) > 1 {
		best, at := -1, -1
		for i := 0; i+1 < len(syms); i++ {
			if r, ok := t.ranks[[2]string{syms[i], syms[i+1]}]; ok && (best < 0 || r < best) {
				best, at = r, i
			}
		}
		if at < 0 {
			break
		}
		// Merge every occurrence of the best pair, left to right, as the reference does.
		pair := [2]string{syms[at], syms[at+1]}
		merged := make([]string, 0, len(syms))
		for i := 0; i < len(syms); i++ {
			if i+1 < len(syms) && syms[i] == pair[0] && syms[i+1] == pair[1] {
				merged = append(merged, pair[0]+pair[1])
				i++
				continue
			}
			merged = append(merged, syms[i])
		}
		syms = merged
	}
	t.mu.Lock()
	if len(t.cache) < 1<<16 {
		t.cache[word] = syms
	}
	t.mu.Unlock()
	return syms
}
