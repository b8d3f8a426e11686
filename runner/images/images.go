// Package images finds, imports, pulls and lists the images jobs run in, in
// the agent's containerd namespace.
package images

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
)

// RuntimeRepoPrefix starts the name of every runtime image built by this
// project (see runtimes/images).
const RuntimeRepoPrefix = "cronium.local/runtimes/"

// ErrNotFound is returned when an image is neither in the namespace nor
// pullable (a runtime image that was never imported).
var ErrNotFound = errors.New("image not found")

// Store manages images for one snapshotter.
type Store struct {
	client      *containerd.Client
	snapshotter string
	plainHTTP   []string
}

// Option configures a Store.
type Option func(*Store)

// WithPlainHTTP names registry hosts (host or host:port) reached over plain
// HTTP. Loopback registries always are.
func WithPlainHTTP(hosts ...string) Option {
	return func(s *Store) { s.plainHTTP = append(s.plainHTTP, hosts...) }
}

// New returns a Store unpacking into the given snapshotter.
func New(client *containerd.Client, snapshotter string, opts ...Option) *Store {
	s := &Store{client: client, snapshotter: snapshotter}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Info describes one image.
type Info struct {
	Name     string
	Digest   string
	Size     int64
	Unpacked bool
}

// Ensure returns the image named ref, unpacked for the snapshotter, pulling it
// when it is missing and names a registry. Runtime images are never pulled:
// they come from `cronium-agent images import`.
func (s *Store) Ensure(ctx context.Context, ref string) (containerd.Image, error) {
	ref, err := Normalize(ref)
	if err != nil {
		return nil, err
	}
	img, err := s.client.GetImage(ctx, ref)
	switch {
	case err == nil:
	case errdefs.IsNotFound(err):
		if strings.HasPrefix(ref, RuntimeRepoPrefix) {
			return nil, fmt.Errorf("%w: %s is not imported (run `cronium-agent images import <archive>`, or `make images` in the source tree)", ErrNotFound, ref)
		}
		if img, err = s.Pull(ctx, ref); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("look up image %s: %w", ref, err)
	}
	unpacked, err := img.IsUnpacked(ctx, s.snapshotter)
	if err != nil {
		return nil, fmt.Errorf("check image %s: %w", ref, err)
	}
	if !unpacked {
		if err := img.Unpack(ctx, s.snapshotter); err != nil {
			return nil, fmt.Errorf("unpack image %s: %w", ref, err)
		}
	}
	return img, nil
}

// Pull fetches ref from its registry and unpacks it.
func (s *Store) Pull(ctx context.Context, ref string) (containerd.Image, error) {
	resolver := docker.NewResolver(docker.ResolverOptions{
		Hosts: docker.ConfigureDefaultRegistries(docker.WithPlainHTTP(s.isPlainHTTP)),
	})
	img, err := s.client.Pull(ctx, ref,
		containerd.WithResolver(resolver),
		containerd.WithPullUnpack,
		containerd.WithPullSnapshotter(s.snapshotter),
	)
	if errdefs.IsNotFound(err) {
		return nil, fmt.Errorf("%w: pull image %s: %w", ErrNotFound, ref, err)
	}
	if err != nil {
		return nil, fmt.Errorf("pull image %s: %w", ref, err)
	}
	return img, nil
}

// Normalize turns a short reference into the full name containerd stores
// (debian:12 -> docker.io/library/debian:12, host:5000/app -> host:5000/app:latest).
func Normalize(ref string) (string, error) {
	named, err := reference.ParseDockerRef(ref)
	if err != nil {
		return "", fmt.Errorf("invalid image reference %q: %w", ref, err)
	}
	return named.String(), nil
}

func (s *Store) isPlainHTTP(host string) (bool, error) {
	if slices.Contains(s.plainHTTP, host) {
		return true, nil
	}
	return docker.MatchLocalhost(host)
}

// ImportFile loads an OCI image archive. Runtime images (named below
// RuntimeRepoPrefix) are also tagged ":latest", which is what the default
// configuration runs.
func (s *Store) ImportFile(ctx context.Context, path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open image archive: %w", err)
	}
	defer f.Close()
	names, err := s.Import(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", path, err)
	}
	return names, nil
}

// Import loads an OCI image archive from r and returns the names it created.
func (s *Store) Import(ctx context.Context, r io.Reader) ([]string, error) {
	imgs, err := s.client.Import(ctx, r, containerd.WithAllPlatforms(false))
	if err != nil {
		return nil, err
	}
	if len(imgs) == 0 {
		return nil, errors.New("the archive names no image (an OCI archive needs an io.containerd.image.name or org.opencontainers.image.ref.name annotation)")
	}
	var names []string
	is := s.client.ImageService()
	for _, im := range imgs {
		names = append(names, im.Name)
		if err := containerd.NewImage(s.client, im).Unpack(ctx, s.snapshotter); err != nil {
			return names, fmt.Errorf("unpack %s: %w", im.Name, err)
		}
		if repo, _, ok := strings.Cut(im.Name, ":"); ok && strings.HasPrefix(im.Name, RuntimeRepoPrefix) {
			latest := images.Image{Name: repo + ":latest", Target: im.Target, Labels: im.Labels}
			_, err := is.Create(ctx, latest)
			if errdefs.IsAlreadyExists(err) {
				_, err = is.Update(ctx, latest, "target")
			}
			if err != nil {
				return names, fmt.Errorf("tag %s: %w", latest.Name, err)
			}
			names = append(names, latest.Name)
		}
	}
	return names, nil
}

// List returns every image of the namespace, by name.
func (s *Store) List(ctx context.Context) ([]Info, error) {
	imgs, err := s.client.ListImages(ctx)
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	out := make([]Info, 0, len(imgs))
	for _, img := range imgs {
		size, err := img.Size(ctx)
		if err != nil {
			return nil, fmt.Errorf("size of %s: %w", img.Name(), err)
		}
		unpacked, err := img.IsUnpacked(ctx, s.snapshotter)
		if err != nil {
			return nil, fmt.Errorf("check %s: %w", img.Name(), err)
		}
		out = append(out, Info{Name: img.Name(), Digest: img.Target().Digest.String(), Size: size, Unpacked: unpacked})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// ImportMissing imports the image archives (*.tar) of dir when one of
// want is not in the namespace: the way packaged runtime images
// (cronium-runtimes) reach containerd on a host with no registry. It
// returns the names imported; a dir that does not exist imports nothing.
func (s *Store) ImportMissing(ctx context.Context, dir string, want []string) ([]string, error) {
	if dir == "" || len(want) == 0 {
		return nil, nil
	}
	have := map[string]bool{}
	imgs, err := s.client.ListImages(ctx)
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	for _, img := range imgs {
		have[img.Name()] = true
	}
	missing := false
	for _, w := range want {
		if n, err := Normalize(w); err == nil && !have[n] && !have[w] {
			missing = true
		}
	}
	if !missing {
		return nil, nil
	}
	archives, err := filepath.Glob(filepath.Join(dir, "*.tar"))
	if err != nil {
		return nil, err
	}
	sort.Strings(archives)
	var names []string
	for _, a := range archives {
		n, err := s.ImportFile(ctx, a)
		names = append(names, n...)
		if err != nil {
			return names, err
		}
	}
	return names, nil
}
