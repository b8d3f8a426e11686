package imagebuild

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

const testRef = "cronium.local/runtimes/bash:0123456789ab"

// entry is what the tests check of one layer tar entry.
type entry struct {
	typ      byte
	mode     int64
	uid, gid int
	size     int64
	link     string
	content  string
	mtime    int64
}

// makeTree creates a small root filesystem under a temporary directory:
// directories, files with special modes, a symlink, a hard link pair, a fifo
// and a socket.
func makeTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	mustMkdir := func(rel string, mode os.FileMode) {
		t.Helper()
		p := filepath.Join(root, rel)
		if err := os.Mkdir(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Chmod(p, uint32(mode)); err != nil { // past the umask, raw sticky bit
			t.Fatal(err)
		}
	}
	mustFile := func(rel, content string, mode os.FileMode) {
		t.Helper()
		p := filepath.Join(root, rel)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Chmod(p, uint32(mode)); err != nil { // raw setuid bit
			t.Fatal(err)
		}
	}
	mustMkdir("etc", 0o755)
	mustMkdir("tmp", 0o1777)
	mustMkdir("usr", 0o755)
	mustMkdir("usr/bin", 0o755)
	mustMkdir("workspace", 0o755)
	mustFile("etc/passwd", "root:x:0:0:root:/root:/bin/bash\n", 0o644)
	mustFile("etc/shadow", "root:*:1::::::\n", 0o640)
	mustFile("usr/bin/tool", "#!/bin/sh\necho tool\n", 0o755)
	mustFile("usr/bin/su", "setuid\n", 0o4755)
	mustFile("usr/bin/empty", "", 0o644)
	if err := os.Link(filepath.Join(root, "usr/bin/tool"), filepath.Join(root, "usr/bin/tool2")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("usr/bin", filepath.Join(root, "bin")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(root, "tmp/fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", filepath.Join(root, "tmp/sock"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })

	// Fixed times: 2020-01-01 for everything, one file in the "future".
	base := time.Date(2020, 1, 1, 0, 0, 0, 500, time.UTC)
	future := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	err = filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.Mode()&os.ModeSymlink != 0 {
			return err
		}
		return os.Chtimes(p, base, base)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(root, "usr/bin/empty"), future, future); err != nil {
		t.Fatal(err)
	}
	return root
}

// readArchive reads the outer tar into name → content (directories map to "").
func readArchive(t *testing.T, data []byte) (names []string, files map[string][]byte) {
	t.Helper()
	files = make(map[string][]byte)
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return names, files
		}
		if err != nil {
			t.Fatalf("reading archive: %v", err)
		}
		names = append(names, hdr.Name)
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("reading %s: %v", hdr.Name, err)
		}
		files[hdr.Name] = b
	}
}

// blob returns the blob of desc from the archive after checking its digest
// and size.
func blob(t *testing.T, files map[string][]byte, desc ocispec.Descriptor) []byte {
	t.Helper()
	b, ok := files["blobs/sha256/"+desc.Digest.Encoded()]
	if !ok {
		t.Fatalf("blob %s (%s) missing", desc.Digest, desc.MediaType)
	}
	if got := digest.FromBytes(b); got != desc.Digest {
		t.Errorf("blob %s has digest %s", desc.Digest, got)
	}
	if int64(len(b)) != desc.Size {
		t.Errorf("blob %s: size %d, descriptor says %d", desc.Digest, len(b), desc.Size)
	}
	return b
}

func decode(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decoding %T: %v", v, err)
	}
}

// readLayer returns the entries of a gzip layer in order, and the digest of
// the uncompressed tar.
func readLayer(t *testing.T, b []byte) ([]string, map[string]entry, digest.Digest) {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	entries := make(map[string]entry)
	tr := tar.NewReader(bytes.NewReader(raw))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		content, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, hdr.Name)
		entries[hdr.Name] = entry{
			typ: hdr.Typeflag, mode: hdr.Mode, uid: hdr.Uid, gid: hdr.Gid,
			size: hdr.Size, link: hdr.Linkname, content: string(content), mtime: hdr.ModTime.Unix(),
		}
	}
	return names, entries, digest.FromBytes(raw)
}

func TestWriteArchive(t *testing.T) {
	root := makeTree(t)
	created := time.Date(2025, 5, 20, 12, 0, 0, 0, time.UTC)
	cfg := ImageConfig{
		Env:        []string{"PATH=/usr/bin:/bin", "LANG=C.UTF-8"},
		User:       "1000:1000",
		WorkingDir: "/workspace",
		Cmd:        []string{"bash"},
		Labels:     map[string]string{"io.cronium.runtime": "bash"},
		Created:    created,
	}
	var buf bytes.Buffer
	if err := WriteArchive(context.Background(), root, testRef, cfg, &buf); err != nil {
		t.Fatalf("WriteArchive: %v", err)
	}
	names, files := readArchive(t, buf.Bytes())

	// The layout.
	if names[0] != "oci-layout" || names[len(names)-1] != "index.json" {
		t.Errorf("archive entries = %v, want oci-layout first and index.json last", names)
	}
	var layout ocispec.ImageLayout
	decode(t, files["oci-layout"], &layout)
	if layout.Version != ocispec.ImageLayoutVersion {
		t.Errorf("oci-layout version = %q", layout.Version)
	}
	var index ocispec.Index
	decode(t, files["index.json"], &index)
	if index.SchemaVersion != 2 || index.MediaType != ocispec.MediaTypeImageIndex || len(index.Manifests) != 1 {
		t.Fatalf("index = %+v", index)
	}
	mdesc := index.Manifests[0]
	if mdesc.MediaType != ocispec.MediaTypeImageManifest {
		t.Errorf("manifest media type = %q", mdesc.MediaType)
	}
	wantAnn := map[string]string{
		ocispec.AnnotationRefName: "0123456789ab",
		AnnotationImageName:       testRef,
	}
	for k, v := range wantAnn {
		if mdesc.Annotations[k] != v {
			t.Errorf("index annotation %s = %q, want %q", k, mdesc.Annotations[k], v)
		}
	}
	if mdesc.Platform == nil || mdesc.Platform.OS != "linux" || mdesc.Platform.Architecture == "" {
		t.Errorf("index platform = %+v", mdesc.Platform)
	}

	// Manifest and config.
	var manifest ocispec.Manifest
	decode(t, blob(t, files, mdesc), &manifest)
	if manifest.SchemaVersion != 2 || manifest.MediaType != ocispec.MediaTypeImageManifest {
		t.Errorf("manifest = %+v", manifest)
	}
	if manifest.Config.MediaType != ocispec.MediaTypeImageConfig {
		t.Errorf("config media type = %q", manifest.Config.MediaType)
	}
	if len(manifest.Layers) != 1 || manifest.Layers[0].MediaType != ocispec.MediaTypeImageLayerGzip {
		t.Fatalf("layers = %+v", manifest.Layers)
	}
	var img ocispec.Image
	decode(t, blob(t, files, manifest.Config), &img)
	if img.OS != mdesc.Platform.OS || img.Architecture != mdesc.Platform.Architecture {
		t.Errorf("config platform %s/%s, index says %+v", img.OS, img.Architecture, mdesc.Platform)
	}
	if img.Created == nil || !img.Created.Equal(created) {
		t.Errorf("created = %v, want %v", img.Created, created)
	}
	if !slices.Equal(img.Config.Env, cfg.Env) || img.Config.User != cfg.User ||
		img.Config.WorkingDir != cfg.WorkingDir || !slices.Equal(img.Config.Cmd, cfg.Cmd) ||
		img.Config.Labels["io.cronium.runtime"] != "bash" || img.Config.Entrypoint != nil {
		t.Errorf("config = %+v", img.Config)
	}

	// The layer.
	layerNames, entries, diffID := readLayer(t, blob(t, files, manifest.Layers[0]))
	if img.RootFS.Type != "layers" || !slices.Equal(img.RootFS.DiffIDs, []digest.Digest{diffID}) {
		t.Errorf("rootfs = %+v, want diff ID %s", img.RootFS, diffID)
	}
	wantNames := []string{
		"bin", "etc/", "etc/passwd", "etc/shadow", "tmp/", "tmp/fifo",
		"usr/", "usr/bin/", "usr/bin/empty", "usr/bin/su", "usr/bin/tool", "usr/bin/tool2",
		"workspace/",
	}
	if !slices.Equal(layerNames, wantNames) {
		t.Errorf("layer entries =\n%q\nwant\n%q", layerNames, wantNames)
	}
	uid, gid := os.Getuid(), os.Getgid()
	baseTime := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	tests := []struct {
		name string
		want entry
	}{
		{"etc/", entry{typ: tar.TypeDir, mode: 0o755}},
		{"tmp/", entry{typ: tar.TypeDir, mode: 0o1777}},
		{"etc/passwd", entry{typ: tar.TypeReg, mode: 0o644, size: 32, content: "root:x:0:0:root:/root:/bin/bash\n"}},
		{"etc/shadow", entry{typ: tar.TypeReg, mode: 0o640, size: 15, content: "root:*:1::::::\n"}},
		{"usr/bin/su", entry{typ: tar.TypeReg, mode: 0o4755, size: 7, content: "setuid\n"}},
		{"usr/bin/tool", entry{typ: tar.TypeReg, mode: 0o755, size: 20, content: "#!/bin/sh\necho tool\n"}},
		{"usr/bin/tool2", entry{typ: tar.TypeLink, mode: 0o755, link: "usr/bin/tool"}},
		{"bin", entry{typ: tar.TypeSymlink, mode: 0o777, link: "usr/bin"}},
		{"tmp/fifo", entry{typ: tar.TypeFifo, mode: 0o600}},
		// Later than Created: clamped.
		{"usr/bin/empty", entry{typ: tar.TypeReg, mode: 0o644, mtime: created.Unix()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := entries[tt.name]
			if !ok {
				t.Fatalf("missing from the layer")
			}
			want := tt.want
			want.uid, want.gid = uid, gid
			if want.mtime == 0 && want.typ != tar.TypeSymlink {
				want.mtime = baseTime
			}
			if want.typ == tar.TypeSymlink {
				want.mtime = got.mtime // symlink times are not set by the test
			}
			if got != want {
				t.Errorf("entry =\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

func TestWriteArchiveOwners(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown and mknod")
	}
	root := t.TempDir()
	p := filepath.Join(root, "workspace")
	if err := os.Mkdir(p, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(p, 1000, 1000); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "dev"), 0o755); err != nil {
		t.Fatal(err)
	}
	// /dev/null: 1,3. Skipped in the layer.
	if err := syscall.Mknod(filepath.Join(root, "dev/null"), syscall.S_IFCHR|0o666, 1<<8|3); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteArchive(context.Background(), root, testRef, ImageConfig{}, &buf); err != nil {
		t.Fatal(err)
	}
	_, files := readArchive(t, buf.Bytes())
	var index ocispec.Index
	decode(t, files["index.json"], &index)
	var manifest ocispec.Manifest
	decode(t, blob(t, files, index.Manifests[0]), &manifest)
	names, entries, _ := readLayer(t, blob(t, files, manifest.Layers[0]))
	if want := []string{"dev/", "workspace/"}; !slices.Equal(names, want) {
		t.Errorf("layer entries = %q, want %q", names, want)
	}
	if e := entries["workspace/"]; e.uid != 1000 || e.gid != 1000 {
		t.Errorf("workspace owner = %d:%d, want 1000:1000", e.uid, e.gid)
	}
	var img ocispec.Image
	decode(t, blob(t, files, manifest.Config), &img)
	if img.Created != nil || img.History[0].Created != nil {
		t.Errorf("created = %v, want none when ImageConfig.Created is zero", img.Created)
	}
}

func TestWriteArchiveDeterministic(t *testing.T) {
	root := makeTree(t)
	cfg := ImageConfig{Env: []string{"LANG=C.UTF-8"}, Created: time.Unix(1700000000, 0)}
	var a, b bytes.Buffer
	if err := WriteArchive(context.Background(), root, testRef, cfg, &a); err != nil {
		t.Fatal(err)
	}
	if err := WriteArchive(context.Background(), root, testRef, cfg, &b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Errorf("two packs of the same tree differ (%d and %d bytes)", a.Len(), b.Len())
	}
}

func TestWriteArchiveErrors(t *testing.T) {
	good := makeTree(t)
	whiteout := t.TempDir()
	if err := os.WriteFile(filepath.Join(whiteout, ".wh.gone"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	canceled, cancel := context.WithCancel(context.Background())
	cancel()

	tests := []struct {
		name    string
		ctx     context.Context
		rootfs  string
		ref     string
		wantErr string
		is      error
	}{
		{name: "no tag", rootfs: good, ref: "cronium.local/runtimes/bash", wantErr: "has no tag"},
		{name: "port but no tag", rootfs: good, ref: "localhost:5000/bash", wantErr: "has no tag"},
		{name: "bad name", rootfs: good, ref: "Cronium/Bash:1", wantErr: "invalid name"},
		{name: "missing rootfs", rootfs: filepath.Join(good, "nope"), ref: testRef, wantErr: "rootfs", is: os.ErrNotExist},
		{name: "rootfs is a file", rootfs: notDir, ref: testRef, wantErr: "is not a directory"},
		{name: "whiteout name", rootfs: whiteout, ref: testRef, wantErr: "reserved for layer whiteouts"},
		{name: "canceled", ctx: canceled, rootfs: good, ref: testRef, wantErr: "packing", is: context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := tt.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			err := WriteArchive(ctx, tt.rootfs, tt.ref, ImageConfig{}, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("err = %v, want it to wrap %v", err, tt.is)
			}
		})
	}
}

func TestSplitRef(t *testing.T) {
	tests := []struct {
		ref       string
		name, tag string
		wantErr   bool
	}{
		{ref: "cronium.local/runtimes/bash:0123456789ab", name: "cronium.local/runtimes/bash", tag: "0123456789ab"},
		{ref: "localhost:5000/cronium/node:v1.2_3-rc", name: "localhost:5000/cronium/node", tag: "v1.2_3-rc"},
		{ref: "busybox:latest", name: "busybox", tag: "latest"},
		{ref: "a.b-c_d/e:X", name: "a.b-c_d/e", tag: "X"},
		{ref: "busybox", wantErr: true},
		{ref: "busybox:", wantErr: true},
		{ref: ":tag", wantErr: true},
		{ref: "busybox:.x", wantErr: true},
		{ref: "busybox:a/b", wantErr: true},
		{ref: "busybox@sha256:abcd", wantErr: true},
		{ref: "Busybox:1", wantErr: true},
		{ref: "cronium//bash:1", wantErr: true},
		{ref: "cronium/bash-:1", wantErr: true},
		{ref: "host:port/bash:1", wantErr: true},
		{ref: "bash:" + strings.Repeat("x", 129), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			name, tag, err := SplitRef(tt.ref)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("SplitRef(%q) = %q, %q, want an error", tt.ref, name, tag)
				}
				return
			}
			if err != nil || name != tt.name || tag != tt.tag {
				t.Errorf("SplitRef(%q) = %q, %q, %v; want %q, %q", tt.ref, name, tag, err, tt.name, tt.tag)
			}
		})
	}
}
