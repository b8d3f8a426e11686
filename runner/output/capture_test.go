package output

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"
)

// readerWrappers deliver the same bytes with different read boundaries.
var readerWrappers = []struct {
	name string
	wrap func(io.Reader, uint64) io.Reader
}{
	{"whole", func(r io.Reader, _ uint64) io.Reader { return r }},
	{"onebyte", func(r io.Reader, _ uint64) io.Reader { return iotest.OneByteReader(r) }},
	{"chunks", func(r io.Reader, seed uint64) io.Reader {
		return &chunkReader{r: r, rng: rand.New(rand.NewPCG(seed, 1)), maxChunk: 3000}
	}},
	{"dataerr", func(r io.Reader, _ uint64) io.Reader { return iotest.DataErrReader(r) }},
	{"halves", func(r io.Reader, _ uint64) io.Reader { return iotest.HalfReader(r) }},
}

func TestCaptureReconstructs(t *testing.T) {
	line := func(n int) string { return strings.Repeat("x", n) }
	tests := []struct {
		name           string
		stdout, stderr string
	}{
		{"empty", "", ""},
		{"one line", "hello\n", ""},
		{"no final newline", "hello\nworld", ""},
		{"only newline", "\n", ""},
		{"empty lines", "\n\n\n", "\n"},
		{"partial only", "x", "y"},
		{"both streams", "a\nb\nc\n", "e1\ne2"},
		{"binary", "\x00\xff\xfe\r\n\x80bad utf8\xc3\x28\n\r", "\t\x00\n"},
		{"exactly max", line(MaxLine) + "\n", ""},
		{"exactly max no newline", line(MaxLine), ""},
		{"max plus one", line(MaxLine+1) + "\n", line(MaxLine + 1)},
		{"max minus one", line(MaxLine-1) + "\n", ""},
		{"twice max", line(2*MaxLine) + "\n", ""},
		{"200 KiB", line(200<<10) + "\n" + "tail\n", line(200 << 10)},
		{"long then short", line(MaxLine+7) + "\nshort\n\n" + line(3*MaxLine+1), "z\n"},
	}
	for _, tt := range tests {
		for i, w := range readerWrappers {
			t.Run(tt.name+"/"+w.name, func(t *testing.T) {
				stdout := w.wrap(strings.NewReader(tt.stdout), uint64(i))
				stderr := w.wrap(strings.NewReader(tt.stderr), uint64(i+100))
				path, sum := captureToFile(t, stdout, stderr)
				es, fileSum := readAllEntries(t, path)
				if sum != fileSum {
					t.Fatalf("Capture summary %+v, end record %+v", sum, fileSum)
				}
				if !sum.Complete {
					t.Fatal("summary not complete")
				}
				checkEntries(t, es, sum, MaxLine)
				gotOut, gotErr := rebuild(es)
				equalBytes(t, "stdout", gotOut, []byte(tt.stdout))
				equalBytes(t, "stderr", gotErr, []byte(tt.stderr))
				if sum.Stdout.Bytes != uint64(len(tt.stdout)) || sum.Stderr.Bytes != uint64(len(tt.stderr)) {
					t.Fatalf("summary bytes %d/%d, want %d/%d", sum.Stdout.Bytes, sum.Stderr.Bytes, len(tt.stdout), len(tt.stderr))
				}
			})
		}
	}
}

// TestCaptureSplitsLines pins down where entries are cut, with a small
// maximum so the cases stay readable.
func TestCaptureSplitsLines(t *testing.T) {
	type piece struct {
		data     string
		fragment bool
	}
	tests := []struct {
		in   string
		want []piece
	}{
		{"", nil},
		{"\n", []piece{{"", false}}},
		{"abc\n", []piece{{"abc", false}}},
		{"abcd\n", []piece{{"abcd", false}}},
		{"abcd", []piece{{"abcd", true}}},
		{"abcde\n", []piece{{"abcd", true}, {"e", false}}},
		{"abcde", []piece{{"abcd", true}, {"e", true}}},
		{"abcdefgh\n", []piece{{"abcd", true}, {"efgh", false}}},
		{"abcdefgh", []piece{{"abcd", true}, {"efgh", true}}},
		{"abcdefghi\nj", []piece{{"abcd", true}, {"efgh", true}, {"i", false}, {"j", true}}},
		{"ab\n\ncd", []piece{{"ab", false}, {"", false}, {"cd", true}}},
	}
	for _, tt := range tests {
		for i, w := range readerWrappers {
			t.Run(fmt.Sprintf("%q/%s", tt.in, w.name), func(t *testing.T) {
				path, _ := captureToFile(t, w.wrap(strings.NewReader(tt.in), uint64(i)), strings.NewReader(""), WithMaxLine(4))
				es, _ := readAllEntries(t, path)
				var got []piece
				for _, e := range es {
					got = append(got, piece{string(e.Data), e.Fragment})
				}
				if fmt.Sprint(got) != fmt.Sprint(tt.want) {
					t.Fatalf("got %v, want %v", got, tt.want)
				}
			})
		}
	}
}

// TestCaptureInterleaved writes both streams at once through real pipes
// and checks that seq numbers the file 1..N and each stream keeps order.
func TestCaptureInterleaved(t *testing.T) {
	outR, outW := mustPipe(t)
	errR, errW := mustPipe(t)
	const lines = 5000
	var wg sync.WaitGroup
	for _, p := range []struct {
		w    *os.File
		name string
	}{{outW, "out"}, {errW, "err"}} {
		wg.Go(func() {
			defer p.w.Close()
			for i := range lines {
				fmt.Fprintf(p.w, "%s %d\n", p.name, i)
			}
		})
	}
	path, sum := captureToFile(t, outR, errR, WithFlushInterval(time.Millisecond))
	wg.Wait()
	es, _ := readAllEntries(t, path)
	checkEntries(t, es, sum, MaxLine)
	next := map[Stream]int{}
	for _, e := range es {
		want := fmt.Sprintf("%s %d", map[Stream]string{Stdout: "out", Stderr: "err"}[e.Stream], next[e.Stream])
		if string(e.Data) != want {
			t.Fatalf("seq %d: got %q, want %q", e.Seq, e.Data, want)
		}
		next[e.Stream]++
	}
	if next[Stdout] != lines || next[Stderr] != lines {
		t.Fatalf("got %v lines per stream, want %d each", next, lines)
	}
}

// TestCaptureLargeRandom reconstructs 100 MiB of random lines of up to
// 200 KiB, read in random chunk sizes.
func TestCaptureLargeRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	// About 2 s, 8 s with -race: below the 10 s that would warrant a
	// testing.Short skip.
	outSize, errSize := 100<<20, 8<<20
	stdout := genStream(rng, outSize, 200<<10, true)
	stderr := genStream(rng, errSize, 200<<10, false)
	path, sum := captureToFile(t,
		&chunkReader{r: bytes.NewReader(stdout), rng: rand.New(rand.NewPCG(1, 2)), maxChunk: 200 << 10},
		&chunkReader{r: bytes.NewReader(stderr), rng: rand.New(rand.NewPCG(3, 4)), maxChunk: 70 << 10})
	es, _ := readAllEntries(t, path)
	checkEntries(t, es, sum, MaxLine)
	gotOut, gotErr := rebuild(es)
	equalBytes(t, "stdout", gotOut, stdout)
	equalBytes(t, "stderr", gotErr, stderr)
}

// TestCaptureInterrupted cancels a capture whose pipes stay open: what was
// read is kept, the unfinished line as a fragment, and the end record says
// the capture is incomplete.
func TestCaptureInterrupted(t *testing.T) {
	outR, outW := mustPipe(t)
	errR, errW := mustPipe(t)
	defer outW.Close()
	defer errW.Close()
	fmt.Fprint(outW, "line\npartial")
	fmt.Fprint(errW, "err\n")

	cause := errors.New("test stop")
	ctx, cancel := context.WithCancelCause(context.Background())
	time.AfterFunc(100*time.Millisecond, func() { cancel(cause) })
	path := filepath.Join(t.TempDir(), "out")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sum, err := Capture(ctx, outR, errR, f)
	if !errors.Is(err, cause) {
		t.Fatalf("Capture error %v, want %v", err, cause)
	}
	if sum.Complete {
		t.Fatal("summary complete after interruption")
	}
	es, fileSum := readAllEntries(t, path)
	if fileSum != sum {
		t.Fatalf("end record %+v, Capture returned %+v", fileSum, sum)
	}
	out, errb := rebuild(es)
	equalBytes(t, "stdout", out, []byte("line\npartial"))
	equalBytes(t, "stderr", errb, []byte("err\n"))
}

// blockingReader never returns and cannot be interrupted.
type blockingReader struct{ release chan struct{} }

func (b blockingReader) Read([]byte) (int, error) {
	<-b.release
	return 0, io.EOF
}

func TestCaptureAbandonsUninterruptibleReader(t *testing.T) {
	br := blockingReader{release: make(chan struct{})}
	defer close(br.release)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	path := filepath.Join(t.TempDir(), "out")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sum, err := Capture(ctx, strings.NewReader("kept\n"), br, f)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Capture error %v, want deadline exceeded", err)
	}
	es, fileSum := readAllEntries(t, path)
	if fileSum.Complete || fileSum != sum || len(es) != 1 || string(es[0].Data) != "kept" {
		t.Fatalf("got entries %v, end %+v, summary %+v", es, fileSum, sum)
	}
}

// failingWriter fails every write after the first n bytes.
type failingWriter struct{ n int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		return 0, errors.New("disk full")
	}
	w.n -= len(p)
	return len(p), nil
}

// TestCaptureWriteErrorKeepsDraining checks that a failing output does not
// stop the streams from being read to their end (a container writing to a
// pipe nobody reads would block).
func TestCaptureWriteErrorKeepsDraining(t *testing.T) {
	data := bytes.Repeat([]byte("some output\n"), 100000)
	r := bytes.NewReader(data)
	sum, err := Capture(context.Background(), r, strings.NewReader(""), &failingWriter{n: 1000}, WithBufferSize(4096))
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Capture error %v, want disk full", err)
	}
	if r.Len() != 0 {
		t.Fatalf("%d bytes left unread", r.Len())
	}
	if sum.Stdout.Bytes != uint64(len(data)) {
		t.Fatalf("counted %d bytes, want %d", sum.Stdout.Bytes, len(data))
	}
}

func TestCaptureRejectsBadOptions(t *testing.T) {
	for _, o := range []Option{WithMaxLine(0), WithMaxLine(MaxPayload + 1), WithFlushInterval(0), WithReadSize(0), WithClock(nil)} {
		if _, err := Capture(context.Background(), strings.NewReader(""), strings.NewReader(""), io.Discard, o); err == nil {
			t.Error("bad option accepted")
		}
	}
}

// TestCaptureTimestamps checks timestamps come from the clock and never go
// backwards in file order, even when the clock does.
func TestCaptureTimestamps(t *testing.T) {
	times := []int64{100, 50, 300, 200, 400}
	var mu sync.Mutex
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		v := times[0]
		if len(times) > 1 {
			times = times[1:]
		}
		return time.Unix(0, v)
	}
	in := iotest.OneByteReader(strings.NewReader("a\nb\nc\nd\n"))
	path, _ := captureToFile(t, in, strings.NewReader(""), WithClock(clock))
	es, _ := readAllEntries(t, path)
	var got []int64
	for _, e := range es {
		got = append(got, e.Time.UnixNano())
	}
	if fmt.Sprint(got) != "[100 100 300 300]" {
		t.Fatalf("timestamps %v", got)
	}
}

func TestStreamString(t *testing.T) {
	for s, want := range map[Stream]string{Stdout: "stdout", Stderr: "stderr", System: "system", 9: "stream(9)"} {
		if s.String() != want {
			t.Errorf("%d: %q, want %q", s, s.String(), want)
		}
	}
}

func mustPipe(t testing.TB) (*os.File, *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}
