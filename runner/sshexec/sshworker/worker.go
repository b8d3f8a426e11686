package sshworker

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Main runs a worker on stdin and stdout until the agent closes stdin
// and every run it launched has ended. environ is the session's
// environment, the base of every run's.
func Main(stdin io.Reader, stdout io.Writer, stderr io.Writer, environ []string) int {
	// The agent going away must not end the runs: a write to its closed
	// channel fails instead of killing the worker, and a hang-up is not
	// an end. (Caught, not ignored: the scripts get the default actions.)
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGPIPE, syscall.SIGHUP)
	go func() {
		for range sigs {
		}
	}()
	syscall.Umask(0o077)
	w := &worker{out: stdout, environ: environ, prepared: map[uint32]*run{}}
	// Hello: the agent waits for it before it sends a run.
	w.send(Frame{Type: Ready})
	err := w.serve(bufio.NewReaderSize(stdin, 64<<10))
	w.gone.Store(true)
	if err != nil && !errors.Is(err, io.EOF) {
		fmt.Fprintf(stderr, "cronium ssh-worker: %v\n", err)
	}
	// What it launched goes on without the agent: each run writes its
	// status, and the next agent to follow it reads and removes it.
	w.running.Wait()
	return 0
}

type worker struct {
	mu      sync.Mutex // out
	out     io.Writer
	gone    atomic.Bool // the agent is unreachable: nothing more is sent
	environ []string

	prepared map[uint32]*run // only serve's goroutine uses it
	running  sync.WaitGroup
}

// send writes a frame unless the agent is gone; a failed write means it is.
func (w *worker) send(f Frame) {
	if w.gone.Load() {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := WriteFrame(w.out, f); err != nil {
		w.gone.Store(true)
	}
}

func (w *worker) serve(in io.Reader) error {
	for {
		f, err := ReadFrame(in)
		if err != nil {
			return err
		}
		switch f.Type {
		case Prepare:
			r, err := w.prepare(f.Payload)
			if err != nil {
				w.send(Frame{Type: Failed, Run: f.Run, Payload: []byte(err.Error())})
				continue
			}
			w.prepared[f.Run] = r
			w.send(Frame{Type: Ready, Run: f.Run})
		case Go:
			r := w.prepared[f.Run]
			delete(w.prepared, f.Run)
			if r == nil {
				w.send(Frame{Type: Failed, Run: f.Run, Payload: []byte("no such prepared run")})
				continue
			}
			r.id = f.Run
			w.running.Add(1)
			go func() {
				defer w.running.Done()
				r.launch()
			}()
		case Abandon:
			delete(w.prepared, f.Run)
		default:
			return fmt.Errorf("unknown frame type %q", f.Type)
		}
	}
}

// run is one prepared, then launched, run.
type run struct {
	w   *worker
	id  uint32
	dir string
	// args are run.sh's: the script's file name, then the interpreter
	// and its flags.
	args []string
}

func (w *worker) getenv(name string) string {
	for _, kv := range w.environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			return v
		}
	}
	return ""
}

// prepare makes the work directory (it must not exist: a directory made
// by someone else under /tmp is not used) and writes the run's files.
func (w *worker) prepare(payload []byte) (*run, error) {
	var p PrepareRun
	if err := json.Unmarshal(payload, &p); err != nil {
		return nil, fmt.Errorf("cronium: bad prepare frame: %w", err)
	}
	if !plainName(p.Dir) || p.Interpreter == "" || len(p.Args) < 2 || !plainName(p.Args[0]) {
		return nil, fmt.Errorf("cronium: bad prepare frame: directory %q, interpreter %q", p.Dir, p.Interpreter)
	}
	if _, ok := lookPath(p.Interpreter, w.getenv("PATH")); !ok {
		return nil, fmt.Errorf("cronium: %s is not installed on this server (not found in PATH)", p.Interpreter)
	}
	tmp := w.getenv("TMPDIR")
	if tmp == "" {
		tmp = "/tmp"
	}
	d := filepath.Join(tmp, p.Dir)
	if err := os.Mkdir(d, 0o700); err != nil {
		return nil, fmt.Errorf("cronium: %w", err)
	}
	r := &run{w: w, dir: d, args: p.Args}
	if err := r.write(p.Files); err != nil {
		_ = os.RemoveAll(d)
		return nil, fmt.Errorf("cronium: %w", err)
	}
	return r, nil
}

func (r *run) write(files []File) error {
	if err := os.Mkdir(filepath.Join(r.dir, "lib"), 0o700); err != nil {
		return err
	}
	for _, name := range []string{"out", "err"} {
		if err := os.WriteFile(filepath.Join(r.dir, name), nil, 0o600); err != nil {
			return err
		}
	}
	for _, f := range files {
		dir, base := filepath.Split(f.Name)
		if !plainName(base) || (dir != "" && dir != "lib/") {
			return fmt.Errorf("file name %q", f.Name)
		}
		if err := os.WriteFile(filepath.Join(r.dir, f.Name), f.Data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

func plainName(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsRune(s, '/')
}

// launch starts the run as run.sh would (the same environment, files,
// watchdog and status; the interpreter in its own session and process
// group, which the agent signals as a whole), follows its output to the
// agent, and ends as the shell's follow does: the rest of the output
// sent, then Exit with the status; the work directory is left to the
// agent (it removes it once the status is journaled) or, with the agent
// gone, to the agent that follows next.
//
// The worker is its run's parent, as run.sh is on the shell path: the
// worker runs in a session of its own (setsid) so that it outlives the
// SSH session, as run.sh does. Should the worker itself be killed, its
// runs go on but end without a status, which the agent reports.
func (r *run) launch() {
	code, ok := r.start()
	if r.w.gone.Load() {
		return
	}
	if !ok {
		r.w.send(Frame{Type: NoStatus, Run: r.id})
		return
	}
	// The directory stays: the agent removes it once it has journaled
	// the status (a crash before that would find nothing to adopt).
	r.w.send(Frame{Type: Exit, Run: r.id, Payload: ExitPayload(code)})
}

// start runs the script to its end, following its output meanwhile, and
// returns its status (false: none could be written).
func (r *run) start() (int, bool) {
	d := r.dir
	stdout, err := os.OpenFile(filepath.Join(d, "out"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return r.ended(nil, 127, "cronium: open the output file: "+err.Error())
	}
	defer stdout.Close()
	stderr, err := os.OpenFile(filepath.Join(d, "err"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return r.ended(nil, 127, "cronium: open the output file: "+err.Error())
	}
	defer stderr.Close()
	env, err := r.env()
	if err != nil {
		return r.ended(stderr, 1, "cronium: "+err.Error())
	}
	watchdog, _ := strconv.Atoi(env.take("CRONIUM_WATCHDOG"))
	dir := d
	if wd := env.take("CRONIUM_WORKDIR"); wd != "" {
		if st, err := os.Stat(wd); err != nil || !st.IsDir() {
			return r.ended(stderr, 1, "cronium: cannot enter the working directory "+wd)
		}
		dir = wd
	}
	script, interp := r.args[0], r.args[1:]
	path, ok := lookPath(interp[0], env.get("PATH"))
	if !ok {
		return r.ended(stderr, 127, "cronium: "+interp[0]+" is not installed on this server (not found in PATH)")
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return r.ended(stderr, 127, "cronium: "+err.Error())
	}
	defer devnull.Close()
	argv := append(append([]string{}, interp...), filepath.Join(d, script))
	p, err := os.StartProcess(path, argv, &os.ProcAttr{
		Dir: dir, Env: env.list(), Files: []*os.File{devnull, stdout, stderr},
		Sys: &syscall.SysProcAttr{Setsid: true},
	})
	if err != nil {
		return r.ended(stderr, 127, "cronium: start "+interp[0]+": "+err.Error())
	}
	_ = writeAtomic(filepath.Join(d, "pid"), strconv.Itoa(p.Pid)+"\n")
	// The group is signalled only while its leader is not reaped: its id
	// cannot have gone to another process group then.
	var mu sync.Mutex
	reaped := false
	toGroup := func(sig syscall.Signal) {
		mu.Lock()
		defer mu.Unlock()
		if !reaped {
			_ = syscall.Kill(-p.Pid, sig)
		}
	}
	if watchdog > 0 {
		// run.sh's watchdog: the run ends at its timeout (and a grace)
		// even when no agent reaches the server.
		var kill *time.Timer
		t := time.AfterFunc(time.Duration(watchdog)*time.Second, func() {
			toGroup(syscall.SIGTERM)
			mu.Lock()
			kill = time.AfterFunc(10*time.Second, func() { toGroup(syscall.SIGKILL) })
			mu.Unlock()
		})
		defer func() {
			t.Stop()
			mu.Lock()
			if kill != nil {
				kill.Stop()
			}
			mu.Unlock()
		}()
	}
	exited := make(chan struct{})
	var code int
	var wrote bool
	go func() {
		defer close(exited)
		// Waited for without reaping, so that the group's leftovers are
		// killed while its id is still theirs.
		var info unix.Siginfo
		_ = unix.Waitid(unix.P_PID, p.Pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		// The run's process group goes with it, as a container's
		// processes do: whatever the script left running.
		toGroup(syscall.SIGKILL)
		st, err := p.Wait()
		mu.Lock()
		reaped = true
		mu.Unlock()
		code = 1
		if err == nil {
			code = exitCode(st)
		}
		// The status after the script's last output, as run.sh writes it.
		wrote = writeAtomic(filepath.Join(d, "status"), strconv.Itoa(code)+"\n") == nil
	}()
	r.follow(exited)
	return code, wrote
}

// ended ends a run that could not start: the message on its stderr (the
// file, if open, and the agent), the status written.
func (r *run) ended(stderr *os.File, code int, msg string) (int, bool) {
	if stderr != nil {
		_, _ = stderr.WriteString(msg + "\n")
	}
	r.w.send(Frame{Type: Stderr, Run: r.id, Payload: []byte(msg + "\n")})
	return code, writeAtomic(filepath.Join(r.dir, "status"), strconv.Itoa(code)+"\n") == nil
}

// exitCode is the status a shell would give: 128 + the signal when one
// ended the process.
func exitCode(st *os.ProcessState) int {
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return st.ExitCode()
}

func writeAtomic(path, data string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(data), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// follow sends the output files' new bytes until the script has exited,
// then the rest. It reads in-process (a few microseconds a poll), 2 ms
// after output doubling to 200 ms while none comes; the end is not
// polled for: the script is this process's child.
func (r *run) follow(exited <-chan struct{}) {
	var files [2]*os.File
	for i, name := range []string{"out", "err"} {
		f, err := os.Open(filepath.Join(r.dir, name))
		if err == nil {
			defer f.Close()
		}
		files[i] = f
	}
	buf := make([]byte, 32<<10)
	drain := func() bool {
		sent := false
		for i, f := range files {
			for f != nil {
				n, _ := f.Read(buf)
				if n == 0 {
					break
				}
				r.w.send(Frame{Type: []byte{Stdout, Stderr}[i], Run: r.id, Payload: buf[:n]})
				sent = true
			}
		}
		return sent
	}
	nap := 2 * time.Millisecond
	timer := time.NewTimer(nap)
	defer timer.Stop()
	for {
		select {
		case <-exited:
			drain()
			return
		case <-timer.C:
		}
		if drain() {
			nap = 2 * time.Millisecond
		} else {
			nap = min(nap*2, 200*time.Millisecond)
		}
		timer.Reset(nap)
	}
}

// lookPath finds an executable name in path (a name with a slash is
// itself).
func lookPath(name, path string) (string, bool) {
	if strings.ContainsRune(name, '/') {
		return name, executable(name)
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		if executable(p) {
			return p, true
		}
	}
	return "", false
}

func executable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}
