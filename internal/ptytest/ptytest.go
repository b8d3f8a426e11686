// Package ptytest gives tests a pseudo-terminal, to check what commands
// print when their output is a terminal.
package ptytest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// PTY is a pseudo-terminal whose output is collected from the start, so
// that a command writing more than the terminal buffers never blocks.
type PTY struct {
	// TTY is the terminal for a command to write to.
	TTY  *os.File
	out  bytes.Buffer
	read chan error
}

// Open returns a pseudo-terminal with output processing off (no \n to
// \r\n), so Output is exactly what was written to TTY. A test on a host
// without pseudo-terminals is skipped.
func Open(tb testing.TB) *PTY {
	tb.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		tb.Skipf("no pseudo-terminals: %v", err)
	}
	tb.Cleanup(func() { master.Close() })
	var n uint32
	if err := control(master, func(fd int) error {
		if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
			return fmt.Errorf("unlock: %w", err)
		}
		var err error
		n, err = unix.IoctlGetUint32(fd, unix.TIOCGPTN)
		return err
	}); err != nil {
		tb.Fatalf("pseudo-terminal: %v", err)
	}
	tty, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		tb.Fatalf("open the pseudo-terminal's tty: %v", err)
	}
	tb.Cleanup(func() { tty.Close() })
	if err := control(tty, func(fd int) error {
		tio, err := unix.IoctlGetTermios(fd, unix.TCGETS)
		if err != nil {
			return err
		}
		tio.Oflag &^= unix.OPOST
		return unix.IoctlSetTermios(fd, unix.TCSETS, tio)
	}); err != nil {
		tb.Fatalf("switch off output processing: %v", err)
	}
	p := &PTY{TTY: tty, read: make(chan error, 1)}
	go func() {
		_, err := io.Copy(&p.out, master)
		p.read <- err
	}()
	return p
}

// Output closes TTY and returns everything written to it.
func (p *PTY) Output(tb testing.TB) string {
	tb.Helper()
	p.TTY.Close()
	// With the tty closed and its output read, the master reads EIO.
	if err := <-p.read; err != nil && !errors.Is(err, syscall.EIO) {
		tb.Fatalf("read the pseudo-terminal: %v", err)
	}
	return p.out.String()
}

func control(f *os.File, fn func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}
