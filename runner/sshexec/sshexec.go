// Package sshexec runs script jobs on remote servers over SSH: the
// executor of runner.TargetServer.
//
// A run is launched detached on the server (setsid) with its output going
// to files of a private work directory, and followed from there over SSH
// (remote.go): a dropped connection is dialled again and the output goes
// on from the byte it stopped at; a restarted agent adopts the run from
// the journal and reads the files again (the runner skips what it
// journaled already). The runtime API reaches the script through a remote
// port forward on the server's loopback, to the same per-execution API
// containers use.
package sshexec

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/cronium/cronium-agent/backend/api"
	"github.com/cronium/cronium-agent/runner"
	"github.com/cronium/cronium-agent/runner/output"
	"github.com/cronium/cronium-agent/runner/sshconn"
	"github.com/cronium/cronium-agent/runtimes"
	"github.com/cronium/cronium-agent/runtimes/helpers"
	"github.com/cronium/cronium-agent/sidecar"
)

// Credentials fetches a server's details when a job names it without
// them (§6 servers/{id}/credentials).
type Credentials interface {
	ServerCredentials(ctx context.Context, serverID string) (*api.Server, error)
}

// Option configures an Executor.
type Option func(*Executor)

// WithRuntimeAPI serves each run the runtime API through a remote forward.
func WithRuntimeAPI(s *sidecar.Server) Option { return func(x *Executor) { x.api = s } }

// WithCredentials fetches the details of servers jobs name without them.
func WithCredentials(c Credentials) Option { return func(x *Executor) { x.creds = c } }

// WithHelperProgram uploads the program at path (the agent binary, run as
// `cronium`) to servers of its architecture, once per server and version,
// for the bash helpers; without it bash helpers fail with a clear message.
func WithHelperProgram(path string) Option { return func(x *Executor) { x.helperBin = path } }

// WithWorker says whether runs take the worker where the helper program
// is installed (default true); without it every run takes the shell path:
// a dozen short processes on the server per run, where the worker starts
// only the interpreter.
func WithWorker(on bool) Option { return func(x *Executor) { x.useWorker = on } }

// WithParallel bounds the servers of a multi-server job run at once
// (default 8).
func WithParallel(n int) Option { return func(x *Executor) { x.parallel = n } }

// WithStopGrace sets the wait between SIGTERM and SIGKILL (default 10 s).
func WithStopGrace(d time.Duration) Option { return func(x *Executor) { x.grace = d } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(x *Executor) { x.log = l } }

// Executor runs script jobs on SSH servers. It implements runner.Executor.
type Executor struct {
	pool      *sshconn.Pool
	policy    runner.Policy
	api       *sidecar.Server
	creds     Credentials
	helperBin string
	arch      string // `uname -m` of the servers the helper program runs on
	useWorker bool
	grace     time.Duration
	parallel  int
	log       *slog.Logger

	wmu      sync.Mutex
	workers  map[*ssh.Client]*workerConn
	noWorker sync.Map // endpoints where no worker runs

	helperOnce sync.Once
	helperOK   sync.Map // "user@host:port/path" → "" (it is there) or why it cannot be
	helperSum  string
	helperErr  error
}

// New returns an executor that connects through pool under policy
// (timeouts).
func New(pool *sshconn.Pool, policy runner.Policy, opts ...Option) *Executor {
	x := &Executor{pool: pool, policy: policy, grace: 10 * time.Second, parallel: 8, log: slog.Default(), arch: goArchMachine(), useWorker: true, workers: map[*ssh.Client]*workerConn{}}
	for _, o := range opts {
		o(x)
	}
	return x
}

var _ runner.Executor = (*Executor)(nil)

// remoteRun is one run on a server, as the agent follows it.
type remoteRun struct {
	x       *Executor
	a       *runner.Attempt
	k       *sink
	ep      sshconn.Endpoint
	runID   string
	execID  string
	timeout time.Duration
	exec    sidecar.Execution
	// started journals the script's start (the attempt's, or its
	// server's execution's).
	started func(at time.Time) error

	lease   *sshconn.Lease
	apiSess *sidecar.Session
	apiPort int

	// launch is the launcher's arguments, for the follow to start it if it
	// is not yet (never set when adopting: a run is launched only once).
	launch   string
	launched atomic.Bool

	mu      sync.Mutex // the offsets, the line cutters and handedOver
	streams [2]*lines
	offsets [2]int64
	// handedOver: the run is left to the next agent process; what the
	// sessions still bring is dropped (that agent reads it again).
	handedOver bool

	// final is the script's exit status when a follow ended with it
	// (and removed the work directory).
	final    int
	hasFinal bool
}

// sink is where a run's output and the agent's lines about it go: the
// attempt, which takes one call at a time (mu is shared by the servers of
// a multi-server attempt), with each line prefixed by its server's name
// and kept for its own execution when there are several.
type sink struct {
	mu     *sync.Mutex
	a      *runner.Attempt
	prefix string
	keep   bool
	// src is the server's index in a multi-server job (-1: the only one).
	src    int
	stdout strings.Builder
	stderr strings.Builder
}

// keepMax bounds what a server's execution row keeps of each stream.
const keepMax = 1 << 20

func (k *sink) entry(e output.Entry) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.prefix != "" {
		e.Data = append([]byte(k.prefix), e.Data...)
	}
	if k.keep {
		b := &k.stdout
		if e.Stream == output.Stderr {
			b = &k.stderr
		}
		if b.Len() < keepMax {
			b.Write(e.Data)
			if !e.Fragment {
				b.WriteByte('\n')
			}
		}
	}
	if k.src >= 0 {
		k.a.OutputFrom(k.src, e)
		return
	}
	k.a.Output(e)
}

// system logs one of the agent's lines about the run.
func (k *sink) system(line string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.a.System(k.prefix + line)
}

// say logs it and adds it to the completion's stderr too.
func (k *sink) say(line string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.a.System(k.prefix + line)
	k.a.Stderr("cronium-agent: " + k.prefix + line + "\n")
	if k.keep {
		k.stderr.WriteString("cronium-agent: " + line + "\n")
	}
}

func (x *Executor) newRun(a *runner.Attempt, ep sshconn.Endpoint, k *sink, execID, runID string, started func(time.Time) error) *remoteRun {
	sj := runner.ScriptJob(a.Job)
	timeout := x.policy.Timeout(a.Job.Timeout)
	r := &remoteRun{x: x, a: a, k: k, ep: ep, runID: runID, execID: execID, timeout: timeout,
		exec: sj.Execution(execID, a.Start, timeout), started: started}
	for i, s := range []output.Stream{output.Stdout, output.Stderr} {
		r.streams[i] = &lines{stream: s, emit: k.entry}
	}
	return r
}

// target is one server of a job, with what its run is named by.
type target struct {
	srv    api.Server
	execID string
	runID  string
}

// targets are the servers the job runs on: all of metadata.servers for a
// multi-server job (§2.1; the first is the attempt's own execution),
// else its one target.
func (x *Executor) targets(ctx context.Context, a *runner.Attempt) ([]target, error) {
	job := a.Job
	if m := job.Metadata; m.MultiServer && len(m.Servers) > 1 {
		out := make([]target, len(m.Servers))
		for i, srv := range m.Servers {
			out[i] = target{srv: srv, execID: runner.ServerExecutionID(job.ID, srv.ID, a.Start), runID: a.RunID + "-" + strconv.Itoa(i)}
		}
		out[0].execID = a.ExecutionID
		return out, nil
	}
	srv, err := x.server(ctx, job)
	if err != nil {
		return nil, err
	}
	return []target{{srv: srv, execID: a.ExecutionID, runID: a.RunID}}, nil
}

// server is the job's one server, fetched when the job names it only.
func (x *Executor) server(ctx context.Context, job *api.Job) (api.Server, error) {
	srv := job.Target.Server
	if srv == nil && len(job.Metadata.Servers) > 0 {
		srv = &job.Metadata.Servers[0]
	}
	if srv == nil || srv.Host == "" {
		if job.Target.ServerID == "" || x.creds == nil {
			return api.Server{}, fmt.Errorf("the job names no server to run on")
		}
		got, err := x.creds.ServerCredentials(ctx, job.Target.ServerID)
		if err != nil {
			return api.Server{}, fmt.Errorf("fetch the details of server %s: %w", job.Target.ServerID, err)
		}
		srv = got
	}
	return *srv, nil
}

func endpoint(srv api.Server) (sshconn.Endpoint, error) {
	if srv.PrivateKey == "" && srv.Password == "" {
		return sshconn.Endpoint{}, fmt.Errorf("server %s (%s) has neither a private key nor a password in the job", srv.ID, srv.Name)
	}
	return sshconn.Endpoint{Name: srv.Name, Host: srv.Host, Port: srv.Port, User: srv.Username,
		PrivateKey: []byte(srv.PrivateKey), Password: srv.Password}, nil
}

// HandsOver implements runner.HandsOver: a run goes on on its server
// without the agent (in a session of its own), and writes its status there.
func (x *Executor) HandsOver() bool { return true }

// Run implements runner.Executor.
func (x *Executor) Run(ctx context.Context, a *runner.Attempt) runner.Result {
	return x.attempt(ctx, a, false)
}

// Adopt implements runner.Executor: each run is found again by its work
// directory, its output read again from the start.
func (x *Executor) Adopt(ctx context.Context, a *runner.Attempt) runner.Result {
	a.Owned() // nothing of it is on this host for a sweep to take
	return x.attempt(ctx, a, true)
}

// attempt runs (or adopts) the attempt on its servers, several at once
// for a multi-server job, and sums their results up (§2.4).
func (x *Executor) attempt(ctx context.Context, a *runner.Attempt, adopt bool) runner.Result {
	targets, err := x.targets(ctx, a)
	if err != nil {
		return runner.NeverRan(a.Start, err)
	}
	if len(targets) == 1 {
		k := &sink{mu: &sync.Mutex{}, a: a, src: -1}
		return x.runOn(ctx, a, targets[0], k, a.Started, adopt)
	}
	var mu sync.Mutex
	results := make([]runner.Result, len(targets))
	sinks := make([]*sink, len(targets))
	sem := make(chan struct{}, max(1, x.parallel))
	var wg sync.WaitGroup
	// Every execution exists before any run starts: a hand-over waits
	// for all of them to start.
	created := make([]bool, len(targets))
	for i, t := range targets {
		if i == 0 || adopt {
			created[i] = true
			continue
		}
		if err := a.CreateExecution(t.execID, t.srv.ID, t.srv.Name); err != nil {
			results[i] = runner.NeverRan(a.Start, err)
			continue
		}
		created[i] = true
	}
	for i, t := range targets {
		name := t.srv.Name
		if name == "" {
			name = t.srv.ID
		}
		sinks[i] = &sink{mu: &mu, a: a, prefix: "[" + name + "] ", keep: true, src: i}
		if !created[i] {
			continue
		}
		started := a.Started
		if i > 0 {
			started = func(at time.Time) error { return a.ExecutionStarted(t.execID, at) }
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			results[i] = x.runOn(ctx, a, t, sinks[i], started, adopt)
		}()
	}
	wg.Wait()
	return x.sum(a, targets, results, sinks)
}

// sum makes the job's result of its servers' (§2.4): all completed →
// completed 0; all failed → failed; some → completed with 100 + the
// number that failed. Stopped runs (timeout, cancelled) stop the job so.
// Each server's execution gets its own end; the job's output ends with a
// line per server.
func (x *Executor) sum(a *runner.Attempt, targets []target, results []runner.Result, sinks []*sink) runner.Result {
	for _, r := range results {
		if r.HandedOver {
			// The next agent adopts every server's run, those that ended
			// too (their work directories stay until it journals them).
			return runner.HandedOver()
		}
	}
	var failed int
	var res runner.Result
	var summary strings.Builder
	summary.WriteString("servers:\n")
	for i, r := range results {
		t := targets[i]
		if !r.Start.IsZero() && (res.Start.IsZero() || r.Start.Before(res.Start)) {
			res.Start = r.Start
		}
		res.End = later(res.End, r.End)
		res.Cleaned = later(res.Cleaned, r.Cleaned)
		status := r.Status
		if r.NeverRan {
			sinks[i].say(r.Err)
		}
		if status != api.StatusCompleted {
			failed++
		}
		// A stopped server stops the job so: cancelled over timeout.
		if status == api.StatusCancelled || status == api.StatusTimeout && res.Status == "" {
			res.Status = status
		}
		if err := a.EndExecution(t.execID, r.Start, r, sinks[i].stdout.String(), sinks[i].stderr.String()); err != nil {
			x.log.Error("journaling the end of a server's execution failed", "execution", t.execID, "error", err)
		}
		fmt.Fprintf(&summary, "  %s (%s): %s, exit code %d\n", t.srv.Name, t.srv.ID, status, r.ExitCode)
	}
	a.Text(output.Stdout, []byte(summary.String()))
	var releases []func(context.Context)
	for _, r := range results {
		if r.Release != nil {
			releases = append(releases, r.Release)
		}
	}
	if len(releases) > 0 {
		res.Release = func(ctx context.Context) {
			var wg sync.WaitGroup
			for _, rel := range releases {
				wg.Go(func() { rel(ctx) })
			}
			wg.Wait()
		}
	}
	switch {
	case res.Status == api.StatusTimeout:
		res.ExitCode = runner.ExitTimeout
	case res.Status == api.StatusCancelled:
		res.ExitCode = runner.ExitCancelled
	case failed == 0:
		res.Status, res.ExitCode = api.StatusCompleted, 0
	case failed == len(results):
		res.Status, res.ExitCode = api.StatusFailed, 100+failed
	default:
		res.Status, res.ExitCode = api.StatusCompleted, 100+failed
	}
	if res.Start.IsZero() {
		res.Start = a.Start
	}
	return res
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// runOn runs (or adopts) the attempt on one server.
func (x *Executor) runOn(ctx context.Context, a *runner.Attempt, t target, k *sink, started func(time.Time) error, adopt bool) runner.Result {
	fail := func(err error) runner.Result { return runner.NeverRan(a.Start, err) }
	ep, err := endpoint(t.srv)
	if err != nil {
		return fail(err)
	}
	r := x.newRun(a, ep, k, t.execID, t.runID, started)
	if adopt {
		return r.adopt(ctx)
	}
	rt, err := runtimes.Lookup(a.Job.Script.Runtime)
	if err != nil {
		return fail(err)
	}
	if r.lease, err = x.pool.Get(ctx, ep); err != nil {
		return fail(err)
	}
	defer r.close()
	env := runner.ScriptEnv(runner.ScriptJob(a.Job), t.execID, "ssh")
	if err := r.serveAPI(ctx, 0); err != nil {
		r.sys("runtime API unavailable on this server: " + err.Error())
	} else {
		env["CRONIUM_RUNTIME_API"] = "http://127.0.0.1:" + strconv.Itoa(r.apiPort)
		env["CRONIUM_EXECUTION_TOKEN"] = r.apiSess.Token()
	}
	// Later follows (after a reconnection) launch it if the first did not.
	r.launch = launchArgs(rt.ScriptName, rt.Interpreter)
	helper, err := x.ensureHelper(ctx, r.lease, ep)
	if err != nil && rt.Name == "bash" {
		r.sys("the bash helpers will not work on this server: " + err.Error())
	}
	files := r.files(rt, env, helper)
	first, start, err := r.first(ctx, rt, files, helper != "")
	if err != nil {
		r.remove()
		return fail(err)
	}
	return r.follow(ctx, start, start.Add(r.timeout), first)
}

// first runs the run's first session: it writes the files, and once the
// agent has journaled the start, launches and follows the run. Its
// channel gets what a follow's does.
func (r *remoteRun) first(ctx context.Context, rt runtimes.Runtime, files []upload, helper bool) (<-chan error, time.Time, error) {
	if helper && r.x.useWorker {
		if w := r.x.worker(ctx, r.lease, r.ep); w != nil {
			return r.firstOnWorker(ctx, w, rt, files)
		}
	}
	s, err := r.lease.Client().NewSession()
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("prepare the run on %s: open an SSH session: %w", r.ep, err)
	}
	in, err := s.StdinPipe()
	if err != nil {
		s.Close()
		return nil, time.Time{}, err
	}
	ready := make(chan struct{})
	var pre bytes.Buffer // the upload's own stderr, until it is ready
	var preMu sync.Mutex
	s.Stdout = &readyWriter{ready: ready, launched: &r.launched, rest: r.streamWriter(0)}
	errOut := r.streamWriter(1)
	s.Stderr = writerFunc(func(p []byte) (int, error) {
		// The script's stderr comes after the go, which comes after the
		// ready line: what comes before is the upload's.
		if r.launched.Load() {
			return errOut.Write(p)
		}
		preMu.Lock()
		defer preMu.Unlock()
		if pre.Len() < 64<<10 {
			pre.Write(p)
		}
		return len(p), nil
	})
	cmd, stdin := firstCmd(r.runID, rt.Interpreter[0], files, r.launch)
	if err := s.Start(cmd); err != nil {
		s.Close()
		return nil, time.Time{}, fmt.Errorf("prepare the run on %s: %w", r.ep, err)
	}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		_, _ = io.Copy(in, stdin)
	}()
	waited := make(chan error, 1)
	go func() { waited <- s.Wait() }()
	done := make(chan error, 1)
	finish := func(err error) {
		done <- r.followEnded(err)
		s.Close()
	}
	select {
	case <-ready:
	case err := <-waited:
		s.Close()
		preMu.Lock()
		msg := strings.TrimSpace(pre.String())
		preMu.Unlock()
		if msg == "" {
			msg = fmt.Sprint(err)
		}
		return nil, time.Time{}, fmt.Errorf("prepare the run on %s: %s", r.ep, msg)
	case <-ctx.Done():
		s.Close()
		return nil, time.Time{}, context.Cause(ctx)
	}
	start := time.Now()
	if err := r.started(start); err != nil {
		in.Close() // no go: the server launches nothing
		<-waited
		s.Close()
		return nil, time.Time{}, err
	}
	// The files are read (the ready line came after them): the copy is
	// done writing, or about to return. A failed write is a connection
	// gone: the follow after the reconnection launches the run.
	<-copied
	_, _ = in.Write([]byte("g"))
	in.Close()
	go func() { finish(<-waited) }()
	return done, start, nil
}

// readyWriter takes the first session's stdout: the ready line, then the
// script's stdout.
type readyWriter struct {
	ready    chan struct{}
	launched *atomic.Bool
	seen     bool
	rest     io.Writer
}

func (w *readyWriter) Write(p []byte) (int, error) {
	n := len(p)
	if !w.seen {
		// The ready line says nothing but that it came (it named the
		// machine once; ensureHelper asks that now).
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			return n, nil
		}
		w.seen = true
		w.launched.Store(true)
		close(w.ready)
		p = p[i+1:]
	}
	if len(p) > 0 {
		if _, err := w.rest.Write(p); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// adopt takes over the run a previous agent process launched.
func (r *remoteRun) adopt(ctx context.Context) runner.Result {
	a := r.a
	if a.StartedAt.IsZero() {
		// Never launched (its start is journaled first): remove what was
		// uploaded, if the server answers.
		gctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		var err error
		if r.lease, err = r.x.pool.Get(gctx, r.ep); err == nil {
			r.remove()
			r.close()
		}
		return runner.Result{NotStarted: true}
	}
	defer r.close()
	// The server gets a while to answer even when the job's timeout passed
	// while no agent ran: the run may have ended well before it.
	deadline := a.StartedAt.Add(r.timeout)
	if err := r.reconnect(ctx, later(deadline, time.Now().Add(adoptReach))); err != nil {
		if runner.HandingOver(ctx) {
			return r.handOver()
		}
		return r.lost(a.StartedAt, err.Error())
	}
	out, err := session(ctx, r.lease, stateCmd(r.runID), nil)
	if err != nil {
		if runner.HandingOver(ctx) {
			return r.handOver()
		}
		return r.lost(a.StartedAt, "reading the run's state on "+r.ep.String()+": "+err.Error())
	}
	st := parseState(out)
	switch st.state {
	case "gone":
		return r.lost(a.StartedAt, "the run's work directory is gone from "+r.ep.String()+" (was the server restarted?)")
	case "ended":
		// Ended while no agent ran: its output is read whole, whatever
		// the time (a run still going past its timeout is stopped).
		deadline = later(deadline, time.Now().Add(adoptReach))
	}
	if st.port > 0 {
		if err := r.serveAPI(ctx, st.port); err != nil {
			r.sys("runtime API not served again after the restart: " + err.Error())
		}
	}
	return r.follow(ctx, a.StartedAt, deadline, nil)
}

// adoptReach is how long an adopted run's server gets to answer, and its
// ended run to be read, after the job's timeout.
const adoptReach = time.Minute

// sys and say: the sink's, for this run.
func (r *remoteRun) sys(line string) { r.k.system(line) }
func (r *remoteRun) say(line string) { r.k.say(line) }

// serveAPI forwards a port of the server's loopback (port, or any when 0)
// to the run's runtime API.
func (r *remoteRun) serveAPI(ctx context.Context, port int) error {
	if r.x.api == nil {
		return errors.New("the agent serves no runtime API")
	}
	if r.apiSess != nil {
		_ = r.apiSess.Close()
		r.apiSess = nil
	}
	ln, err := r.lease.Client().Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("the server refused to forward a port to the agent (AllowTcpForwarding?): %w", err)
	}
	sess, err := r.x.api.Start(context.WithoutCancel(ctx), r.exec, ln)
	if err != nil {
		_ = ln.Close()
		return err
	}
	r.apiSess = sess
	if a, ok := ln.Addr().(*net.TCPAddr); ok {
		r.apiPort = a.Port
	}
	return nil
}

// files are the run's files for its work directory; helper is where the
// helper program is on the server, relative to its home ("": nowhere).
func (r *remoteRun) files(rt runtimes.Runtime, env map[string]string, helper string) []upload {
	// PYTHONPATH, NODE_PATH and BASH_ENV point into the work directory:
	// run.sh sets them.
	if helper != "" && rt.Name == "bash" {
		env["CRONIUM_HELPER_IN_HOME"] = helper
	}
	env["CRONIUM_WATCHDOG"] = strconv.Itoa(int((r.timeout + 30*time.Second) / time.Second))
	if wd := r.a.Job.Script.WorkingDirectory; wd != "" {
		env["CRONIUM_WORKDIR"] = wd
	}
	envData, skipped := envFile(env)
	if len(skipped) > 0 {
		r.sys("not passed to the script (not shell variable names): " + strings.Join(skipped, ", "))
	}
	files := []upload{
		{name: rt.ScriptName, data: []byte(r.a.Job.Script.Content)},
		{name: "env", data: envData},
		{name: "run.sh", data: []byte(launcher)},
		{name: "port", data: []byte(strconv.Itoa(r.apiPort) + "\n")},
	}
	for name, data := range helpers.Files() {
		files = append(files, upload{name: "lib/" + name, data: data})
	}
	return files
}

// follow streams the run's output until it ends, is stopped (ctx, its
// timeout) or its server stays unreachable past the timeout, then
// removes the work directory.
func (r *remoteRun) follow(ctx context.Context, startedAt, deadline time.Time, first <-chan error) runner.Result {
	res := runner.Result{Start: startedAt}
	var stopped api.Status
	for {
		tails := first
		if tails == nil {
			tails = r.tail()
		}
		first = nil
		timer := time.NewTimer(time.Until(deadline))
		var err error
		select {
		case err = <-tails:
		case <-ctx.Done():
			if runner.HandingOver(ctx) {
				timer.Stop()
				return r.handOver()
			}
			stopped = api.StatusCancelled
		case <-timer.C:
			stopped = api.StatusTimeout
		}
		timer.Stop()
		if stopped != "" {
			r.stop()
			select {
			case <-tails:
			case <-time.After(r.x.grace + 5*time.Second):
			}
			break
		}
		if err == nil {
			break
		}
		if !r.dead() {
			// A session failed on a live connection (the server's session
			// limit?): follow again from where the output stopped.
			select {
			case <-time.After(500 * time.Millisecond):
			case <-ctx.Done():
			}
			continue
		}
		// The connection failed: dial again and go on from where it stopped.
		r.sys("connection to " + r.ep.String() + " lost (" + err.Error() + "); reconnecting")
		if rerr := r.reconnect(ctx, deadline); rerr != nil {
			if runner.HandingOver(ctx) {
				return r.handOver()
			}
			if ctx.Err() != nil {
				stopped = api.StatusCancelled
				break
			}
			return r.lost(startedAt, rerr.Error())
		}
		r.sys("reconnected to " + r.ep.String() + "; output continues")
		if r.apiPort > 0 {
			if err := r.serveAPI(ctx, r.apiPort); err != nil {
				r.sys("runtime API not served again: " + err.Error())
			}
		}
	}
	r.mu.Lock()
	for _, s := range r.streams {
		s.end()
	}
	r.mu.Unlock()
	res.End = time.Now()
	switch stopped {
	case api.StatusCancelled:
		res.Status, res.ExitCode = api.StatusCancelled, runner.ExitCancelled
	case api.StatusTimeout:
		res.Status, res.ExitCode = api.StatusTimeout, runner.ExitTimeout
		r.sys(fmt.Sprintf("timed out after %s", r.timeout))
	case "":
		if r.hasFinal {
			// The follow ended with the script's status.
			res.ExitCode, res.Status = r.final, api.StatusCompleted
			if r.final != 0 {
				res.Status = api.StatusFailed
			}
			break
		}
		// The state, and the work directory removed once it is final: one
		// session.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		out, err := session(sctx, r.lease, stateCmd(r.runID), nil)
		cancel()
		st := parseState(out)
		switch {
		case err != nil:
			res.Status, res.ExitCode = api.StatusFailed, 1
			r.say("the exit status could not be read from " + r.ep.String() + ": " + err.Error())
		case !st.hasStatus:
			res.Status, res.ExitCode = api.StatusFailed, 1
			r.say(fmt.Sprintf("the script's processes on %s ended without an exit status (%s): killed on the server?", r.ep, st.state))
		default:
			res.ExitCode = st.status
			res.Status = api.StatusCompleted
			if st.status != 0 {
				res.Status = api.StatusFailed
			}
		}
	}
	// The work directory stays until the result is journaled: an agent
	// killed before that adopts the run from it (Release removes it).
	res.Release = r.releaser()
	return res
}

// tail follows both output files in one session of the current
// connection (stdout and stderr of the session carry them apart), after
// launching the script when it is not yet (r.launch); the channel gets nil
// when both are read to the end of the run, or an error.
func (r *remoteRun) tail() <-chan error {
	done := make(chan error, 1)
	go func() { done <- r.follow1() }()
	return done
}

// dead: the current connection is lost.
func (r *remoteRun) dead() bool {
	select {
	case <-r.lease.Dead():
		return true
	default:
		return false
	}
}

// streamWriter takes stream i's bytes, counting them.
func (r *remoteRun) streamWriter(i int) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.handedOver {
			return len(p), nil
		}
		r.offsets[i] += int64(len(p))
		r.streams[i].write(p)
		return len(p), nil
	})
}

func (r *remoteRun) follow1() error {
	s, err := r.lease.Client().NewSession()
	if err != nil {
		return &linkError{err}
	}
	defer s.Close()
	s.Stdout, s.Stderr = r.streamWriter(0), r.streamWriter(1)
	r.mu.Lock()
	cmd := followCmd(r.runID, r.offsets[0], r.offsets[1], r.launch)
	r.mu.Unlock()
	return r.followEnded(s.Run(cmd))
}

// followEnded reads how a follow session ended (followCmd): with the
// script's status (kept as final), or a signal (nothing final: the state
// says the rest), or a connection error.
func (r *remoteRun) followEnded(err error) error {
	var exit *ssh.ExitError
	switch {
	case err == nil:
		r.final, r.hasFinal = 0, true
	case errors.As(err, &exit) && exit.Signal() == "":
		r.final, r.hasFinal = exit.ExitStatus(), true
	case errors.As(err, &exit):
		// USR2: no status; USR1: the files went.
	default:
		return &linkError{err}
	}
	return nil
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// reconnect replaces a lost connection (or gets the first, adopting),
// trying until deadline.
func (r *remoteRun) reconnect(ctx context.Context, deadline time.Time) error {
	if r.lease != nil {
		r.lease.Release()
		r.lease = nil
	}
	wait := 250 * time.Millisecond
	var last error
	for {
		gctx, cancel := context.WithDeadline(ctx, deadline)
		lease, err := r.x.pool.Get(gctx, r.ep)
		cancel()
		if err == nil {
			r.lease = lease
			return nil
		}
		last = err
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().Add(wait).After(deadline) {
			return fmt.Errorf("%s could not be reached again before the job's timeout (last error: %v); the output received before is kept", r.ep, last)
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
		wait = min(wait*2, 5*time.Second)
	}
}

// handOver leaves the run going on its server for the next agent process
// (runner.ErrHandOver): nothing is stopped or removed, the partial line
// in each cutter is not taken (the next agent reads the output again from
// what is journaled), and nothing the sessions still bring is.
func (r *remoteRun) handOver() runner.Result {
	r.mu.Lock()
	r.handedOver = true
	r.mu.Unlock()
	r.x.log.Info("job left running for the next agent process", "run", r.runID, "server", r.ep.String())
	return runner.HandedOver()
}

// lost is the result of a run the agent cannot follow to its end.
func (r *remoteRun) lost(startedAt time.Time, reason string) runner.Result {
	r.mu.Lock()
	for _, s := range r.streams {
		s.end()
	}
	r.mu.Unlock()
	r.say(reason)
	return runner.Result{Status: api.StatusFailed, ExitCode: 1, Start: startedAt, End: time.Now()}
}

// stop ends the run's process group: SIGTERM, grace, SIGKILL.
func (r *remoteRun) stop() {
	if r.lease == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.x.grace+30*time.Second)
	defer cancel()
	if _, err := session(ctx, r.lease, stopCmd(r.runID, r.x.grace), nil); err != nil {
		r.x.log.Warn("stopping the remote run failed; its watchdog ends it at its timeout", "run", r.runID, "server", r.ep.String(), "error", err)
	}
}

// releaser removes the work directory once the run's end is journaled, on
// a connection of its own (the run's is given back by then).
func (r *remoteRun) releaser() func(context.Context) {
	x, ep, runID := r.x, r.ep, r.runID
	return func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		lease, err := x.pool.Get(ctx, ep)
		if err != nil {
			x.log.Warn("removing the remote work directory failed", "run", runID, "server", ep.String(), "error", err)
			return
		}
		defer lease.Release()
		if _, err := session(ctx, lease, removeCmd(runID), nil); err != nil {
			x.log.Warn("removing the remote work directory failed", "run", runID, "server", ep.String(), "error", err)
		}
	}
}

// remove deletes the work directory, whatever happened to the run.
func (r *remoteRun) remove() {
	if r.lease == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := session(ctx, r.lease, removeCmd(r.runID), nil); err != nil {
		r.x.log.Warn("removing the remote work directory failed", "run", r.runID, "server", r.ep.String(), "error", err)
	}
}

// close ends the runtime API and gives the connection back.
func (r *remoteRun) close() {
	if r.apiSess != nil {
		_ = r.apiSess.Close()
	}
	if r.lease != nil {
		r.lease.Release()
	}
}

// helperPath is where the helper program is kept on servers, relative to
// the home directory: per user, per version of it, so that it is uploaded
// once per server.
func (x *Executor) helperPath() string {
	x.loadHelper()
	if x.helperErr != nil {
		return ""
	}
	// Named cronium: the helper program (cronium-job, or the agent
	// binary) is the bash helpers' program and the worker by that name.
	return ".cache/cronium-agent/" + x.helperSum + "/cronium"
}

// loadHelper hashes the helper program, once: the program (cronium-job,
// about 6 MiB; the agent binary, 20 MiB) is read from its file again only
// when a server lacks it, and never kept in memory.
func (x *Executor) loadHelper() {
	x.helperOnce.Do(func() {
		f, err := os.Open(x.helperBin)
		if err != nil {
			x.helperErr = err
			return
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			x.helperErr = err
			return
		}
		x.helperSum = hex.EncodeToString(h.Sum(nil)[:8])
	})
}

// ensureHelper makes sure the helper program is on the server, before
// its first run from this agent process (so that every run can take the
// worker): one session asks for the machine and whether the program is
// there, a second uploads it if not. It returns where it is, relative to
// the home directory; "" with no error when the agent has none.
func (x *Executor) ensureHelper(ctx context.Context, lease *sshconn.Lease, ep sshconn.Endpoint) (string, error) {
	if x.helperBin == "" {
		return "", nil
	}
	rel := x.helperPath()
	if rel == "" {
		return "", fmt.Errorf("the agent's helper program: %w", x.helperErr)
	}
	key := ep.String() + "/" + rel
	if v, ok := x.helperOK.Load(key); ok {
		if msg := v.(string); msg != "" {
			return "", errors.New(msg)
		}
		return rel, nil
	}
	out, err := session(ctx, lease, fmt.Sprintf(`uname -m; [ -x "$HOME/%s" ] && echo present; true`, rel), nil)
	if err != nil {
		return "", fmt.Errorf("look for the helper program: %w", err)
	}
	f := strings.Fields(string(out))
	if want := x.arch; len(f) == 0 || f[0] != want {
		// Known for good: this agent's program cannot run there.
		err := fmt.Errorf("the server is %s, the agent's helper program is built for %s", strings.Join(f[:min(1, len(f))], ""), want)
		x.helperOK.Store(key, err.Error())
		return "", err
	}
	if len(f) < 2 || f[1] != "present" {
		p, err := os.Open(x.helperBin)
		if err != nil {
			return "", fmt.Errorf("read the helper program: %w", err)
		}
		defer p.Close()
		cmd := fmt.Sprintf(`f="$HOME/%s"; umask 077 && mkdir -p "$HOME/%s" && t="$f.$$" && cat >"$t" && chmod 700 "$t" && mv "$t" "$f"`, rel, path.Dir(rel))
		// The program is not secret: stdin carries it only because it is big.
		if _, err := session(ctx, lease, cmd, p); err != nil {
			return "", fmt.Errorf("upload the helper program: %w", err)
		}
	}
	x.helperOK.Store(key, "")
	return rel, nil
}

// goArchMachine is `uname -m` of machines the agent's own build runs on.
func goArchMachine() string {
	switch runtime.GOARCH {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	}
	return runtime.GOARCH
}
