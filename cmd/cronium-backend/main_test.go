package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cronium/cronium-agent/internal/testenv"
)

// The commands are tested in backend/devserver/cli; this tests what the
// binary adds: its name, its version and its signals.

// build builds cronium-backend with a version, as make build does.
func build(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "cronium-backend")
	cmd := exec.Command("go", "build", "-ldflags", "-X main.version=v-test", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

func TestBinary(t *testing.T) {
	bin := build(t)
	out, err := exec.Command(bin, "version").Output()
	if err != nil || string(out) != "cronium-backend v-test\n" {
		t.Errorf("version: %q, %v", out, err)
	}
	var stderr bytes.Buffer
	help := exec.Command(bin, "--help")
	help.Stderr = &stderr
	if err := help.Run(); err != nil {
		t.Errorf("--help: %v", err)
	}
	for _, c := range []string{"serve", "submit", "jobs", "show", "logs", "cancel", "version"} {
		if !regexp.MustCompile(`(?m)^  ` + c + ` `).MatchString(stderr.String()) {
			t.Errorf("--help does not list %s:\n%s", c, stderr.String())
		}
	}

	// serve until SIGTERM, which ends it cleanly; the operator commands
	// reach it through the environment.
	var sout, serr testenv.Buffer
	serve := exec.Command(bin, "serve", "--listen", "127.0.0.1:0", "--data", t.TempDir())
	serve.Env = append(os.Environ(), "CRONIUM_BACKEND_TOKEN=bin-token")
	serve.Stdout, serve.Stderr = &sout, &serr
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	defer serve.Process.Kill()
	re := regexp.MustCompile(`listening on (http://127\.0\.0\.1:\d+)`)
	var url string
	for deadline := time.Now().Add(10 * time.Second); url == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if m := re.FindStringSubmatch(sout.String()); m != nil {
			url = m[1]
		}
	}
	if url == "" {
		t.Fatalf("serve did not print its address: %q %q", sout.String(), serr.String())
	}
	environ := append(os.Environ(), "CRONIUM_BACKEND_URL="+url, "CRONIUM_BACKEND_TOKEN=bin-token")
	submit := exec.Command(bin, "submit", "-c", "true")
	submit.Env = environ
	id, err := submit.Output()
	if err != nil || !strings.HasPrefix(string(id), "job_") {
		t.Fatalf("submit: %q, %v", id, err)
	}
	jobs := exec.Command(bin, "jobs")
	jobs.Env = environ
	if out, err := jobs.Output(); err != nil || !strings.Contains(string(out), strings.TrimSpace(string(id))) {
		t.Errorf("jobs: %q, %v", out, err)
	}
	serve.Process.Signal(syscall.SIGTERM)
	if err := serve.Wait(); err != nil {
		t.Errorf("serve after SIGTERM: %v; stderr %q", err, serr.String())
	}
}

// The binary's commands print their manual pages on stderr and exit 0; the
// pages themselves are tested in backend/devserver/cli.
func TestBinaryHelp(t *testing.T) {
	bin := build(t)
	for _, tc := range []struct {
		args []string
		name string
	}{
		{[]string{"serve", "--help"}, "serve"},
		{[]string{"help", "submit"}, "submit"},
		{[]string{"servers", "add", "-h"}, "servers add"},
		{[]string{"version", "--help"}, "version"},
	} {
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(bin, tc.args...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil || stdout.Len() != 0 || !strings.HasPrefix(stderr.String(), "NAME\n    cronium-backend "+tc.name+" - ") {
			t.Errorf("%q: %v, stdout %q, stderr %q", tc.args, err, stdout.String(), stderr.String())
		}
	}
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "--help")
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil || !strings.Contains(stderr.String(), "cronium-backend COMMAND --help") {
		t.Errorf("--help: %v, %q", err, stderr.String())
	}
}
