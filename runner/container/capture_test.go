package container_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"
)

// A job writes 100 MiB in lines of random length (many over 64 KiB, some
// empty) on both streams, stdout ending without a newline, and reports the
// sha256 of what it wrote; the captured streams must match byte for byte.
const bigOutputScript = `import base64, hashlib, os, random, sys
random.seed(7)
total = 100 << 20
hashes = {1: hashlib.sha256(), 2: hashlib.sha256()}
sizes = {1: 0, 2: 0}
out = {1: sys.stdout.buffer, 2: sys.stderr.buffer}
written = 0
while written < total:
    n = random.choice([0, 1, 80, 4096, 65535, 65536, 65537, random.randint(0, 200 << 10)])
    line = base64.b64encode(os.urandom(n))[:n]
    end = b"" if written + n >= total else b"\n"
    fd = 2 if random.random() < 0.2 else 1
    if end == b"":
        fd = 1
    data = line + end
    out[fd].write(data)
    hashes[fd].update(data)
    sizes[fd] += len(data)
    written += len(data)
sys.stdout.buffer.flush()
sys.stderr.buffer.write(b"\nDIGEST %s %d %s %d\n" % (hashes[1].hexdigest().encode(), sizes[1], hashes[2].hexdigest().encode(), sizes[2]))
`

func TestOutputCapturedByteForByte(t *testing.T) {
	h := newHarness(t)
	start := time.Now()
	r := h.run(context.Background(), t, "python", bigOutputScript, withTimeout(3*time.Minute))
	took := time.Since(start)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.ExitCode != 0 {
		t.Fatalf("exit %d: %.500s", r.ExitCode, r.stderr.String())
	}
	stderr := r.stderr.String()
	i := strings.LastIndex(stderr, "\nDIGEST ")
	if i < 0 {
		t.Fatalf("no digest line in stderr (%d bytes)", len(stderr))
	}
	var outSum, errSum string
	var outLen, errLen int
	if _, err := fmt.Sscanf(stderr[i+1:], "DIGEST %s %d %s %d\n", &outSum, &outLen, &errSum, &errLen); err != nil {
		t.Fatalf("digest line %q: %v", stderr[i+1:], err)
	}
	if got := sum(r.stdout.Bytes()); r.stdout.Len() != outLen || got != outSum {
		t.Errorf("stdout: %d bytes sha256 %s, job wrote %d bytes sha256 %s", r.stdout.Len(), got, outLen, outSum)
	}
	// The job's stderr is everything before the digest line's own newline.
	if got := sum([]byte(stderr[:i])); i != errLen || got != errSum {
		t.Errorf("stderr: %d bytes sha256 %s, job wrote %d bytes sha256 %s", i, got, errLen, errSum)
	}
	for n, e := range r.entries {
		if e.Seq != uint64(n+1) {
			t.Fatalf("entry %d has seq %d", n, e.Seq)
		}
	}
	t.Logf("captured %d MiB in %d entries in %s", (outLen+errLen)>>20, len(r.entries), took)
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
