package container

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/image-spec/identity"

	"github.com/cronium/cronium-agent/oci"
)

// Snapshot labels. The remapped parent is a gc root: containerd would
// otherwise collect it as soon as no job uses it, and the next job would pay
// for the whole chown again. `cronium-agent gc` removes remaps whose image is gone.
const (
	LabelAgent       = "io.cronium.agent"
	LabelRemapParent = "io.cronium.remap.parent"
	labelGCRoot      = "containerd.io/gc.root"
)

func remapKey(chainID string, m oci.IDMap) string {
	return fmt.Sprintf("cronium/remap/%s/%d-%d-%d", chainID, m.HostUID, m.HostGID, m.Size)
}

// remapped returns the key of the committed snapshot holding img's root
// filesystem owned by the user-namespace range, making it on first use.
// Concurrent callers in this process wait for one another; another process
// racing us loses at Commit and uses our snapshot.
func (e *Executor) remapped(ctx context.Context, img containerd.Image) (string, error) {
	diffIDs, err := img.RootFS(ctx)
	if err != nil {
		return "", fmt.Errorf("read layers of %s: %w", img.Name(), err)
	}
	parent := identity.ChainID(diffIDs).String()
	key := remapKey(parent, e.idmap)
	sn := e.client.SnapshotService(e.snapshotter)
	if _, err := sn.Stat(ctx, key); err == nil {
		return key, nil
	}

	e.remapMu.Lock()
	defer e.remapMu.Unlock()
	if _, err := sn.Stat(ctx, key); err == nil {
		return key, nil
	}
	start := time.Now()
	// Without a lease containerd's garbage collector, run whenever any job's
	// snapshot is removed, takes the unreferenced snapshot mid-chown.
	ctx, done, err := e.client.WithLease(ctx, leases.WithExpiration(time.Hour))
	if err != nil {
		return "", fmt.Errorf("lease for remapping %s: %w", img.Name(), err)
	}
	defer done(context.WithoutCancel(ctx))
	tmp := key + "/prepare-" + randomHex(4)
	mounts, err := sn.Prepare(ctx, tmp, parent, snapshots.WithLabels(map[string]string{LabelAgent: "remap"}))
	if err != nil {
		return "", fmt.Errorf("prepare remapped snapshot of %s: %w", img.Name(), err)
	}
	commit := func() error {
		if err := mount.WithTempMount(ctx, mounts, func(root string) error { return shiftOwners(root, e.idmap) }); err != nil {
			return err
		}
		return sn.Commit(ctx, key, tmp, snapshots.WithLabels(map[string]string{
			LabelAgent:       "remap",
			LabelRemapParent: parent,
			labelGCRoot:      time.Now().UTC().Format(time.RFC3339),
		}))
	}
	if err := commit(); err != nil {
		_ = sn.Remove(context.WithoutCancel(ctx), tmp)
		if errdefs.IsAlreadyExists(err) {
			return key, nil
		}
		return "", fmt.Errorf("remap %s to the user namespace: %w", img.Name(), err)
	}
	e.log.Info("remapped image for the user namespace", "image", img.Name(), "snapshot", key, "took", time.Since(start))
	return key, nil
}

// shiftOwners moves every file's owner and group into the host range of the
// user namespace (container id n becomes host id base+n).
func shiftOwners(root string, m oci.IDMap) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("stat %s: no ownership information", path)
		}
		uid, gid := st.Uid, st.Gid
		if uid >= m.Size || gid >= m.Size {
			return fmt.Errorf("%s is owned by %d:%d, outside the user namespace range of %d ids", path, uid, gid, m.Size)
		}
		// Lchown drops set-id bits; put them back, except that runc jobs run
		// with no_new_privs where they do nothing anyway: keep the mode as built.
		if err := os.Lchown(path, int(m.HostUID+uid), int(m.HostGID+gid)); err != nil {
			return fmt.Errorf("chown %s: %w", path, err)
		}
		if info.Mode()&(fs.ModeSetuid|fs.ModeSetgid) != 0 && info.Mode()&fs.ModeSymlink == 0 {
			if err := os.Chmod(path, info.Mode()); err != nil {
				return fmt.Errorf("restore mode of %s: %w", path, err)
			}
		}
		return nil
	})
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(errors.New("crypto/rand failed")) // cannot happen on Linux
	}
	return hex.EncodeToString(b)
}

// PrepareImage makes sure ref is present, unpacked and remapped for the user
// namespace, and returns the key of the remapped snapshot. Jobs do this on
// demand; calling it ahead (at start-up) takes the cost off the first job.
func (e *Executor) PrepareImage(ctx context.Context, ref string) (string, error) {
	img, err := e.images.Ensure(ctx, ref)
	if err != nil {
		return "", err
	}
	return e.remapped(ctx, img)
}
