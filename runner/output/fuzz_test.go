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
)

// FuzzCapture checks byte-exact reconstruction for any input, split into
// the two streams at the first 0xff, with fuzzed maximum line length and
// read boundaries.
func FuzzCapture(f *testing.F) {
	f.Add([]byte("hello\nworld"), uint8(4), uint64(1))
	f.Add([]byte("\n\n\xffabc\ndefgh"), uint8(1), uint64(2))
	f.Add([]byte("abcdefgh\n\xff"), uint8(8), uint64(3))
	f.Add([]byte(""), uint8(0), uint64(4))
	f.Fuzz(func(t *testing.T, data []byte, maxLine uint8, seed uint64) {
		stdout, stderr := data, []byte(nil)
		if i := bytes.IndexByte(data, 0xff); i >= 0 {
			stdout, stderr = data[:i], data[i+1:]
		}
		ml := 1 + int(maxLine%32)
		rng := rand.New(rand.NewPCG(seed, seed))
		// Into memory first: syncing a file per input would halve the rate.
		var buf bytes.Buffer
		sum, err := Capture(context.Background(),
			&chunkReader{r: bytes.NewReader(stdout), rng: rng, maxChunk: 1 + int(seed%40)},
			&chunkReader{r: bytes.NewReader(stderr), rng: rand.New(rand.NewPCG(seed, 1)), maxChunk: 7},
			&buf, WithMaxLine(ml), WithReadSize(1+int(seed%50)))
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "out")
		if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		es, _ := readAllEntries(t, path)
		checkEntries(t, es, sum, ml)
		gotOut, gotErr := rebuild(es)
		equalBytes(t, "stdout", gotOut, stdout)
		equalBytes(t, "stderr", gotErr, stderr)
		for i, e := range es {
			// Only a cut long line or the last piece of a stream lacks '\n'.
			if e.Fragment && len(e.Data) != ml && !lastOfStream(es, i) {
				t.Fatalf("entry %d: short fragment %q mid-stream", i, e.Data)
			}
		}
	})
}

func lastOfStream(es []Entry, i int) bool {
	for _, e := range es[i+1:] {
		if e.Stream == es[i].Stream {
			return false
		}
	}
	return true
}

// FuzzRead feeds arbitrary bytes to a Reader: it must neither panic nor
// loop, and must stop with io.EOF, ErrNoData or ErrCorrupt.
func FuzzRead(f *testing.F) {
	valid, err := captureBytes([]byte("a\nbb\n"), []byte("c"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add(valid[:len(valid)-3])
	f.Add([]byte(fileMagic))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "out")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		r, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		for range len(data) + 1 {
			_, err := r.TryNext()
			switch {
			case err == nil:
				continue
			case errors.Is(err, io.EOF), errors.Is(err, ErrNoData), errors.Is(err, ErrCorrupt):
				return
			default:
				t.Fatalf("unexpected error: %v", err)
			}
		}
		t.Fatal("more entries than bytes")
	})
}

func captureBytes(stdout, stderr []byte) ([]byte, error) {
	var buf bytes.Buffer
	_, err := Capture(context.Background(), bytes.NewReader(stdout), bytes.NewReader(stderr), &buf)
	return buf.Bytes(), err
}
