package doctor

import (
	"fmt"
	"testing"

	"github.com/cronium/cronium-agent/internal/config"
)

const release = "6.1.0-test-amd64"

func TestUserNamespaces(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  want
	}{
		{"on", map[string]string{"sys/user/max_user_namespaces": "63372\n"}, want{status: Pass, detail: []string{"63372"}}},
		{"off", map[string]string{"sys/user/max_user_namespaces": "0\n"}, want{status: Fail, detail: []string{"switched off"}, fix: []string{"sysctl -w user.max_user_namespaces="}}},
		{"kernel without them", map[string]string{}, want{status: Fail, detail: []string{"no user namespaces"}, fix: []string{"CONFIG_USER_NS"}}},
		{"garbage", map[string]string{"sys/user/max_user_namespaces": "lots\n"}, want{status: Fail, detail: []string{`"lots"`}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proc := t.TempDir()
			writeTree(t, proc, tc.files)
			tc.want.check(t, runCheck(t, config.Default(), "userns", WithProcDir(proc)))
		})
	}
}

const procCgroupsV1 = `#subsys_name	hierarchy	num_cgroups	enabled
cpuset	3	2	1
cpu	1	2	1
cpuacct	2	2	1
memory	4	121	%s
devices	5	2	1
pids	8	2	1
`

func TestCgroups(t *testing.T) {
	for _, tc := range []struct {
		name      string
		proc, sys map[string]string
		want      want
	}{
		{"v1 complete", map[string]string{"cgroups": fmt.Sprintf(procCgroupsV1, "1")}, nil,
			want{status: Pass, detail: []string{"cgroup v1", "cpu, memory, pids"}}},
		{"v1 memory disabled", map[string]string{"cgroups": fmt.Sprintf(procCgroupsV1, "0")}, nil,
			want{status: Fail, detail: []string{"cgroup v1 without the memory controller"}, fix: []string{"cgroup_enable=memory"}}},
		{"v2 complete", nil, map[string]string{"fs/cgroup/cgroup.controllers": "cpuset cpu io memory hugetlb pids rdma misc\n"},
			want{status: Pass, detail: []string{"cgroup v2"}}},
		{"v2 without memory and pids", nil, map[string]string{"fs/cgroup/cgroup.controllers": "cpuset cpu io\n"},
			want{status: Fail, detail: []string{"cgroup v2 without the memory, pids controllers"}}},
		// v2 wins even where /proc/cgroups lists v1 controllers (it always
		// does, all in hierarchy 0 on a unified host).
		{"v2 beside proc/cgroups", map[string]string{"cgroups": fmt.Sprintf(procCgroupsV1, "1")}, map[string]string{"fs/cgroup/cgroup.controllers": "cpu\n"},
			want{status: Fail, detail: []string{"cgroup v2"}}},
		{"no cgroups at all", nil, nil, want{status: Fail, detail: []string{"cgroup v1: no cgroup.controllers"}, fix: []string{"mount the cgroup file system"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proc, sys := t.TempDir(), t.TempDir()
			writeTree(t, proc, tc.proc)
			writeTree(t, sys, tc.sys)
			tc.want.check(t, runCheck(t, config.Default(), "cgroups", WithProcDir(proc), WithSysDir(sys)))
		})
	}
}

func TestOverlayFS(t *testing.T) {
	withOverlay := "nodev\tsysfs\nnodev\ttmpfs\n\text4\nnodev\toverlay\n"
	without := "nodev\tsysfs\nnodev\ttmpfs\n\text4\n"
	native := config.Default()
	native.Containerd.Snapshotter = "native"
	for _, tc := range []struct {
		name          string
		cfg           config.Config
		proc, modules map[string]string
		want          want
	}{
		{"loaded", config.Default(), map[string]string{"filesystems": withOverlay}, nil, want{status: Pass, detail: []string{"overlay is in"}}},
		{"loadable module", config.Default(),
			map[string]string{"filesystems": without, "sys/kernel/osrelease": release + "\n"},
			map[string]string{release + "/modules.dep": "kernel/fs/ext4/ext4.ko.xz: kernel/fs/mbcache.ko.xz\nkernel/fs/overlayfs/overlay.ko.xz:\n"},
			want{status: Warn, detail: []string{"not loaded", "overlay.ko.xz"}, fix: []string{"modprobe overlay"}}},
		{"module of another kernel only", config.Default(),
			map[string]string{"filesystems": without, "sys/kernel/osrelease": release + "\n"},
			map[string]string{"5.10.0-old/modules.dep": "kernel/fs/overlayfs/overlay.ko:\n"},
			want{status: Fail, detail: []string{"no overlay file system"}, fix: []string{"CONFIG_OVERLAY_FS"}}},
		{"missing", config.Default(), map[string]string{"filesystems": without}, nil,
			want{status: Fail, detail: []string{"no overlay file system"}}},
		{"not needed", native, map[string]string{"filesystems": without}, nil,
			want{status: Pass, detail: []string{"not needed", "native"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proc, modules := t.TempDir(), t.TempDir()
			writeTree(t, proc, tc.proc)
			writeTree(t, modules, tc.modules)
			tc.want.check(t, runCheck(t, tc.cfg, "overlayfs", WithProcDir(proc), WithModulesDir(modules)))
		})
	}
}

func TestIPForward(t *testing.T) {
	egress := config.Default()
	egress.Network.Egress = config.EgressAll
	for _, tc := range []struct {
		name  string
		cfg   config.Config
		files map[string]string
		want  want
	}{
		{"egress off, forwarding off", config.Default(), map[string]string{"sys/net/ipv4/ip_forward": "0\n"}, want{status: Pass, detail: []string{"not needed"}}},
		{"egress on, forwarding on", egress, map[string]string{"sys/net/ipv4/ip_forward": "1\n"}, want{status: Pass, detail: []string{"on"}}},
		{"egress on, forwarding off", egress, map[string]string{"sys/net/ipv4/ip_forward": "0\n"},
			want{status: Warn, detail: []string{"off", "switches it on when it starts"}, fix: []string{"net.ipv4.ip_forward=1", "/etc/sysctl.d/"}}},
		{"egress on, no IPv4", egress, nil, want{status: Fail, detail: []string{"ip_forward"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proc := t.TempDir()
			writeTree(t, proc, tc.files)
			tc.want.check(t, runCheck(t, tc.cfg, "ip-forward", WithProcDir(proc)))
		})
	}
}
