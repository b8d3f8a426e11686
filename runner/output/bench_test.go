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

// benchStreams returns mixed-length lines: mostly short, some of a few
// KiB, a few of up to 200 KiB (split into fragments).
func benchStreams() (stdout, stderr []byte) {
	rng := rand.New(rand.NewPCG(42, 42))
	return genStream(rng, 48<<20, 200<<10, false), genStream(rng, 16<<20, 8<<10, false)
}

// BenchmarkCapture measures capture throughput in stream bytes per second:
// from memory into io.Discard (the framing alone), into a file, and from
// real pipes into a file (what the shim logger does).
func BenchmarkCapture(b *testing.B) {
	stdout, stderr := benchStreams()
	total := int64(len(stdout) + len(stderr))
	dir := b.TempDir()

	b.Run("memory-discard", func(b *testing.B) {
		b.SetBytes(total)
		for b.Loop() {
			if _, err := Capture(context.Background(), bytes.NewReader(stdout), bytes.NewReader(stderr), io.Discard); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("memory-file", func(b *testing.B) {
		b.SetBytes(total)
		for b.Loop() {
			captureFile(b, dir, bytes.NewReader(stdout), bytes.NewReader(stderr))
		}
	})
	// Typical log output: every line under 120 bytes, so the per-entry
	// cost (header, checksum, seq) dominates.
	short := shortLines(64 << 20)
	b.Run("short-lines-file", func(b *testing.B) {
		b.SetBytes(int64(len(short)))
		for b.Loop() {
			captureFile(b, dir, bytes.NewReader(short), bytes.NewReader(nil))
		}
	})
	b.Run("pipes-file", func(b *testing.B) {
		b.SetBytes(total)
		for b.Loop() {
			outR, outW, err := os.Pipe()
			if err != nil {
				b.Fatal(err)
			}
			errR, errW, err := os.Pipe()
			if err != nil {
				b.Fatal(err)
			}
			go feedPipe(outW, stdout)
			go feedPipe(errW, stderr)
			captureFile(b, dir, outR, errR)
			outR.Close()
			errR.Close()
		}
	})
}

func shortLines(size int) []byte {
	rng := rand.New(rand.NewPCG(43, 43))
	b := make([]byte, 0, size+120)
	for len(b) < size {
		n := rng.IntN(120)
		for range n {
			b = append(b, byte('a'+rng.IntN(26)))
		}
		b = append(b, '\n')
	}
	return b
}

func feedPipe(w *os.File, data []byte) {
	defer w.Close()
	_, _ = w.Write(data)
}

func captureFile(b *testing.B, dir string, stdout, stderr io.Reader) {
	path := filepath.Join(dir, "bench.out")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if _, err := Capture(context.Background(), stdout, stderr, f); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkRead measures reading a finished file back, in stream bytes
// per second.
func BenchmarkRead(b *testing.B) {
	stdout, stderr := benchStreams()
	path, sum := captureToFile(b, bytes.NewReader(stdout), bytes.NewReader(stderr))
	b.SetBytes(int64(sum.Stdout.Bytes + sum.Stderr.Bytes))
	for b.Loop() {
		r, err := Open(path)
		if err != nil {
			b.Fatal(err)
		}
		n := uint64(0)
		for {
			_, err := r.TryNext()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		r.Close()
		if n != sum.Entries {
			b.Fatalf("read %d entries, want %d", n, sum.Entries)
		}
	}
}
