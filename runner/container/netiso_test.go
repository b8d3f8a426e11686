package container_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cronium/cronium-agent/internal/testenv"
	"github.com/cronium/cronium-agent/runner/output"
)

// outsideHost is a test network namespace joined to the host by a veth
// pair, with a TCP service: an address outside every job.
type outsideHost struct {
	ns   string
	addr string
	port int
}

// newOutsideHost makes the namespace; 198.18.0.0/15 is the benchmarking
// range, routed nowhere, so nothing can answer there but this test's host.
func newOutsideHost(t *testing.T) *outsideHost {
	t.Helper()
	suffix := randomSuffix()[:6]
	o := &outsideHost{ns: "crtest-" + suffix, addr: "198.18.250.2", port: 18081}
	hostIf := "crtv-" + suffix
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v %s", args, err, out)
		}
	}
	t.Cleanup(func() {
		exec.Command("ip", "netns", "del", o.ns).Run()
		exec.Command("ip", "link", "del", hostIf).Run()
	})
	run("netns", "add", o.ns)
	run("link", "add", hostIf, "type", "veth", "peer", "name", "eth0", "netns", o.ns)
	run("addr", "add", "198.18.250.1/30", "dev", hostIf)
	run("link", "set", hostIf, "up")
	run("-n", o.ns, "addr", "add", o.addr+"/30", "dev", "eth0")
	run("-n", o.ns, "link", "set", "eth0", "up")
	run("-n", o.ns, "link", "set", "lo", "up")
	srv := exec.Command("ip", "netns", "exec", o.ns, "python3", "-c", fmt.Sprintf(`import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", %d)); s.listen(16)
while True:
    c, _ = s.accept(); c.sendall(b"outside"); c.close()`, o.port))
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	for i := 0; ; i++ {
		out, _ := exec.Command("ip", "netns", "exec", o.ns, "python3", "-c", fmt.Sprintf(`import socket; socket.create_connection(("127.0.0.1", %d), 1)`, o.port)).CombinedOutput()
		if len(out) == 0 {
			break
		}
		if i > 50 {
			t.Fatalf("outside service did not start: %s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return o
}

// hostService listens on all of the host's addresses, as an operator's
// database or SSH daemon would.
func hostService(t *testing.T) int {
	t.Helper()
	port, err := testenv.Greeter(t, "0.0.0.0:0", "host")
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// probeScript tries every target once with a 1 s bound and prints what
// happened, as JSON.
const probeScript = `import json, os, socket, urllib.request
def tcp(host, port):
    try:
        with socket.create_connection((host, int(port)), timeout=1) as c:
            c.settimeout(1)
            return "open:" + c.recv(16).decode()
    except socket.timeout:
        return "timeout"
    except OSError as e:
        return "closed:" + (e.strerror or str(e))
gw = socket.gethostbyname("runtime-api")
with urllib.request.urlopen(os.environ["CRONIUM_RUNTIME_API"] + "/health", timeout=2) as r:
    health = r.status
print(json.dumps({
    "gateway": gw,
    "runtime resolves": socket.gethostbyname("runtime"),
    "api health": health,
    "host service via gateway": tcp(gw, os.environ["HOST_PORT"]),
    "other job's API": tcp(os.environ["B_GW"], 8081),
    "other job's gateway service": tcp(os.environ["B_GW"], os.environ["HOST_PORT"]),
    "outside": tcp(os.environ["OUT_ADDR"], os.environ["OUT_PORT"]),
}))
`

func probe(t *testing.T, h *harness, env map[string]string) map[string]any {
	t.Helper()
	ctx := context.Background()
	bGW := make(chan string, 1)
	bDone := make(chan *result, 1)
	stopB, cancelB := context.WithCancel(ctx)
	defer func() { cancelB(); <-bDone }()
	go func() {
		bDone <- h.runWith(stopB, t, "bash", `getent hosts runtime-api | cut -d' ' -f1; sleep 60`, func(e output.Entry) { bGW <- string(e.Data) })
	}()
	var gw string
	select {
	case gw = <-bGW:
	case r := <-bDone:
		bDone <- r // for the deferred wait
		t.Fatalf("job B ended before printing its gateway: %v status %s exit %d stderr %q", r.err, r.Status, r.ExitCode, r.stderr.String())
	case <-time.After(2 * time.Minute):
		// Generous: under the whole suite, other packages' jobs writing
		// gigabytes slow containerd's own writes down a lot.
		t.Fatal("job B did not start")
	}
	req := h.request(t, "python", probeScript)
	for k, v := range env {
		req.Env[k] = v
	}
	req.Env["B_GW"] = gw
	r := h.runRequest(ctx, t, req, nil)
	if r.err != nil || r.ExitCode != 0 {
		t.Fatalf("probe job: %v exit %d: %s", r.err, r.ExitCode, r.stderr.String())
	}
	var got map[string]any
	if err := json.Unmarshal(r.stdout.Bytes(), &got); err != nil {
		t.Fatalf("probe output %q: %v", r.stdout.String(), err)
	}
	t.Logf("probe: %v", got)
	if got["runtime resolves"] != got["gateway"] {
		t.Errorf("runtime resolves to %v, runtime-api to %v", got["runtime resolves"], got["gateway"])
	}
	if got["gateway"] == gw {
		t.Errorf("both jobs have gateway %s", gw)
	}
	return got
}

func blocked(v any) bool {
	s, _ := v.(string)
	return !strings.HasPrefix(s, "open")
}

func TestNetworkIsolation(t *testing.T) {
	out := newOutsideHost(t)
	port := hostService(t)
	env := map[string]string{"HOST_PORT": strconv.Itoa(port), "OUT_ADDR": out.addr, "OUT_PORT": strconv.Itoa(out.port)}

	t.Run("default: only the runtime API", func(t *testing.T) {
		got := probe(t, newHarness(t), env)
		if got["api health"] != 200.0 {
			t.Errorf("runtime API health: %v", got["api health"])
		}
		for _, k := range []string{"host service via gateway", "other job's API", "other job's gateway service", "outside"} {
			if !blocked(got[k]) {
				t.Errorf("%s reachable: %v", k, got[k])
			}
		}
	})
	t.Run("egress: the outside, and still not the host", func(t *testing.T) {
		got := probe(t, newHarnessWith(t, []harnessOpt{withEgress()}), env)
		if got["api health"] != 200.0 {
			t.Errorf("runtime API health: %v", got["api health"])
		}
		if got["outside"] != "open:outside" {
			t.Errorf("outside with egress: %v", got["outside"])
		}
		for _, k := range []string{"host service via gateway", "other job's API", "other job's gateway service"} {
			if !blocked(got[k]) {
				t.Errorf("%s reachable with egress: %v", k, got[k])
			}
		}
	})
}
