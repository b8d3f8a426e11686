package container_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/cronium/cronium-agent/runner"
)

// Integration tests of the helper libraries (runtimes/helpers) inside real
// jobs: every helper function in both name styles, in every runtime, against
// the job's own runtime API (docs/runtime-api.md: endpoints and helper libraries).
//
// A script reports what it saw as one line per check:
//
//	python, node: CHK <name> <JSON record>
//	              record {"value": v} on success; {"error": type, "message",
//	              "status", "isCronium"} on failure; node adds {"sync": true}
//	              when a function threw instead of returning a Promise and
//	              {"undefined": true} when it resolved to undefined
//	bash:         CHK <name> <exit status> <ms> <output, \ and newline escaped>
//
// Every record also says how long the call took (ms; bash: -1 when the shell
// has no EPOCHREALTIME).

// helperInput sets the step input (execution.inputData) of the job.
func helperInput(raw string) jobOpt {
	return func(j *runner.Job) {
		if raw == "" {
			j.Input = nil
			return
		}
		j.Input = json.RawMessage(raw)
	}
}

// helperUser sets the job's user (the owner of its variables).
func helperUser(u string) jobOpt { return func(j *runner.Job) { j.UserID = u } }

// helperCheck is one CHK line of a script.
type helperCheck struct {
	// bash
	rc  int
	raw string // the call's output (stdout, or stderr for error checks), unescaped
	ms  int    // how long the call took, -1 when unknown
	// python, node
	rec map[string]json.RawMessage
}

func (c helperCheck) has(field string) bool { _, ok := c.rec[field]; return ok }

func (c helperCheck) str(field string) string {
	var s string
	_ = json.Unmarshal(c.rec[field], &s)
	return s
}

// value is the JSON the call returned (python, node), or "" when it did not
// return one.
func (c helperCheck) value() json.RawMessage { return c.rec["value"] }

func (c helperCheck) String() string {
	if c.rec != nil {
		b, _ := json.Marshal(c.rec)
		return string(b)
	}
	return fmt.Sprintf("rc=%d ms=%d out=%q", c.rc, c.ms, c.raw)
}

// bashUnescape undoes the escaping of the bash chk functions: "\\" is a
// backslash and "\n" a newline.
func bashUnescape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
			if s[i] == 'n' {
				b.WriteByte('\n')
			} else {
				b.WriteByte(s[i])
			}
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// parseChecks reads the CHK lines of a run's stdout; any other line fails
// the test.
func parseChecks(t testing.TB, rt string, r *result) map[string]helperCheck {
	t.Helper()
	checks := map[string]helperCheck{}
	for _, line := range strings.Split(strings.TrimSuffix(r.stdout.String(), "\n"), "\n") {
		if line == "" {
			continue
		}
		rest, ok := strings.CutPrefix(line, "CHK ")
		if !ok {
			t.Errorf("unexpected stdout line %q", line)
			continue
		}
		var name string
		var c helperCheck
		if rt == "bash" {
			f := strings.SplitN(rest, " ", 4)
			if len(f) != 4 {
				t.Errorf("malformed check line %q", line)
				continue
			}
			rc, err1 := strconv.Atoi(f[1])
			ms, err2 := strconv.Atoi(f[2])
			if err1 != nil || err2 != nil {
				t.Errorf("malformed check line %q", line)
				continue
			}
			name, c.rc, c.ms, c.raw = f[0], rc, ms, bashUnescape(f[3])
		} else {
			var rec string
			name, rec, _ = strings.Cut(rest, " ")
			if err := json.Unmarshal([]byte(rec), &c.rec); err != nil || c.rec == nil {
				t.Errorf("malformed check line %q: %v", line, err)
				continue
			}
			c.ms = -1
			if ms, ok := c.rec["ms"]; ok {
				delete(c.rec, "ms")
				if err := json.Unmarshal(ms, &c.ms); err != nil {
					t.Errorf("malformed check line %q: ms: %v", line, err)
				}
			}
		}
		if _, dup := checks[name]; dup {
			t.Errorf("check %s reported twice", name)
		}
		checks[name] = c
	}
	return checks
}

// jsonEqual reports whether two JSON texts hold the same value.
func jsonEqual(a, b []byte) bool {
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}

// wantValue checks that a call succeeded and returned want (JSON text).
// For bash the output must be want as JSON on one line; rawString makes a
// JSON string expected as its raw text (how cronium_get_variable prints
// strings), and want "" expects no output at all.
func wantValue(t testing.TB, rt string, checks map[string]helperCheck, name, want string, rawString bool) {
	t.Helper()
	c, ok := checks[name]
	if !ok {
		t.Errorf("%s: check not reported", name)
		return
	}
	if rt == "bash" {
		if c.rc != 0 {
			t.Errorf("%s: exit status %d, want 0 (%s)", name, c.rc, c)
			return
		}
		if want == "" {
			if c.raw != "" {
				t.Errorf("%s: printed %q, want nothing", name, c.raw)
			}
			return
		}
		line, ok := strings.CutSuffix(c.raw, "\n")
		if !ok || strings.Contains(line, "\n") {
			t.Errorf("%s: printed %q, want one line", name, c.raw)
			return
		}
		var s string
		if rawString && strings.HasPrefix(want, `"`) && json.Unmarshal([]byte(want), &s) == nil {
			if line != s {
				t.Errorf("%s: printed %q, want %q", name, line, s)
			}
			return
		}
		if !jsonEqual([]byte(line), []byte(want)) {
			t.Errorf("%s: printed %q, want the JSON %s", name, line, want)
		}
		return
	}
	if !c.has("value") {
		t.Errorf("%s: returned no value: %s", name, c)
		return
	}
	if want == "" {
		want = "null"
	}
	if !jsonEqual(c.value(), []byte(want)) {
		t.Errorf("%s: returned %s, want %s", name, c.value(), want)
	}
}

// wantOK checks that a call that returns nothing succeeded (in Node, its
// Promise resolved).
func wantOK(t testing.TB, rt string, checks map[string]helperCheck, name string) {
	t.Helper()
	c, ok := checks[name]
	switch {
	case !ok:
		t.Errorf("%s: check not reported", name)
	case rt == "bash" && (c.rc != 0 || c.raw != ""):
		t.Errorf("%s: %s, want status 0 and no output", name, c)
	case rt != "bash" && (!(c.has("value") || c.has("undefined")) || c.has("sync") || c.has("notPromise")):
		t.Errorf("%s: failed: %s", name, c)
	}
}

// wantError checks that a call failed with the given HTTP status (0: no
// status, a call that never reached the API) and message: a CroniumError in
// Python and Node (a rejected Promise in Node), a non-zero exit status with
// exactly one line on stderr in bash.
func wantError(t testing.TB, rt string, checks map[string]helperCheck, name string, status int, message string) {
	t.Helper()
	c, ok := checks[name]
	if !ok {
		t.Errorf("%s: check not reported", name)
		return
	}
	// 4xx and a missing runtime fail at once: a retried call would take at
	// least 1.4 s (0.2 + 0.4 + 0.8).
	if c.ms >= 1000 {
		t.Errorf("%s: failed after %d ms, want at once (no retries)", name, c.ms)
	}
	if rt == "bash" {
		if c.rc == 0 {
			t.Errorf("%s: exit status 0, want a failure (%s)", name, c)
		}
		line, ok := strings.CutSuffix(c.raw, "\n")
		if !ok || strings.Contains(line, "\n") {
			t.Errorf("%s: stderr %q, want exactly one line", name, c.raw)
			return
		}
		if !strings.Contains(line, message) {
			t.Errorf("%s: stderr %q, want it to contain %q", name, line, message)
		}
		if status == 0 && line != message {
			t.Errorf("%s: stderr %q, want %q", name, line, message)
		}
		return
	}
	if c.has("value") || c.has("undefined") {
		t.Errorf("%s: succeeded (%s), want a CroniumError", name, c)
		return
	}
	if c.has("sync") {
		t.Errorf("%s: threw synchronously instead of returning a rejected Promise: %s", name, c)
	}
	if c.str("error") != "CroniumError" || string(c.rec["isCronium"]) != "true" {
		t.Errorf("%s: raised %s, want a CroniumError", name, c)
	}
	if c.str("message") != message {
		t.Errorf("%s: message %q, want %q", name, c.str("message"), message)
	}
	wantStatus := "null"
	if status != 0 {
		wantStatus = strconv.Itoa(status)
	}
	if got := string(c.rec["status"]); got != wantStatus {
		t.Errorf("%s: status %s, want %s", name, got, wantStatus)
	}
}

// wantContext checks an event()/context() result against the run.
func wantContext(t testing.TB, rt string, checks map[string]helperCheck, name string, r *result, jobID, userID, eventID string) {
	t.Helper()
	c, ok := checks[name]
	if !ok {
		t.Errorf("%s: check not reported", name)
		return
	}
	raw := []byte(c.value())
	if rt == "bash" {
		if c.rc != 0 {
			t.Errorf("%s: exit status %d (%s)", name, c.rc, c)
			return
		}
		line, ok := strings.CutSuffix(c.raw, "\n")
		if !ok || strings.Contains(line, "\n") {
			t.Errorf("%s: printed %q, want one JSON line", name, c.raw)
			return
		}
		raw = []byte(line)
	}
	var got map[string]any
	if err := json.Unmarshal(raw, &got); err != nil || got == nil {
		t.Errorf("%s: %s is not a JSON object: %v", name, c, err)
		return
	}
	want := map[string]string{
		"executionId": r.req.Env["CRONIUM_EXECUTION_ID"],
		"jobId":       jobID,
		"userId":      userID,
		"eventId":     eventID,
	}
	if want["executionId"] == "" || !strings.HasPrefix(want["executionId"], "exec_"+jobID+"_") {
		t.Fatalf("run has execution id %q", want["executionId"])
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %s = %#v, want %q", name, k, got[k], v)
		}
	}
}

// ---- scripts ----

const pyPrelude = `import json, os, sys, time
import cronium

def chk(name, fn, *args):
    t0 = time.monotonic()
    try:
        v = fn(*args)
    except Exception as e:
        rec = {"error": type(e).__name__, "message": str(e),
               "status": getattr(e, "status", None),
               "isCronium": isinstance(e, cronium.CroniumError)}
    else:
        rec = {"value": v}
    rec["ms"] = int((time.monotonic() - t0) * 1000)
    print("CHK " + name + " " + json.dumps(rec, separators=(",", ":")), flush=True)

env = os.environ
`

const nodePrelude = `'use strict';
const cronium = require('cronium');
const env = process.env;

async function chk(name, fn, ...args) {
  const t0 = Date.now();
  let rec;
  let p;
  try {
    p = fn(...args);
  } catch (e) {
    p = Promise.reject(e);
    rec = { sync: true };
  }
  if (!(p instanceof Promise)) rec = Object.assign(rec || {}, { notPromise: true });
  try {
    const v = await p;
    rec = Object.assign(rec || {}, v === undefined ? { undefined: true } : { value: v });
  } catch (e) {
    rec = Object.assign(rec || {}, {
      error: e && e.name,
      message: e && e.message,
      status: e && e.status !== undefined ? e.status : null,
      isCronium: e instanceof cronium.CroniumError,
    });
  }
  rec.ms = Date.now() - t0;
  console.log('CHK ' + name + ' ' + JSON.stringify(rec));
}

async function main() {
`

const nodeEnd = `}

main().catch((e) => {
  console.error('script failed:', e);
  process.exitCode = 3;
});
`

// bash: chk runs a call and prints its status and stdout; chkerr prints its
// status and stderr (stdout discarded).
const bashPrelude = `esc() {
  local s=$1
  s=${s//\\/\\\\}
  s=${s//$'\n'/\\n}
  printf '%s' "$s"
}
now_us() {
  if [ -n "${EPOCHREALTIME:-}" ]; then printf '%s' "${EPOCHREALTIME/[.,]/}"; else printf -- '-1'; fi
}
report() { # name, start (µs), output with the status appended as ".<status>"
  local out=$3 rc ms=-1 end
  rc=${out##*.}
  out=${out%.*}
  end=$(now_us)
  if [ "$2" != -1 ] && [ "$end" != -1 ]; then ms=$(( (end - $2) / 1000 )); fi
  printf 'CHK %s %s %s %s\n' "$1" "$rc" "$ms" "$(esc "$out")"
}
chk() {
  local name=$1 t0
  shift
  t0=$(now_us)
  report "$name" "$t0" "$("$@"; printf '.%d' "$?")"
}
chkerr() {
  local name=$1 t0
  shift
  t0=$(now_us)
  report "$name" "$t0" "$("$@" 2>&1 >/dev/null; printf '.%d' "$?")"
}
`

// helperVar is a variable the "set" script writes and the "get" script
// reads back, in every runtime.
type helperVar struct {
	name       string // in check names
	key, value string // value as JSON
}

// The set scripts write v_zero twice (7, then 0): the last write wins.
var helperVars = []helperVar{
	{"v_zero", "v_zero", `0`},
	{"v_empty", "v_empty", `""`},
	{"v_false", "v_false", `false`},
	{"v_obj", "v_obj", `{"k":[1,null,"x"],"n":{"deep":true}}`},
	{"v_str", "v_str", `"hello world"`},
	{"v_num", "v_num", `3.5`},
	// a key the helpers must URL-encode: / space ? & = % # and non-ASCII
	{"v_odd_key", "dir/sub key?&=%#é", `"odd"`},
}

// helperMissingVar is never set; its value "" means: reads as missing.
var helperMissingVar = helperVar{"v_never_set", "v_never_set", ""}

type helperScripts struct {
	// io reads the input and the context (both name styles) and sets the
	// output and the condition twice each: HT_OUT_FIRST then HT_OUT_LAST,
	// HT_COND_FIRST then HT_COND_LAST, the camelCase (bash: dotted) name
	// last when HT_LAST is "camel", else the snake_case name last.
	io string
	// set writes helperVars, alternating the name styles; get reads every
	// variable, and one never set, with both name styles.
	set, get string
	// wrongID calls every function with CRONIUM_EXECUTION_ID changed to
	// another execution; unset calls every function without
	// CRONIUM_RUNTIME_API, the helper loaded after it was removed.
	wrongID, unset string
}

// varSyntax is how a runtime's scripts spell the variable checks.
type varSyntax struct {
	prelude, end string
	// pre is the first write of v_zero (7), which the loop over helperVars
	// overwrites.
	pre string
	// the function names, snake_case first, then camelCase (bash: dotted)
	setFns, getFns [2]string
	// setLine and getLine spell one check: a write of v and a read of v by fn
	setLine, getLine func(check, fn string, v helperVar) string
}

// scripts builds the set and get scripts (see helperScripts): set writes
// helperVars, alternating the name styles; get reads them and
// helperMissingVar with both.
func (x varSyntax) scripts() (set, get string) {
	var s, g strings.Builder
	s.WriteString(x.prelude + x.pre)
	for i, v := range helperVars {
		s.WriteString(x.setLine("set:"+v.name, x.setFns[i%2], v))
	}
	s.WriteString(x.end)
	g.WriteString(x.prelude)
	for _, v := range append(append([]helperVar(nil), helperVars...), helperMissingVar) {
		g.WriteString(x.getLine("get_snake:"+v.name, x.getFns[0], v))
		g.WriteString(x.getLine("get_camel:"+v.name, x.getFns[1], v))
	}
	g.WriteString(x.end)
	return s.String(), g.String()
}

func helperScriptsFor(rt string) helperScripts {
	switch rt {
	case "python":
		set, get := varSyntax{
			prelude: pyPrelude,
			pre:     "chk('set_pre:v_zero', cronium.setVariable, 'v_zero', 7)\n",
			setFns:  [2]string{"set_variable", "setVariable"},
			getFns:  [2]string{"get_variable", "getVariable"},
			setLine: func(check, fn string, v helperVar) string {
				return fmt.Sprintf("chk('%s', cronium.%s, %q, json.loads(%q))\n", check, fn, v.key, v.value)
			},
			getLine: func(check, fn string, v helperVar) string {
				return fmt.Sprintf("chk('%s', cronium.%s, %q)\n", check, fn, v.key)
			},
		}.scripts()
		return helperScripts{
			io: pyPrelude + `
chk('input', cronium.input)
chk('event', cronium.event)
chk('context', cronium.context)
camel = env['HT_LAST'] == 'camel'
first_cond, last_cond = env['HT_COND_FIRST'] == 'true', env['HT_COND_LAST'] == 'true'
chk('output1', cronium.output, json.loads(env['HT_OUT_FIRST']))
chk('output2', cronium.output, json.loads(env['HT_OUT_LAST']))
chk('cond1', cronium.set_condition if camel else cronium.setCondition, first_cond)
chk('cond2', cronium.setCondition if camel else cronium.set_condition, last_cond)
`,
			set: set,
			get: get,
			wrongID: pyPrelude + `
env['CRONIUM_EXECUTION_ID'] = 'exec_other'
chk('input', cronium.input)
chk('output', cronium.output, {'x': 1})
chk('get_variable', cronium.get_variable, 'k')
chk('getVariable', cronium.getVariable, 'k')
chk('set_variable', cronium.set_variable, 'k', 1)
chk('setVariable', cronium.setVariable, 'k', 1)
chk('set_condition', cronium.set_condition, True)
chk('setCondition', cronium.setCondition, True)
chk('event', cronium.event)
chk('context', cronium.context)
`,
			unset: `import json, os, sys, time
del os.environ['CRONIUM_RUNTIME_API']
try:
    import cronium
except BaseException as e:
    print('CHK import ' + json.dumps({'error': type(e).__name__, 'message': str(e), 'status': None, 'isCronium': False}))
    raise SystemExit(0)
print('CHK import {"value":null}')
` + strings.TrimPrefix(pyPrelude, "import json, os, sys, time\nimport cronium\n") + `
chk('input', cronium.input)
chk('output', cronium.output, {'x': 1})
chk('get_variable', cronium.get_variable, 'k')
chk('getVariable', cronium.getVariable, 'k')
chk('set_variable', cronium.set_variable, 'k', 1)
chk('setVariable', cronium.setVariable, 'k', 1)
chk('set_condition', cronium.set_condition, True)
chk('setCondition', cronium.setCondition, True)
chk('event', cronium.event)
chk('context', cronium.context)
`,
		}
	case "node":
		set, get := varSyntax{
			prelude: nodePrelude,
			end:     nodeEnd,
			pre:     "  await chk('set_pre:v_zero', cronium.setVariable, 'v_zero', 7);\n",
			setFns:  [2]string{"set_variable", "setVariable"},
			getFns:  [2]string{"get_variable", "getVariable"},
			setLine: func(check, fn string, v helperVar) string {
				return fmt.Sprintf("  await chk('%s', cronium.%s, %q, JSON.parse(%q));\n", check, fn, v.key, v.value)
			},
			getLine: func(check, fn string, v helperVar) string {
				return fmt.Sprintf("  await chk('%s', cronium.%s, %q);\n", check, fn, v.key)
			},
		}.scripts()
		calls := `  await chk('input', cronium.input);
  await chk('output', cronium.output, { x: 1 });
  await chk('get_variable', cronium.get_variable, 'k');
  await chk('getVariable', cronium.getVariable, 'k');
  await chk('set_variable', cronium.set_variable, 'k', 1);
  await chk('setVariable', cronium.setVariable, 'k', 1);
  await chk('set_condition', cronium.set_condition, true);
  await chk('setCondition', cronium.setCondition, true);
  await chk('event', cronium.event);
  await chk('context', cronium.context);
`
		return helperScripts{
			io: nodePrelude + `  await chk('input', cronium.input);
  await chk('event', cronium.event);
  await chk('context', cronium.context);
  const camel = env.HT_LAST === 'camel';
  await chk('output1', cronium.output, JSON.parse(env.HT_OUT_FIRST));
  await chk('output2', cronium.output, JSON.parse(env.HT_OUT_LAST));
  await chk('cond1', camel ? cronium.set_condition : cronium.setCondition, env.HT_COND_FIRST === 'true');
  await chk('cond2', camel ? cronium.setCondition : cronium.set_condition, env.HT_COND_LAST === 'true');
` + nodeEnd,
			set:     set,
			get:     get,
			wrongID: nodePrelude + "  env.CRONIUM_EXECUTION_ID = 'exec_other';\n" + calls + nodeEnd,
			unset: `'use strict';
delete process.env.CRONIUM_RUNTIME_API;
let loaded;
try {
  loaded = require('cronium');
  console.log('CHK import {"value":null}');
} catch (e) {
  console.log('CHK import ' + JSON.stringify({ error: e && e.name, message: e && e.message, status: null, isCronium: false }));
  process.exit(0);
}
` + strings.Replace(nodePrelude, "'use strict';\nconst cronium = require('cronium');\n", "const cronium = loaded;\n", 1) + calls + nodeEnd,
		}
	case "bash":
		set, get := varSyntax{
			prelude: bashPrelude,
			pre:     "chk set_pre:v_zero cronium.setVariable v_zero 7\n",
			setFns:  [2]string{"cronium_set_variable", "cronium.setVariable"},
			getFns:  [2]string{"cronium_get_variable", "cronium.getVariable"},
			setLine: func(check, fn string, v helperVar) string {
				arg := v.value
				var s string
				if json.Unmarshal([]byte(v.value), &s) == nil {
					arg = s // strings are passed as their text
				}
				return fmt.Sprintf("chk %s %s '%s' '%s'\n", check, fn, v.key, arg)
			},
			getLine: func(check, fn string, v helperVar) string {
				return fmt.Sprintf("chk %s %s '%s'\n", check, fn, v.key)
			},
		}.scripts()
		calls := `chkerr input cronium_input
chkerr input_dotted cronium.input
chkerr output cronium_output '{"x":1}'
chkerr output_dotted cronium.output '{"x":1}'
chkerr get_variable cronium_get_variable k
chkerr getVariable cronium.getVariable k
chkerr set_variable cronium_set_variable k 1
chkerr setVariable cronium.setVariable k 1
chkerr set_condition cronium_set_condition true
chkerr setCondition cronium.setCondition true
chkerr event cronium_event
chkerr context cronium.event
`
		return helperScripts{
			io: bashPrelude + `chk input cronium_input
chk input_dotted cronium.input
chk event cronium_event
chk context cronium.event
if [ "$HT_LAST" = camel ]; then
  chk output1 cronium_output "$HT_OUT_FIRST"
  chk output2 cronium.output "$HT_OUT_LAST"
  chk cond1 cronium_set_condition "$HT_COND_FIRST"
  chk cond2 cronium.setCondition "$HT_COND_LAST"
else
  chk output1 cronium.output "$HT_OUT_FIRST"
  chk output2 cronium_output "$HT_OUT_LAST"
  chk cond1 cronium.setCondition "$HT_COND_FIRST"
  chk cond2 cronium_set_condition "$HT_COND_LAST"
fi
`,
			set:     set,
			get:     get,
			wrongID: bashPrelude + "CRONIUM_EXECUTION_ID=exec_other\n" + calls,
			unset: bashPrelude + `unset CRONIUM_RUNTIME_API
if source "$BASH_ENV" 2>/dev/null; then echo 'CHK import 0 -1 '; else echo 'CHK import 1 -1 '; fi
` + calls,
		}
	}
	panic("no scripts for runtime " + rt)
}

// bashBool spells a condition the way bash scripts may: every accepted
// spelling in turn.
func bashBool(b bool, i int) string {
	if b {
		return []string{"true", "1", "yes", "ON", "True"}[i%5]
	}
	return []string{"false", "0", "no", "Off", "FALSE"}[i%5]
}

// requireClean fails unless the run completed with status 0 and no stderr.
func requireClean(t testing.TB, r *result) {
	t.Helper()
	if r.err != nil {
		t.Fatalf("run: %v", r.err)
	}
	if r.ExitCode != 0 || r.stderr.Len() > 0 {
		t.Fatalf("exit code %d, stderr %q, stdout %q", r.ExitCode, r.stderr.String(), r.stdout.String())
	}
}

func TestHelpersInEveryRuntime(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	inputs := []struct{ name, json string }{
		{"object", `{"a":[1,"x",null]}`},
		{"array", `[1,2,3]`},
		{"string", `"text"`},
		{"number", `42`},
		{"null", `null`},
		{"none", ``}, // no input at all reads as null
	}
	for _, rt := range []string{"bash", "python", "node"} {
		t.Run(rt, func(t *testing.T) {
			s := helperScriptsFor(rt)
			user := "user_it_" + rt
			event := "evt_it_" + rt

			t.Run("input_output_condition_context", func(t *testing.T) {
				for i, in := range inputs {
					t.Run(in.name, func(t *testing.T) {
						last := "snake"
						if i%2 == 1 {
							last = "camel"
						}
						wantCond := i%3 != 1
						outFirst := `{"set":"first"}`
						outLast := fmt.Sprintf(`{"set":"last","by":%q,"list":[1,"two",null,false,0,""],"input":%q}`, last, in.name)
						condFirst, condLast := strconv.FormatBool(!wantCond), strconv.FormatBool(wantCond)
						if rt == "bash" {
							condFirst, condLast = bashBool(!wantCond, i), bashBool(wantCond, i+2)
						}
						jobID := "job_hlp_" + rt + "_" + in.name + "_" + strings.ToLower(randomSuffix())
						r := h.run(ctx, t, rt, s.io, withID(jobID), withEvent(event, user), helperInput(in.json),
							withEnv("HT_LAST", last, "HT_OUT_FIRST", outFirst, "HT_OUT_LAST", outLast,
								"HT_COND_FIRST", condFirst, "HT_COND_LAST", condLast))
						requireClean(t, r)
						checks := parseChecks(t, rt, r)

						want := in.json
						if want == "" {
							want = "null"
						}
						wantValue(t, rt, checks, "input", want, false)
						if rt == "bash" {
							wantValue(t, rt, checks, "input_dotted", want, false)
						}
						wantContext(t, rt, checks, "event", r, jobID, user, event)
						wantContext(t, rt, checks, "context", r, jobID, user, event)
						for _, name := range []string{"output1", "output2", "cond1", "cond2"} {
							wantOK(t, rt, checks, name)
						}

						if !r.HasOutput || !jsonEqual(r.Output, []byte(outLast)) {
							t.Errorf("output %s (set %v), want the last one set, %s", r.Output, r.HasOutput, outLast)
						}
						if !r.HasCondition || r.Condition != wantCond {
							t.Errorf("condition %v (set %v), want the last one set, %v", r.Condition, r.HasCondition, wantCond)
						}
					})
				}
			})

			t.Run("variables_persist_across_runs", func(t *testing.T) {
				r := h.run(ctx, t, rt, s.set, helperUser(user))
				requireClean(t, r)
				checks := parseChecks(t, rt, r)
				wantOK(t, rt, checks, "set_pre:v_zero")
				for _, v := range helperVars {
					wantOK(t, rt, checks, "set:"+v.name)
				}
				if len(checks) != len(helperVars)+1 {
					t.Errorf("%d checks reported, want %d: %s", len(checks), len(helperVars)+1, r.stdout.String())
				}

				r = h.run(ctx, t, rt, s.get, helperUser(user))
				requireClean(t, r)
				checks = parseChecks(t, rt, r)
				for _, style := range []string{"get_snake:", "get_camel:"} {
					for _, v := range helperVars {
						wantValue(t, rt, checks, style+v.name, v.value, true)
					}
					// A missing variable: null / None / no output and status 0.
					wantValue(t, rt, checks, style+helperMissingVar.name, "", true)
				}
				if len(checks) != 2*(len(helperVars)+1) {
					t.Errorf("%d checks reported, want %d: %s", len(checks), 2*(len(helperVars)+1), r.stdout.String())
				}
			})
		})
	}
}

func TestHelpersErrors(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	// every function, in every name style, as the scripts name the checks
	names := map[string][]string{
		"python": {"input", "output", "get_variable", "getVariable", "set_variable", "setVariable", "set_condition", "setCondition", "event", "context"},
		"bash":   {"input", "input_dotted", "output", "output_dotted", "get_variable", "getVariable", "set_variable", "setVariable", "set_condition", "setCondition", "event", "context"},
	}
	names["node"] = names["python"]
	const notAvailable = "cronium runtime not available: CRONIUM_RUNTIME_API is not set"

	type tc struct {
		name    string
		script  func(helperScripts) string
		status  int    // HTTP status of the failure, 0 when no call is made
		message string // the CroniumError message (bash: contained in the stderr line)
	}
	cases := []tc{
		// The API refuses a path naming another execution than the token's.
		{"wrong_execution_id", func(s helperScripts) string { return s.wrongID }, 403, "execution ID mismatch"},
		// Loading the helper works without the runtime; calls fail.
		{"runtime_api_unset", func(s helperScripts) string { return s.unset }, 0, notAvailable},
	}
	for _, rt := range []string{"bash", "python", "node"} {
		for _, c := range cases {
			t.Run(rt+"/"+c.name, func(t *testing.T) {
				r := h.run(ctx, t, rt, c.script(helperScriptsFor(rt)), helperUser("user_it_err_"+rt))
				requireClean(t, r)
				checks := parseChecks(t, rt, r)
				if c.name == "runtime_api_unset" {
					if rt == "bash" {
						if ch := checks["import"]; ch.rc != 0 {
							t.Errorf("sourcing the helpers again without CRONIUM_RUNTIME_API: status %d", ch.rc)
						}
					} else {
						wantValue(t, rt, checks, "import", "null", false)
					}
				}
				for _, name := range names[rt] {
					wantError(t, rt, checks, name, c.status, c.message)
				}
				want := len(names[rt])
				if c.name == "runtime_api_unset" {
					want++
				}
				if len(checks) != want {
					t.Errorf("%d checks reported, want %d:\n%s", len(checks), want, r.stdout.String())
				}
				// Nothing a refused call sent may have been recorded.
				if r.HasOutput || r.HasCondition {
					t.Errorf("output %s (set %v), condition set %v: want neither", r.Output, r.HasOutput, r.HasCondition)
				}
			})
		}
	}
}
