package images_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	ctrimages "github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cronium/cronium-agent/backend/api"
	"github.com/cronium/cronium-agent/internal/testenv"
	"github.com/cronium/cronium-agent/runner"
	"github.com/cronium/cronium-agent/runner/container"
	"github.com/cronium/cronium-agent/runner/images"
	"github.com/cronium/cronium-agent/runner/output"
)

func TestMain(m *testing.M) {
	testenv.MainWithShimLogger()
	os.Exit(m.Run())
}

const (
	registryBinary = "/usr/bin/docker-registry"
	baseImage      = "cronium.local/runtimes/bash:latest"
	snapshotter    = "overlayfs"
	markerPath     = "etc/cronium-pulltest"
	// distSourceLabel prefixes the label a pull puts on every blob it sees.
	distSourceLabel = "containerd.io/distribution.source."
)

// TestPullFromLoopbackRegistry pushes an image derived from the bash runtime
// image to a registry on 127.0.0.1, then has the Store pull and unpack it and
// runs a job in it. The derived image adds one layer with a random marker
// file, and its new blobs are deleted from the content store after the push,
// so the pull must really fetch manifest, config and layer from the registry
// (pushing the runtime image unchanged would "pull" only a manifest lookup:
// every blob would already be local).
func TestPullFromLoopbackRegistry(t *testing.T) {
	client := testenv.Containerd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := client.GetImage(ctx, baseImage); err != nil {
		testenv.Unavailable(t, "runtime image %s not imported (make import): %v", baseImage, err)
	}
	host := startRegistry(t)
	ref := host + "/cronium/bash:pulltest"

	// Nothing of ours may be local before the pull.
	if _, err := client.GetImage(ctx, ref); err == nil {
		t.Logf("removing leftover image %s", ref)
		if err := client.ImageService().Delete(ctx, ref, ctrimages.SynchronousDelete()); err != nil {
			t.Fatal(err)
		}
	} else if !errdefs.IsNotFound(err) {
		t.Fatal(err)
	}
	derived := pushDerived(ctx, t, client, host, ref)
	t.Cleanup(func() { cleanupPulled(t, client, ref, derived) })
	if _, err := client.GetImage(ctx, ref); !errdefs.IsNotFound(err) {
		t.Fatalf("image %s exists before the pull (err %v)", ref, err)
	}
	for _, d := range derived.blobs {
		if _, err := client.ContentStore().Info(ctx, d); !errdefs.IsNotFound(err) {
			t.Fatalf("blob %s is local before the pull (err %v)", d, err)
		}
	}

	store := images.New(client, snapshotter)
	start := time.Now()
	img, err := store.Ensure(ctx, ref)
	if err != nil {
		t.Fatalf("Ensure(%s): %v", ref, err)
	}
	t.Logf("pulled and unpacked %s in %v", ref, time.Since(start).Round(time.Millisecond))
	if img.Name() != ref || img.Target().Digest != derived.manifest {
		t.Fatalf("Ensure returned %s@%s, want %s@%s", img.Name(), img.Target().Digest, ref, derived.manifest)
	}
	local, err := client.GetImage(ctx, ref)
	if err != nil {
		t.Fatalf("image %s not local after the pull: %v", ref, err)
	}
	if unpacked, err := local.IsUnpacked(ctx, snapshotter); err != nil || !unpacked {
		t.Fatalf("image %s unpacked = %v (err %v), want true", ref, unpacked, err)
	}
	for _, d := range derived.blobs {
		if _, err := client.ContentStore().Info(ctx, d); err != nil {
			t.Fatalf("blob %s not fetched: %v", d, err)
		}
	}
	if _, err := client.SnapshotService(snapshotter).Stat(ctx, derived.chainID.String()); err != nil {
		t.Fatalf("snapshot of the pulled layers: %v", err)
	}
	// Once local, the image is found without a pull.
	if _, err := store.Ensure(ctx, ref); err != nil {
		t.Fatalf("second Ensure(%s): %v", ref, err)
	}

	// Run a job in the pulled image.
	// The job's mapped uid must traverse to its script file: t.TempDir's
	// parent is mode 0700, which the executor refuses.
	ex, err := container.New(client, testenv.StateDir(t),
		container.WithKillGrace(2*time.Second),
		container.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
		container.WithImageStore(store),
	)
	if err != nil {
		t.Fatal(err)
	}
	policy := runner.DefaultPolicy()
	req, err := policy.Request(runner.Job{
		ID:      "job_pulltest",
		Runtime: "bash",
		Script:  []byte("echo pulled; cat /etc/debian_version; cat /" + markerPath + "\n"),
		Timeout: time.Minute,
		Image:   ref,
	}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// The run's removal finishes in the background after its result.
		if err := ex.Wait(context.Background()); err != nil {
			t.Error(err)
		}
		assertRunGone(t, client, req.RunID)
	})
	var mu sync.Mutex
	var stdout, stderr bytes.Buffer
	res, err := ex.Run(ctx, req, func(e output.Entry) {
		mu.Lock()
		defer mu.Unlock()
		w := &stdout
		if e.Stream == output.Stderr {
			w = &stderr
		}
		w.Write(e.Data)
		if !e.Fragment {
			w.WriteByte('\n')
		}
	})
	mu.Lock()
	defer mu.Unlock()
	if err != nil {
		t.Fatalf("run in %s: %v (stderr %q)", ref, err, stderr.String())
	}
	if res.ExitCode != 0 || res.Status != api.StatusCompleted {
		t.Fatalf("run in %s: status %s, exit code %d, stdout %q, stderr %q", ref, res.Status, res.ExitCode, stdout.String(), stderr.String())
	}
	lines := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
	if len(lines) != 3 || lines[0] != "pulled" || !regexp.MustCompile(`^[0-9]+(\.[0-9]+)*$`).MatchString(lines[1]) || lines[2] != derived.marker {
		t.Fatalf("stdout = %q, want \"pulled\", a Debian version and the marker %q", stdout.String(), derived.marker)
	}
	if stderr.Len() != 0 {
		t.Errorf("stderr = %q, want nothing", stderr.String())
	}
}

// TestPullErrors checks the failures of Ensure: a repository the registry
// does not have, and a runtime image that was never imported (which must not
// touch the network).
func TestPullErrors(t *testing.T) {
	client := testenv.Containerd(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	host := startRegistry(t)
	store := images.New(client, snapshotter)

	t.Run("unknown repository", func(t *testing.T) {
		ref := host + "/cronium/no-such-repo:pulltest"
		img, err := store.Ensure(ctx, ref)
		if err == nil {
			t.Cleanup(func() { _ = client.ImageService().Delete(context.Background(), ref, ctrimages.SynchronousDelete()) })
			t.Fatalf("Ensure(%s) = %s, want an error", ref, img.Name())
		}
		t.Logf("Ensure(%s): %v", ref, err)
		if !strings.Contains(err.Error(), ref) {
			t.Errorf("error %q does not name %s", err, ref)
		}
		if !errdefs.IsNotFound(err) {
			t.Errorf("error %q is not a not-found error", err)
		}
		if _, err := client.GetImage(ctx, ref); !errdefs.IsNotFound(err) {
			t.Errorf("image %s exists after a failed pull (err %v)", ref, err)
		}
	})

	t.Run("runtime image not imported", func(t *testing.T) {
		ref := images.RuntimeRepoPrefix + "bash:nope"
		// cronium.local is no registry: any attempt to reach it would take
		// a DNS lookup and fail with a pull error, not ErrNotFound.
		start := time.Now()
		_, err := store.Ensure(ctx, ref)
		if !errors.Is(err, images.ErrNotFound) {
			t.Fatalf("Ensure(%s) = %v, want ErrNotFound", ref, err)
		}
		if !strings.Contains(err.Error(), ref) || strings.Contains(err.Error(), "pull image") {
			t.Errorf("error %q does not name %s as not imported, or tried a pull", err, ref)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("Ensure(%s) took %v: looks like it tried the network", ref, d)
		}
	})
}

// startRegistry runs the Debian registry on a free loopback port until the
// test ends and returns its host:port.
func startRegistry(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(registryBinary); err != nil {
		testenv.Unavailable(t, "no registry binary (apt-get install docker-registry, or hack/deps.sh): %v", err)
	}
	// A port picked this way may be taken before the registry binds it:
	// try again then.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		host, err := tryRegistry(t)
		if err == nil {
			return host
		}
		lastErr = err
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	t.Fatalf("start %s: %v", registryBinary, lastErr)
	return ""
}

func tryRegistry(t *testing.T) (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	host := l.Addr().String()
	l.Close()

	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yml")
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		return "", err
	}
	conf := fmt.Sprintf(`version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
`, strconv.Quote(data), host)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		return "", err
	}
	out := &lockedBuffer{}
	cmd := exec.Command(registryBinary, "serve", cfg)
	// Nothing from our environment: REGISTRY_* variables would override the
	// configuration.
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return "", err
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	stop := func() {
		_ = cmd.Process.Kill()
		<-exited
	}

	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil}}
	defer hc.CloseIdleConnections()
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-exited:
			return "", fmt.Errorf("registry exited (%v): %s", waitErr, out)
		default:
		}
		resp, err := hc.Get("http://" + host + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
			err = fmt.Errorf("GET /v2/: %s", resp.Status)
		}
		if time.Now().After(deadline) {
			stop()
			return "", fmt.Errorf("registry on %s not ready after 10s: %v; output: %s", host, err, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() && out.Len() > 0 {
			t.Logf("registry output:\n%s", out)
		}
	})
	return host, nil
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Len()
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// derivedImage is what pushDerived made: the blobs that exist only in the
// registry after the push, and the chain of the image's layers.
type derivedImage struct {
	manifest digest.Digest
	blobs    []digest.Digest // manifest, config, marker layer
	base     []digest.Digest // layers shared with the base image
	chainID  digest.Digest
	marker   string
}

// pushDerived pushes baseImage plus a layer holding a random marker file to
// ref, and removes the new blobs from the local content store again.
func pushDerived(ctx context.Context, t *testing.T, client *containerd.Client, host, ref string) derivedImage {
	t.Helper()
	cs := client.ContentStore()
	base, err := client.GetImage(ctx, baseImage)
	if err != nil {
		t.Fatal(err)
	}
	if !ctrimages.IsManifestType(base.Target().MediaType) {
		t.Fatalf("%s is a %s, want a single manifest", baseImage, base.Target().MediaType)
	}
	var manifest ocispec.Manifest
	readJSON(ctx, t, cs, base.Target(), &manifest)
	var imgConfig ocispec.Image
	readJSON(ctx, t, cs, manifest.Config, &imgConfig)

	var d derivedImage
	rnd := make([]byte, 8)
	_, _ = rand.Read(rnd)
	d.marker = "pulltest-" + hex.EncodeToString(rnd)
	layer, diffID := markerLayer(t, d.marker+"\n")

	// The new blobs only need to outlive the push.
	lctx, done, err := client.WithLease(ctx, leases.WithExpiration(10*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer done(context.WithoutCancel(ctx))
	write := func(mediaType string, b []byte) ocispec.Descriptor {
		desc := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
		if err := content.WriteBlob(lctx, cs, "pulltest-"+desc.Digest.String(), bytes.NewReader(b), desc); err != nil {
			t.Fatalf("write %s: %v", mediaType, err)
		}
		return desc
	}
	for _, l := range manifest.Layers {
		d.base = append(d.base, l.Digest)
	}
	layerDesc := write(ocispec.MediaTypeImageLayerGzip, layer)
	imgConfig.RootFS.DiffIDs = append(imgConfig.RootFS.DiffIDs, diffID)
	imgConfig.History = append(imgConfig.History, ocispec.History{CreatedBy: "cronium pull test marker"})
	d.chainID = identity.ChainID(imgConfig.RootFS.DiffIDs)
	cfgJSON, err := json.Marshal(imgConfig)
	if err != nil {
		t.Fatal(err)
	}
	manifest.Config = write(manifest.Config.MediaType, cfgJSON)
	manifest.Layers = append(manifest.Layers, layerDesc)
	if manifest.MediaType == "" {
		manifest.MediaType = ocispec.MediaTypeImageManifest
	}
	manJSON, err := json.Marshal(manifest)
	if err != nil {
		t.Fatal(err)
	}
	manDesc := write(manifest.MediaType, manJSON)
	d.manifest = manDesc.Digest
	d.blobs = []digest.Digest{manDesc.Digest, manifest.Config.Digest, layerDesc.Digest}

	resolver := docker.NewResolver(docker.ResolverOptions{
		Hosts: docker.ConfigureDefaultRegistries(docker.WithPlainHTTP(docker.MatchLocalhost)),
	})
	start := time.Now()
	if err := client.Push(lctx, ref, manDesc, containerd.WithResolver(resolver)); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	t.Logf("pushed %s (%s) in %v", ref, manDesc.Digest, time.Since(start).Round(time.Millisecond))
	// The registry must have it under the tag before we rely on it.
	checkRegistryManifest(t, host, "cronium/bash", "pulltest", manDesc)

	done(context.WithoutCancel(ctx))
	for _, b := range d.blobs {
		if err := cs.Delete(ctx, b); err != nil && !errdefs.IsNotFound(err) {
			t.Fatalf("delete pushed blob %s: %v", b, err)
		}
	}
	return d
}

func checkRegistryManifest(t *testing.T, host, repo, tag string, want ocispec.Descriptor) {
	t.Helper()
	req, err := http.NewRequest(http.MethodHead, "http://"+host+"/v2/"+repo+"/manifests/"+tag, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", want.MediaType)
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Docker-Content-Digest") != want.Digest.String() {
		t.Fatalf("registry has %s:%s as %s %q, want 200 %s", repo, tag, resp.Status, resp.Header.Get("Docker-Content-Digest"), want.Digest)
	}
}

func readJSON(ctx context.Context, t *testing.T, cs content.Provider, desc ocispec.Descriptor, v any) {
	t.Helper()
	b, err := content.ReadBlob(ctx, cs, desc)
	if err != nil {
		t.Fatalf("read %s: %v", desc.Digest, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %s: %v", desc.Digest, err)
	}
}

// markerLayer returns a gzipped layer holding markerPath and its diff id.
func markerLayer(t *testing.T, body string) ([]byte, digest.Digest) {
	t.Helper()
	var tarBuf bytes.Buffer
	tw := tar.NewWriter(&tarBuf)
	if err := tw.WriteHeader(&tar.Header{
		Name: markerPath, Mode: 0o644, Size: int64(len(body)),
		Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0), Format: tar.FormatPAX,
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(tw, body); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(tarBuf.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return gz.Bytes(), digest.FromBytes(tarBuf.Bytes())
}

// cleanupPulled removes what the pull left: the image with its blobs and
// snapshots, the executor's remapped snapshot of it, and the distribution
// source label the pull put on the base image's shared layers.
func cleanupPulled(t *testing.T, client *containerd.Client, ref string, d derivedImage) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sn := client.SnapshotService(snapshotter)
	var remaps []string
	err := sn.Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		remaps = append(remaps, info.Name)
		return nil
	}, fmt.Sprintf("labels.%q==%q", container.LabelRemapParent, d.chainID.String()))
	if err != nil {
		t.Errorf("list remapped snapshots: %v", err)
	}
	for _, key := range remaps {
		if err := sn.Remove(ctx, key); err != nil && !errdefs.IsNotFound(err) {
			t.Errorf("remove remapped snapshot %s: %v", key, err)
		}
	}
	if err := client.ImageService().Delete(ctx, ref, ctrimages.SynchronousDelete()); err != nil && !errdefs.IsNotFound(err) {
		t.Errorf("delete image %s: %v", ref, err)
	}
	// SynchronousDelete ran the garbage collector: nothing may be left.
	if _, err := client.GetImage(ctx, ref); !errdefs.IsNotFound(err) {
		t.Errorf("image %s left (err %v)", ref, err)
	}
	cs := client.ContentStore()
	for _, b := range d.blobs {
		if _, err := cs.Info(ctx, b); !errdefs.IsNotFound(err) {
			t.Errorf("blob %s left (err %v)", b, err)
		}
	}
	if _, err := sn.Stat(ctx, d.chainID.String()); !errdefs.IsNotFound(err) {
		t.Errorf("snapshot %s left (err %v)", d.chainID, err)
	}
	host, _, _ := strings.Cut(ref, "/")
	label := distSourceLabel + host
	for _, b := range d.base {
		info, err := cs.Info(ctx, b)
		if err != nil {
			t.Errorf("base layer %s: %v", b, err)
			continue
		}
		if _, ok := info.Labels[label]; !ok {
			continue
		}
		// An empty value removes the label.
		if _, err := cs.Update(ctx, content.Info{Digest: b, Labels: map[string]string{label: ""}}, "labels."+label); err != nil {
			t.Errorf("remove label %s from %s: %v", label, b, err)
		}
	}
	if _, err := client.GetImage(ctx, baseImage); err != nil {
		t.Errorf("runtime image %s gone: %v", baseImage, err)
	}
}

// assertRunGone checks that the executor removed the run's container and
// snapshot.
func assertRunGone(t *testing.T, client *containerd.Client, runID string) {
	t.Helper()
	ctx := context.Background()
	ctrs, err := client.Containers(ctx, fmt.Sprintf("labels.%q==%q", container.LabelRun, runID))
	if err != nil {
		t.Errorf("list containers: %v", err)
	}
	for _, c := range ctrs {
		t.Errorf("container left: %s", c.ID())
	}
	if _, err := client.SnapshotService(snapshotter).Stat(ctx, runID); !errdefs.IsNotFound(err) {
		t.Errorf("run snapshot %s left (err %v)", runID, err)
	}
}
