// Package sshworker is the agent's side of a server that runs SSH jobs
// fast: one long-lived process per SSH connection (the helper program,
// started as `cronium ssh-worker` in a session of its own) that prepares
// and launches runs and streams their output, so that a run costs the
// server no shell, no upload tools and no polling processes, only its
// interpreter.
//
// It keeps the layout of the shell path (runner/sshexec's remote.go) to
// the byte: the same work directory, files and status, so that a run it
// launched is followed, stopped, adopted and removed by the shell
// commands when its connection or its agent goes away.
//
// Frames, both ways: a type byte, the run's number (uint32) and the
// payload's length (uint32), big-endian, then the payload.
package sshworker

import (
	"encoding/binary"
	"fmt"
	"io"
)

// Command is the helper program's argument that makes it a worker.
const Command = "ssh-worker"

// Frame types from the agent.
const (
	// Prepare: a JSON Prepare; the answer is Ready or Failed.
	Prepare byte = 'P'
	// Go launches a prepared run; Abandon forgets it (the agent could not
	// journal its start: it is never launched from this frame).
	Go      byte = 'G'
	Abandon byte = 'A'
)

// Frame types from the worker.
const (
	Ready  byte = 'R'
	Failed byte = 'F' // the payload says why
	Stdout byte = 'O'
	Stderr byte = 'E'
	// Exit: the run ended with the status in the payload (int32); its
	// work directory stays for the agent to remove.
	Exit byte = 'X'
	// NoStatus: the run ended without a status (stopped, or killed on
	// the server); its work directory is left.
	NoStatus byte = 'N'
)

// maxPayload bounds a frame: scripts and output chunks are far smaller.
const maxPayload = 64 << 20

// Frame is one message.
type Frame struct {
	Type    byte
	Run     uint32
	Payload []byte
}

// WriteFrame writes f to w in one write.
func WriteFrame(w io.Writer, f Frame) error {
	b := make([]byte, 9+len(f.Payload))
	b[0] = f.Type
	binary.BigEndian.PutUint32(b[1:5], f.Run)
	binary.BigEndian.PutUint32(b[5:9], uint32(len(f.Payload)))
	copy(b[9:], f.Payload)
	_, err := w.Write(b)
	return err
}

// ReadFrame reads the next frame from r.
func ReadFrame(r io.Reader) (Frame, error) {
	var h [9]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return Frame{}, err
	}
	n := binary.BigEndian.Uint32(h[5:9])
	if n > maxPayload {
		return Frame{}, fmt.Errorf("frame of %d bytes: more than %d", n, maxPayload)
	}
	f := Frame{Type: h[0], Run: binary.BigEndian.Uint32(h[1:5]), Payload: make([]byte, n)}
	if _, err := io.ReadFull(r, f.Payload); err != nil {
		return Frame{}, fmt.Errorf("frame payload: %w", err)
	}
	return f, nil
}

// ExitPayload and ExitStatus encode an Exit frame's status.
func ExitPayload(status int) []byte {
	return binary.BigEndian.AppendUint32(nil, uint32(int32(status)))
}

// ExitStatus decodes an Exit frame's status.
func ExitStatus(p []byte) (int, error) {
	if len(p) != 4 {
		return 0, fmt.Errorf("exit frame of %d bytes", len(p))
	}
	return int(int32(binary.BigEndian.Uint32(p))), nil
}

// PrepareRun is a Prepare frame's payload: the run's work directory name
// (under $TMPDIR or /tmp), its files (names relative to it, run.sh among
// them), the interpreter that must be installed, and run.sh's arguments.
type PrepareRun struct {
	Dir         string   `json:"dir"`
	Files       []File   `json:"files"`
	Interpreter string   `json:"interpreter"`
	Args        []string `json:"args"`
}

// File is one file of a run.
type File struct {
	Name string `json:"name"`
	Data []byte `json:"data"`
}
