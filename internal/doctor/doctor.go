// Package doctor checks a host for what the agent's jobs need (kernel
// features, containerd, runc, CNI plugins, iptables, the state directory,
// the runtime images, the backend) and says how to fix each problem. It is
// `cronium-agent doctor`.
//
// Every check only looks: none creates a file, loads a module, imports an
// image or sends the backend a call that changes anything, so doctor is safe
// to run beside a running agent and as often as wanted. The host paths it
// reads (/proc, /sys, /etc, /lib/modules, PATH) are options, so that the
// tests can point them at trees of their own.
package doctor

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/cronium/cronium-agent/internal/config"
	"github.com/cronium/cronium-agent/internal/jobprog"
)

// Status is the verdict of one check.
type Status string

// A check passes, warns (jobs run, but something will bite or was not
// checked) or fails (jobs cannot run, or run unsafely).
const (
	Pass Status = "PASS"
	Warn Status = "WARN"
	Fail Status = "FAIL"
)

// Result is what a check found: a line of detail and, unless it passed, the
// fix.
type Result struct {
	Status Status `json:"status"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// Check is one host check.
type Check struct {
	Name string
	// About says in one line what is checked, for the command's help.
	About string
	Run   func(ctx context.Context) Result
}

// Report is a check's name with its result.
type Report struct {
	Name string `json:"name"`
	Result
}

func pass(format string, args ...any) Result {
	return Result{Status: Pass, Detail: fmt.Sprintf(format, args...)}
}

func warn(fix, format string, args ...any) Result {
	return Result{Status: Warn, Detail: fmt.Sprintf(format, args...), Fix: fix}
}

func fail(fix, format string, args ...any) Result {
	return Result{Status: Fail, Detail: fmt.Sprintf(format, args...), Fix: fix}
}

// doctor holds the configuration checked and where the host is read.
type doctor struct {
	cfg     config.Config
	proc    string // /proc
	sys     string // /sys
	etc     string // /etc: subuid, subgid, resolv.conf
	modules string // /lib/modules
	path    string // the PATH runc and iptables are looked up in
	// findJobProgram finds cronium-job (jobprog.Find; tests replace it).
	findJobProgram func() (string, bool, error)
	configPath     string // named in fixes
	timeout        time.Duration
}

// Option changes where the checks look.
type Option func(*doctor)

// WithProcDir reads the kernel's settings below dir instead of /proc.
func WithProcDir(dir string) Option { return func(d *doctor) { d.proc = dir } }

// WithSysDir reads the cgroup file system below dir instead of /sys.
func WithSysDir(dir string) Option { return func(d *doctor) { d.sys = dir } }

// WithEtcDir reads subuid, subgid and resolv.conf in dir instead of /etc.
func WithEtcDir(dir string) Option { return func(d *doctor) { d.etc = dir } }

// WithModulesDir looks for loadable kernel modules below dir instead of
// /lib/modules.
func WithModulesDir(dir string) Option { return func(d *doctor) { d.modules = dir } }

// WithPath looks up runc and iptables in list (a PATH value) instead of the
// process's PATH: the agent finds them through the PATH it runs with,
// which a command may want to name.
func WithPath(list string) Option { return func(d *doctor) { d.path = list } }

// WithConfigPath names the configuration file in the fixes (default
// config.DefaultPath).
func WithConfigPath(path string) Option { return func(d *doctor) { d.configPath = path } }

// WithTimeout bounds each check's calls to containerd, the backend and the
// tools it runs (default 3 s): a host that does not answer that fast has a
// problem worth a line of its own.
func WithTimeout(t time.Duration) Option {
	return func(d *doctor) {
		if t > 0 {
			d.timeout = t
		}
	}
}

// Checks returns the checks of this host against cfg, in the order they are
// reported.
func Checks(cfg config.Config, opts ...Option) []Check {
	d := &doctor{
		cfg:        cfg,
		proc:       "/proc",
		sys:        "/sys",
		etc:        "/etc",
		modules:    "/lib/modules",
		path:       os.Getenv("PATH"),
		configPath: config.DefaultPath,
		timeout:    3 * time.Second,

		findJobProgram: jobprog.Find,
	}
	for _, o := range opts {
		o(d)
	}
	return []Check{
		{"userns", "kernel user namespaces: /proc/sys/user/max_user_namespaces above 0", d.userNamespaces},
		{"cgroups", "cgroup v1 or v2, with the cpu, memory and pids controllers", d.cgroups},
		{"overlayfs", "the overlay file system (containerd.snapshotter overlayfs) is in the kernel or loadable", d.overlayFS},
		{"containerd", "containerd answers at containerd.address, and its version", d.containerd},
		{"runc", "runc is on PATH and runs (runc --version)", d.runc},
		{"oci-runtime", "the OCI runtime jobs run under (containerd.ociRuntime): auto takes crun where it is installed, runs and can manage this host's cgroups, else runc", d.ociRuntime},
		{"job-program", "cronium-job (every job's init, helper program and output logger) is beside the agent or in /usr/libexec/cronium, and runs", d.jobProgram},
		{"cni", "the CNI plugins bridge and host-local are in one of network.pluginDirs", d.cniPlugins},
		{"iptables", "iptables is on PATH and runs (iptables --version)", d.iptables},
		{"ip-forward", "IPv4 forwarding is on, when network.egress lets jobs out", d.ipForward},
		{"dns", "scripts with a route out have a DNS server they can reach: network.dns, or a non-loopback nameserver in /etc/resolv.conf", d.dns},
		{"subids", "no user in /etc/subuid or /etc/subgid is given ids of the jobs' range (userns.*)", d.subordinateIDs},
		{"state-dir", "state.dir exists or can be made, is root's, and jobs can search it and every directory above", d.stateDir},
		{"disk", "the file system of state.dir has journal.budget free", d.disk},
		{"images", "the runtime images (runtimes.*.image) are in containerd's namespace", d.images},
		{"backend", "the backend answers at backend.url and accepts backend.token", d.backend},
		{"clock", "this host's clock against the backend's Date header (warn above 5s, fail above 60s)", d.clock},
	}
}

// Run runs the checks at once and returns their reports in the checks'
// order, whatever order they end in.
func Run(ctx context.Context, checks []Check) []Report {
	reports := make([]Report, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Go(func() { reports[i] = Report{Name: c.Name, Result: runOne(ctx, c)} })
	}
	wg.Wait()
	return reports
}

// runOne runs a check; a check that panics fails alone, so that one odd
// host detail does not hide what every other check found.
func runOne(ctx context.Context, c Check) (res Result) {
	defer func() {
		if p := recover(); p != nil {
			res = fail("report this as a bug of cronium-agent doctor, with the output of --json",
				"the check itself broke: %v", p)
		}
	}()
	return c.Run(ctx)
}

// Failed tells whether any check failed.
func Failed(reports []Report) bool {
	for _, r := range reports {
		if r.Status == Fail {
			return true
		}
	}
	return false
}
