package doctor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/cronium/cronium-agent/internal/config"
	"github.com/cronium/cronium-agent/internal/ociruntime"
)

// cniPlugins are the plugins every job network is made of (cni.Manager
// refuses to start without them).
var cniPlugins = []string{"bridge", "host-local"}

// runc: containerd's shim (io.containerd.runc.v2) creates every job
// container with it.
func (d *doctor) runc(ctx context.Context) Result {
	return d.tool(ctx, "runc", "apt-get install runc")
}

// ociRuntime: which OCI runtime the runc shim runs for the jobs. crun is
// only a saving (about half of runc's CPU per container), so auto's
// falling back to runc passes; crun asked for and unusable fails, as the
// agent refuses to start then.
func (d *doctor) ociRuntime(ctx context.Context) Result {
	if d.cfg.Containerd.Runtime != "io.containerd.runc.v2" {
		return pass("%s runs the jobs (containerd.runtime): containerd.ociRuntime does not apply", d.cfg.Containerd.Runtime)
	}
	look := func(name string) (string, error) {
		if p, ok := lookPath(name, d.path); ok {
			return p, nil
		}
		return "", fmt.Errorf("%s is not on PATH (%s)", name, d.path)
	}
	c, err := ociruntime.Choose(d.cfg.Containerd.OCIRuntime, filepath.Join(d.sys, "fs", "cgroup"), look)
	if err != nil {
		return fail(fmt.Sprintf("set containerd.ociRuntime to auto or runc in %s, or install crun (apt-get install crun) on a host whose cgroups it can manage", d.configPath), "%v", err)
	}
	if c.Name == ociruntime.Runc {
		return pass("runc (%s)", c.Why)
	}
	r := d.tool(ctx, ociruntime.Crun, "apt-get install crun")
	if r.Status != Pass {
		return r
	}
	return pass("crun (%s): %s", c.Why, r.Detail)
}

// iptables: the agent fences every job network in with its own chains.
func (d *doctor) iptables(ctx context.Context) Result {
	return d.tool(ctx, "iptables", "apt-get install iptables")
}

// tool finds name on the PATH and runs `name --version`, so that a binary
// that is there but cannot run (another architecture, a broken install) is
// caught too.
func (d *doctor) tool(ctx context.Context, name, install string) Result {
	path, ok := lookPath(name, d.path)
	if !ok {
		return fail(install, "%s is not on PATH (%s)", name, d.path)
	}
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && len(ee.Stderr) > 0 {
			err = fmt.Errorf("%w: %s", err, firstLine(string(ee.Stderr)))
		}
		return fail(fmt.Sprintf("reinstall it: %s --reinstall", install), "%s --version: %v", path, err)
	}
	return pass("%s: %s", path, firstLine(string(out)))
}

// lookPath finds an executable file called name in the directories of
// list, as exec.LookPath does for the process's own PATH.
func lookPath(name, list string) (string, bool) {
	for _, dir := range filepath.SplitList(list) {
		if dir == "" {
			continue // "" would be the working directory: never trusted
		}
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p, true
		}
	}
	return "", false
}

func firstLine(s string) string {
	for line := range strings.Lines(s) {
		if line = strings.TrimSpace(line); line != "" {
			return line
		}
	}
	return "(no version printed)"
}

// cniPlugins: each plugin is looked for in the directories in order, as
// libcni does.
func (d *doctor) cniPlugins(context.Context) Result {
	dirs := d.cfg.Network.PluginDirs
	where := map[string][]string{} // directory: plugins found there
	var missing, notExec []string
	for _, p := range cniPlugins {
		dir, runnable := findPlugin(p, dirs)
		switch {
		case dir == "":
			missing = append(missing, p)
		case !runnable:
			notExec = append(notExec, filepath.Join(dir, p))
		default:
			where[dir] = append(where[dir], p)
		}
	}
	if len(missing) > 0 {
		return fail(fmt.Sprintf("apt-get install containernetworking-plugins, or point network.pluginDirs / %s at the directory that has them",
			config.EnvName("network", "pluginDirs")),
			"CNI plugin%s %s not found in %s", plural(len(missing)), strings.Join(missing, ", "), strings.Join(dirs, ", "))
	}
	if len(notExec) > 0 {
		return fail("chmod 0755 "+strings.Join(notExec, " "), "not executable: %s", strings.Join(notExec, ", "))
	}
	var found []string
	for _, dir := range dirs {
		if ps := where[dir]; len(ps) > 0 {
			found = append(found, strings.Join(ps, ", ")+" in "+dir)
		}
	}
	return pass("%s", strings.Join(found, "; "))
}

// findPlugin returns the first directory of dirs that has the plugin, and
// whether that file can be run.
func findPlugin(name string, dirs []string) (dir string, executable bool) {
	for _, dir := range dirs {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err == nil && !fi.IsDir() {
			return dir, fi.Mode().Perm()&0o111 != 0
		}
	}
	return "", false
}
