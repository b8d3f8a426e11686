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
	"time"
)

// smallFile captures a few entries of both streams and returns the file's
// bytes and its entries.
func smallFile(t *testing.T) ([]byte, []Entry) {
	t.Helper()
	path, _ := captureToFile(t,
		strings.NewReader("one\ntwo\n\nthree-is-longer\nfour"),
		strings.NewReader("e1\ne2\n"),
		WithMaxLine(8))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	es, _ := readAllEntries(t, path)
	return b, es
}

// recordEnds returns the offset after each record of a valid file.
func recordEnds(t *testing.T, b []byte) []int64 {
	t.Helper()
	var ends []int64
	for off := HeaderSize; off < len(b); {
		h := parseRecordHeader(b[off:])
		off += RecordHeaderSize + h.length
		ends = append(ends, int64(off))
	}
	return ends
}

func writeFile(t *testing.T, b []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "out")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// drain reads with TryNext until it stops and returns the entries and the
// error it stopped with.
func drain(t *testing.T, r *Reader) ([]Entry, error) {
	t.Helper()
	var es []Entry
	for {
		e, err := r.TryNext()
		if err != nil {
			return es, err
		}
		es = append(es, e)
	}
}

func sameEntries(t *testing.T, got, want []Entry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d entries, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Seq != w.Seq || g.Stream != w.Stream || !g.Time.Equal(w.Time) || !bytes.Equal(g.Data, w.Data) || g.Fragment != w.Fragment {
			t.Fatalf("entry %d: got %+v, want %+v", i, g, w)
		}
	}
}

// TestTornTail cuts a file at every byte: a reader returns exactly the
// records complete before the cut, then ErrNoData (never corruption), and
// continues once the rest is written.
func TestTornTail(t *testing.T) {
	full, want := smallFile(t)
	ends := recordEnds(t, full)
	for cut := 0; cut < len(full); cut++ {
		t.Run(fmt.Sprint(cut), func(t *testing.T) {
			path := writeFile(t, full[:cut])
			r, err := Open(path, WithPollInterval(time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			got, err := drain(t, r)
			if !errors.Is(err, ErrNoData) {
				t.Fatalf("stopped with %v, want ErrNoData", err)
			}
			complete := 0
			for _, e := range ends[:len(ends)-1] { // the last one is the end record
				if e <= int64(cut) {
					complete++
				}
			}
			sameEntries(t, got, want[:complete])

			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Millisecond)
			defer cancel()
			if _, err := r.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Next on a torn tail: %v, want to wait until the deadline", err)
			}

			if err := os.WriteFile(path, full, 0o600); err != nil {
				t.Fatal(err)
			}
			rest, err := drain(t, r)
			if !errors.Is(err, io.EOF) {
				t.Fatalf("after completing the file: %v, want io.EOF", err)
			}
			sameEntries(t, append(got, rest...), want)
		})
	}
}

// TestDamagedFile separates damage a crash can leave at the tail (zeros,
// a bad checksum on the last record) from corruption with data after it.
func TestDamagedFile(t *testing.T) {
	full, want := smallFile(t)
	ends := recordEnds(t, full)
	last := ends[len(ends)-2] // end of the last entry, start of the end record
	tests := []struct {
		name    string
		mutate  func([]byte) []byte
		entries int
		err     error
	}{
		{"zero-filled end record", func(b []byte) []byte {
			clear(b[last:])
			return b
		}, len(want), ErrNoData},
		{"zeros after the end record", func(b []byte) []byte {
			clear(b[last:])
			return append(b, make([]byte, 100)...)
		}, len(want), ErrNoData},
		{"half header then zeros", func(b []byte) []byte {
			clear(b[last+10:])
			return b
		}, len(want), ErrNoData},
		{"bad checksum on last record", func(b []byte) []byte {
			b[len(b)-1] ^= 0xff
			return b
		}, len(want), ErrNoData},
		{"bad checksum mid-file", func(b []byte) []byte {
			b[ends[0]-1] ^= 0xff
			return b
		}, 0, ErrCorrupt},
		{"garbage header mid-file", func(b []byte) []byte {
			b[ends[1]+offKind] = 99
			return b
		}, 2, ErrCorrupt},
		{"seq gap", func(b []byte) []byte {
			// Drop the second record: valid records, but seq jumps.
			return append(b[:ends[0]:ends[0]], b[ends[1]:]...)
		}, 1, ErrCorrupt},
		{"wrong magic", func(b []byte) []byte {
			b[0] = 'X'
			return b
		}, 0, ErrCorrupt},
		{"wrong version", func(b []byte) []byte {
			b[len(fileMagic)] = 9
			return b
		}, 0, ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, tt.mutate(bytes.Clone(full)))
			r, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			got, err := drain(t, r)
			if !errors.Is(err, tt.err) {
				t.Fatalf("stopped with %v, want %v", err, tt.err)
			}
			sameEntries(t, got, want[:tt.entries])
		})
	}
}

// TestResume stops after every possible entry, reopens at Offset and
// checks that nothing is lost or repeated, also after io.EOF.
func TestResume(t *testing.T) {
	full, want := smallFile(t)
	path := writeFile(t, full)
	for stop := 0; stop <= len(want); stop++ {
		r, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		var got []Entry
		for range stop {
			e, err := r.TryNext()
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, e)
		}
		if stop == len(want) {
			if _, err := r.TryNext(); err != io.EOF {
				t.Fatalf("after all entries: %v", err)
			}
		}
		off := r.Offset()
		r.Close()

		r, err = OpenAt(path, off)
		if err != nil {
			t.Fatal(err)
		}
		rest, err := drain(t, r)
		if err != io.EOF {
			t.Fatalf("stop %d: resumed reader stopped with %v", stop, err)
		}
		if s, ok := r.Summary(); !ok || s.Entries != uint64(len(want)) {
			t.Fatalf("stop %d: summary %+v %v", stop, s, ok)
		}
		r.Close()
		sameEntries(t, append(got, rest...), want)
	}
	if _, err := OpenAt(path, 3); err == nil {
		t.Fatal("OpenAt inside the header accepted")
	}
}

// TestFollow reads a file while Capture writes it from live pipes, and
// restarts the reader at its offset halfway, as the agent does after a
// crash: the reader sees everything once, in order, then io.EOF.
func TestFollow(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	stdout := genStream(rng, 4<<20, 200<<10, true)
	stderr := genStream(rng, 1<<20, 10<<10, false)
	outR, outW := mustPipe(t)
	errR, errW := mustPipe(t)
	feed := func(w *os.File, data []byte, seed uint64) {
		defer w.Close()
		rng := rand.New(rand.NewPCG(seed, 0))
		for len(data) > 0 {
			n := min(len(data), 1+rng.IntN(64<<10))
			if _, err := w.Write(data[:n]); err != nil {
				t.Error(err)
				return
			}
			data = data[n:]
			if rng.IntN(8) == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}

	path := filepath.Join(t.TempDir(), "out")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// The follower opens the file before anything, even the header, is in it.
	r, err := Open(path, WithPollInterval(2*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	var sum Summary
	var capErr error
	wg.Go(func() {
		sum, capErr = Capture(context.Background(), outR, errR, f, WithFlushInterval(5*time.Millisecond))
	})
	wg.Go(func() { feed(outW, stdout, 1) })
	wg.Go(func() { feed(errW, stderr, 2) })

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var got []Entry
	restarted := false
	for {
		e, err := r.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, Entry{Seq: e.Seq, Stream: e.Stream, Time: e.Time, Data: bytes.Clone(e.Data), Fragment: e.Fragment})
		if !restarted && len(got) > 1000 {
			restarted = true
			off := r.Offset()
			r.Close()
			if r, err = OpenAt(path, off, WithPollInterval(2*time.Millisecond)); err != nil {
				t.Fatal(err)
			}
		}
	}
	r.Close()
	wg.Wait()
	if capErr != nil {
		t.Fatal(capErr)
	}
	if !restarted {
		t.Fatal("the reader was never restarted")
	}
	checkEntries(t, got, sum, MaxLine)
	gotOut, gotErr := rebuild(got)
	equalBytes(t, "stdout", gotOut, stdout)
	equalBytes(t, "stderr", gotErr, stderr)
}

// TestFollowSeesOutputLive checks a line reaches a follower while the
// stream is still open, i.e. without waiting for end of file.
func TestFollowSeesOutputLive(t *testing.T) {
	outR, outW := mustPipe(t)
	errR, errW := mustPipe(t)
	path := filepath.Join(t.TempDir(), "out")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	done := make(chan error, 1)
	go func() {
		_, err := Capture(context.Background(), outR, errR, f)
		done <- err
	}()
	fmt.Fprint(outW, "live\n")

	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e, err := r.Next(ctx)
	if err != nil || string(e.Data) != "live" {
		t.Fatalf("got %q, %v", e.Data, err)
	}
	outW.Close()
	errW.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(ctx); err != io.EOF {
		t.Fatalf("after capture: %v, want io.EOF", err)
	}
}

func TestDemux(t *testing.T) {
	path, _ := captureToFile(t, strings.NewReader("a\nb"), strings.NewReader("c\n"))
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out, errb bytes.Buffer
	sum, err := Demux(context.Background(), r, &out, &errb)
	if err != nil {
		t.Fatal(err)
	}
	if out.String() != "a\nb" || errb.String() != "c\n" || sum.Entries != 3 || !sum.Complete {
		t.Fatalf("stdout %q, stderr %q, summary %+v", out.String(), errb.String(), sum)
	}
}

func TestOpenMissingFile(t *testing.T) {
	if _, err := Open(filepath.Join(t.TempDir(), "nope")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Open: %v", err)
	}
}
