package sshexec

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/cronium/cronium-agent/runner/sshconn"
	"github.com/cronium/cronium-agent/runner/sshexec/sshworker"
	"github.com/cronium/cronium-agent/runtimes"
)

// A worker is the helper program serving the runs of one connection
// (sshworker): where the helper program is installed, a run costs the
// server its interpreter and nothing else, where the shell path costs it
// a dozen short processes. It is started in a session of its own the
// first time a connection runs a job, and ends with the connection.

// workerStart bounds the worker's start (its hello).
const workerStart = 10 * time.Second

// workerConn is the worker of one connection.
type workerConn struct {
	started chan struct{} // closed once start has ended, well or not
	err     error         // why it could not start

	mu   sync.Mutex // next, runs, dead
	next uint32
	runs map[uint32]*workerRun
	dead error
	// in is written under inMu alone: a write that waits for the
	// channel's window must not hold up the frames being read.
	inMu sync.Mutex
	in   io.WriteCloser
}

// workerRun is one run on a worker, as its frames arrive.
type workerRun struct {
	ready  chan error // the prepare's answer
	stdout io.Writer
	stderr io.Writer
	// done gets nil with status and final set (Exit), nil alone
	// (NoStatus), or the worker's end.
	done   chan error
	status int
	final  bool
}

// worker returns the worker of lease's connection, starting it if need
// be; nil when the server has no helper program or the worker cannot
// run there (the shell path then runs the job).
func (x *Executor) worker(ctx context.Context, lease *sshconn.Lease, ep sshconn.Endpoint) *workerConn {
	rel := x.helperPath()
	if rel == "" || x.workerless(ep) {
		return nil
	}
	if v, ok := x.helperOK.Load(ep.String() + "/" + rel); !ok || v.(string) != "" {
		return nil
	}
	client := lease.Client()
	x.wmu.Lock()
	w, ok := x.workers[client]
	if !ok || w.gone() {
		w = &workerConn{started: make(chan struct{}), runs: map[uint32]*workerRun{}}
		x.workers[client] = w
		go x.startWorker(w, lease, client, ep, rel)
	}
	x.wmu.Unlock()
	select {
	case <-w.started:
	case <-ctx.Done():
		return nil
	}
	if w.err != nil {
		return nil
	}
	return w
}

// workerless: a worker failed to start on ep (it is not tried again
// there until the agent restarts).
func (x *Executor) workerless(ep sshconn.Endpoint) bool {
	_, no := x.noWorker.Load(ep.String())
	return no
}

func (x *Executor) startWorker(w *workerConn, lease *sshconn.Lease, client *ssh.Client, ep sshconn.Endpoint, rel string) {
	defer close(w.started)
	fail := func(err error, lasting bool) {
		w.err = err
		w.dead = err
		if lasting {
			x.noWorker.Store(ep.String(), true)
			x.log.Warn("the SSH worker does not run on this server; its jobs take the shell path (slower)", "server", ep.String(), "error", err)
		}
		x.wmu.Lock()
		if x.workers[client] == w {
			delete(x.workers, client)
		}
		x.wmu.Unlock()
	}
	s, err := client.NewSession()
	if err != nil {
		// The session limit, or the connection gone: not the server's
		// fault, try again with the next run.
		fail(fmt.Errorf("open a session: %w", err), false)
		return
	}
	in, err := s.StdinPipe()
	if err != nil {
		s.Close()
		fail(err, false)
		return
	}
	out, err := s.StdoutPipe()
	if err != nil {
		s.Close()
		fail(err, false)
		return
	}
	stderr := &limitedBuffer{max: 16 << 10}
	s.Stderr = stderr
	// setsid -w: a session of its own, so that the worker, which is its
	// runs' parent, outlives this SSH session as run.sh does on the shell
	// path; -w keeps the session's command until the worker ends.
	if err := s.Start(`exec setsid -w "$HOME/` + rel + `" ` + sshworker.Command); err != nil {
		s.Close()
		fail(err, false)
		return
	}
	hello := make(chan error, 1)
	go func() {
		f, err := sshworker.ReadFrame(out)
		if err == nil && (f.Type != sshworker.Ready || f.Run != 0) {
			err = fmt.Errorf("unexpected first frame %q", f.Type)
		}
		hello <- err
	}()
	select {
	case err = <-hello:
	case <-time.After(workerStart):
		err = errors.New("no hello within " + workerStart.String())
	}
	if err != nil {
		s.Close()
		fail(fmt.Errorf("%w (%s)", err, stderr.String()), !isDead(lease))
		return
	}
	w.in = in
	go w.read(out, func(err error) {
		_ = s.Close()
		if msg := stderr.String(); msg != "" {
			x.log.Warn("the SSH worker ended", "server", ep.String(), "error", err, "stderr", msg)
		}
		x.wmu.Lock()
		if x.workers[client] == w {
			delete(x.workers, client)
		}
		x.wmu.Unlock()
	})
}

func isDead(l *sshconn.Lease) bool {
	select {
	case <-l.Dead():
		return true
	default:
		return false
	}
}

// read takes the worker's frames to their runs until it ends, then ends
// every run it had with the reason.
func (w *workerConn) read(out io.Reader, ended func(error)) {
	var err error
	for {
		var f sshworker.Frame
		if f, err = sshworker.ReadFrame(out); err != nil {
			break
		}
		w.mu.Lock()
		r := w.runs[f.Run]
		w.mu.Unlock()
		if r == nil {
			continue
		}
		switch f.Type {
		case sshworker.Ready:
			tell(r.ready, nil)
		case sshworker.Failed:
			w.forget(f.Run)
			tell(r.ready, errors.New(string(f.Payload)))
		case sshworker.Stdout:
			_, _ = r.stdout.Write(f.Payload)
		case sshworker.Stderr:
			_, _ = r.stderr.Write(f.Payload)
		case sshworker.Exit:
			w.forget(f.Run)
			st, serr := sshworker.ExitStatus(f.Payload)
			r.status, r.final = st, true
			tell(r.done, serr)
		case sshworker.NoStatus:
			w.forget(f.Run)
			tell(r.done, nil)
		}
	}
	if errors.Is(err, io.EOF) {
		err = errors.New("the worker's session ended")
	}
	ended(err)
	w.mu.Lock()
	w.dead = err
	runs := w.runs
	w.runs = nil
	w.mu.Unlock()
	for _, r := range runs {
		tell(r.ready, &linkError{err})
		tell(r.done, &linkError{err})
	}
}

// tell sends err unless c has one waiting (its capacity is one): the
// first answer is the one that counts.
func tell(c chan error, err error) {
	select {
	case c <- err:
	default:
	}
}

func (w *workerConn) gone() bool {
	select {
	case <-w.started:
	default:
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.dead != nil
}

func (w *workerConn) forget(id uint32) {
	w.mu.Lock()
	delete(w.runs, id)
	w.mu.Unlock()
}

// add registers a run; its frames go to stdout and stderr.
func (w *workerConn) add(stdout, stderr io.Writer) (uint32, *workerRun, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.dead != nil {
		return 0, nil, &linkError{w.dead}
	}
	w.next++
	r := &workerRun{ready: make(chan error, 1), done: make(chan error, 1), stdout: stdout, stderr: stderr}
	w.runs[w.next] = r
	return w.next, r, nil
}

// send writes one frame to the worker.
func (w *workerConn) send(typ byte, id uint32, payload []byte) error {
	w.mu.Lock()
	dead := w.dead
	w.mu.Unlock()
	if dead != nil {
		return &linkError{dead}
	}
	w.inMu.Lock()
	defer w.inMu.Unlock()
	if err := sshworker.WriteFrame(w.in, sshworker.Frame{Type: typ, Run: id, Payload: payload}); err != nil {
		return &linkError{err}
	}
	return nil
}

// firstOnWorker is first (the run's first session) on the connection's
// worker: prepare, journal the start, go; the channel gets what a
// follow's does.
func (r *remoteRun) firstOnWorker(ctx context.Context, w *workerConn, rt runtimes.Runtime, files []upload) (<-chan error, time.Time, error) {
	id, wr, err := w.add(r.streamWriter(0), r.streamWriter(1))
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("prepare the run on %s: %w", r.ep, err)
	}
	p := sshworker.PrepareRun{Dir: r.runID, Interpreter: rt.Interpreter[0], Args: append([]string{rt.ScriptName}, rt.Interpreter...)}
	for _, f := range files {
		p.Files = append(p.Files, sshworker.File{Name: f.name, Data: f.data})
	}
	payload, err := json.Marshal(p)
	if err == nil {
		err = w.send(sshworker.Prepare, id, payload)
	}
	if err == nil {
		select {
		case err = <-wr.ready:
		case <-ctx.Done():
			err = context.Cause(ctx)
		}
	}
	if err != nil {
		w.forget(id)
		_ = w.send(sshworker.Abandon, id, nil)
		return nil, time.Time{}, fmt.Errorf("prepare the run on %s: %w", r.ep, err)
	}
	start := time.Now()
	if err := r.started(start); err != nil {
		w.forget(id)
		_ = w.send(sshworker.Abandon, id, nil)
		return nil, time.Time{}, err
	}
	r.launched.Store(true)
	done := make(chan error, 1)
	// A failed go is a connection gone: the follow after the
	// reconnection launches the run.
	if err := w.send(sshworker.Go, id, nil); err != nil {
		w.forget(id)
		done <- err
		return done, start, nil
	}
	go func() {
		err := <-wr.done
		if err == nil && wr.final {
			r.final, r.hasFinal = wr.status, true
		}
		done <- err
	}()
	return done, start, nil
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	mu  sync.Mutex
	b   bytes.Buffer
	max int
}

func (l *limitedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(bytes.TrimSpace(l.b.Bytes()))
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if room := l.max - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
