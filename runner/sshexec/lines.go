package sshexec

import (
	"bytes"
	"time"

	"github.com/cronium/cronium-agent/runner/output"
)

// lines cuts one stream's bytes into output entries as the container
// logger does: a line without its '\n', a piece of a line longer than
// output.MaxLine, or the last line without a newline are fragments.
type lines struct {
	stream  output.Stream
	pending []byte
	emit    func(output.Entry)
}

// write takes the next bytes of the stream.
func (l *lines) write(p []byte) {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			l.pending = append(l.pending, p...)
			for len(l.pending) >= output.MaxLine {
				l.out(l.pending[:output.MaxLine], true)
				l.pending = append([]byte(nil), l.pending[output.MaxLine:]...)
			}
			return
		}
		line := p[:i]
		if len(l.pending) > 0 {
			line = append(l.pending, line...)
			l.pending = nil
		}
		for len(line) > output.MaxLine {
			l.out(line[:output.MaxLine], true)
			line = line[output.MaxLine:]
		}
		l.out(line, false)
		p = p[i+1:]
	}
}

// end hands out what is left of a last line without a newline.
func (l *lines) end() {
	if len(l.pending) > 0 {
		l.out(l.pending, true)
		l.pending = nil
	}
}

func (l *lines) out(data []byte, fragment bool) {
	l.emit(output.Entry{Stream: l.stream, Time: time.Now(), Data: append([]byte(nil), data...), Fragment: fragment})
}
