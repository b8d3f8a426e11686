package output

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// The descriptors containerd's runc shim hands a "binary://" logger.
const (
	shimStdoutFD = 3
	shimStderrFD = 4
	shimReadyFD  = 5
)

// ShimArg is the argument of `cronium-agent shim-logger ARG`: the output
// file's absolute path, preceded by "BUDGET:" when the capture has a
// budget (see WithBudget). The shim builds the logger's command line from
// the logging URI's query in map order, so everything travels in one
// value: binary:///usr/bin/cronium-agent?shim-logger=ARG.
func ShimArg(path string, budget int64) string {
	if budget <= 0 {
		return path
	}
	return strconv.FormatInt(budget, 10) + ":" + path
}

// parseShimArg reads ShimArg's value back.
func parseShimArg(arg string) (path string, budget int64, err error) {
	if strings.HasPrefix(arg, "/") {
		return arg, 0, nil
	}
	n, path, ok := strings.Cut(arg, ":")
	if ok {
		budget, err = strconv.ParseInt(n, 10, 64)
	}
	if !ok || err != nil || budget <= 0 || !filepath.IsAbs(path) {
		return "", 0, fmt.Errorf("shim logger: argument %q is neither an absolute path nor BUDGET:PATH", arg)
	}
	return path, budget, nil
}

// RunShimLogger is the body of `cronium-agent shim-logger ARG` (ShimArg),
// the process containerd's shim starts for the logging URI. It reads the
// container's stdout from fd 3 and stderr from fd 4, signals ready by
// closing fd 5, and captures into the path as Logger.Run does. SIGTERM,
// which the shim sends when the task is deleted, starts the drain timeout.
func RunShimLogger(ctx context.Context, arg string) error {
	path, budget, err := parseShimArg(arg)
	if err != nil {
		return err
	}
	// The shim's working directory is not ours to rely on.
	if !filepath.IsAbs(path) {
		return fmt.Errorf("shim logger: output path %q is not absolute", path)
	}
	stdout, err1 := inheritPipe(shimStdoutFD, "stdout", true)
	stderr, err2 := inheritPipe(shimStderrFD, "stderr", true)
	ready, err3 := inheritPipe(shimReadyFD, "ready", false)
	if err := errors.Join(err1, err2, err3); err != nil {
		for _, f := range []*os.File{stdout, stderr, ready} {
			if f != nil {
				f.Close()
			}
		}
		return fmt.Errorf("shim logger: not started by a containerd shim? %w", err)
	}
	defer stdout.Close()
	defer stderr.Close()

	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	defer signal.Stop(term)
	// Handled before the pid is published: the signal's default action
	// would kill the logger.
	fin := make(chan os.Signal, 1)
	signal.Notify(fin, finishSignal)
	defer signal.Stop(fin)
	if err := os.WriteFile(LoggerPIDPath(path), []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		// Not fatal: the capture then ends when the shim closes the pipes.
		fmt.Fprintf(os.Stderr, "shim logger: publish pid: %v\n", err)
	}

	l := Logger{
		Path:      path,
		Stdout:    stdout,
		Stderr:    stderr,
		Ready:     ready,
		Terminate: term,
		Finish:    fin,
	}
	if budget > 0 {
		l.Options = append(l.Options, WithBudget(budget))
	}
	_, err = l.Run(ctx)
	return err
}

// finishSignal asks a shim logger to finish (Logger.Finish).
const finishSignal = syscall.SIGUSR1

// LoggerPIDPath is where the shim logger of the output file at path
// publishes its pid, for Finish.
func LoggerPIDPath(path string) string { return path + ".pid" }

// Finish tells the shim logger of the output file at path that no process
// can write to the container's pipes any more: it writes what they hold
// and the end record without waiting for the shim to close them. The
// caller knows that the container's init exited. An error means the logger
// was not told (it is gone, or never published its pid); its capture then
// ends at end of file as without Finish.
func Finish(path string) error {
	data, err := os.ReadFile(LoggerPIDPath(path))
	if err != nil {
		return fmt.Errorf("finish the output logger: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 1 {
		return fmt.Errorf("finish the output logger: bad pid %q in %s", data, LoggerPIDPath(path))
	}
	// The pidfd pins the process: if the pid was reused after the check
	// below, the signal goes to the dead logger and fails instead.
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return fmt.Errorf("finish the output logger %d: %w", pid, err)
	}
	defer unix.Close(fd)
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || !IsShimLoggerOf(cmdline, path) {
		return fmt.Errorf("finish the output logger: process %d is not the logger of %s", pid, path)
	}
	if err := unix.PidfdSendSignal(fd, finishSignal, nil, 0); err != nil {
		return fmt.Errorf("finish the output logger %d: %w", pid, err)
	}
	return nil
}

// IsShimLoggerOf reports whether a process's /proc/<pid>/cmdline is that of
// the shim logger of the output file at path.
func IsShimLoggerOf(cmdline []byte, path string) bool {
	// Cheap first: callers scan every process's command line.
	if !bytes.Contains(cmdline, []byte("shim-logger\x00")) {
		return false
	}
	args := strings.Split(strings.TrimSuffix(string(cmdline), "\x00"), "\x00")
	for i := 0; i+1 < len(args); i++ {
		if args[i] != "shim-logger" {
			continue
		}
		if p, _, err := parseShimArg(args[i+1]); err == nil && p == path {
			return true
		}
	}
	return false
}

// inheritPipe wraps an inherited descriptor after checking it is a pipe,
// so that a misstarted logger never closes a descriptor it does not own.
// Read ends are made non-blocking first: os.NewFile then registers them
// with the runtime poller, which is what lets the drain timeout interrupt
// a blocked read. The flag is shared with the shim's copy of the
// descriptor, which the shim closes after start without reading.
func inheritPipe(fd int, name string, read bool) (*os.File, error) {
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("fd %d (%s): %w", fd, name, err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFIFO {
		return nil, fmt.Errorf("fd %d (%s): not a pipe (mode %#o)", fd, name, st.Mode)
	}
	if read {
		if err := syscall.SetNonblock(fd, true); err != nil {
			return nil, fmt.Errorf("fd %d (%s): set non-blocking: %w", fd, name, err)
		}
	}
	return os.NewFile(uintptr(fd), "shim-"+name), nil
}
