package sshexec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/cronium/cronium-agent/runner/sshconn"
)

// The remote side of a run. Everything lives in one work directory,
// ${TMPDIR:-/tmp}/<run id>, mode 0700:
//
//	script.<ext>   the script (0600)
//	env            its environment, sourced then removed by run.sh (0600)
//	run.sh         the launcher
//	lib/           the helpers cronium.sh, cronium.py, cronium.js
//	out, err       the script's stdout and stderr, as written
//	pid            the launcher's pid, which is its process group and session
//	port           the remote port of the runtime API forward
//	status         the exit status, written when the script ends (one
//	               short write: it is there once it is not empty)
//
// The launcher runs under setsid, detached from every SSH session: the
// run survives a dropped connection and a restarted agent, which follow
// out and err from where they stopped.

// workDir is the shell expression of a run's work directory.
func workDir(runID string) string { return `"${TMPDIR:-/tmp}/` + runID + `"` }

// launcher is run.sh. Its arguments: the script's file name, then the
// interpreter and its flags. A watchdog ends the run at its timeout (plus
// a grace) even when the agent cannot reach the server; the agent stops
// it sooner. Paths into the work directory are made here, where it is
// known ($TMPDIR is the server's).
const launcher = `#!/bin/sh
# Started in the work directory (both paths cd there first).
d=$PWD
exec >"$d/out" 2>"$d/err" </dev/null
script=$1
shift
set -a
. "$d/env"
set +a
wd=$CRONIUM_WATCHDOG
unset CRONIUM_WATCHDOG
# One background process, off the script's path, removes the environment
# file (it may hold secrets) and is the watchdog.
(
	rm -f "$d/env"
	[ -n "$wd" ] || exit 0
	sleep "$wd"; kill -TERM -$$; sleep 10; kill -KILL -$$
) >/dev/null 2>&1 &
export PYTHONPATH="$d/lib${PYTHONPATH:+:$PYTHONPATH}"
export NODE_PATH="$d/lib${NODE_PATH:+:$NODE_PATH}"
export BASH_ENV="$d/lib/cronium.sh"
if [ -n "$CRONIUM_HELPER_IN_HOME" ]; then
	export CRONIUM_HELPER="$HOME/$CRONIUM_HELPER_IN_HOME"
fi
unset CRONIUM_HELPER_IN_HOME
if [ -n "$CRONIUM_WORKDIR" ]; then
	cd "$CRONIUM_WORKDIR" || { echo "cronium: cannot enter the working directory $CRONIUM_WORKDIR" >&2; echo 1 >"$d/status"; kill -KILL -$$; }
fi
unset CRONIUM_WORKDIR
"$@" "$d/$script"
code=$?
# One write of a few bytes: readers wait for it to be non-empty (-s), so
# no rename (one process less) is needed to make it atomic.
echo "$code" >"$d/status"
# A script quicker than the background rm: the file goes now.
[ -e "$d/env" ] && rm -f "$d/env"
# The run's process group goes with it, as a container's processes do:
# the watchdog and its sleep, and whatever the script left running.
kill -KILL -$$ 2>/dev/null
`

// envFile renders env as sh assignments, sorted; names that are not shell
// identifiers cannot be passed and are returned apart.
func envFile(env map[string]string) (file []byte, skipped []string) {
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	for _, k := range keys {
		if !shellName(k) {
			skipped = append(skipped, k)
			continue
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(shellQuote(env[k]))
		b.WriteByte('\n')
	}
	return b.Bytes(), skipped
}

func shellName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// shellQuote quotes s for sh: single quotes, with ' as '\”.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// upload is one file for the work directory.
type upload struct {
	name string
	data []byte
}

// uploadScript makes the work directory and writes files into it from
// stdin (each read by dd to its exact size: nothing secret is on a
// command line), after checking that the interpreter exists.
func uploadScript(runID, interpreter string, files []upload) (cmd string, stdin io.Reader) {
	var b strings.Builder
	fmt.Fprintf(&b, "command -v %s >/dev/null 2>&1 || { echo 'cronium: %s is not installed on this server (not found in PATH)' >&2; exit 127; }; ", interpreter, interpreter)
	fmt.Fprintf(&b, "umask 077 && d=%s && mkdir -m 700 \"$d\" && mkdir \"$d/lib\" && cd \"$d\" && : >out && : >err", workDir(runID))
	var in []io.Reader
	for _, f := range files {
		if len(f.data) == 0 {
			fmt.Fprintf(&b, " && : >%s", f.name)
		} else {
			fmt.Fprintf(&b, " && dd bs=%d count=1 iflag=fullblock status=none of=%s", len(f.data), f.name)
			in = append(in, bytes.NewReader(f.data))
		}
	}
	return b.String(), io.MultiReader(in...)
}

// readyLine is the line the first session prints once the files are
// written; the run is then launched when the agent sends "g" (after
// journaling its start), or not at all.
const readyLine = "cronium-ready"

// firstCmd writes the run's files from stdin (uploadScript), says so
// (readyLine), waits for the go, then launches the run and follows it:
// the whole of a run in one session when nothing goes wrong.
func firstCmd(runID, interpreter string, files []upload, launch string) (cmd string, stdin io.Reader) {
	up, in := uploadScript(runID, interpreter, files)
	return up + ` && echo ` + readyLine + ` && [ "$(dd bs=1 count=1 status=none)" = g ] || kill -USR1 $$
` + followCmd(runID, 0, 0, launch), in
}

// session runs cmd in a new session of lease with stdin, returning its
// stdout; ctx ending closes the session.
func session(ctx context.Context, lease *sshconn.Lease, cmd string, stdin io.Reader) ([]byte, error) {
	s, err := lease.Client().NewSession()
	if err != nil {
		return nil, fmt.Errorf("open an SSH session: %w", err)
	}
	defer s.Close()
	var out, errb bytes.Buffer
	s.Stdin, s.Stdout, s.Stderr = stdin, &out, &errb
	stop := context.AfterFunc(ctx, func() { _ = s.Close() })
	defer stop()
	err = s.Run(cmd)
	if err != nil {
		var exit *ssh.ExitError
		if errors.As(err, &exit) {
			msg := strings.TrimSpace(errb.String())
			if msg == "" {
				msg = fmt.Sprintf("exit status %d", exit.ExitStatus())
			}
			return out.Bytes(), errors.New(msg)
		}
		if ctx.Err() != nil {
			return out.Bytes(), context.Cause(ctx)
		}
		return out.Bytes(), &linkError{err}
	}
	return out.Bytes(), nil
}

// linkError is a command whose connection failed: trying again on a new
// one may do better.
type linkError struct{ err error }

func (e *linkError) Error() string { return "SSH connection: " + e.err.Error() }
func (e *linkError) Unwrap() error { return e.err }

// launchArgs are run.sh's arguments: the script's file name and its
// interpreter, quoted for sh.
func launchArgs(script string, interpreter []string) string {
	args := []string{shellQuote(script)}
	for _, a := range interpreter {
		args = append(args, shellQuote(a))
	}
	return strings.Join(args, " ")
}

// followCmd streams the work directory's out and err, from byte offsets
// on, to its stdout and stderr until the run has ended and everything is
// out. With launch (run.sh's arguments) it first starts run.sh detached
// unless it was (setsid: its own session and process group, which the
// agent signals as a whole, and which outlives this session).
//
// It polls (after 2 ms, doubling to 16 ms for its first 60 polls, then to
// 500 ms while nothing comes: short jobs end soon after they do) rather
// than tail --pid: a launcher whose parent is gone stays a zombie until
// init reaps it, which some inits do late. The end is the status file,
// written after the script's last output; a run stopped before it wrote
// one ends when its launcher is gone (its process, not its group: the
// group exists once the launcher's setsid has run).
//
// It ends as the run did: with the script's exit status (the work
// directory stays until the agent has journaled it); killed by SIGUSR2 when the run left no status
// (it was stopped, or killed on the server), by SIGUSR1 when the files
// went.
func followCmd(runID string, offOut, offErr int64, launch string) string {
	start := ""
	if launch != "" {
		// No && before the &: it would put the list, cd included, in a
		// background subshell whose pid is not the launcher's.
		start = `if [ ! -s "$d/pid" ]; then cd "$d" || exit 1; setsid sh ./run.sh ` + launch + ` </dev/null >/dev/null 2>&1 & echo $! >"$d/pid"; fi
`
	}
	// The job's stderr goes out on fd 3: the shell's own stderr (its
	// notice that the launcher it started was killed, say) is not the
	// job's.
	return fmt.Sprintf(`exec 3>&2 2>/dev/null; d=%s; o=%d; e=%d; nap=2; i=0
%s# A zombie is not alive: the launcher is this shell's child when this
# session launched it, and this shell does not reap it.
alive() { p=$(cat "$d/pid" 2>/dev/null) && kill -0 "$p" 2>/dev/null && ! grep -q '^State:[[:space:]]*Z' "/proc/$p/status" 2>/dev/null; }
# Orphaned: this shell's parent (sshd's session) is not the one it had.
orphan() { read -r _ _ _ pp _ </proc/$$/stat && [ "$pp" != "$PPID" ]; }
end=
while :; do
	[ -s "$d/status" ] && end=status
	sz=$(stat -c %%s "$d/out" "$d/err") || kill -USR1 $$
	set -- $sz
	if [ "$1" -gt "$o" ] || [ "$2" -gt "$e" ]; then
		[ "$1" -gt "$o" ] && { tail -c +$((o+1)) "$d/out" | head -c $(($1-o)); o=$1; }
		[ "$2" -gt "$e" ] && { tail -c +$((e+1)) "$d/err" | head -c $(($2-e)) >&3; e=$2; }
		nap=2; continue
	fi
	# A loop whose session is gone (the agent died, the connection
	# dropped) stops, and leaves the work directory to the agent that
	# follows the run next.
	orphan && kill -USR1 $$
	case $end in
	status) exit "$(cat "$d/status")" ;;
	gone) kill -USR2 $$ ;;
	esac
	# Whether the launcher is gone (stopped, or killed on the server) is
	# asked every 8th poll: the status file ends a run that ends well.
	if [ $((i %% 8)) -eq 7 ] && ! alive; then end=gone; continue; fi
	sleep 0.$(printf %%03d $nap); nap=$((nap*2)); i=$((i+1))
	if [ $i -lt 60 ]; then [ $nap -gt 16 ] && nap=16; else [ $nap -gt 500 ] && nap=500; fi
done`, workDir(runID), offOut, offErr, start)
}

// stateCmd prints the run's state in three fields: gone (no work
// directory), running or ended; the exit status or -; the runtime API's
// port on the server or 0.
func stateCmd(runID string) string {
	d := workDir(runID)
	return fmt.Sprintf(`d=%s; [ -d "$d" ] || { echo gone - 0; exit 0; }; pid=$(cat "$d/pid" 2>/dev/null); `+
		`if [ -n "$pid" ] && { kill -0 "$pid" || kill -0 -"$pid"; } 2>/dev/null; then st=running; else st=ended; fi; `+
		`echo "$st $([ -s "$d/status" ] && cat "$d/status" || echo -) $(cat "$d/port" 2>/dev/null || echo 0)"`, d)
}

// stopCmd signals the run's process group: TERM, then KILL after grace.
func stopCmd(runID string, grace time.Duration) string {
	d := workDir(runID)
	secs := max(int(grace/time.Second), 1)
	return fmt.Sprintf(`d=%s; pid=$(cat "$d/pid" 2>/dev/null) || exit 0; [ -n "$pid" ] || exit 0; kill -TERM -"$pid" 2>/dev/null || exit 0; `+
		`i=0; while [ $i -lt %d ] && kill -0 -"$pid" 2>/dev/null; do sleep 0.2; i=$((i+1)); done; kill -KILL -"$pid" 2>/dev/null; true`, d, secs*5)
}

// removeCmd removes the work directory.
func removeCmd(runID string) string { return "rm -rf " + workDir(runID) }

// runState is stateCmd's answer.
type runState struct {
	state     string // gone, running or ended
	status    int
	hasStatus bool
	port      int
}

// parseState reads stateCmd's answer (no answer: gone).
func parseState(out []byte) runState {
	f := strings.Fields(string(out))
	st := runState{state: "gone"}
	if len(f) != 3 {
		return st
	}
	st.state = f[0]
	if n, err := strconv.Atoi(f[1]); err == nil {
		st.status, st.hasStatus = n, true
	}
	st.port, _ = strconv.Atoi(f[2])
	return st
}
