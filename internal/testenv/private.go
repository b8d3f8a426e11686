package testenv

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/cronium/cronium-agent/runner/images"
)

// ImageCache is where `make images` leaves the runtime image archives.
func ImageCache() string {
	if d := os.Getenv("IMAGE_CACHE"); d != "" {
		return d
	}
	return "/var/cache/cronium-agent/images"
}

// Daemon is a containerd of one test's own, for tests that stop or restart
// containerd under running jobs. Its root is below /var/lib, its state and
// socket below /run; it has no CRI plugin and holds the bash runtime image
// in Namespace.
type Daemon struct {
	bin    string
	root   string // containerd's root (and its log)
	run    string // state, socket, config
	config string
	log    string

	daemonProc // containerd
}

// daemonProc is the process of a daemon a test runs (containerd, sshd)
// while it runs: Daemon and SSHD embed it.
type daemonProc struct {
	mu     sync.Mutex
	cmd    *exec.Cmd     // nil until started, and once stopped or killed
	exited chan struct{} // closed when cmd ended
}

// spawn starts cmd as the daemon's process and returns a channel closed
// when it has ended (and been waited for).
func (p *daemonProc) spawn(cmd *exec.Cmd) (<-chan struct{}, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	p.mu.Lock()
	p.cmd, p.exited = cmd, exited
	p.mu.Unlock()
	return exited, nil
}

// current returns the running process and its exited channel; cmd is nil
// when none runs.
func (p *daemonProc) current() (cmd *exec.Cmd, exited <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd, p.exited
}

// take is current, and forgets the process: the caller stops it.
func (p *daemonProc) take() (cmd *exec.Cmd, exited <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	cmd, exited = p.cmd, p.exited
	p.cmd = nil
	return cmd, exited
}

// PrivateContainerd starts a containerd of the test's own, waits until it
// answers and imports the bash runtime image into it. When the test ends,
// every task and shim of it is killed and its directories are removed.
// Without root, the containerd binary or the image archive, the test fails
// when CRONIUM_REQUIRE_CONTAINERD=1 and is skipped otherwise.
func PrivateContainerd(tb testing.TB) *Daemon {
	tb.Helper()
	if testing.Short() && !Required() {
		tb.Skip("integration test: not in -short mode")
	}
	if os.Geteuid() != 0 {
		Unavailable(tb, "tests must run as root")
	}
	bin, err := exec.LookPath("containerd")
	if err != nil {
		Unavailable(tb, "no containerd binary: %v", err)
	}
	archive, ref, err := bashImage()
	if err != nil {
		Unavailable(tb, "bash runtime image: %v (make images)", err)
	}
	d := &Daemon{bin: bin}
	if d.root, err = os.MkdirTemp("/var/lib", "cronium-test-containerd-"); err != nil {
		tb.Fatal(err)
	}
	if d.run, err = os.MkdirTemp("/run", "cronium-test-containerd-"); err != nil {
		os.RemoveAll(d.root)
		tb.Fatal(err)
	}
	d.config, d.log = filepath.Join(d.run, "config.toml"), filepath.Join(d.root, "containerd.log")
	tb.Cleanup(func() { d.cleanup(tb) })
	// Jobs run as a mapped uid, which must reach their bundles and root
	// file systems below these (MkdirTemp makes them 0700).
	for _, dir := range []string{d.root, d.run} {
		if err := os.Chmod(dir, 0o711); err != nil {
			tb.Fatal(err)
		}
	}
	if err := d.writeConfig(); err != nil {
		tb.Fatal(err)
	}
	if err := d.start(); err != nil {
		Unavailable(tb, "%v", err)
	}
	if err := d.importImage(archive, ref); err != nil {
		tb.Fatal(err)
	}
	return d
}

// bashImage finds the bash runtime image's archive and reference.
func bashImage() (archive, ref string, err error) {
	cache := ImageCache()
	data, err := os.ReadFile(filepath.Join(cache, "bash.ref"))
	if err != nil {
		return "", "", err
	}
	ref = strings.TrimSpace(string(data))
	if data, err := os.ReadFile(filepath.Join(cache, "bash.path")); err == nil {
		archive = strings.TrimSpace(string(data))
	} else {
		matches, _ := filepath.Glob(filepath.Join(cache, "bash-*.tar"))
		if len(matches) == 0 {
			return "", "", fmt.Errorf("no bash-*.tar in %s", cache)
		}
		sort.Strings(matches)
		archive = matches[len(matches)-1]
	}
	if _, err := os.Stat(archive); err != nil {
		return "", "", err
	}
	return archive, ref, nil
}

// Address is the daemon's socket.
func (d *Daemon) Address() string { return filepath.Join(d.run, "containerd.sock") }

// Client connects to the daemon in Namespace, as Containerd does; the
// connection is closed when the test ends.
func (d *Daemon) Client(tb testing.TB) *containerd.Client {
	tb.Helper()
	c, err := d.connect()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

func (d *Daemon) connect() (*containerd.Client, error) {
	c, err := containerd.New(d.Address(), containerd.WithDefaultNamespace(Namespace), containerd.WithTimeout(3*time.Second))
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", d.Address(), err)
	}
	return c, nil
}

// writeConfig is hack/containerd.sh's configuration on the daemon's own
// directories.
func (d *Daemon) writeConfig() error {
	conf := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = %q
[ttrpc]
  address = %q
`, d.root, filepath.Join(d.run, "state"), d.Address(), d.Address()+".ttrpc")
	if err := os.WriteFile(d.config, []byte(conf), 0o600); err != nil {
		return fmt.Errorf("write containerd config: %w", err)
	}
	return nil
}

// start runs the daemon and waits until it answers.
func (d *Daemon) start() error {
	logf, err := os.OpenFile(d.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("containerd log: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(d.bin, "--config", d.config)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group: a signal to the test's group must not stop
	// it behind the test's back.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	exited, err := d.spawn(cmd)
	if err != nil {
		return fmt.Errorf("start containerd: %w", err)
	}
	if err := d.waitServing(exited); err != nil {
		d.Stop()
		return fmt.Errorf("%w; its log ends:\n%s", err, tail(d.log, 20))
	}
	return nil
}

func (d *Daemon) waitServing(exited <-chan struct{}) error {
	c, err := d.connect()
	if err != nil {
		return err
	}
	defer c.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		ok, err := c.IsServing(ctx)
		cancel()
		if ok {
			return nil
		}
		select {
		case <-exited:
			return errors.New("containerd exited while starting")
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("containerd at %s did not answer within 30s: %v", d.Address(), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (d *Daemon) importImage(archive, ref string) error {
	c, err := d.connect()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := images.New(c, "overlayfs").ImportFile(ctx, archive); err != nil {
		return fmt.Errorf("import the bash runtime image: %w", err)
	}
	if _, err := c.GetImage(ctx, ref); err != nil {
		return fmt.Errorf("image %s after importing %s: %w", ref, archive, err)
	}
	return nil
}

// Stop stops the daemon gracefully (SIGTERM), as a service manager does:
// its shims and their tasks keep running. It waits until the daemon is gone.
func (d *Daemon) Stop() {
	cmd, exited := d.take()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// Restart stops the daemon gracefully and starts it again on the same
// root, state and socket; tasks keep running throughout.
func (d *Daemon) Restart(tb testing.TB) {
	tb.Helper()
	d.Stop()
	if err := d.start(); err != nil {
		tb.Fatalf("restart containerd: %v", err)
	}
}

// cleanup kills every task of the daemon, removes its containers, stops it,
// kills any shim left and removes its directories.
func (d *Daemon) cleanup(tb testing.TB) {
	if cmd, _ := d.current(); cmd == nil {
		if err := d.start(); err != nil {
			tb.Logf("cleanup: %v", err)
		}
	}
	ids, nss, err := d.removeAll()
	if err != nil {
		tb.Errorf("cleanup of the private containerd: %v", err)
	}
	d.Stop()
	// A shim still running now is containerd's clean-up after a task whose
	// shim was killed (or the shim itself): its runc delete dies with it.
	for id := range killShims(d.Address()) {
		ids, nss = append(ids, id), append(nss, Namespace)
	}
	// And every task runc knows of in this daemon's bundles, whether or
	// not a shim of it is left to be found by.
	for _, st := range runcStates(d.run) {
		ids, nss = append(ids, st.id), append(nss, st.ns)
	}
	for i, id := range ids {
		for _, cg := range cgroupDirs(id) {
			_ = os.Remove(cg)
		}
		_ = os.Remove(ShimSocket(d.Address(), nss[i], id))
		// runc's state of a task whose shim died with this containerd:
		// nothing ran containerd's clean-up for it (runc keeps it below
		// the shim's default root, which every containerd shares).
		_ = os.RemoveAll(filepath.Join("/run/containerd/runc", nss[i], id))
	}
	for _, dir := range []string{d.run, d.root} {
		unmountBelow(dir)
		if err := os.RemoveAll(dir); err != nil {
			tb.Errorf("remove %s: %v", dir, err)
		}
	}
}

// session connects to the daemon for a minute of calls; done closes it.
func (d *Daemon) session() (context.Context, *containerd.Client, func(), error) {
	c, err := d.connect()
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	return ctx, c, func() { cancel(); c.Close() }, nil
}

// removeAll kills and deletes every task and deletes every container of
// every namespace, and returns the containers' ids and namespaces.
func (d *Daemon) removeAll() (ids, nss []string, _ error) {
	ctx, c, done, err := d.session()
	if err != nil {
		return nil, nil, err
	}
	defer done()
	ids, nss, err = listContainers(ctx, c)
	errs := []error{err}
	for i, id := range ids {
		nctx := namespaces.WithNamespace(ctx, nss[i])
		ctr, err := c.LoadContainer(nctx, id)
		if err != nil {
			if !errdefs.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("load container %s: %w", id, err))
			}
			continue
		}
		if task, err := ctr.Task(nctx, nil); err == nil {
			if _, err := task.Delete(nctx, containerd.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("delete task %s: %w", id, err))
			}
		}
		if err := ctr.Delete(nctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete container %s: %w", id, err))
		}
	}
	return ids, nss, errors.Join(errs...)
}

// containers lists the ids and namespaces of the daemon's containers.
func (d *Daemon) containers() (ids, nss []string, _ error) {
	ctx, c, done, err := d.session()
	if err != nil {
		return nil, nil, err
	}
	defer done()
	return listContainers(ctx, c)
}

// listContainers lists the ids and namespaces of every container of every
// namespace; a namespace that cannot be listed is skipped and reported.
func listContainers(ctx context.Context, c *containerd.Client) (ids, nss []string, _ error) {
	all, err := c.NamespaceService().List(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("list namespaces: %w", err)
	}
	var errs []error
	for _, ns := range all {
		ctrs, err := c.ContainerService().List(namespaces.WithNamespace(ctx, ns))
		if err != nil {
			errs = append(errs, fmt.Errorf("list containers in %s: %w", ns, err))
			continue
		}
		for _, ctr := range ctrs {
			ids, nss = append(ids, ctr.ID), append(nss, ns)
		}
	}
	return ids, nss, errors.Join(errs...)
}

// ShimSocket is where the runc shim of container id in namespace ns of the
// containerd at address listens (containerd 1.6's naming). A shim that is
// killed leaves it behind.
func ShimSocket(address, ns, id string) string {
	sum := sha256.Sum256([]byte(filepath.Join(address, ns, id)))
	return filepath.Join("/run/containerd/s", hex.EncodeToString(sum[:]))
}

// killShims kills the shims serving the containerd at address and returns
// them by container id.
func killShims(address string) map[string][]int {
	shims := Shims(address)
	for _, pids := range shims {
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	return shims
}

// Shims maps container id to the pids of the runc shim processes that
// serve the containerd at address: a task's shim, or the one containerd
// runs to clean up after a dead one.
func Shims(address string) map[string][]int {
	shims := map[string][]int{}
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range cmdlines {
		data, err := os.ReadFile(p)
		if err != nil || !strings.Contains(string(data), "containerd-shim") {
			continue
		}
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if err != nil {
			continue
		}
		if id, ok := shimOf(strings.Split(string(data), "\x00"), address); ok {
			shims[id] = append(shims[id], pid)
		}
	}
	return shims
}

// shimOf returns the container id of a shim's arguments, if it serves the
// containerd at address.
func shimOf(args []string, address string) (string, bool) {
	var addr, id string
	for i := 0; i+1 < len(args); i++ {
		switch args[i] {
		case "-address":
			addr = args[i+1]
		case "-id":
			id = args[i+1]
		}
	}
	return id, addr == address && id != ""
}

type runcState struct{ ns, id string }

// runcStates lists the tasks the OCI runtime keeps state for (below the
// shims' default root, which every containerd shares) whose bundle is
// below dir: runc's state.json names it in a label, crun's status file in
// a field.
func runcStates(dir string) []runcState {
	var out []runcState
	for _, name := range []string{"state.json", "status"} {
		files, _ := filepath.Glob(filepath.Join("/run/containerd/runc/*/*", name))
		for _, f := range files {
			var st struct {
				Bundle string `json:"bundle"`
				Config struct {
					Labels []string `json:"labels"`
				} `json:"config"`
			}
			data, err := os.ReadFile(f)
			if err != nil || json.Unmarshal(data, &st) != nil {
				continue
			}
			bundles := []string{st.Bundle}
			for _, l := range st.Config.Labels {
				if b, ok := strings.CutPrefix(l, "bundle="); ok {
					bundles = append(bundles, b)
				}
			}
			for _, b := range bundles {
				if strings.HasPrefix(b, dir+"/") {
					out = append(out, runcState{ns: filepath.Base(filepath.Dir(filepath.Dir(f))), id: filepath.Base(filepath.Dir(f))})
					break
				}
			}
		}
	}
	return out
}

// cgroupDirs lists where a job's cgroup would be (the agent's parent
// "cronium", every controller).
func cgroupDirs(id string) []string {
	dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", "cronium", id))
	if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", "cronium", id)); err == nil {
		dirs = append(dirs, filepath.Join("/sys/fs/cgroup", "cronium", id))
	}
	return dirs
}

// unmountBelow lazily unmounts everything mounted below dir, deepest first.
func unmountBelow(dir string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var targets []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && strings.HasPrefix(fields[4], dir+"/") {
			targets = append(targets, fields[4])
		}
	}
	f.Close()
	sort.Sort(sort.Reverse(sort.StringSlice(targets)))
	for _, t := range targets {
		_ = unix.Unmount(t, unix.MNT_DETACH)
	}
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// PowerCycle does to the daemon's jobs what a power cut and a reboot do:
// the daemon stops, every process of every task and every shim is killed,
// the daemon's state directory (on /run, which a reboot empties) and the
// shims' sockets are removed; then the daemon starts again on its root,
// which survives, with its containers and no tasks.
func (d *Daemon) PowerCycle(tb testing.TB) {
	tb.Helper()
	// runc's state of every container goes (it is on /run), whether or
	// not a shim of it is left: a task whose create was cut short has no
	// shim, and only its exec fifo there.
	ids, nss, err := d.containers()
	if err != nil {
		tb.Fatalf("power cycle: %v", err)
	}
	d.Stop()
	shims := Shims(d.Address())
	for id, pids := range shims {
		for _, cg := range cgroupDirs(id) {
			killCgroup(cg)
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		_ = os.Remove(ShimSocket(d.Address(), Namespace, id))
		// runc's state is on /run too.
		_ = os.RemoveAll(filepath.Join("/run/containerd/runc", Namespace, id))
	}
	for i, id := range ids {
		for _, cg := range cgroupDirs(id) {
			killCgroup(cg)
		}
		_ = os.RemoveAll(filepath.Join("/run/containerd/runc", nss[i], id))
	}
	state := filepath.Join(d.run, "state")
	unmountBelow(state)
	if err := os.RemoveAll(state); err != nil {
		tb.Fatalf("power cycle: %v", err)
	}
	if err := d.start(); err != nil {
		tb.Fatalf("power cycle: start containerd: %v", err)
	}
}

// killCgroup SIGKILLs every process in a cgroup directory.
func killCgroup(dir string) {
	data, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return
	}
	for _, f := range strings.Fields(string(data)) {
		if pid, err := strconv.Atoi(f); err == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}
