package runner

import (
	"fmt"
	"strings"
)

// cappedBuffer keeps the head and the tail of a stream when it outgrows its
// cap, for the completion body: the marker line says how much was left out.
type cappedBuffer struct {
	cap     int
	head    []byte
	tail    []byte // ring of the last bytes once head is full
	tailPos int
	total   int64
}

func newCappedBuffer(cap int) *cappedBuffer { return &cappedBuffer{cap: cap} }

func (c *cappedBuffer) Write(p []byte) { write(c, p) }

// WriteString is Write of a string (masked text), without a copy.
func (c *cappedBuffer) WriteString(s string) { write(c, s) }

func write[T string | []byte](c *cappedBuffer, p T) {
	c.total += int64(len(p))
	half := c.cap / 2
	if room := half - len(c.head); room > 0 {
		n := min(room, len(p))
		c.head = append(c.head, p[:n]...)
		p = p[n:]
	}
	tailCap := c.cap - half
	for len(p) > 0 && tailCap > 0 {
		if len(c.tail) < tailCap {
			n := min(tailCap-len(c.tail), len(p))
			c.tail = append(c.tail, p[:n]...)
			p = p[n:]
			continue
		}
		n := copy(c.tail[c.tailPos:], p)
		c.tailPos = (c.tailPos + n) % tailCap
		p = p[n:]
	}
}

// String is the whole stream when it fit, else head, marker and tail.
func (c *cappedBuffer) String() string {
	tail := append(append([]byte(nil), c.tail[c.tailPos:]...), c.tail[:c.tailPos]...)
	kept := int64(len(c.head) + len(tail))
	if kept == c.total {
		return string(c.head) + string(tail)
	}
	var b strings.Builder
	b.Write(c.head)
	if len(c.head) > 0 && c.head[len(c.head)-1] != '\n' {
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "[... %d bytes omitted ...]\n", c.total-kept)
	b.Write(tail)
	return b.String()
}
