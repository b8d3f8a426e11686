// Package jobinit is PID 1 of every job container: the agent's own binary,
// mounted read-only into the job and started under the name Name.
//
// A shell as PID 1 ignores SIGTERM (the kernel delivers no signal to a
// namespace's init that has no handler for it), so a timed-out or cancelled
// script used to carry on with its next command until the SIGKILL. The init
// starts the script as its child in a process group of its own, forwards
// the stop signals (SIGTERM, SIGINT) to that group and SIGHUP, SIGQUIT,
// SIGUSR1 and SIGUSR2 to the script, reaps every orphan, and exits with the
// script's status (128+n when a signal n killed it). When the script ends,
// the init exits at once and the kernel kills whatever the script left
// running in the job: the container ends with its script.
//
// The init speaks only when it cannot start the script (exit 127 or 126,
// with a line on stderr).
package jobinit

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
)

// Name is the file name the init is mounted under; the binary acts as the
// init when started under it.
const Name = "cronium-init"

// Exit statuses of the init itself, as a shell gives them.
const (
	exitCannotRun = 126 // found but could not be started
	exitNotFound  = 127
)

// StartFlag, followed by a file, makes the init read the command and the
// environment of the job from that file (Start, in JSON) rather than from
// its own arguments and environment.
const StartFlag = "--start"

// Start is what a warm sandbox's init starts: the job's command line and
// its whole environment, which replaces the init's own.
type Start struct {
	Args []string `json:"args"`
	Env  []string `json:"env"`
}

func readStart(path string) (Start, error) {
	var st Start
	data, err := os.ReadFile(path)
	if err != nil {
		return st, fmt.Errorf("read the job's start: %w", err)
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return st, fmt.Errorf("read the job's start from %s: %w", path, err)
	}
	return st, nil
}

const prSetChildSubreaper = 36 // PR_SET_CHILD_SUBREAPER, prctl(2)

// Main runs args as the job's script, with the init's own environment (the
// job's), and returns the status to exit with. Messages of the init's own
// go to stderr.
func Main(args []string, stderr io.Writer) int {
	// Every thread of the init counts against the job's pids limit: one P
	// keeps the runtime to a few, whatever the host's core count.
	runtime.GOMAXPROCS(1)
	env := os.Environ()
	if len(args) == 2 && args[0] == StartFlag {
		// A warm sandbox: created before its job was known, it learns
		// the job's command and environment only now, from the file the
		// agent wrote just before the start.
		st, err := readStart(args[1])
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", Name, err)
			return exitCannotRun
		}
		args, env = st.Args, st.Env
		// The command is looked up in the job's PATH, not the sandbox's.
		os.Clearenv()
		for _, kv := range env {
			if k, v, ok := strings.Cut(kv, "="); ok {
				os.Setenv(k, v)
			}
		}
	}
	if len(args) == 0 {
		fmt.Fprintln(stderr, Name+": no command to run")
		return exitNotFound
	}
	// Before the child exists, so that a signal sent at once is not lost.
	sigs := make(chan os.Signal, 64)
	signal.Notify(sigs, syscall.SIGCHLD,
		// Forwarded:
		syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2)

	// PID 1 of a namespace reaps orphans anyway; as a subreaper the init
	// does the same when run elsewhere (its tests, a job without a PID
	// namespace).
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
		fmt.Fprintf(stderr, "%s: become a subreaper: %v\n", Name, errno)
	}
	path, err := exec.LookPath(args[0])
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", Name, err)
		return exitNotFound
	}
	pid, err := syscall.ForkExec(path, args, &syscall.ProcAttr{
		Env:   env,
		Files: []uintptr{0, 1, 2},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	})
	if err != nil {
		fmt.Fprintf(stderr, "%s: start %s: %v\n", Name, args[0], err)
		return exitCannotRun
	}
	for sig := range sigs {
		switch sig {
		case syscall.SIGTERM, syscall.SIGINT:
			// A stop: every process of the script's group, so that its
			// current command stops too. The group may be gone already
			// (the script exiting): nothing to do then.
			_ = syscall.Kill(-pid, sig.(syscall.Signal))
			continue
		case syscall.SIGCHLD:
		default:
			// A message to the script itself (a USR1 trap, a HUP reload).
			_ = syscall.Kill(pid, sig.(syscall.Signal))
			continue
		}
		if ws, ok := reap(pid); ok {
			// As PID 1 the init's exit makes the kernel kill every process
			// left in the job; elsewhere the script's group is killed here.
			if os.Getpid() != 1 {
				_ = syscall.Kill(-pid, syscall.SIGKILL)
			}
			return status(ws)
		}
	}
	return exitCannotRun // unreachable: sigs is never closed
}

// reap collects every exited child (orphans of the script included, which
// the kernel hands to PID 1) and reports the script's status once it is
// among them. SIGCHLDs coalesce, so it reaps until none is left.
func reap(script int) (syscall.WaitStatus, bool) {
	var scriptStatus syscall.WaitStatus
	var scriptDone bool
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if pid <= 0 || err != nil {
			return scriptStatus, scriptDone
		}
		if pid == script && (ws.Exited() || ws.Signaled()) {
			scriptStatus, scriptDone = ws, true
		}
	}
}

func status(ws syscall.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}
