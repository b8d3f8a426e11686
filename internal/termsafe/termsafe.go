// Package termsafe makes text that a job wrote safe to show on an
// operator's terminal. A job's output is anything the job chose to print:
// escape sequences in it would clear the screen, retitle the window, move
// the cursor over earlier lines or, on some terminals, answer back as if
// typed. Escaped, every such byte shows as a visible sequence instead.
//
// The commands escape only what goes to a terminal: files, pipes and
// --raw get the bytes exactly.
package termsafe

import (
	"io"
	"syscall"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// Append appends p to dst with every control character made visible:
// C0 controls and DEL as \xNN (ESC is \x1b), except tab, newline and a
// carriage return right before a newline (a CRLF line end does nothing a
// newline alone would not; a lone \r could overwrite what the line showed);
// C1 controls (U+0080 to U+009F, which some terminals obey like ESC
// sequences) as \u00NN; and each byte of invalid UTF-8 as \xNN. All other
// text, backslashes included, is kept: the result is for a person to read,
// and --raw gives the exact bytes.
func Append(dst, p []byte) []byte {
	for i := 0; i < len(p); {
		c := p[i]
		switch {
		case c == '\t' || c == '\n' || c == '\r' && i+1 < len(p) && p[i+1] == '\n':
			dst = append(dst, c)
		case c < 0x20 || c == 0x7f:
			dst = appendHex(dst, `\x`, c)
		case c < utf8.RuneSelf:
			dst = append(dst, c)
		default:
			r, size := utf8.DecodeRune(p[i:])
			switch {
			case r == utf8.RuneError && size == 1:
				dst = appendHex(dst, `\x`, c)
			case r <= 0x9f:
				dst = appendHex(dst, `\u00`, byte(r))
			default:
				dst = append(dst, p[i:i+size]...)
			}
			i += size
			continue
		}
		i++
	}
	return dst
}

// String is Append for a string.
func String(s string) string {
	if clean([]byte(s)) {
		return s
	}
	return string(Append(nil, []byte(s)))
}

func appendHex(dst []byte, prefix string, b byte) []byte {
	const digits = "0123456789abcdef"
	return append(append(dst, prefix...), digits[b>>4], digits[b&0xf])
}

// clean reports whether Append would return p unchanged.
func clean(p []byte) bool {
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '\t' || c == '\n':
		case c == '\r':
			if i+1 == len(p) || p[i+1] != '\n' {
				return false
			}
		case c < 0x20 || c == 0x7f:
			return false
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(p[i:])
			if r == utf8.RuneError && size == 1 || r <= 0x9f {
				return false
			}
			i += size - 1
		}
	}
	return true
}

// Writer escapes what is written through it (see Append). Each Write is
// escaped on its own, so write whole lines or strings: a character split
// across two writes shows as escaped bytes.
type Writer struct {
	w io.Writer
}

// NewWriter returns a Writer escaping into w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

func (w *Writer) Write(p []byte) (int, error) {
	if clean(p) {
		return w.w.Write(p)
	}
	if _, err := w.w.Write(Append(make([]byte, 0, len(p)+16), p)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// IsTerminal reports whether w is a file open on a terminal.
func IsTerminal(w io.Writer) bool {
	// SyscallConn rather than Fd: Fd would switch the file to blocking mode.
	f, ok := w.(interface {
		SyscallConn() (syscall.RawConn, error)
	})
	if !ok {
		return false
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	var terr error
	if err := rc.Control(func(fd uintptr) {
		_, terr = unix.IoctlGetTermios(int(fd), unix.TCGETS)
	}); err != nil {
		return false
	}
	return terr == nil
}

// Guard returns w itself when raw is set or w is not a terminal, and a
// Writer escaping into w otherwise.
func Guard(w io.Writer, raw bool) io.Writer {
	if raw || !IsTerminal(w) {
		return w
	}
	return NewWriter(w)
}

// RawUsage is the help of the --raw flag of the commands printing a job's
// output, the same in every binary.
const RawUsage = "write the job's output byte for byte, even to a terminal (where control characters are otherwise escaped)"
