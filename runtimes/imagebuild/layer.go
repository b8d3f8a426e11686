package imagebuild

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// whiteoutPrefix marks deletions in layer tars; a file named like that in a
// root filesystem would be misread as one, so packing refuses it.
const whiteoutPrefix = ".wh."

// fileID identifies an inode, to find hard links.
type fileID struct{ dev, ino uint64 }

// writeLayer writes the uncompressed layer tar of the tree under root to w.
// Entries come in lexical order (a directory before its contents), named
// relative to root without a leading "./". Modification times later than
// clamp (when clamp is not zero) are set to clamp, and all times are whole
// seconds.
func writeLayer(ctx context.Context, root string, clamp time.Time, w io.Writer) error {
	tw := tar.NewWriter(w)
	links := make(map[fileID]string)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, walkErr error) error {
		if walkErr != nil {
			return walkErr
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		return addEntry(tw, p, filepath.ToSlash(rel), clamp, links)
	})
	if err != nil {
		return fmt.Errorf("imagebuild: packing %s: %w", root, err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("imagebuild: finishing the layer: %w", err)
	}
	return nil
}

// addEntry writes the tar entry for the file at p, named name. Device nodes
// and sockets are skipped.
func addEntry(tw *tar.Writer, p, name string, clamp time.Time, links map[fileID]string) error {
	if strings.HasPrefix(baseName(name), whiteoutPrefix) {
		return fmt.Errorf("%s: name is reserved for layer whiteouts", name)
	}
	fi, err := os.Lstat(p)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("%s: no owner information (%T)", name, fi.Sys())
	}
	mtime := time.Unix(fi.ModTime().Unix(), 0)
	if !clamp.IsZero() && mtime.After(clamp) {
		mtime = time.Unix(clamp.Unix(), 0)
	}
	hdr := &tar.Header{
		Name:    name,
		Mode:    int64(st.Mode & 0o7777),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: mtime,
	}

	mode := fi.Mode()
	switch {
	case mode.IsDir():
		hdr.Typeflag = tar.TypeDir
		hdr.Name += "/"
	case mode.IsRegular():
		id := fileID{dev: uint64(st.Dev), ino: uint64(st.Ino)}
		if st.Nlink > 1 {
			if first, seen := links[id]; seen {
				hdr.Typeflag = tar.TypeLink
				hdr.Linkname = first
				break
			}
			links[id] = name
		}
		hdr.Typeflag = tar.TypeReg
		hdr.Size = fi.Size()
	case mode&fs.ModeSymlink != 0:
		target, err := os.Readlink(p)
		if err != nil {
			return err
		}
		hdr.Typeflag = tar.TypeSymlink
		hdr.Linkname = target
	case mode&fs.ModeNamedPipe != 0:
		hdr.Typeflag = tar.TypeFifo
	default:
		// Device nodes, sockets: the runtime provides its own /dev.
		return nil
	}

	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if hdr.Typeflag != tar.TypeReg {
		return nil
	}
	return copyFile(tw, p, name, hdr.Size)
}

// copyFile copies exactly size bytes of the file at p into the tar entry.
func copyFile(tw *tar.Writer, p, name string, size int64) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := io.CopyN(tw, f, size)
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("%s: file shrank while packing (%d of %d bytes)", name, n, size)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// baseName returns the last element of a slash-separated name.
func baseName(name string) string {
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		return name[i+1:]
	}
	return name
}
