package runner

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cronium/cronium-agent/oci"
)

func TestRequest(t *testing.T) {
	p := DefaultPolicy()
	now := time.Unix(1764237600, 0)
	for _, tc := range []struct {
		name    string
		job     Job
		check   func(t *testing.T, r requestView)
		wantErr string
	}{
		{name: "defaults", job: Job{ID: "job_Ab3dE6gH9jK2", Runtime: "BASH", Script: []byte("echo")}, check: func(t *testing.T, r requestView) {
			if r.Timeout != time.Hour || r.Image != "cronium.local/runtimes/bash:latest" || r.Hostname != "cronium-ab3de6gh9jk2" {
				t.Errorf("%+v", r)
			}
			if r.Resources != (oci.Resources{CPU: 0.5, MemoryBytes: 512 << 20, Pids: 100, TmpBytes: 64 << 20, WorkspaceBytes: 256 << 20}) {
				t.Errorf("resources %+v", r.Resources)
			}
			if r.Env["CRONIUM_EXECUTION_ID"] != "exec_job_Ab3dE6gH9jK2_1764237600" || r.Env["CRONIUM_JOB_ID"] != "job_Ab3dE6gH9jK2" || r.Env["CRONIUM_EXECUTION_MODE"] != "container" {
				t.Errorf("env %v", r.Env)
			}
			if _, ok := r.Env["CRONIUM_EVENT_ID"]; ok {
				t.Error("CRONIUM_EVENT_ID set without an event")
			}
		}},
		{name: "timeout clamped, job env kept, agent vars win", job: Job{ID: "j", Runtime: "nodejs", Timeout: 48 * time.Hour, EventID: "42",
			Env: map[string]string{"A": "1", "CRONIUM_JOB_ID": "forged", "CRONIUM_EVENT_ID": "forged"}}, check: func(t *testing.T, r requestView) {
			if r.Timeout != 24*time.Hour || r.Env["A"] != "1" || r.Env["CRONIUM_JOB_ID"] != "j" || r.Env["CRONIUM_EVENT_ID"] != "42" {
				t.Errorf("%+v", r)
			}
			if r.Image != "cronium.local/runtimes/node:latest" {
				t.Errorf("image %s", r.Image)
			}
		}},
		{name: "image override", job: Job{ID: "j", Runtime: "python", Image: "127.0.0.1:5000/x:1"}, check: func(t *testing.T, r requestView) {
			if r.Image != "127.0.0.1:5000/x:1" {
				t.Errorf("image %s", r.Image)
			}
		}},
		{name: "unknown runtime", job: Job{ID: "j", Runtime: "RUBY"}, wantErr: `job j: unknown runtime "RUBY"`},
		{name: "no id", job: Job{Runtime: "bash"}, wantErr: "no id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := p.Request(tc.job, now)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, requestView{req.Image, req.Hostname, req.Timeout, req.Resources, req.Env})
		})
	}
}

type requestView struct {
	Image, Hostname string
	Timeout         time.Duration
	Resources       oci.Resources
	Env             map[string]string
}

func TestNames(t *testing.T) {
	valid := regexp.MustCompile(`^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$`) // containerd's id rule
	for _, id := range []string{"job_Ab3dE6gH9jK2", "job with spaces/and/slashes", "__", "", strings.Repeat("x", 200), "ünïcode"} {
		run := RunID(id)
		if !valid.MatchString(run) || len(run) > 76 {
			t.Errorf("RunID(%q) = %q: not a valid container id", id, run)
		}
		if RunID(id) == run {
			t.Errorf("RunID(%q) repeats", id)
		}
		h := Hostname(id)
		if len(h) > 63 || !regexp.MustCompile(`^[a-z0-9-]+$`).MatchString(h) {
			t.Errorf("Hostname(%q) = %q", id, h)
		}
	}
}
