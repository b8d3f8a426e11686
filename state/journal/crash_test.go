package journal

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The crash test runs this test binary again as a child (TestMain switches
// on crashChildEnv) that writes to a journal from many goroutines and prints
// a line for every write after the write returned, kills it with SIGKILL at
// a random moment, reopens the journal and checks it.

const (
	crashChildEnv = "JOURNAL_CRASH_CHILD"
	crashIterEnv  = "JOURNAL_CRASH_ITER"
	crashBudget   = 512 << 10
	crashKeep     = 4
	crashStreams  = 4
)

var (
	crashIterations = flag.Int("crash.iterations", 50, "SIGKILL iterations of TestCrashConsistency (at most 10 with -short)")
	crashSeed       = flag.Uint64("crash.seed", 0, "seed of TestCrashConsistency (0: from the clock)")
)

func crashOptions() []Option {
	return []Option{WithBudget(crashBudget), WithKeepLogs(crashKeep, crashKeep)}
}

// crashPayload identifies an item written by the child.
type crashPayload struct {
	It  int    `json:"it"`
	W   int    `json:"w"`
	N   int    `json:"n"`
	I   int    `json:"i"`
	Pad string `json:"pad,omitempty"`
}

type lineWriter struct {
	mu sync.Mutex
}

func (l *lineWriter) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	os.Stdout.WriteString(fmt.Sprintf(format, args...) + "\n") // one write per line
}

func crashFail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "crash child: "+format+"\n", args...)
	os.Exit(4)
}

// crashChild is the child process: it writes until it is killed.
func crashChild(path string) int {
	iter, _ := strconv.Atoi(os.Getenv(crashIterEnv))
	j, err := Open(path, crashOptions()...)
	if err != nil {
		crashFail("open: %v", err)
	}
	if err := verify(j); err != nil {
		crashFail("journal inconsistent at start: %v", err)
	}
	ctx := context.Background()
	out := &lineWriter{}
	out.printf("ready")
	stream := func(i int) string { return fmt.Sprintf("s%d", i) }

	for w := range 4 { // appenders
		go func() {
			rng := rand.New(rand.NewPCG(uint64(iter), uint64(w)))
			for n := 0; ; n++ {
				s := stream(rng.IntN(crashStreams))
				k := 1 + rng.IntN(4)
				items := make([]Item, k)
				kinds := make([]byte, k)
				for i := range items {
					kind, pad := LogKind, strings.Repeat("x", rng.IntN(2000))
					if rng.IntN(8) == 0 {
						kind, pad = "status", ""
					}
					p, _ := json.Marshal(crashPayload{iter, w, n, i, pad})
					items[i] = Item{Kind: kind, Payload: p}
					kinds[i] = kind[0]
				}
				first, err := j.Append(ctx, s, items...)
				if err != nil {
					crashFail("append: %v", err)
				}
				out.printf("A %s %d %d %d %d %s", s, first, k, iter, w, kinds)
			}
		}()
	}
	go func() { // acker; every other run is an outage: nothing is delivered
		rng := rand.New(rand.NewPCG(uint64(iter), 100))
		for iter%2 == 1 {
			time.Sleep(time.Second)
		}
		for {
			s := stream(rng.IntN(crashStreams))
			info, ok, err := j.Stream(ctx, s)
			if err != nil {
				crashFail("stream: %v", err)
			}
			if ok && info.LastSeq > info.Acked {
				upto := info.Acked + 1 + rng.Uint64N(info.LastSeq-info.Acked)
				if err := j.Ack(ctx, s, upto); err != nil {
					crashFail("ack: %v", err)
				}
				out.printf("K %s %d", s, upto)
			}
			time.Sleep(time.Duration(rng.IntN(500)) * time.Microsecond)
		}
	}()
	go func() { // records
		rng := rand.New(rand.NewPCG(uint64(iter), 200))
		versions := map[string]int{}
		for {
			id := fmt.Sprintf("it%d-r%d", iter, rng.IntN(8))
			versions[id]++
			if err := j.PutRecord(ctx, "run", id, map[string]int{"v": versions[id]}); err != nil {
				crashFail("put record: %v", err)
			}
			out.printf("R %s %d", id, versions[id])
		}
	}()
	go func() { // streams that complete, close and get delivered
		for k := 0; ; k++ {
			s := fmt.Sprintf("c-%d-%d", iter, k)
			if _, err := j.Append(ctx, s, logItem("one"), logItem("two")); err != nil {
				crashFail("append: %v", err)
			}
			if _, err := j.Append(ctx, s, Item{Kind: "complete", Payload: json.RawMessage(`{"exitCode":0}`)}); err != nil {
				crashFail("append: %v", err)
			}
			if err := j.CloseStream(ctx, s); err != nil {
				crashFail("close: %v", err)
			}
			out.printf("C %s 3", s)
			if err := j.Ack(ctx, s, 3); err != nil {
				crashFail("ack: %v", err)
			}
			out.printf("K %s 3", s)
		}
	}()
	go func() { // pruner
		for {
			if _, err := j.Prune(ctx); err != nil {
				crashFail("prune: %v", err)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	time.Sleep(time.Minute)
	return 3 // never killed
}

func TestCrashConsistency(t *testing.T) {
	iterations := *crashIterations
	if testing.Short() {
		iterations = min(iterations, 10)
	}
	seed := *crashSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("%d iterations, -crash.seed=%d", iterations, seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	path := filepath.Join(t.TempDir(), "journal.db")
	counts := map[byte]int{}
	dropped := 0 // durable appends found dropped into markers
	for it := range iterations {
		killAfter := time.Duration(5+rng.IntN(400)) * time.Millisecond
		lines := runCrashChild(t, path, it, killAfter)
		for _, l := range lines {
			counts[l[0]]++
		}
		dropped += checkAfterCrash(t, path, it, lines)
		if t.Failed() {
			t.Fatalf("iteration %d (killed after %v)", it, killAfter)
		}
	}
	t.Logf("durable writes seen: %d appends, %d acks, %d records, %d closes; %d items found dropped into markers",
		counts['A'], counts['K'], counts['R'], counts['C'], dropped)
	j, err := Open(path, crashOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	ss, err := j.Streams(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var droppedAll, closed int64
	for _, s := range ss {
		droppedAll += s.DroppedItems
		if s.Closed {
			closed++
		}
	}
	u, _ := j.Usage(context.Background())
	t.Logf("at the end: %d streams (%d closed), %d items, %d log items dropped into markers, %d of %d bytes used, file %d bytes",
		len(ss), closed, u.Items, droppedAll, u.Used, u.Budget, u.FileSize)
	if counts['A'] == 0 || counts['K'] == 0 || counts['R'] == 0 || counts['C'] == 0 {
		t.Errorf("the child did not get to write everything: %v", counts)
	}
}

// runCrashChild starts the child, kills it killAfter after it is ready and
// returns the complete lines it printed.
func runCrashChild(t *testing.T, path string, it int, killAfter time.Duration) []string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path, fmt.Sprintf("%s=%d", crashIterEnv, it))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(stdout)
	ready := make(chan error, 1)
	go func() {
		l, err := r.ReadString('\n')
		if err == nil && l != "ready\n" {
			err = fmt.Errorf("first line %q", l)
		}
		ready <- err
	}()
	select {
	case err := <-ready:
		if err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("child: %v; stderr:\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child not ready; stderr:\n%s", stderr.String())
	}
	time.Sleep(killAfter)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(r)
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, not by SIGKILL; stderr:\n%s", err, stderr.String())
	}
	lines := strings.Split(string(rest), "\n")
	return lines[:len(lines)-1] // the last one is incomplete or empty
}

// checkAfterCrash reopens the journal and checks it against what the child
// reported durable.
func checkAfterCrash(t *testing.T, path string, it int, lines []string) (markers int) {
	t.Helper()
	ctx := context.Background()
	j, err := Open(path, crashOptions()...)
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer j.Close()
	if err := verify(j); err != nil {
		t.Fatalf("after kill: %v", err)
	}
	type streamView struct {
		info  StreamInfo
		ok    bool
		items []StoredItem
		bySeq map[uint64]*StoredItem
	}
	views := map[string]*streamView{}
	view := func(s string) *streamView {
		if v, ok := views[s]; ok {
			return v
		}
		v := &streamView{bySeq: map[uint64]*StoredItem{}}
		var err error
		if v.info, v.ok, err = j.Stream(ctx, s); err != nil {
			t.Fatal(err)
		}
		if v.items, err = j.Read(ctx, s, 0, 0); err != nil {
			t.Fatal(err)
		}
		for i := range v.items {
			v.bySeq[v.items[i].Seq] = &v.items[i]
		}
		views[s] = v
		return v
	}
	// No item is there twice (the appenders' streams keep all iterations).
	seen := map[crashPayload]uint64{}
	for s := range crashStreams {
		for _, item := range view(fmt.Sprintf("s%d", s)).items {
			if item.Kind == MarkerKind {
				continue
			}
			var p crashPayload
			if err := json.Unmarshal(item.Payload, &p); err != nil {
				t.Fatalf("s%d seq %d: %v", s, item.Seq, err)
			}
			p.Pad = ""
			if prev, dup := seen[p]; dup {
				t.Fatalf("s%d: %+v at seq %d and %d", s, p, prev, item.Seq)
			}
			seen[p] = item.Seq
		}
	}
	for _, l := range lines {
		f := strings.Fields(l)
		num := func(i int) uint64 {
			n, err := strconv.ParseUint(f[i], 10, 64)
			if err != nil {
				t.Fatalf("line %q: %v", l, err)
			}
			return n
		}
		switch f[0] {
		case "A": // A stream first count iter writer kinds
			v := view(f[1])
			first, count, w := num(2), num(3), num(5)
			if !v.ok {
				t.Fatalf("%q: stream is gone", l)
			}
			for i := range count {
				seq := first + i
				kind := f[6][i]
				if seq > v.info.LastSeq {
					t.Fatalf("%q: seq %d beyond the stream's last %d", l, seq, v.info.LastSeq)
				}
				if item := v.bySeq[seq]; item != nil && item.Kind != MarkerKind {
					var p crashPayload
					json.Unmarshal(item.Payload, &p)
					if item.Kind[0] != kind || p.It != it || p.W != int(w) || p.I != int(i) {
						t.Fatalf("%q: seq %d holds %s %s", l, seq, item.Kind, item.Payload[:min(len(item.Payload), 40)])
					}
					continue
				}
				// Not there under its own key: dropped into a marker (logs
				// only), or delivered and pruned.
				k := sort.Search(len(v.items), func(x int) bool { return v.items[x].LastSeq >= seq })
				if k < len(v.items) && v.items[k].Seq <= seq {
					if v.items[k].Kind != MarkerKind || kind != 'l' {
						t.Fatalf("%q: seq %d is inside %+v", l, seq, v.items[k])
					}
					markers++
					continue
				}
				if seq > v.info.Acked {
					t.Fatalf("%q: undelivered seq %d is missing (acked %d)", l, seq, v.info.Acked)
				}
			}
		case "K": // K stream upto
			v := view(f[1])
			if !v.ok {
				if !strings.HasPrefix(f[1], "c-") {
					t.Fatalf("%q: stream is gone", l)
				}
				continue
			}
			if v.info.Acked < num(2) {
				t.Fatalf("%q: cursor is at %d", l, v.info.Acked)
			}
		case "R": // R id version
			var rec map[string]uint64
			ok, err := j.GetRecord(ctx, "run", f[1], &rec)
			if err != nil || !ok || rec["v"] < num(2) {
				t.Fatalf("%q: record %v %v %v", l, rec, ok, err)
			}
		case "C": // C stream last
			v := view(f[1])
			if v.ok && (!v.info.Closed || v.info.LastSeq != num(2)) {
				t.Fatalf("%q: %+v", l, v.info)
			}
		default:
			t.Fatalf("unexpected line %q", l)
		}
	}
	return markers
}
