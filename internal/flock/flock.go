// Package flock tells whether another process holds a file's lock: the
// agent's run directories, job networks and journal are owned by whoever
// holds their flock.
package flock

import (
	"os"
	"syscall"
)

// Held reports whether a process other than this open file's holds an
// exclusive or shared flock on f's file. It takes the lock and lets it go
// at once when it is free.
func Held(f *os.File) bool {
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return true
	}
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false
}
