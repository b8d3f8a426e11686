package helpers_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/cronium/cronium-agent/runtimes/helpercli"
	"github.com/cronium/cronium-agent/runtimes/helpercli/fakeapi"
	"github.com/cronium/cronium-agent/runtimes/helpers"
)

// TestMain lets the test binary serve as the helper program: started through
// a symlink named "cronium" it runs helpercli.Main, as the agent binary does
// at /cronium/bin/cronium.
func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) == "cronium" {
		os.Exit(helpercli.Main(os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// unavailable fails when CI requires every test to run
// (CRONIUM_REQUIRE_CONTAINERD=1, as internal/testenv), else skips.
func unavailable(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CRONIUM_REQUIRE_CONTAINERD") == "1" {
		t.Fatalf("CRONIUM_REQUIRE_CONTAINERD=1 but: "+format, args...)
	}
	t.Skipf(format, args...)
}

func lookPath(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		unavailable(t, "%s not found: %v", name, err)
	}
	return p
}

// cleanEnv is the environment without the runtime variables.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CRONIUM_") || strings.HasPrefix(kv, "CRONIUM_REQUIRE_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

func TestPythonHelper(t *testing.T) {
	py := lookPath(t, "python3")
	cmd := exec.Command(py, "-m", "unittest", "discover", "-s", ".", "-p", "test_*.py")
	cmd.Env = cleanEnv("PYTHONDONTWRITEBYTECODE=1")
	out, err := cmd.CombinedOutput()
	t.Logf("python3 -m unittest:\n%s", out)
	if err != nil {
		t.Fatalf("python tests failed: %v", err)
	}
}

func TestNodeHelper(t *testing.T) {
	node := lookPath(t, "node")
	v, err := exec.Command(node, "-e", "process.stdout.write(process.versions.node.split('.')[0])").Output()
	if err != nil {
		unavailable(t, "node does not run: %v", err)
	}
	if major, err := strconv.Atoi(string(v)); err != nil || major < 18 {
		unavailable(t, "node %s has no node:test (needs 18+)", v)
	}
	cmd := exec.Command(node, "--test", "cronium.test.js")
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	t.Logf("node --test:\n%s", out)
	if err != nil {
		t.Fatalf("node tests failed: %v", err)
	}
}

func TestFilesAndVersion(t *testing.T) {
	files := helpers.Files()
	if len(files) != 3 {
		t.Fatalf("Files() has %d entries", len(files))
	}
	for _, name := range helpers.Names() {
		want, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(files[name], want) {
			t.Errorf("embedded %s differs from the source file", name)
		}
	}
	files[helpers.Python][0] ^= 0xff // a copy: must not change the embedded content
	if !bytes.Equal(helpers.Files()[helpers.Python], mustRead(t, helpers.Python)) {
		t.Fatal("Files() returned shared memory")
	}
	v := helpers.Version()
	if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(v) || v != helpers.Version() {
		t.Fatalf("Version() = %q", v)
	}
}

func mustRead(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestWriteTo(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "lib", helpers.Version())
	if err := helpers.WriteTo(dir); err != nil {
		t.Fatal(err)
	}
	check := func() {
		t.Helper()
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		if strings.Join(names, ",") != "cronium.js,cronium.py,cronium.sh" {
			t.Fatalf("directory holds %v", names)
		}
		for name, want := range helpers.Files() {
			p := filepath.Join(dir, name)
			fi, err := os.Lstat(p)
			if err != nil {
				t.Fatal(err)
			}
			if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o644 {
				t.Errorf("%s: mode %v", name, fi.Mode())
			}
			if got := mustRead(t, p); !bytes.Equal(got, want) {
				t.Errorf("%s: wrong content", name)
			}
		}
	}
	check()

	// Again: unchanged files are left alone (same inode).
	before, _ := os.Stat(filepath.Join(dir, helpers.Bash))
	if err := helpers.WriteTo(dir); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(filepath.Join(dir, helpers.Bash))
	if !os.SameFile(before, after) {
		t.Error("WriteTo rewrote an unchanged file")
	}
	check()

	// Damaged content and mode are repaired.
	if err := os.WriteFile(filepath.Join(dir, helpers.Python), []byte("broken"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, helpers.Node), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := helpers.WriteTo(dir); err != nil {
		t.Fatal(err)
	}
	check()
}

// ---- cronium.sh, for real: bash + the helper program + a fake runtime API ----

type bashEnv struct {
	bash   string
	lib    string // absolute path of cronium.sh
	helper string // symlink named cronium to this test binary
	path   string // an empty PATH directory: no curl, no jq, nothing
}

func newBashEnv(t *testing.T) *bashEnv {
	t.Helper()
	bash := lookPath(t, "bash")
	lib, err := filepath.Abs(helpers.Bash)
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	helper := filepath.Join(dir, "bin", "cronium")
	if err := os.MkdirAll(filepath.Dir(helper), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(self, helper); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	return &bashEnv{bash: bash, lib: lib, helper: helper, path: empty}
}

// env is a job's environment: the runtime variables, BASH_ENV, the helper.
func (b *bashEnv) env(srv *fakeapi.Server, extra ...string) []string {
	env := []string{"PATH=" + b.path, "HOME=/", "LC_ALL=C", "BASH_ENV=" + b.lib, "CRONIUM_HELPER=" + b.helper}
	if srv != nil {
		env = append(env, srv.Env()...)
	}
	return append(env, extra...)
}

type bashResult struct {
	code           int
	stdout, stderr string
}

func (b *bashEnv) run(t *testing.T, env []string, args ...string) bashResult {
	t.Helper()
	cmd := exec.Command(b.bash, args...)
	cmd.Env = env
	cmd.Dir = "/"
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("bash: %v", err)
	}
	return bashResult{code, out.String(), errb.String()}
}

func TestBashFunctions(t *testing.T) {
	b := newBashEnv(t)
	srv := fakeapi.New(t.Cleanup)

	t.Run("input", func(t *testing.T) {
		srv.SetInput(`{"a": 1, "b": [true, null]}`)
		r := b.run(t, b.env(srv), "-c", `cronium_input; echo "st=$?"; cronium.input; echo "st=$?"`)
		want := "{\"a\":1,\"b\":[true,null]}\nst=0\n{\"a\":1,\"b\":[true,null]}\nst=0\n"
		if r.code != 0 || r.stdout != want || r.stderr != "" {
			t.Fatalf("%+v", r)
		}
	})

	t.Run("event", func(t *testing.T) {
		srv.SetContext(`{"executionId": "x", "metadata": {}}`)
		r := b.run(t, b.env(srv), "-c", `cronium_event; cronium.event`)
		if r.code != 0 || r.stdout != "{\"executionId\":\"x\",\"metadata\":{}}\n{\"executionId\":\"x\",\"metadata\":{}}\n" || r.stderr != "" {
			t.Fatalf("%+v", r)
		}
	})

	t.Run("output", func(t *testing.T) {
		for _, tc := range []struct{ script, want string }{
			{`cronium_output '{"x": [1, 2]}'`, `{"x":[1,2]}`},
			{`cronium.output '{"y": true}'`, `{"y":true}`},
			{`cronium_output 'hello world'`, `"hello world"`},
			{`cronium.output "plain"`, `"plain"`},
			{`cronium_output 0`, `0`},
			{`cronium_output ""`, `""`},
			{`r='{"n": 42}'; cronium_output "$r"`, `{"n":42}`},
		} {
			r := b.run(t, b.env(srv), "-c", tc.script)
			if r.code != 0 || r.stdout != "" || r.stderr != "" || srv.Output() != tc.want {
				t.Errorf("%s: %+v, output %s, want %s", tc.script, r, srv.Output(), tc.want)
			}
		}
	})

	t.Run("get variable", func(t *testing.T) {
		srv.SetVariable("S", `"some text"`)
		srv.SetVariable("N", `0`)
		srv.SetVariable("E", `""`)
		srv.SetVariable("F", `false`)
		srv.SetVariable("O", `{"a": [1, 2]}`)
		script := `for k in S N E F O missing; do
			printf '%s=[%s] ' "$k" "$(cronium_get_variable "$k")"
			printf '[%s] ' "$(cronium.getVariable "$k")"
			printf '[%s]\n' "$(cronium_getVariable "$k")"
		done
		out=$(cronium_get_variable missing); echo "st=$? len=${#out}"`
		r := b.run(t, b.env(srv), "-c", script)
		want := `S=[some text] [some text] [some text]
N=[0] [0] [0]
E=[] [] []
F=[false] [false] [false]
O=[{"a":[1,2]}] [{"a":[1,2]}] [{"a":[1,2]}]
missing=[] [] []
st=0 len=0
`
		if r.code != 0 || r.stdout != want || r.stderr != "" {
			t.Fatalf("got %+v\nwant stdout %q", r, want)
		}
	})

	t.Run("set variable", func(t *testing.T) {
		for _, tc := range []struct{ script, key, want string }{
			{`cronium_set_variable K1 '{"a": 1}'`, "K1", `{"a":1}`},
			{`cronium.setVariable K2 'some text'`, "K2", `"some text"`},
			{`cronium_setVariable K3 5`, "K3", `5`},
			{`cronium_set_variable K4 false`, "K4", `false`},
			{`cronium_set_variable 'a/b ü' x`, "a/b ü", `"x"`},
		} {
			r := b.run(t, b.env(srv), "-c", tc.script)
			got, _ := srv.Variable(tc.key)
			if r.code != 0 || r.stdout != "" || r.stderr != "" || got != tc.want {
				t.Errorf("%s: %+v, stored %s, want %s", tc.script, r, got, tc.want)
			}
		}
		reqs := srv.Requests()
		if last := reqs[len(reqs)-1]; last.RequestURI != "/executions/"+srv.ExecutionID+"/variables/a%2Fb%20%C3%BC" {
			t.Errorf("key not encoded: %s", last.RequestURI)
		}
	})

	t.Run("set condition", func(t *testing.T) {
		spellings := map[string]bool{"true": true, "TRUE": true, "True": true, "1": true, "yes": true, "YES": true, "on": true, "On": true,
			"false": false, "FALSE": false, "0": false, "no": false, "No": false, "off": false, "OFF": false}
		for word, want := range spellings {
			for _, fn := range []string{"cronium_set_condition", "cronium.setCondition", "cronium_setCondition"} {
				srv.Reset()
				r := b.run(t, b.env(srv), "-c", fn+" "+word)
				c := srv.Condition()
				if r.code != 0 || r.stdout != "" || r.stderr != "" || c == nil || *c != want {
					t.Errorf("%s %s: %+v, condition %v", fn, word, r, c)
				}
			}
		}
	})

	t.Run("bad boolean", func(t *testing.T) {
		srv.Reset()
		for _, fn := range []string{"cronium_set_condition", "cronium.setCondition"} {
			r := b.run(t, b.env(srv), "-c", fn+` maybe; echo "st=$?"`)
			if r.code != 0 || r.stdout != "st=2\n" || !strings.HasPrefix(r.stderr, "cronium: ") || strings.Count(r.stderr, "\n") != 1 {
				t.Errorf("%s maybe: %+v", fn, r)
			}
		}
		if n := len(srv.Requests()); n != 0 {
			t.Errorf("a bad boolean sent %d requests", n)
		}
	})

	t.Run("api error", func(t *testing.T) {
		srv.Reset()
		srv.Queue(fakeapi.Reply{Status: 400, Body: `{"error":"Bad Request","message":"value too large"}`})
		r := b.run(t, b.env(srv), "-c", `cronium_set_variable k v; echo "st=$?"`)
		if r.code != 0 || r.stdout != "st=1\n" || r.stderr != "cronium: value too large\n" || len(srv.Requests()) != 1 {
			t.Fatalf("%+v", r)
		}
		// 5xx once: retried with the default backoff, then fine.
		srv.Reset()
		srv.Queue(fakeapi.Reply{Status: 503, Body: `{}`})
		r = b.run(t, b.env(srv), "-c", `cronium_output 1`)
		if r.code != 0 || r.stderr != "" || srv.Output() != "1" || len(srv.Requests()) != 2 {
			t.Fatalf("retry: %+v", r)
		}
	})

	t.Run("set -e stops at a failed call", func(t *testing.T) {
		srv.Reset()
		r := b.run(t, b.env(srv), "-e", "-c", `cronium_set_condition nope; echo unreachable`)
		if r.code != 2 || r.stdout != "" {
			t.Fatalf("%+v", r)
		}
	})

	t.Run("runtime not available", func(t *testing.T) {
		const msg = "cronium runtime not available: CRONIUM_RUNTIME_API is not set\n"
		for _, helper := range []string{b.helper, "/nonexistent/cronium"} {
			env := []string{"PATH=" + b.path, "BASH_ENV=" + b.lib, "CRONIUM_HELPER=" + helper}
			for _, fn := range []string{"cronium_input", "cronium.input", "cronium_output 1", "cronium.output 1",
				"cronium_get_variable k", "cronium.getVariable k", "cronium_set_variable k v", "cronium.setVariable k v",
				"cronium_set_condition true", "cronium.setCondition true", "cronium_event", "cronium.event"} {
				r := b.run(t, env, "-c", fn+`; echo "st=$?"`)
				if r.code != 0 || r.stdout != "st=1\n" || r.stderr != msg {
					t.Errorf("%s (helper %s): %+v", fn, helper, r)
				}
			}
		}
		// With the runtime set but no helper program.
		r := b.run(t, b.env(srv, "CRONIUM_HELPER=/nonexistent/cronium"), "-c", `cronium_input; echo "st=$?"`)
		if r.stdout != "st=1\n" || r.stderr != "cronium: helper program /nonexistent/cronium not found\n" {
			t.Errorf("no helper: %+v", r)
		}
	})
}

func TestBashSourcing(t *testing.T) {
	b := newBashEnv(t)
	srv := fakeapi.New(t.Cleanup)
	srv.SetInput(`[1]`)

	// Sourcing (again, twice) prints nothing and succeeds.
	r := b.run(t, b.env(srv), "-c", `source "$BASH_ENV"; echo "st=$?"; . "$BASH_ENV"; echo "st=$?"; cronium_input`)
	if r.code != 0 || r.stdout != "st=0\nst=0\n[1]\n" || r.stderr != "" {
		t.Fatalf("source twice: %+v", r)
	}
	if r := b.run(t, b.env(srv), "-c", ":"); r.code != 0 || r.stdout != "" || r.stderr != "" {
		t.Fatalf("empty script: %+v", r)
	}

	// Works under the strictest options, given on the command line (so they
	// are on while BASH_ENV is read) or set by the script.
	for _, args := range [][]string{
		{"-e", "-u", "-o", "pipefail", "-c", `x=$(cronium_get_variable missing); source "$BASH_ENV"; echo "done [$x]"; cronium_input`},
		{"-c", `set -euo pipefail; source "$BASH_ENV"; source "$BASH_ENV"; x=$(cronium_get_variable missing); echo "done [$x]"; cronium.input`},
	} {
		r := b.run(t, b.env(srv), args...)
		if r.code != 0 || r.stdout != "done []\n[1]\n" || r.stderr != "" {
			t.Errorf("%q: %+v", args, r)
		}
	}

	// Shell options are exactly as without the helpers.
	const opts = `echo "$-"; set +o; shopt -p`
	with := b.run(t, b.env(srv), "-c", opts)
	without := b.run(t, []string{"PATH=" + b.path}, "-c", opts)
	if with.stdout != without.stdout || with.code != 0 || with.stderr != "" {
		t.Errorf("options differ with BASH_ENV:\n%s\nwithout:\n%s", with.stdout, without.stdout)
	}
	for _, flags := range []string{"-e", "-eu"} {
		with := b.run(t, b.env(srv), flags, "-c", opts)
		without := b.run(t, []string{"PATH=" + b.path}, flags, "-c", opts)
		if with.stdout != without.stdout {
			t.Errorf("%s: options differ with BASH_ENV", flags)
		}
	}

	// A script file, as the agent runs it (bash /cronium/script.sh).
	script := filepath.Join(t.TempDir(), "script.sh")
	if err := os.WriteFile(script, []byte("#!/bin/bash\nset -e\ndata=$(cronium_input)\ncronium_output \"$data\"\ncronium_set_condition yes\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv.Reset()
	if r := b.run(t, b.env(srv), script); r.code != 0 || r.stdout != "" || r.stderr != "" || srv.Output() != "[1]" {
		t.Fatalf("script file: %+v, output %q", r, srv.Output())
	}

	// POSIX mode (and other shells) cannot have dotted names: sourcing still
	// succeeds silently and the underscore names work.
	r = b.run(t, b.env(srv, "CRONIUM_LIB="+b.lib), "--posix", "-c", `. "$CRONIUM_LIB"; echo "st=$?"; cronium_input`)
	if r.code != 0 || r.stdout != "st=0\n[1]\n" || r.stderr != "" {
		t.Fatalf("posix mode: %+v", r)
	}
	if sh, err := exec.LookPath("dash"); err == nil {
		cmd := exec.Command(sh, "-c", `. "$CRONIUM_LIB"; echo "st=$?"; cronium_input`)
		cmd.Env = b.env(srv, "CRONIUM_LIB="+b.lib)
		out, err := cmd.CombinedOutput()
		if err != nil || string(out) != "st=0\n[1]\n" {
			t.Errorf("dash: %v: %q", err, out)
		}
	}
}

func TestBashToolActions(t *testing.T) {
	b := newBashEnv(t)
	srv := fakeapi.New(t.Cleanup)
	const ok = `{"success":true,"data":{"ok":true}}` + "\n"

	t.Run("every name", func(t *testing.T) {
		for _, tc := range []struct{ script, body string }{
			{`cronium_send_email 'a@example.com, b@example.com' 'Report' 'All fine'`, `{"tool":"email","action":"send-message","params":{"to":"a@example.com, b@example.com","subject":"Report","body":"All fine"}}`},
			{`cronium_sendEmail a@example.com 42 true`, `{"tool":"email","action":"send-message","params":{"to":"a@example.com","subject":"42","body":"true"}}`},
			{`cronium.sendEmail a@example.com s "$(printf 'l1\nl2')"`, `{"tool":"email","action":"send-message","params":{"to":"a@example.com","subject":"s","body":"l1\nl2"}}`},
			{`cronium_send_slack_message 'backup done' '#ops'`, `{"tool":"slack","action":"send-message","params":{"text":"backup done","channel":"#ops"}}`},
			{`cronium_sendSlackMessage 'backup done'`, `{"tool":"slack","action":"send-message","params":{"text":"backup done"}}`},
			{`ch=; cronium.sendSlackMessage '{"not": "json"}' "$ch"`, `{"tool":"slack","action":"send-message","params":{"text":"{\"not\": \"json\"}"}}`},
			{`cronium_send_discord_message deployed`, `{"tool":"discord","action":"send-message","params":{"content":"deployed"}}`},
			{`cronium_sendDiscordMessage deployed`, `{"tool":"discord","action":"send-message","params":{"content":"deployed"}}`},
			{`cronium.sendDiscordMessage deployed`, `{"tool":"discord","action":"send-message","params":{"content":"deployed"}}`},
			{`cronium_send_teams_message deployed CI`, `{"tool":"teams","action":"send-message","params":{"text":"deployed","title":"CI"}}`},
			{`cronium_sendTeamsMessage deployed`, `{"tool":"teams","action":"send-message","params":{"text":"deployed"}}`},
			{`cronium.sendTeamsMessage deployed 'a = b'`, `{"tool":"teams","action":"send-message","params":{"text":"deployed","title":"a = b"}}`},
			{`cronium_execute_tool_action webhook send '{"url": "https://example.com/h", "body": {"n": 1}}'`, `{"tool":"webhook","action":"send","params":{"url":"https://example.com/h","body":{"n":1}}}`},
			{`cronium_executeToolAction webhook send url=https://example.com/h method=PUT 'headers:={"X-A": "1"}'`, `{"tool":"webhook","action":"send","params":{"url":"https://example.com/h","method":"PUT","headers":{"X-A":"1"}}}`},
			{`printf '{"text": "from stdin"}' | cronium.executeToolAction slack send-message - channel=#ops`, `{"tool":"slack","action":"send-message","params":{"text":"from stdin","channel":"#ops"}}`},
		} {
			srv.Reset()
			r := b.run(t, b.env(srv), "-c", tc.script+`; echo "st=$?"`)
			if r.code != 0 || r.stdout != ok+"st=0\n" || r.stderr != "" {
				t.Errorf("%s: %+v", tc.script, r)
				continue
			}
			reqs := srv.Requests()
			if len(reqs) != 1 || reqs[0].Method != "POST" || reqs[0].RequestURI != "/tool-actions/execute" {
				t.Errorf("%s: requests %+v", tc.script, reqs)
				continue
			}
			if !sameJSON(t, reqs[0].Body, tc.body) {
				t.Errorf("%s: body %s, want %s", tc.script, reqs[0].Body, tc.body)
			}
		}
	})

	t.Run("failed action", func(t *testing.T) {
		srv.Reset()
		srv.SetToolResult(`{"success": false, "error": "slack: POST hooks.slack.com: HTTP 404 Not Found: no_service"}`)
		defer srv.SetToolResult(`{"success":true,"data":{"ok":true}}`)
		r := b.run(t, b.env(srv), "-c", `out=$(cronium_send_slack_message hi); echo "st=$? out=$out"`)
		want := `st=1 out={"success":false,"error":"slack: POST hooks.slack.com: HTTP 404 Not Found: no_service"}` + "\n"
		if r.code != 0 || r.stdout != want || r.stderr != "cronium: tool action failed: slack: POST hooks.slack.com: HTTP 404 Not Found: no_service\n" {
			t.Errorf("%+v", r)
		}
		// set -e stops the script there.
		r = b.run(t, b.env(srv), "-e", "-c", `cronium_send_discord_message hi >/dev/null; echo unreachable`)
		if r.code != 1 || r.stdout != "" || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("set -e: %+v", r)
		}
		if n := len(srv.Requests()); n != 2 {
			t.Errorf("%d requests, want 2", n)
		}
	})

	t.Run("refused and off", func(t *testing.T) {
		srv.Reset()
		r := b.run(t, b.env(srv), "-c", `cronium_execute_tool_action fax send; echo "st=$?"`)
		if r.stdout != "st=1\n" || !strings.HasPrefix(r.stderr, `cronium: tool: unknown tool "fax"`) {
			t.Errorf("400: %+v", r)
		}
		srv.SetToolActions(false)
		defer srv.SetToolActions(true)
		r = b.run(t, b.env(srv), "-c", `cronium_send_email a@example.com s b; echo "st=$?"`)
		if r.stdout != "st=1\n" || r.stderr != "cronium: "+fakeapi.NoTools+"\n" {
			t.Errorf("501: %+v", r)
		}
	})

	t.Run("5xx not retried", func(t *testing.T) {
		srv.Reset()
		srv.Queue(fakeapi.Reply{Status: 503, Body: `{"error":"Service Unavailable","message":"try later"}`}, fakeapi.Reply{Status: 503, Body: `{}`})
		r := b.run(t, b.env(srv), "-c", `cronium_send_teams_message hi; echo "st=$?"`)
		if r.stdout != "st=1\n" || r.stderr != "cronium: try later\n" || len(srv.Requests()) != 1 {
			t.Errorf("%+v after %d requests", r, len(srv.Requests()))
		}
	})

	t.Run("wrong arguments", func(t *testing.T) {
		srv.Reset()
		for _, fn := range []string{"cronium_send_email a b", "cronium_send_slack_message", "cronium_send_discord_message",
			"cronium_send_teams_message", "cronium_execute_tool_action slack", "cronium_execute_tool_action slack send-message notapair",
			"cronium.executeToolAction '' send"} {
			r := b.run(t, b.env(srv), "-c", fn+`; echo "st=$?"`)
			if r.stdout != "st=2\n" || !strings.HasPrefix(r.stderr, "cronium: ") || strings.Count(r.stderr, "\n") != 1 {
				t.Errorf("%s: %+v", fn, r)
			}
		}
		if n := len(srv.Requests()); n != 0 {
			t.Errorf("wrong arguments sent %d requests", n)
		}
	})

	t.Run("runtime not available", func(t *testing.T) {
		env := []string{"PATH=" + b.path, "BASH_ENV=" + b.lib, "CRONIUM_HELPER=" + b.helper}
		for _, fn := range []string{"cronium_send_email a s b", "cronium.sendEmail a s b", "cronium_send_slack_message x",
			"cronium.sendSlackMessage x", "cronium_send_discord_message x", "cronium_send_teams_message x",
			"cronium_execute_tool_action slack send-message", "cronium.executeToolAction slack send-message"} {
			r := b.run(t, env, "-c", fn+`; echo "st=$?"`)
			if r.stdout != "st=1\n" || r.stderr != "cronium runtime not available: CRONIUM_RUNTIME_API is not set\n" {
				t.Errorf("%s: %+v", fn, r)
			}
		}
	})
}

// sameJSON compares two JSON texts by value.
func sameJSON(t *testing.T, got, want string) bool {
	t.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Errorf("not JSON: %q: %v", got, err)
		return false
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad want %q: %v", want, err)
	}
	return reflect.DeepEqual(g, w)
}
