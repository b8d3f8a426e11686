package output

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// chunkReader returns reads of random sizes in 1..maxChunk, so that line
// ends fall on every kind of read boundary.
type chunkReader struct {
	r        io.Reader
	rng      *rand.Rand
	maxChunk int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	n := 1 + c.rng.IntN(c.maxChunk)
	if n < len(p) {
		p = p[:n]
	}
	return c.r.Read(p)
}

// genStream returns size bytes of random lines (any byte but '\n',
// invalid UTF-8 included) whose lengths are mostly short and sometimes up
// to maxLen. The last line lacks its '\n' when noFinalNewline.
func genStream(rng *rand.Rand, size, maxLen int, noFinalNewline bool) []byte {
	var seed [32]byte
	for i := range seed {
		seed[i] = byte(rng.Uint32())
	}
	b := make([]byte, size)
	_, _ = rand.NewChaCha8(seed).Read(b)
	for i, c := range b {
		if c == '\n' {
			b[i] = 'n'
		}
	}
	for pos := 0; ; pos++ {
		switch p := rng.IntN(100); {
		case p < 80:
			pos += rng.IntN(120)
		case p < 97:
			pos += rng.IntN(4 << 10)
		default:
			pos += rng.IntN(maxLen + 1)
		}
		if pos >= size {
			break
		}
		b[pos] = '\n'
	}
	if size > 0 {
		b[size-1] = '\n'
		if noFinalNewline {
			b[size-1] = 'x'
		}
	}
	return b
}

// captureToFile captures the two streams into a new file and returns its
// path; Capture must succeed.
func captureToFile(t testing.TB, stdout, stderr io.Reader, opts ...Option) (string, Summary) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "out")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sum, err := Capture(context.Background(), stdout, stderr, f, opts...)
	if err != nil {
		t.Fatalf("Capture: %v", err)
	}
	return path, sum
}

// readAllEntries reads a finished file and returns copies of its entries.
func readAllEntries(t testing.TB, path string) ([]Entry, Summary) {
	t.Helper()
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var es []Entry
	for {
		e, err := r.TryNext()
		if errors.Is(err, io.EOF) {
			s, ok := r.Summary()
			if !ok {
				t.Fatal("io.EOF without summary")
			}
			return es, s
		}
		if err != nil {
			t.Fatalf("TryNext after %d entries: %v", len(es), err)
		}
		es = append(es, e)
	}
}

// rebuild reconstructs the streams from entries.
func rebuild(es []Entry) (stdout, stderr []byte) {
	for _, e := range es {
		if e.Stream == Stderr {
			stderr = e.AppendRaw(stderr)
		} else {
			stdout = e.AppendRaw(stdout)
		}
	}
	return stdout, stderr
}

// checkEntries verifies the invariants every capture must hold.
func checkEntries(t testing.TB, es []Entry, sum Summary, maxLine int) {
	t.Helper()
	var prev time.Time
	for i, e := range es {
		if e.Seq != uint64(i+1) {
			t.Fatalf("entry %d has seq %d", i, e.Seq)
		}
		if len(e.Data) > maxLine {
			t.Fatalf("entry %d is %d bytes, max %d", i, len(e.Data), maxLine)
		}
		if bytes.IndexByte(e.Data, '\n') >= 0 {
			t.Fatalf("entry %d contains a newline", i)
		}
		if e.Time.Before(prev) {
			t.Fatalf("entry %d time %v before previous %v", i, e.Time, prev)
		}
		prev = e.Time
	}
	if sum.Entries != uint64(len(es)) {
		t.Fatalf("summary counts %d entries, file has %d", sum.Entries, len(es))
	}
	if sum.Stdout.Entries+sum.Stderr.Entries != sum.Entries {
		t.Fatalf("summary stream entries %+v do not add up", sum)
	}
}

func equalBytes(t testing.TB, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		i := 0
		for i < len(got) && i < len(want) && got[i] == want[i] {
			i++
		}
		t.Fatalf("%s: got %d bytes, want %d; first difference at %d", what, len(got), len(want), i)
	}
}
