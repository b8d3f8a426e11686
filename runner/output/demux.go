package output

import (
	"context"
	"fmt"
	"io"
)

// Demux reads r to its end record and writes every entry's raw bytes (see
// Entry.AppendRaw) to the writer of its stream, which reproduces each
// stream byte for byte. System entries are skipped. It waits for the
// writer like Next; bound it with ctx when the writer may be dead.
func Demux(ctx context.Context, r *Reader, stdout, stderr io.Writer) (Summary, error) {
	var buf []byte
	for {
		e, err := r.Next(ctx)
		if err == io.EOF {
			s, _ := r.Summary()
			return s, nil
		}
		if err != nil {
			return Summary{}, err
		}
		w := stdout
		switch e.Stream {
		case Stderr:
			w = stderr
		case System:
			continue
		}
		buf = e.AppendRaw(buf[:0])
		if _, err := w.Write(buf); err != nil {
			return Summary{}, fmt.Errorf("demux %s: %w", e.Stream, err)
		}
	}
}
