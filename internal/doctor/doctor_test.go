package doctor

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/cronium/cronium-agent/internal/config"
)

// Reports come in the checks' order, whatever order the checks end in, and
// a check that panics fails alone.
func TestRun(t *testing.T) {
	slow := func(d time.Duration, r Result) func(context.Context) Result {
		return func(context.Context) Result {
			time.Sleep(d)
			return r
		}
	}
	checks := []Check{
		{Name: "first", Run: slow(60*time.Millisecond, pass("one"))},
		{Name: "second", Run: func(context.Context) Result { panic("odd host") }},
		{Name: "third", Run: slow(0, warn("fix it", "three"))},
		{Name: "fourth", Run: slow(30*time.Millisecond, pass("four"))},
	}
	start := time.Now()
	reports := Run(context.Background(), checks)
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Errorf("Run took %s: the checks did not run at once", took)
	}
	var names []string
	for _, r := range reports {
		names = append(names, r.Name+":"+string(r.Status))
	}
	if got, want := strings.Join(names, " "), "first:PASS second:FAIL third:WARN fourth:PASS"; got != want {
		t.Errorf("reports %s, want %s", got, want)
	}
	if !strings.Contains(reports[1].Detail, "odd host") || reports[1].Fix == "" {
		t.Errorf("a panicking check reports %+v", reports[1].Result)
	}
	if !Failed(reports) || Failed(reports[2:]) {
		t.Errorf("Failed is wrong")
	}
}

// Every check has a name of its own and a line of help, in the documented
// order.
func TestChecksListed(t *testing.T) {
	var names []string
	seen := map[string]bool{}
	for _, c := range Checks(config.Default()) {
		if seen[c.Name] || c.About == "" || c.Run == nil {
			t.Errorf("check %q: duplicate, or without help or function", c.Name)
		}
		seen[c.Name] = true
		names = append(names, c.Name)
	}
	want := "userns cgroups overlayfs containerd runc oci-runtime job-program cni iptables ip-forward dns subids state-dir disk images backend clock"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("checks %s, want %s", got, want)
	}
}

var sample = []Report{
	{Name: "userns", Result: pass("user.max_user_namespaces = 63372")},
	{Name: "containerd", Result: fail("start containerd", "containerd not reachable at /x.sock (no such socket)")},
	{Name: "ip-forward", Result: warn("keep it on", "off:\n\x1b[2Jcleared")},
	{Name: "clock", Result: Result{Status: Pass, Detail: "within a second", Fix: "never shown for a pass"}},
}

func TestWriteText(t *testing.T) {
	var b bytes.Buffer
	if err := WriteText(&b, sample); err != nil {
		t.Fatal(err)
	}
	want := `STATUS  CHECK       DETAIL
PASS    userns      user.max_user_namespaces = 63372
FAIL    containerd  containerd not reachable at /x.sock (no such socket)
                    fix: start containerd
WARN    ip-forward  off:  [2Jcleared
                    fix: keep it on
PASS    clock       within a second

2 passed, 1 warned, 1 failed
`
	if b.String() != want {
		t.Errorf("text:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestWriteJSON(t *testing.T) {
	for _, tc := range []struct {
		name    string
		reports []Report
		ok      bool
	}{
		{"a failure", sample, false},
		{"warnings only", sample[2:], true},
		{"none", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := WriteJSON(&b, tc.reports); err != nil {
				t.Fatal(err)
			}
			var got struct {
				OK     bool `json:"ok"`
				Checks []map[string]string
			}
			if err := json.Unmarshal(b.Bytes(), &got); err != nil {
				t.Fatalf("%v in %s", err, b.String())
			}
			if got.OK != tc.ok || got.Checks == nil || len(got.Checks) != len(tc.reports) {
				t.Fatalf("JSON %s", b.String())
			}
			for i, r := range tc.reports {
				c := got.Checks[i]
				if c["name"] != r.Name || c["status"] != string(r.Status) || c["detail"] != r.Detail || c["fix"] != r.Fix {
					t.Errorf("check %d: %v, want %+v", i, c, r)
				}
			}
		})
	}
}
