// Package oci turns a job and the agent's policy into an OCI runtime spec.
// Everything here is a pure function: nothing touches containerd or the host.
package oci

import (
	"errors"
	"fmt"
	"path"
	"strconv"

	"github.com/containerd/containerd/v2/contrib/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// JobUID and JobGID are the ids the job process runs as inside its user namespace.
const (
	JobUID = 1000
	JobGID = 1000
)

// cpuPeriod is the CFS period the CPU quota is expressed in (100 ms, the kernel default).
const cpuPeriod = 100000

// IDMap is the one subordinate range every job's user namespace maps to:
// container ids 0..Size-1 are host ids HostUID.. and HostGID...
type IDMap struct {
	HostUID uint32
	HostGID uint32
	Size    uint32
}

// Resources are the cgroup and tmpfs limits of one job, already clamped.
type Resources struct {
	CPU            float64 // cores
	MemoryBytes    int64   // memory limit; swap is set equal, so the job never swaps
	Pids           int64
	TmpBytes       int64
	WorkspaceBytes int64
}

// FileMount is a host file or directory mounted read-only into the job.
type FileMount struct {
	Source      string
	Destination string
	// Exec allows running programs from the mount (the helper program);
	// everything else is mounted noexec.
	Exec bool
}

// Job is what the spec is built from.
type Job struct {
	// ID names the container and its cgroup.
	ID       string
	Hostname string
	Args     []string
	Env      []string
	// Cwd is the working directory; the writable workspace is mounted there.
	Cwd       string
	Resources Resources
	Files     []FileMount
	// CgroupParent is the cgroup below which the job's cgroup is made.
	CgroupParent string
	// NetNSPath joins an existing network namespace; empty gives the job a
	// namespace of its own holding only loopback.
	NetNSPath string
	IDMap     IDMap
}

// WorkspaceDir is the job's writable working directory.
const WorkspaceDir = "/workspace"

// SpecVersion is the runtime-spec version the spec declares. It uses
// nothing added after 1.1, and crun as Debian 12 ships it (1.8) refuses a
// version it does not know, such as the 1.3.0 of the module's specs.Version.
const SpecVersion = "1.1.0"

// Spec builds the runtime spec of a job: user namespace, read-only root,
// no capabilities, no_new_privs, the default seccomp profile, cgroup limits,
// tmpfs /tmp and workspace, and read-only file mounts.
func Spec(j Job) (*specs.Spec, error) {
	if err := j.validate(); err != nil {
		return nil, err
	}
	cwd := j.Cwd
	if cwd == "" {
		cwd = WorkspaceDir
	}
	s := &specs.Spec{
		Version:  SpecVersion,
		Hostname: j.Hostname,
		Root:     &specs.Root{Path: "rootfs", Readonly: true},
		Process: &specs.Process{
			Args:            j.Args,
			Env:             j.Env,
			Cwd:             cwd,
			User:            specs.User{UID: JobUID, GID: JobGID, AdditionalGids: []uint32{JobGID}},
			NoNewPrivileges: true,
			// Empty, not nil: a nil set would let the runtime fill in its defaults.
			Capabilities: &specs.LinuxCapabilities{
				Bounding: []string{}, Effective: []string{}, Inheritable: []string{}, Permitted: []string{}, Ambient: []string{},
			},
			Rlimits: []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024}},
		},
		Mounts: mounts(j, cwd),
		Linux: &specs.Linux{
			UIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: j.IDMap.HostUID, Size: j.IDMap.Size}},
			GIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: j.IDMap.HostGID, Size: j.IDMap.Size}},
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace},
				{Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace},
				{Type: specs.MountNamespace},
				{Type: specs.UserNamespace},
				{Type: specs.CgroupNamespace},
				{Type: specs.NetworkNamespace, Path: j.NetNSPath},
			},
			CgroupsPath: path.Join("/", j.CgroupParent, j.ID),
			Resources:   resources(j.Resources),
			MaskedPaths: []string{
				"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
				"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
				"/sys/firmware", "/sys/devices/virtual/powercap",
			},
			ReadonlyPaths: []string{
				"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
			},
		},
	}
	s.Linux.Seccomp = seccomp.DefaultProfile(s)
	return s, nil
}

func (j Job) validate() error {
	var errs []error
	if j.ID == "" {
		errs = append(errs, errors.New("job id is empty"))
	}
	if len(j.Args) == 0 {
		errs = append(errs, errors.New("no command to run"))
	}
	if j.IDMap.Size <= JobUID || j.IDMap.HostUID == 0 || j.IDMap.HostGID == 0 {
		errs = append(errs, fmt.Errorf("user namespace range %+v must exclude host root and include uid %d", j.IDMap, JobUID))
	}
	r := j.Resources
	if r.CPU <= 0 || r.MemoryBytes <= 0 || r.Pids <= 0 || r.TmpBytes <= 0 || r.WorkspaceBytes <= 0 {
		errs = append(errs, fmt.Errorf("resource limits must all be positive: %+v", r))
	}
	for _, f := range j.Files {
		if !path.IsAbs(f.Source) || !path.IsAbs(f.Destination) {
			errs = append(errs, fmt.Errorf("file mount %s -> %s: paths must be absolute", f.Source, f.Destination))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("spec for job %s: %w", j.ID, err)
	}
	return nil
}

func mounts(j Job, cwd string) []specs.Mount {
	ms := []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		sysMount(j),
		{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=1777", "size=" + strconv.FormatInt(j.Resources.TmpBytes, 10)}},
		{Destination: cwd, Type: "tmpfs", Source: "tmpfs", Options: []string{
			"nosuid", "nodev", "mode=0755",
			"uid=" + strconv.Itoa(JobUID), "gid=" + strconv.Itoa(JobGID),
			"size=" + strconv.FormatInt(j.Resources.WorkspaceBytes, 10),
		}},
	}
	for _, f := range j.Files {
		opts := []string{"rbind", "ro", "nosuid", "nodev", "noexec"}
		if f.Exec {
			opts = opts[:4]
		}
		ms = append(ms, specs.Mount{Destination: f.Destination, Type: "bind", Source: f.Source, Options: opts})
	}
	return ms
}

// sysMount is sysfs in a namespace of the job's own. A network namespace
// the agent made belongs to the host's user namespace, where the job may not
// mount sysfs; it gets an empty read-only /sys rather than the host's.
func sysMount(j Job) specs.Mount {
	if j.NetNSPath != "" {
		return specs.Mount{Destination: "/sys", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "noexec", "nodev", "ro", "size=4k"}}
	}
	return specs.Mount{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}}
}

func resources(r Resources) *specs.LinuxResources {
	quota := int64(r.CPU * cpuPeriod)
	period := uint64(cpuPeriod)
	mem, pids := r.MemoryBytes, r.Pids
	swap := r.MemoryBytes
	return &specs.LinuxResources{
		// No device may be created or opened but the runtime's defaults.
		Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
		CPU:     &specs.LinuxCPU{Quota: &quota, Period: &period},
		Memory:  &specs.LinuxMemory{Limit: &mem, Swap: &swap},
		Pids:    &specs.LinuxPids{Limit: &pids},
	}
}
