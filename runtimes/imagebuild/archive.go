// Package imagebuild turns a root filesystem directory into an OCI image
// archive: an OCI image layout (oci-layout, index.json, blobs/sha256/...)
// written as a tar stream, holding one gzip layer, the image config and the
// manifest. containerd's import (client.Import, `ctr images import`) reads
// such an archive and names the image after the index annotations.
package imagebuild

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"runtime"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// AnnotationImageName is the index annotation containerd reads to name an
// imported image with its full reference.
const AnnotationImageName = "io.containerd.image.name"

// ImageConfig is what goes into the image configuration besides the layer.
type ImageConfig struct {
	// OS and Architecture of the root filesystem; empty means "linux" and
	// the architecture this program was built for. Variant is optional
	// (e.g. "v7" for arm).
	OS           string
	Architecture string
	Variant      string

	Env        []string
	User       string
	WorkingDir string
	Entrypoint []string
	Cmd        []string
	Labels     map[string]string

	// Created is the image creation time. When set, it is recorded in the
	// config and history, and it is the upper bound of every layer entry's
	// modification time (later ones are clamped to it). When zero, no
	// creation time is recorded and modification times are kept as found.
	Created time.Time
}

// WriteArchive packs the directory rootfs as a single-layer OCI image named
// ref (a full reference with a tag, e.g. "cronium.local/runtimes/bash:1a2b3c")
// and writes it to w as an OCI image layout in a tar stream.
//
// The layer keeps file modes, owners, symlinks and hard links; device nodes
// and sockets are skipped. Entries are sorted and the output depends only on
// the tree and the arguments, so packing the same tree twice gives the same
// bytes. The compressed layer is staged in a temporary file (os.TempDir).
func WriteArchive(ctx context.Context, rootfs string, ref string, cfg ImageConfig, w io.Writer) (err error) {
	_, tag, err := SplitRef(ref)
	if err != nil {
		return err
	}
	fi, err := os.Stat(rootfs)
	if err != nil {
		return fmt.Errorf("imagebuild: rootfs: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("imagebuild: rootfs %s is not a directory", rootfs)
	}

	tmp, err := os.CreateTemp("", "cronium-layer-*.tar.gz")
	if err != nil {
		return fmt.Errorf("imagebuild: staging the layer: %w", err)
	}
	defer func() {
		cerr := tmp.Close()
		rerr := os.Remove(tmp.Name())
		if err == nil && cerr != nil {
			err = fmt.Errorf("imagebuild: closing the staged layer: %w", cerr)
		}
		if err == nil && rerr != nil {
			err = fmt.Errorf("imagebuild: removing the staged layer: %w", rerr)
		}
	}()

	layer, diffID, err := compressLayer(ctx, rootfs, cfg.Created, tmp)
	if err != nil {
		return err
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("imagebuild: rewinding the staged layer: %w", err)
	}

	configJSON, err := json.Marshal(imageConfig(cfg, diffID))
	if err != nil {
		return fmt.Errorf("imagebuild: encoding the image config: %w", err)
	}
	configDesc := descriptorFor(ocispec.MediaTypeImageConfig, configJSON)

	manifestJSON, err := json.Marshal(ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    configDesc,
		Layers:    []ocispec.Descriptor{layer},
	})
	if err != nil {
		return fmt.Errorf("imagebuild: encoding the manifest: %w", err)
	}
	manifestDesc := descriptorFor(ocispec.MediaTypeImageManifest, manifestJSON)
	manifestDesc.Platform = platform(cfg)
	manifestDesc.Annotations = map[string]string{
		ocispec.AnnotationRefName: tag,
		AnnotationImageName:       ref,
	}

	indexJSON, err := json.Marshal(ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{manifestDesc},
	})
	if err != nil {
		return fmt.Errorf("imagebuild: encoding the index: %w", err)
	}
	layoutJSON, err := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err != nil {
		return fmt.Errorf("imagebuild: encoding %s: %w", ocispec.ImageLayoutFile, err)
	}

	aw := archiveWriter{tw: tar.NewWriter(w), mtime: archiveTime(cfg.Created)}
	aw.file(ocispec.ImageLayoutFile, bytes.NewReader(layoutJSON), int64(len(layoutJSON)))
	aw.dir(ocispec.ImageBlobsDir + "/")
	aw.dir(ocispec.ImageBlobsDir + "/sha256/")
	aw.file(blobPath(layer.Digest), tmp, layer.Size)
	aw.file(blobPath(configDesc.Digest), bytes.NewReader(configJSON), configDesc.Size)
	aw.file(blobPath(manifestDesc.Digest), bytes.NewReader(manifestJSON), manifestDesc.Size)
	aw.file(ocispec.ImageIndexFile, bytes.NewReader(indexJSON), int64(len(indexJSON)))
	if aw.err != nil {
		return aw.err
	}
	if err := aw.tw.Close(); err != nil {
		return fmt.Errorf("imagebuild: finishing the archive: %w", err)
	}
	return nil
}

// SplitRef splits a full image reference "name:tag" into its name and tag.
// The name is lower-case path components separated by "/" (the first may be
// a registry host with a port); digests ("@sha256:...") are not accepted.
func SplitRef(ref string) (name, tag string, err error) {
	i := strings.LastIndexByte(ref, ':')
	if i < 0 || strings.Contains(ref[i+1:], "/") {
		return "", "", fmt.Errorf("imagebuild: image reference %q has no tag", ref)
	}
	name, tag = ref[:i], ref[i+1:]
	if !validTag(tag) {
		return "", "", fmt.Errorf("imagebuild: image reference %q: invalid tag %q", ref, tag)
	}
	if !validName(name) {
		return "", "", fmt.Errorf("imagebuild: image reference %q: invalid name %q", ref, name)
	}
	return name, tag, nil
}

// validTag reports whether s is a tag: [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}.
func validTag(s string) bool {
	if s == "" || len(s) > 128 || s[0] == '.' || s[0] == '-' {
		return false
	}
	for _, c := range []byte(s) {
		if !isLowerAlnum(c) && !(c >= 'A' && c <= 'Z') && c != '_' && c != '.' && c != '-' {
			return false
		}
	}
	return true
}

// validName reports whether s is a repository name: components of lower-case
// letters and digits joined by ".", "_" or "-", separated by "/"; the first
// component may end with a ":port".
func validName(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for i, comp := range strings.Split(s, "/") {
		if i == 0 {
			if host, port, ok := strings.Cut(comp, ":"); ok {
				if !allDigits(port) {
					return false
				}
				comp = host
			}
		}
		if !validComponent(comp) {
			return false
		}
	}
	return true
}

func validComponent(s string) bool {
	if s == "" || !isLowerAlnum(s[0]) || !isLowerAlnum(s[len(s)-1]) {
		return false
	}
	for _, c := range []byte(s) {
		if !isLowerAlnum(c) && c != '.' && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

func isLowerAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// compressLayer writes the gzip-compressed layer tar of rootfs to w and
// returns its descriptor and the digest of the uncompressed tar (diff ID).
func compressLayer(ctx context.Context, rootfs string, clamp time.Time, w io.Writer) (ocispec.Descriptor, digest.Digest, error) {
	compressed := &countingHash{h: sha256.New()}
	bw := bufio.NewWriterSize(io.MultiWriter(w, compressed), 1<<20)
	// A zero gzip header (no name, no mtime) keeps the output deterministic.
	zw, err := gzip.NewWriterLevel(bw, gzip.DefaultCompression)
	if err != nil {
		return ocispec.Descriptor{}, "", fmt.Errorf("imagebuild: gzip: %w", err)
	}
	uncompressed := sha256.New()
	if err := writeLayer(ctx, rootfs, clamp, io.MultiWriter(zw, uncompressed)); err != nil {
		return ocispec.Descriptor{}, "", err
	}
	if err := zw.Close(); err != nil {
		return ocispec.Descriptor{}, "", fmt.Errorf("imagebuild: compressing the layer: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return ocispec.Descriptor{}, "", fmt.Errorf("imagebuild: writing the layer: %w", err)
	}
	desc := ocispec.Descriptor{
		MediaType: ocispec.MediaTypeImageLayerGzip,
		Digest:    digest.NewDigest(digest.SHA256, compressed.h),
		Size:      compressed.n,
	}
	return desc, digest.NewDigest(digest.SHA256, uncompressed), nil
}

// countingHash hashes and counts what is written to it.
type countingHash struct {
	h hash.Hash
	n int64
}

func (c *countingHash) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.h.Write(p)
}

func imageConfig(cfg ImageConfig, diffID digest.Digest) ocispec.Image {
	img := ocispec.Image{
		Platform: *platform(cfg),
		Config: ocispec.ImageConfig{
			User:       cfg.User,
			Env:        cfg.Env,
			Entrypoint: cfg.Entrypoint,
			Cmd:        cfg.Cmd,
			WorkingDir: cfg.WorkingDir,
			Labels:     cfg.Labels,
		},
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{diffID}},
	}
	h := ocispec.History{CreatedBy: "cronium-imagepack"}
	if !cfg.Created.IsZero() {
		created := cfg.Created.UTC().Truncate(time.Second)
		img.Created = &created
		h.Created = &created
	}
	img.History = []ocispec.History{h}
	return img
}

func platform(cfg ImageConfig) *ocispec.Platform {
	p := &ocispec.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}
	if p.OS == "" {
		p.OS = "linux"
	}
	if p.Architecture == "" {
		p.Architecture = runtime.GOARCH
	}
	return p
}

func descriptorFor(mediaType string, content []byte) ocispec.Descriptor {
	return ocispec.Descriptor{
		MediaType: mediaType,
		Digest:    digest.FromBytes(content),
		Size:      int64(len(content)),
	}
}

func blobPath(d digest.Digest) string {
	return path.Join(ocispec.ImageBlobsDir, d.Algorithm().String(), d.Encoded())
}

// archiveTime is the modification time of the archive's own entries.
func archiveTime(created time.Time) time.Time {
	if created.IsZero() {
		return time.Unix(0, 0)
	}
	return time.Unix(created.Unix(), 0)
}

// archiveWriter writes the entries of the outer (image layout) tar and keeps
// the first error.
type archiveWriter struct {
	tw    *tar.Writer
	mtime time.Time
	err   error
}

func (a *archiveWriter) dir(name string) {
	if a.err != nil {
		return
	}
	hdr := &tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: a.mtime}
	if err := a.tw.WriteHeader(hdr); err != nil {
		a.err = fmt.Errorf("imagebuild: writing %s: %w", name, err)
	}
}

func (a *archiveWriter) file(name string, r io.Reader, size int64) {
	if a.err != nil {
		return
	}
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: size, ModTime: a.mtime}
	if err := a.tw.WriteHeader(hdr); err != nil {
		a.err = fmt.Errorf("imagebuild: writing %s: %w", name, err)
		return
	}
	n, err := io.CopyN(a.tw, r, size)
	if errors.Is(err, io.EOF) {
		err = fmt.Errorf("short content (%d of %d bytes): %w", n, size, io.ErrUnexpectedEOF)
	}
	if err != nil {
		a.err = fmt.Errorf("imagebuild: writing %s: %w", name, err)
	}
}
