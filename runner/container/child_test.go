package container_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"

	"github.com/cronium/cronium-agent/cni"
	"github.com/cronium/cronium-agent/internal/testenv"
	"github.com/cronium/cronium-agent/runner/container"
	"github.com/cronium/cronium-agent/runner/output"
)

// childEnv makes the test binary a separate agent process that runs one
// job (described by the JSON file it names) until a test kills it.
const childEnv = "CRONIUM_TEST_RUN_CHILD"

// childSpec is what a child runs and where it reports.
type childSpec struct {
	StateDir string
	Request  container.Request
	// Entries gets a line "<seq> <out|err> <data>" per entry the child received.
	Entries string
	// Started gets the StartedAt of PhaseStarting.
	Started string
	// HoldStart makes the child wait at PhaseStarting, never starting the task.
	HoldStart bool
	// Warm, when positive, makes the child keep that many warm sandboxes
	// for jobs like Request (whose ids go to Made, one per line) and run
	// nothing.
	Warm int
	Made string
}

// runChild is the child's main.
func runChild(specPath string) int {
	if err := child(specPath); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	return 0
}

func child(specPath string) error {
	data, err := os.ReadFile(specPath)
	if err != nil {
		return err
	}
	var spec childSpec
	if err := json.Unmarshal(data, &spec); err != nil {
		return err
	}
	client, err := containerd.New(testenv.Address(), containerd.WithDefaultNamespace(testenv.Namespace), containerd.WithTimeout(3*time.Second))
	if err != nil {
		return err
	}
	defer client.Close()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var opts []container.Option
	if spec.Warm > 0 {
		made, err := os.OpenFile(spec.Made, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		defer made.Close()
		opts = append(opts, container.WithWarmPool(container.WarmPool{Size: spec.Warm, OnMade: func(id string) { made.WriteString(id + "\n") }}))
	}
	a, err := newAgent(client, spec.StateDir, "child.db", false, log, opts...)
	if err != nil {
		return err
	}
	defer a.store.Close()
	if spec.Warm > 0 {
		if err := a.ex.Prewarm(context.Background(), spec.Request); err != nil {
			return err
		}
		time.Sleep(time.Hour) // until the test kills this process
	}
	entries, err := os.OpenFile(spec.Entries, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer entries.Close()
	req := spec.Request
	req.OnPhase = func(p container.Phase, at time.Time) error {
		if p != container.PhaseStarting {
			return nil
		}
		if err := writeAtomic(spec.Started, at.Format(time.RFC3339Nano)); err != nil {
			return err
		}
		if spec.HoldStart {
			time.Sleep(time.Hour) // until the test kills this process
		}
		return nil
	}
	res, err := a.ex.Run(context.Background(), req, func(e output.Entry) {
		// One write per entry: a kill leaves whole lines, or a torn last one.
		entries.Write([]byte(fmt.Sprintf("%d %s %s\n", e.Seq, streamName(e.Stream), e.Data)))
	})
	return fmt.Errorf("the run ended before the test killed this process: %+v, %v", res, err)
}

func writeAtomic(path, content string) error {
	if err := os.WriteFile(path+".tmp", []byte(content), 0o644); err != nil {
		return err
	}
	return os.Rename(path+".tmp", path)
}

// childRun is a child process running one job.
type childRun struct {
	cmd    *exec.Cmd
	spec   childSpec
	stderr testenv.Buffer
	exited chan struct{}
}

// startChild runs req in a child process on the harness's state directory.
func (h *harness) startChild(t *testing.T, req container.Request, holdStart bool) *childRun {
	t.Helper()
	return h.child(t, req, func(s *childSpec) { s.HoldStart = holdStart })
}

// startWarmChild starts a child that keeps n warm sandboxes for jobs like
// req and runs nothing.
func (h *harness) startWarmChild(t *testing.T, req container.Request, n int) *childRun {
	t.Helper()
	return h.child(t, req, func(s *childSpec) { s.Warm = n })
}

func (h *harness) child(t *testing.T, req container.Request, set func(*childSpec)) *childRun {
	t.Helper()
	h.track(req.RunID)
	dir := t.TempDir()
	c := &childRun{spec: childSpec{
		StateDir: h.stateDir, Request: req,
		Entries: filepath.Join(dir, "entries"), Started: filepath.Join(dir, "started"), Made: filepath.Join(dir, "made"),
	}, exited: make(chan struct{})}
	set(&c.spec)
	specPath := filepath.Join(dir, "spec.json")
	writeJSON(t, specPath, c.spec)
	c.cmd = exec.Command(os.Args[0])
	c.cmd.Env = append(os.Environ(), childEnv+"="+specPath)
	c.cmd.Stderr = &c.stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = c.cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(func() {
		c.kill()
		if t.Failed() {
			t.Logf("child's log:\n%s", c.stderr.String())
		}
	})
	return c
}

// killAfter runs req in a child, kills the child once it received n
// entries and keeps the run locked (holdLocks) until release. It returns
// the run's StartedAt as the child journaled it.
func (h *harness) killAfter(t *testing.T, req container.Request, n int) (c *childRun, startedAt time.Time, release func()) {
	t.Helper()
	c = h.startChild(t, req, false)
	c.waitEntries(t, n)
	startedAt = c.startedAt(t)
	c.kill()
	return c, startedAt, h.holdLocks(t, req.RunID)
}

// kill ends the child as the kernel would kill an agent: SIGKILL.
func (c *childRun) kill() {
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.exited
}

// waitFor polls cond until it holds; the child ending first, or a minute
// passing, fails the test.
func (c *childRun) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		select {
		case <-c.exited:
			t.Fatalf("the child ended while waiting for %s:\n%s", what, c.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s after a minute:\n%s", what, c.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitEntries waits until the child received at least n entries.
func (c *childRun) waitEntries(t *testing.T, n int) {
	t.Helper()
	c.waitFor(t, fmt.Sprintf("%d entries", n), func() bool { return len(c.entries(t)) >= n })
}

// entries are the entries the child received: each complete line of its file.
func (c *childRun) entries(t *testing.T) []seqLine {
	t.Helper()
	data, err := os.ReadFile(c.spec.Entries)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []seqLine
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		seq, rest, _ := strings.Cut(sc.Text(), " ")
		stream, text, _ := strings.Cut(rest, " ")
		n, err := strconv.ParseUint(seq, 10, 64)
		if err != nil {
			t.Fatalf("child entry %q", sc.Text())
		}
		out = append(out, seqLine{n, stream, text})
	}
	if len(data) > 0 && data[len(data)-1] != '\n' && len(out) > 0 {
		out = out[:len(out)-1] // torn by the kill: not received
	}
	return out
}

// startedAt waits for and returns the run's StartedAt as the child journaled it.
func (c *childRun) startedAt(t *testing.T) time.Time {
	t.Helper()
	var at time.Time
	c.waitFor(t, "start time", func() bool {
		data, err := os.ReadFile(c.spec.Started)
		if err != nil {
			return false
		}
		at, err = time.Parse(time.RFC3339Nano, string(data))
		if err != nil {
			t.Fatal(err)
		}
		return true
	})
	return at
}

// seqLine is one output entry: its seq, stream and text.
type seqLine struct {
	seq    uint64
	stream string // out or err
	text   string
}

func lineOf(e output.Entry) seqLine {
	return seqLine{e.Seq, streamName(e.Stream), string(e.Data)}
}

func streamName(s output.Stream) string {
	if s == output.Stderr {
		return "err"
	}
	return "out"
}

// holdLocks keeps a dead child's run and network locked, as if its agent
// still lived, until release: a gc or network sweep by any other agent on
// this host (tests of other packages run meanwhile) would otherwise take
// them for abandoned while the test plays the agent that is down.
func (h *harness) holdLocks(t *testing.T, runID string) (release func()) {
	t.Helper()
	var held []*os.File
	for _, p := range []string{
		filepath.Join(h.stateDir, "runs", runID, "lock"),
		filepath.Join(cni.DefaultConfig().StateDir, "nets", strings.TrimPrefix(runID, "cronium-")+".lock"),
	} {
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			continue // not made (yet): nothing to keep
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			t.Fatal(err)
		}
		held = append(held, f)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			for _, f := range held {
				f.Close()
			}
		})
	}
	t.Cleanup(release)
	return release
}
