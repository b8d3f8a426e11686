package main

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cronium/cronium-agent/backend/devserver"
	"github.com/cronium/cronium-agent/internal/ptytest"
)

// The alias runs cronium-backend's commands under its own name: a job
// submitted through it is listed by it, and its usage says what it is.
// The commands themselves are tested in backend/devserver/cli.
func TestBackendAlias(t *testing.T) {
	srv, err := devserver.New(t.TempDir(), "alias-token")
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { ts.Close(); srv.Close() })
	cmd := agentCommand([]string{"CRONIUM_BACKEND_URL=" + ts.URL, "CRONIUM_BACKEND_TOKEN=alias-token"})

	c, err := devserver.NewDevClient(ts.URL, "alias-token")
	if err != nil {
		t.Fatal(err)
	}
	id, err := c.Submit(context.Background(), devserver.SubmitRequest{Runtime: "bash", Script: "true"})
	if err != nil {
		t.Fatal(err)
	}
	code, out := ptytest.Run(t, false, cmd, "backend", "jobs")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); code != 0 || len(lines) != 2 || !strings.HasPrefix(lines[0], "ID") ||
		!strings.Contains(lines[1], id) || !strings.Contains(lines[1], "queued") {
		t.Errorf("backend jobs: exit code %d, %q", code, out)
	}
	code, out = ptytest.Run(t, false, cmd, "backend", "submit", "-c", "true", "--priority", "3")
	if code != 0 || !strings.HasPrefix(out, "job_") {
		t.Errorf("backend submit: exit code %d, %q", code, out)
	}

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"backend"}, 2, "usage: cronium-agent backend <command>"},
		{[]string{"backend", "--help"}, 0, "NAME\n    cronium-agent backend - alias of cronium-backend"},
		{[]string{"backend", "show"}, 2, "cronium-agent backend show: missing JOB (see cronium-agent backend show -h)\n"},
		{[]string{"backend", "version"}, 2, `cronium-agent backend: unknown command "version"`},
		{[]string{"--help"}, 0, "alias of cronium-backend"},
	} {
		if code, out := ptytest.Run(t, false, cmd, tc.args...); code != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("%v: exit code %d, %q; want %d and %q", tc.args, code, out, tc.code, tc.want)
		}
	}
}
