package termsafe_test

import (
	"bytes"
	"io"
	"os"
	"testing"

	"github.com/cronium/cronium-agent/internal/ptytest"
	"github.com/cronium/cronium-agent/internal/termsafe"
)

func TestString(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"plain", "hello, world", "hello, world"},
		{"empty", "", ""},
		{"tab and newline kept", "a\tb\nc\n", "a\tb\nc\n"},
		{"CRLF kept", "a\r\nb\r\n", "a\r\nb\r\n"},
		{"lone CR", "ok\rhidden", `ok\x0dhidden`},
		{"CR at the end", "a\r", `a\x0d`},
		{"CR CR LF", "a\r\r\n", "a\\x0d\r\n"},
		{"NUL", "a\x00b", `a\x00b`},
		{"clear screen", "\x1b[2J\x1b[H", `\x1b[2J\x1b[H`},
		{"OSC title", "\x1b]0;pwned\x07", `\x1b]0;pwned\x07`},
		{"bell and backspace", "\a\b", `\x07\x08`},
		{"unit separator", "\x1f", `\x1f`},
		{"DEL", "a\x7fb", `a\x7fb`},
		{"C1 CSI", "a\u009b2Jb", `a\u009b2Jb`},
		{"C1 range", "\u0080\u009f", `\u0080\u009f`},
		{"just above C1", "\u00a0é", "\u00a0é"},
		{"multibyte text kept", "größe 日本 😀", "größe 日本 😀"},
		{"U+FFFD itself kept", "\ufffd", "\ufffd"},
		{"invalid byte", "a\xffb", `a\xffb`},
		{"raw C1 byte (Latin-1 CSI)", "\x9b2J", `\x9b2J`},
		{"truncated sequence", "\xe6\x97", `\xe6\x97`},
		{"overlong NUL", "\xc0\x80", `\xc0\x80`},
		{"surrogate", "\xed\xa0\x80", `\xed\xa0\x80`},
		{"backslash kept", `C:\x1b`, `C:\x1b`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := termsafe.String(tc.in); got != tc.want {
				t.Errorf("String(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if got := string(termsafe.Append([]byte("pre:"), []byte(tc.in))); got != "pre:"+tc.want {
				t.Errorf("Append(%q) = %q, want %q", tc.in, got, "pre:"+tc.want)
			}
		})
	}
}

func TestWriter(t *testing.T) {
	var buf bytes.Buffer
	w := termsafe.NewWriter(&buf)
	for _, s := range []string{"clean line\n", "\x1b[31mred\x1b[0m\n", "\x00"} {
		n, err := w.Write([]byte(s))
		if err != nil || n != len(s) {
			t.Errorf("Write(%q) = %d, %v; want %d, nil", s, n, err, len(s))
		}
	}
	if want := "clean line\n\\x1b[31mred\\x1b[0m\n\\x00"; buf.String() != want {
		t.Errorf("wrote %q, want %q", buf.String(), want)
	}
}

func TestIsTerminal(t *testing.T) {
	p := ptytest.Open(t)
	if !termsafe.IsTerminal(p.TTY) {
		t.Error("a pseudo-terminal is not a terminal")
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	f, err := os.Create(t.TempDir() + "/out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for name, out := range map[string]io.Writer{"pipe": w, "file": f, "buffer": &bytes.Buffer{}} {
		if termsafe.IsTerminal(out) {
			t.Errorf("a %s is a terminal", name)
		}
	}

	const job = "\x1b]0;title\x07\x1b[2Jtext\n"
	termsafe.Guard(p.TTY, false).Write([]byte(job))
	termsafe.Guard(p.TTY, true).Write([]byte(job))
	termsafe.Guard(w, false).Write([]byte(job))
	w.Close()
	if got, want := p.Output(t), `\x1b]0;title\x07\x1b[2Jtext`+"\n"+job; got != want {
		t.Errorf("the terminal got %q, want %q (escaped, then raw)", got, want)
	}
	piped := make([]byte, 100)
	n, _ := r.Read(piped)
	if string(piped[:n]) != job {
		t.Errorf("the pipe got %q, want the exact bytes %q", piped[:n], job)
	}
}
