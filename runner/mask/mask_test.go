package mask

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// reference masks text the slow, obvious way: mark every byte some
// occurrence of a secret covers, then write each run of marked bytes as
// one Replacement.
func reference(text string, secrets []string) string {
	covered := make([]bool, len(text))
	for _, s := range secrets {
		if len(s) < MinLen {
			continue
		}
		for i := 0; i+len(s) <= len(text); i++ {
			if text[i:i+len(s)] == s {
				for j := i; j < i+len(s); j++ {
					covered[j] = true
				}
			}
		}
	}
	var b strings.Builder
	for i := 0; i < len(text); i++ {
		switch {
		case !covered[i]:
			b.WriteByte(text[i])
		case i == 0 || !covered[i-1]:
			b.WriteString(Replacement)
		}
	}
	return b.String()
}

func TestMask(t *testing.T) {
	for _, tc := range []struct {
		name    string
		secrets []string
		in      string
		want    string
	}{
		{"none", nil, "hello", "hello"},
		{"no match", []string{"s3cr3t"}, "hello world", "hello world"},
		{"whole", []string{"s3cr3t"}, "s3cr3t", "***"},
		{"inside", []string{"s3cr3t"}, "token=s3cr3t; ok", "token=***; ok"},
		{"twice", []string{"s3cr3t"}, "s3cr3t and s3cr3t", "*** and ***"},
		{"adjacent occurrences are one run", []string{"s3cr3t"}, "s3cr3ts3cr3t", "***"},
		{"short values are ignored", []string{"abc", "", "x"}, "abc x abc", "abc x abc"},
		{"four characters count", []string{"abcd"}, "abcd", "***"},
		{"one inside another", []string{"pass", "password123"}, "password123 pass", "*** ***"},
		{"overlapping secrets mask whole", []string{"abcdef", "defghi"}, "xabcdefghiy", "x***y"},
		{"self-overlapping", []string{"aaaa"}, "baaaaab", "b***b"},
		{"unicode", []string{"pässwörd✓"}, "é pässwörd✓ é", "é *** é"},
		{"unicode prefix is not a match", []string{"pässwörd✓"}, "pässwörd", "pässwörd"},
		{"multi-line value line by line", []string{"line-one\nline-two"}, "a line-two b", "a *** b"},
		{"multi-line value whole", []string{"line-one\nline-two"}, "line-one\nline-two\n", "***\n"},
		{"JSON-escaped form", []string{`pa"ss\wd`}, `{"p":"pa\"ss\\wd"}`, `{"p":"***"}`},
		{"HTML-escaped JSON form", []string{"a<b>&cd"}, `"a\u003cb\u003e\u0026cd"`, `"***"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := New(tc.secrets...).Mask(tc.in); got != tc.want {
				t.Errorf("Mask(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestNilMasker(t *testing.T) {
	var m *Masker
	if m.Mask("s3cr3t") != "s3cr3t" || !m.Empty() {
		t.Fatal("a nil masker masks")
	}
	m.Add("s3cr3t") // no panic
	s := m.Stream()
	if got := s.Next([]byte("s3cr"), true) + s.Next([]byte("3t"), false) + s.Flush(); got != "s3cr3t" {
		t.Fatalf("nil stream: %q", got)
	}
}

func TestSecretName(t *testing.T) {
	for _, tc := range []struct {
		name     string
		patterns []string
		want     bool
	}{
		{"API_TOKEN", nil, true},
		{"github_token", nil, true},
		{"DB_PASSWORD", nil, true},
		{"SSH_KEY", nil, true},
		{"AWS_SECRET_ACCESS_KEY", nil, true},
		{"GCP_CREDENTIALS", nil, true},
		{"PATH", nil, false},
		{"DEBUG", nil, false},
		{"PATH", []string{"path"}, true},
		{"API_TOKEN", []string{"PASS"}, false},
		{"API_TOKEN", []string{}, false},
	} {
		if got := SecretName(tc.name, tc.patterns); got != tc.want {
			t.Errorf("SecretName(%q, %q) = %v", tc.name, tc.patterns, got)
		}
	}
}

// piece is one entry of a stream in a test.
type piece struct {
	data     string
	fragment bool
}

// streamText is what the pieces stand for: each followed by a newline
// unless a fragment.
func streamText(ps []piece) string {
	var b strings.Builder
	for _, p := range ps {
		b.WriteString(p.data)
		if !p.fragment {
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// runStream masks pieces one by one as a run does, newlines after lines,
// then flushes.
func runStream(m *Masker, ps []piece) string {
	s := m.Stream()
	var b strings.Builder
	for _, p := range ps {
		b.WriteString(s.Next([]byte(p.data), p.fragment))
		if !p.fragment {
			b.WriteByte('\n')
		}
	}
	b.WriteString(s.Flush())
	return b.String()
}

func TestStreamSplitEverywhere(t *testing.T) {
	const secret = "tok-3f9a2c71"
	m := New(secret, "other-secret")
	for _, line := range []string{
		secret,
		"before " + secret + " after",
		secret + secret,
		"tok-tok-3f9a2c71",   // a false start just before the secret
		"tok-3f9a2c7 almost", // a prefix that never completes
		"x tok-3f9a2c7",      // ... at the end of the stream
		"other-secret" + secret,
	} {
		for _, fragmentEnd := range []bool{false, true} {
			// Split the line in two, and in three, at every place.
			for i := 0; i <= len(line); i++ {
				for j := i; j <= len(line); j++ {
					ps := []piece{{line[:i], true}, {line[i:j], true}, {line[j:], fragmentEnd}}
					want := reference(streamText(ps), []string{secret, "other-secret"})
					if got := runStream(m, ps); got != want {
						t.Fatalf("split %q at %d,%d (last a fragment: %v): %q, want %q", line, i, j, fragmentEnd, got, want)
					}
					if strings.Contains(runStream(m, ps), secret) {
						t.Fatalf("split %q at %d,%d: secret in clear", line, i, j)
					}
				}
			}
		}
	}
}

func TestStreamHoldBack(t *testing.T) {
	m := New("s3cr3t-value")
	s := m.Stream()
	if got := s.Next([]byte("key: s3cr"), true); got != "key: " {
		t.Fatalf("first fragment gave %q, want the prefix of the secret held back", got)
	}
	if !s.Held() {
		t.Fatal("nothing held")
	}
	if got := s.Next([]byte("3t-value"), true); got != "***" {
		t.Fatalf("second fragment gave %q", got)
	}
	// A fragment held back whole, then the end of the stream.
	if got := s.Next([]byte("s3cr3t-valu"), true); got != "" {
		t.Fatalf("a held fragment gave %q", got)
	}
	if got := s.Flush(); got != "s3cr3t-valu" {
		t.Fatalf("Flush = %q: what never became the secret is given out as it is", got)
	}
	if s.Held() || s.Flush() != "" {
		t.Fatal("Flush twice")
	}
}

// Stdout and stderr are streams of their own: a prefix held back in one
// is not completed by the other.
func TestStreamsIndependent(t *testing.T) {
	m := New("s3cr3t-value")
	out, errs := m.Stream(), m.Stream()
	got := out.Next([]byte("s3cr"), true) + "|" + errs.Next([]byte("3t-value"), false) + "|" + out.Next([]byte("3t-value"), false)
	if want := "|3t-value|***"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// Secrets added during a run mask what comes after.
func TestAdd(t *testing.T) {
	m := New("first-secret")
	s := m.Stream()
	a := s.Next([]byte("late-secret"), false)
	m.Add("late-secret", "ab")
	b := s.Next([]byte("late-secret first-secret ab"), false)
	if a != "late-secret" || b != "*** *** ab" {
		t.Fatalf("got %q, %q", a, b)
	}
}

// Random texts over a small alphabet, cut into random entries: masking
// them entry by entry gives what masking the whole stream gives.
func TestStreamMatchesWhole(t *testing.T) {
	secrets := []string{"abab", "abcab", "bca", "cabbac", "aaaa"}
	m := New(secrets...)
	rng := rand.New(rand.NewPCG(1, 2))
	for n := 0; n < 20000; n++ {
		var ps []piece
		for k := rng.IntN(6) + 1; k > 0; k-- {
			b := make([]byte, rng.IntN(10))
			for i := range b {
				b[i] = "abc"[rng.IntN(3)]
			}
			ps = append(ps, piece{string(b), rng.IntN(4) > 0})
		}
		whole := streamText(ps)
		if got, want := runStream(m, ps), reference(whole, secrets); got != want {
			t.Fatalf("entries %+v: %q, want %q", ps, got, want)
		}
		if got, want := m.Mask(whole), reference(whole, secrets); got != want {
			t.Fatalf("Mask(%q) = %q, want %q", whole, got, want)
		}
	}
}

func BenchmarkMask(b *testing.B) {
	line := []byte("2026-12-07T04:26:52Z INFO processed batch 1234 of 5678: 42 rows, checksum 9f86d081884c7d65\n")
	lines := (1 << 20) / len(line)
	for _, bc := range []struct {
		name string
		m    *Masker
	}{
		{"off", nil},
		{"5 secrets", New("tok-3f9a2c71d2e4", "hunter2hunter2", "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG", "s3cr3t-value")},
		{"5 secrets, one per line", New("batch 1234", "hunter2hunter2", "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG", "s3cr3t-value")},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(lines * len(line)))
			data := line[:len(line)-1]
			for b.Loop() {
				s := bc.m.Stream()
				for range lines {
					_ = s.Next(data, false)
				}
			}
		})
	}
}
