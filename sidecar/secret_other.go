//go:build !unix

package sidecar

import (
	"io/fs"
	"os"
)

func openNoFollow(path string) (*os.File, error) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		return nil, errSymlink
	}
	return os.Open(path)
}

var errSymlink = fs.ErrInvalid

func isSymlinkErr(err error) bool { return err == errSymlink }

func checkOwner(fs.FileInfo) error { return nil }
