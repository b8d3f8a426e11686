package oci

import (
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func testJob() Job {
	return Job{
		ID:           "cronium-job_1-abcd",
		Hostname:     "cronium-job1",
		Args:         []string{"bash", "/cronium/script.sh"},
		Env:          []string{"PATH=/bin"},
		Resources:    Resources{CPU: 0.5, MemoryBytes: 512 << 20, Pids: 100, TmpBytes: 64 << 20, WorkspaceBytes: 256 << 20},
		Files:        []FileMount{{Source: "/var/lib/x/script.sh", Destination: "/cronium/script.sh"}},
		CgroupParent: "cronium",
		IDMap:        IDMap{HostUID: 100000, HostGID: 100000, Size: 65536},
	}
}

func mountAt(s *specs.Spec, dest string) *specs.Mount {
	for i := range s.Mounts {
		if s.Mounts[i].Destination == dest {
			return &s.Mounts[i]
		}
	}
	return nil
}

func TestSpecIsolation(t *testing.T) {
	s, err := Spec(testJob())
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name string
		ok   bool
	}{
		{"a version crun 1.8 and runc both take", s.Version == "1.1.0"},
		{"read-only root", s.Root.Readonly},
		{"runs as 1000:1000", s.Process.User.UID == 1000 && s.Process.User.GID == 1000},
		{"no_new_privs", s.Process.NoNewPrivileges},
		{"no capabilities", s.Process.Capabilities != nil && len(s.Process.Capabilities.Bounding)+len(s.Process.Capabilities.Effective)+len(s.Process.Capabilities.Permitted)+len(s.Process.Capabilities.Inheritable)+len(s.Process.Capabilities.Ambient) == 0},
		{"capability sets are empty, not absent", s.Process.Capabilities.Bounding != nil && s.Process.Capabilities.Effective != nil},
		{"seccomp default profile", s.Linux.Seccomp != nil && s.Linux.Seccomp.DefaultAction == specs.ActErrno && len(s.Linux.Seccomp.Syscalls) > 0},
		{"uid map", len(s.Linux.UIDMappings) == 1 && s.Linux.UIDMappings[0] == specs.LinuxIDMapping{ContainerID: 0, HostID: 100000, Size: 65536}},
		{"gid map", len(s.Linux.GIDMappings) == 1 && s.Linux.GIDMappings[0].HostID == 100000},
		{"masks /proc/kcore", slices.Contains(s.Linux.MaskedPaths, "/proc/kcore")},
		{"/proc/sys read-only", slices.Contains(s.Linux.ReadonlyPaths, "/proc/sys")},
		{"hostname", s.Hostname == "cronium-job1"},
		{"cgroup path", s.Linux.CgroupsPath == "/cronium/cronium-job_1-abcd"},
		{"cwd is the workspace", s.Process.Cwd == WorkspaceDir},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s: not so in spec", c.name)
		}
	}
	var types []specs.LinuxNamespaceType
	for _, ns := range s.Linux.Namespaces {
		types = append(types, ns.Type)
		if ns.Type == specs.NetworkNamespace && ns.Path != "" {
			t.Errorf("network namespace joins %s; want a new, loopback-only one", ns.Path)
		}
	}
	for _, want := range []specs.LinuxNamespaceType{specs.UserNamespace, specs.PIDNamespace, specs.NetworkNamespace, specs.MountNamespace, specs.UTSNamespace, specs.IPCNamespace} {
		if !slices.Contains(types, want) {
			t.Errorf("missing %s namespace", want)
		}
	}
}

func TestSpecLimitsAndMounts(t *testing.T) {
	s, err := Spec(testJob())
	if err != nil {
		t.Fatal(err)
	}
	r := s.Linux.Resources
	if *r.CPU.Quota != 50000 || *r.CPU.Period != 100000 {
		t.Errorf("cpu quota/period = %d/%d, want 50000/100000", *r.CPU.Quota, *r.CPU.Period)
	}
	if *r.Memory.Limit != 512<<20 || *r.Memory.Swap != 512<<20 {
		t.Errorf("memory %d swap %d", *r.Memory.Limit, *r.Memory.Swap)
	}
	if *r.Pids.Limit != 100 {
		t.Errorf("pids %d", *r.Pids.Limit)
	}
	for _, tc := range []struct {
		dest    string
		typ     string
		options []string
	}{
		{"/tmp", "tmpfs", []string{"size=67108864", "mode=1777", "nosuid"}},
		{WorkspaceDir, "tmpfs", []string{"size=268435456", "uid=1000", "gid=1000"}},
		{"/cronium/script.sh", "bind", []string{"ro", "rbind"}},
		{"/proc", "proc", nil},
		{"/sys", "sysfs", []string{"ro"}},
	} {
		m := mountAt(s, tc.dest)
		if m == nil {
			t.Errorf("no mount at %s", tc.dest)
			continue
		}
		if m.Type != tc.typ {
			t.Errorf("%s: type %s, want %s", tc.dest, m.Type, tc.typ)
		}
		for _, o := range tc.options {
			if !slices.Contains(m.Options, o) {
				t.Errorf("%s: options %v lack %s", tc.dest, m.Options, o)
			}
		}
	}
}

func TestSpecRefusesBadJobs(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*Job)
		want   string
	}{
		{"no id", func(j *Job) { j.ID = "" }, "id is empty"},
		{"no command", func(j *Job) { j.Args = nil }, "no command"},
		{"maps host root", func(j *Job) { j.IDMap.HostUID = 0 }, "host root"},
		{"range too small for uid 1000", func(j *Job) { j.IDMap.Size = 1000 }, "include uid 1000"},
		{"zero memory", func(j *Job) { j.Resources.MemoryBytes = 0 }, "positive"},
		{"relative mount", func(j *Job) { j.Files[0].Source = "script.sh" }, "absolute"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := testJob()
			j.Files = append([]FileMount(nil), j.Files...)
			tc.mutate(&j)
			_, err := Spec(j)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestClamp(t *testing.T) {
	def := Resources{CPU: 0.5, MemoryBytes: 512, Pids: 100, TmpBytes: 64, WorkspaceBytes: 256}
	max := Resources{CPU: 2, MemoryBytes: 4096, Pids: 1024, TmpBytes: 1024, WorkspaceBytes: 4096}
	for _, tc := range []struct {
		name string
		req  Resources
		want Resources
	}{
		{"nothing asked gets the defaults", Resources{}, def},
		{"within maxima kept", Resources{CPU: 1, MemoryBytes: 1024, Pids: 10, TmpBytes: 8, WorkspaceBytes: 16}, Resources{CPU: 1, MemoryBytes: 1024, Pids: 10, TmpBytes: 8, WorkspaceBytes: 16}},
		{"above maxima clamped", Resources{CPU: 64, MemoryBytes: 1 << 40, Pids: 1 << 20, TmpBytes: 1 << 40, WorkspaceBytes: 1 << 40}, max},
		{"negative means default", Resources{CPU: -1, MemoryBytes: -5}, def},
	} {
		if got := Clamp(tc.req, def, max); got != tc.want {
			t.Errorf("%s: Clamp = %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestEnv(t *testing.T) {
	for _, tc := range []struct {
		name        string
		image       []string
		job, agent  map[string]string
		want        []string
		wantErrText string
	}{
		{
			name:  "image, base, job, agent in that precedence",
			image: []string{"PATH=/img/bin", "LANG=C.UTF-8", "HOME=/root"},
			job:   map[string]string{"B": "2", "A": "1", "LANG": "de_DE"},
			agent: map[string]string{"CRONIUM_JOB_ID": "j1"},
			want:  []string{"PATH=/img/bin", "LANG=de_DE", "HOME=/workspace", "A=1", "B=2", "CRONIUM_JOB_ID=j1"},
		},
		{
			name:  "job cannot override the agent's variables",
			job:   map[string]string{"CRONIUM_JOB_ID": "forged"},
			agent: map[string]string{"CRONIUM_JOB_ID": "real"},
			want:  []string{"PATH=" + defaultPath, "HOME=/workspace", "CRONIUM_JOB_ID=real"},
		},
		{name: "bad key", job: map[string]string{"A=B": "x"}, wantErrText: "invalid environment variable name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Env(tc.image, tc.job, tc.agent)
			if tc.wantErrText != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErrText) {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("Env = %q\nwant  %q", got, tc.want)
			}
		})
	}
}
