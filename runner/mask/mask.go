// Package mask replaces a job's secret values by *** in the text the agent
// journals and delivers about the job: whole texts (a completion's output,
// a message) and streams of output entries, where a secret may be split
// across two consecutive fragments of a line.
//
// One rule makes both agree: every byte that an occurrence of a secret
// covers is masked (overlapping secrets, or one inside another, are masked
// whole), and each run of masked bytes becomes one ***. A stream holds back
// the tail of a fragment that could still become a secret with the next
// entry, so that masking a stream piece by piece gives what masking it
// whole gives.
package mask

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Replacement is what a secret is replaced by.
const Replacement = "***"

// MinLen is the shortest value masked: shorter ones ("1", "yes", "dev")
// would mask ordinary words all over the output and protect nothing.
const MinLen = 4

// DefaultNames are the patterns of environment variable names whose values
// are secrets: case-insensitive substrings of the name.
var DefaultNames = []string{"TOKEN", "SECRET", "PASSWORD", "KEY", "CREDENTIAL"}

// SecretName tells whether an environment variable named name holds a
// secret under patterns (case-insensitive substrings; nil: DefaultNames).
func SecretName(name string, patterns []string) bool {
	if patterns == nil {
		patterns = DefaultNames
	}
	up := strings.ToUpper(name)
	for _, p := range patterns {
		if p != "" && strings.Contains(up, strings.ToUpper(p)) {
			return true
		}
	}
	return false
}

// Masker masks a fixed, growing set of secrets. A nil Masker masks nothing.
// Its methods are safe for concurrent use; a Stream is not.
type Masker struct {
	mu  sync.Mutex // serializes Add
	set atomic.Pointer[set]
}

// set is an immutable set of secrets, longest first (at one position the
// longest wins).
type set struct {
	secrets []string
	// lines are the secrets without a newline, longest first, and lineMax
	// the longest: only they can continue in a stream's next entry (an
	// entry is at most a line).
	lines   []string
	lineMax int
}

// New returns a masker of secrets; values shorter than MinLen are ignored.
func New(secrets ...string) *Masker {
	m := &Masker{}
	m.set.Store(&set{})
	m.Add(secrets...)
	return m
}

// Add adds secrets (values learned during the run: credentials a tool
// action or a server fetches). A multi-line value is masked whole and line
// by line, since live lines never hold a newline; a value JSON would
// escape is masked in its escaped form too (a script printing JSON).
func (m *Masker) Add(secrets ...string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	old := m.set.Load()
	all := slices.Clone(old.secrets)
	add := func(s string) {
		if len(s) >= MinLen && !slices.Contains(all, s) {
			all = append(all, s)
		}
	}
	for _, s := range secrets {
		add(s)
		if strings.Contains(s, "\n") {
			for _, l := range strings.Split(s, "\n") {
				add(strings.TrimSuffix(l, "\r"))
			}
		}
		for _, e := range jsonForms(s) {
			add(e)
		}
	}
	if len(all) == len(old.secrets) {
		return
	}
	// Longest first; ties in a fixed order.
	slices.SortFunc(all, func(a, b string) int {
		if len(a) != len(b) {
			return len(b) - len(a)
		}
		return strings.Compare(a, b)
	})
	st := &set{secrets: all}
	for _, s := range all {
		if !strings.Contains(s, "\n") {
			st.lines = append(st.lines, s)
			st.lineMax = max(st.lineMax, len(s))
		}
	}
	m.set.Store(st)
}

// jsonForms are s as the inside of a JSON string, when that differs from
// s: with and without the HTML escapes of encoding/json.
func jsonForms(s string) []string {
	var out []string
	for _, html := range []bool{false, true} {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(html)
		if enc.Encode(s) != nil {
			continue
		}
		e := strings.TrimSuffix(b.String(), "\n")
		if e = e[1 : len(e)-1]; e != s {
			out = append(out, e)
		}
	}
	return out
}

// Empty tells whether there is nothing to mask.
func (m *Masker) Empty() bool { return m == nil || len(m.set.Load().secrets) == 0 }

// Mask returns s with every secret replaced.
func (m *Masker) Mask(s string) string {
	if m == nil {
		return s
	}
	out, _, _, _ := m.set.Load().mask(s, false, 0, false)
	return out
}

// Stream returns a masker of one stream of entries (a run's stdout, its
// stderr). A nil Masker's stream, and a nil Stream, pass everything
// through.
func (m *Masker) Stream() *Stream { return &Stream{m: m} }

// Stream masks the entries of one stream in order. A fragment (an entry
// not followed by a newline) may end with the beginning of a secret whose
// rest comes in the next entry: that tail is held back and given out with
// the next entry, or by Flush at the end.
type Stream struct {
	m    *Masker
	held string
	// carry is how many bytes at the start of held a secret that began
	// before it covers; cont says the text given out ended in a mask that
	// a mask at the start of held continues (one *** for both).
	carry int
	cont  bool
}

// Next masks the stream's next entry, data followed by a newline unless
// fragment, and returns the text that stands for it: what earlier
// fragments held back first. It may be empty when a fragment is held back
// whole.
func (s *Stream) Next(data []byte, fragment bool) string {
	if s == nil || s.m == nil {
		return string(data)
	}
	st := s.m.set.Load()
	text := s.held + string(data)
	if len(st.secrets) == 0 {
		s.held, s.carry, s.cont = "", 0, false
		return text
	}
	var out string
	out, s.held, s.carry, s.cont = st.mask(text, fragment, s.carry, s.cont)
	if !fragment {
		// A newline follows: no secret of a line goes on past it.
		s.carry, s.cont = 0, false
	}
	return out
}

// Held tells whether text is held back, which Flush gives out.
func (s *Stream) Held() bool { return s != nil && s.held != "" }

// Flush returns what is held back, masked (the stream ended in a fragment:
// a last line without a newline), and forgets it.
func (s *Stream) Flush() string {
	if s == nil {
		return ""
	}
	h, carry, cont := s.held, s.carry, s.cont
	s.held, s.carry, s.cont = "", 0, false
	if h == "" || s.m == nil {
		return h
	}
	out, _, _, _ := s.m.set.Load().mask(h, false, carry, cont)
	return out
}

// mask masks text: every byte that an occurrence of a secret covers
// (occurrences may overlap: both are masked whole), each run of covered
// bytes replaced by one Replacement. carry bytes at its start are covered
// already, and with cont a run there continues the caller's last one
// (nothing is written for it).
//
// With hold, it stops at the first place from which the rest of text is a
// proper prefix of a secret (the next entry could complete it) and returns
// that rest as held, with its own carry and cont.
func (st *set) mask(text string, hold bool, carry int, cont bool) (out, held string, heldCarry int, heldCont bool) {
	if len(st.secrets) == 0 {
		return text, "", 0, false
	}
	c := len(text)
	if hold {
		if c = st.holdPoint(text); c == 0 {
			return "", text, carry, cont
		}
	}
	var buf [8][2]int
	runs := st.cover(text, carry, buf[:0])
	if len(runs) == 0 {
		return text[:c], text[c:], 0, false
	}
	var b strings.Builder
	b.Grow(c)
	pos := 0
	for _, r := range runs {
		if r[0] >= c {
			break
		}
		b.WriteString(text[pos:r[0]])
		if r[0] > 0 || !cont {
			b.WriteString(Replacement)
		}
		pos = min(r[1], c)
		if r[1] >= c {
			heldCarry, heldCont = r[1]-c, true
		}
	}
	b.WriteString(text[pos:c])
	return b.String(), text[c:], heldCarry, heldCont
}

// cover appends to dst the runs of text that secrets cover, [start, end)
// in order, overlapping and touching ones merged; [0, carry) is covered.
func (st *set) cover(text string, carry int, dst [][2]int) [][2]int {
	if carry > 0 {
		dst = append(dst, [2]int{0, carry})
	}
	for _, sec := range st.secrets {
		for from := 0; ; {
			i := strings.Index(text[from:], sec)
			if i < 0 {
				break
			}
			dst = append(dst, [2]int{from + i, from + i + len(sec)})
			from += i + 1
		}
	}
	if len(dst) < 2 {
		return dst
	}
	slices.SortFunc(dst, func(a, b [2]int) int { return a[0] - b[0] })
	merged := dst[:1]
	for _, r := range dst[1:] {
		last := &merged[len(merged)-1]
		if r[0] <= last[1] {
			last[1] = max(last[1], r[1])
			continue
		}
		merged = append(merged, r)
	}
	return merged
}

// holdPoint is the first place q from which text[q:] is a proper prefix
// of a one-line secret, or len(text).
func (st *set) holdPoint(text string) int {
	for q := max(0, len(text)-st.lineMax+1); q < len(text); q++ {
		rest := text[q:]
		for _, sec := range st.lines {
			if len(sec) <= len(rest) {
				break // longest first: the rest are no longer
			}
			if sec[0] == rest[0] && strings.HasPrefix(sec, rest) {
				return q
			}
		}
	}
	return len(text)
}
