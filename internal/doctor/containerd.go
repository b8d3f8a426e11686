package doctor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"

	"github.com/cronium/cronium-agent/internal/config"
	"github.com/cronium/cronium-agent/runner/images"
)

// containerdFix is the fix of every way containerd can be out of reach, as
// the agent's own commands word it.
func containerdFix() string {
	return fmt.Sprintf("start containerd (systemctl start containerd, or `make containerd` in the source tree) or point containerd.address / %s at its socket",
		config.EnvName("containerd", "address"))
}

// dial connects to containerd as the agent does and checks that it answers.
func (d *doctor) dial(ctx context.Context) (*containerd.Client, error) {
	addr := d.cfg.Containerd.Address
	if _, err := os.Stat(addr); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("not reachable at %s (no such socket)", addr)
	} else if err != nil {
		return nil, fmt.Errorf("not reachable at %s: %w", addr, err)
	}
	client, err := containerd.New(addr, containerd.WithDefaultNamespace(d.cfg.Containerd.Namespace), containerd.WithTimeout(d.timeout))
	if err != nil {
		return nil, fmt.Errorf("not reachable at %s: %w", addr, err)
	}
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	if ok, err := client.IsServing(ctx); !ok {
		client.Close()
		return nil, fmt.Errorf("at %s does not answer: %w", addr, err)
	}
	return client, nil
}

func (d *doctor) containerd(ctx context.Context) Result {
	client, err := d.dial(ctx)
	if err != nil {
		return fail(containerdFix(), "containerd %v", err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	v, err := client.Version(ctx)
	if err != nil {
		return fail(containerdFix(), "containerd at %s answers, but not its version: %v", d.cfg.Containerd.Address, err)
	}
	return pass("containerd %s at %s", v.Version, d.cfg.Containerd.Address)
}

// runtimeImage is one runtime's configured image.
type runtimeImage struct{ runtime, ref string }

func (d *doctor) runtimeImages() []runtimeImage {
	r := d.cfg.Runtimes
	return []runtimeImage{{"bash", r.Bash.Image}, {"python", r.Python.Image}, {"node", r.Node.Image}}
}

// images: runtime images are never pulled (runner/images), so a missing
// one fails every job of its runtime; any other image is pulled by the
// first job that needs it.
func (d *doctor) images(ctx context.Context) Result {
	client, err := d.dial(ctx)
	if err != nil {
		return warn("fix the containerd check first", "not checked: containerd %v", err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	var present, missing, pulled []string
	var missingRuntimes []string
	for _, ri := range d.runtimeImages() {
		ref, err := images.Normalize(ri.ref)
		if err != nil {
			return fail(fmt.Sprintf("correct runtimes.%s.image", ri.runtime), "runtimes.%s.image: %v", ri.runtime, err)
		}
		_, err = client.GetImage(ctx, ref)
		switch {
		case err == nil:
			present = append(present, ri.runtime)
		case !errdefs.IsNotFound(err):
			return fail(containerdFix(), "look up %s in containerd: %v", ref, err)
		case strings.HasPrefix(ref, images.RuntimeRepoPrefix):
			missing = append(missing, fmt.Sprintf("%s (%s)", ri.runtime, ref))
			missingRuntimes = append(missingRuntimes, ri.runtime)
		default:
			pulled = append(pulled, fmt.Sprintf("%s (%s)", ri.runtime, ref))
		}
	}
	ns := d.cfg.Containerd.Namespace
	if len(missing) > 0 {
		return fail(d.importFix(missingRuntimes), "not imported in namespace %s: %s; their jobs fail", ns, strings.Join(missing, ", "))
	}
	if len(pulled) > 0 {
		return warn("none if its registry answers; else import it (cronium-agent images import ARCHIVE)",
			"not in namespace %s, pulled by the first job that needs it: %s", ns, strings.Join(pulled, ", "))
	}
	return pass("%s in namespace %s", strings.Join(present, ", "), ns)
}

// importFix names the archives in runtimes.archiveDir that hold the
// missing runtimes, when there are some: hack/build-images.sh names them
// <runtime>-<hash>.tar.
func (d *doctor) importFix(runtimes []string) string {
	dir := d.cfg.Runtimes.ArchiveDir
	var archives []string
	if dir != "" {
		all, _ := filepath.Glob(filepath.Join(dir, "*.tar"))
		for _, rt := range runtimes {
			for _, a := range all {
				if b := filepath.Base(a); strings.HasPrefix(b, rt+"-") || strings.HasPrefix(b, rt+".") {
					archives = append(archives, a)
				}
			}
		}
	}
	if len(archives) > 0 {
		return "cronium-agent images import " + strings.Join(archives, " ")
	}
	fix := "cronium-agent images import ARCHIVE... (build the archives with hack/build-images.sh, or `make import` in the source tree"
	if dir != "" {
		fix += fmt.Sprintf("; packaged ones go in runtimes.archiveDir, %s, which has none for %s", dir, strings.Join(runtimes, ", "))
	}
	return fix + ")"
}
