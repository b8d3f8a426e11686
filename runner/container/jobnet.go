package container

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cronium/cronium-agent/cni"
	"github.com/cronium/cronium-agent/runner/netpolicy"
	"github.com/cronium/cronium-agent/runtimes/jobinit"
	"github.com/cronium/cronium-agent/sidecar"
)

// Paths inside every job.
const (
	HelperLibDir = "/cronium/lib"
	HelperBin    = "/cronium/bin/cronium"
	// InitBin is PID 1 of every job: the same binary as HelperBin, which
	// acts as the init under this name (package jobinit).
	InitBin = "/cronium/bin/" + jobinit.Name
	// InitPids is added to a job's pids limit for the init: the Go runtime
	// runs on 6 threads there, each counted as a pid.
	InitPids   = 8
	RuntimeAPI = "http://runtime-api:%d"
)

// netSetup is a job network being set up in the background, so that it
// overlaps with preparing the image and snapshot.
type netSetup struct {
	done chan struct{}
	n    *cni.Network
	err  error
}

// netID is the id of a run's network.
func netID(runID string) string { return strings.TrimPrefix(runID, "cronium-") }

// NetworkOf is the id of a run's network (cni), for sweeps told to keep it.
func NetworkOf(runID string) string { return netID(runID) }

func (e *Executor) startNetwork(ctx context.Context, id string) *netSetup {
	s := &netSetup{done: make(chan struct{})}
	if e.net == nil {
		close(s.done)
		return s
	}
	go func() {
		defer close(s.done)
		s.n, s.err = e.net.Setup(ctx, id)
	}()
	return s
}

// wait returns the network (nil when the executor has none).
func (s *netSetup) wait(ctx context.Context) (*cni.Network, error) {
	select {
	case <-s.done:
		return s.n, s.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// teardown waits for a setup still running (a run cancelled during network
// setup) and removes what it made.
func (e *Executor) teardownNetwork(ctx context.Context, s *netSetup) error {
	<-s.done
	if s.n == nil {
		return nil // Setup removes what it made when it fails
	}
	return e.net.Teardown(ctx, s.n)
}

// teardownLater removes the run's network in the background: tearing down
// a bridge costs tens of milliseconds of kernel time that the run's result
// need not wait for. The network stays locked (so no sweep touches it) until
// it is gone; Wait waits for every teardown in flight.
func (e *Executor) teardownLater(runID string, s *netSetup) {
	e.cleanups.Add(1)
	go func() {
		defer e.cleanups.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := e.teardownNetwork(ctx, s); err != nil {
			e.log.Warn("network teardown failed; `cronium-agent gc` will retry", "container", runID, "error", err)
		}
	}()
}

// Wait blocks until the background cleanup of every finished run is done,
// or ctx ends. Call it before the process exits.
func (e *Executor) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		e.cleanups.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for run cleanup: %w", ctx.Err())
	}
}

// serveAPI starts the run's runtime API on its gateway.
func (e *Executor) serveAPI(ctx context.Context, n *cni.Network, exec sidecar.Execution) (*sidecar.Session, error) {
	if n == nil || e.api == nil {
		return nil, nil
	}
	addr := net.JoinHostPort(n.Gateway.String(), strconv.Itoa(e.apiPort))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for the runtime API on %s: %w", addr, err)
	}
	sess, err := e.api.Start(ctx, exec, ln)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("start runtime API: %w", err)
	}
	return sess, nil
}

// writeHosts makes the job's /etc/hosts: runtime-api and runtime name the
// gateway, the hostname names the job's own address.
func writeHosts(path, hostname string, n *cni.Network) error {
	var b strings.Builder
	b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	self := netip.MustParseAddr("127.0.1.1")
	if n != nil {
		fmt.Fprintf(&b, "%s\truntime-api runtime\n", n.Gateway)
		self = n.Address
	}
	fmt.Fprintf(&b, "%s\t%s\n", self, hostname)
	if err := os.WriteFile(path, []byte(b.String()), 0o444); err != nil {
		return fmt.Errorf("write hosts file: %w", err)
	}
	return nil
}

// writeResolvConf makes the job's /etc/resolv.conf: its network's DNS
// servers. Only a job with a route out gets one; the others keep the
// image's (empty: they could not reach any server).
func writeResolvConf(path string, n *cni.Network) error {
	if err := os.WriteFile(path, cni.ResolvConf(n.DNS), 0o444); err != nil {
		return fmt.Errorf("write resolv.conf: %w", err)
	}
	return nil
}

// OutboundOf is the outbound policy p as job networks need it: the address
// ranges of network.deny and network.allow, and, for egress allowlist,
// network.allow with its names looked up with r when each job's network is
// set up (r is the host's resolver in the agent; tests pass their own).
func OutboundOf(p *netpolicy.Policy, r netpolicy.Resolver) cni.Outbound {
	// The address entries as written: Resolve without lookups.
	addrs, _ := p.Resolve(context.Background(), noLookup{})
	return cni.Outbound{
		Deny:  destinations(p.DenyPrefixes()),
		Allow: destinations(addrs),
		Resolve: func(ctx context.Context) ([]cni.Destination, error) {
			d, err := p.Resolve(ctx, r)
			return destinations(d), err
		},
	}
}

// noLookup resolves no name.
type noLookup struct{}

func (noLookup) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	return nil, errors.New("not looked up")
}

func destinations(ds []netpolicy.Destination) []cni.Destination {
	out := make([]cni.Destination, len(ds))
	for i, d := range ds {
		out[i] = cni.Destination{Prefix: d.Prefix, Port: d.Port, Entry: d.Entry}
	}
	return out
}

// helperEnv points every language at the helpers: PYTHONPATH and NODE_PATH
// are extended, not replaced, when the image or the job set them.
func (e *Executor) helperEnv(image []string, job map[string]string, apiURL, token string) map[string]string {
	env := make(map[string]string, len(job)+6)
	for k, v := range job {
		env[k] = v
	}
	prepend := func(key string) {
		cur := env[key]
		if cur == "" {
			for _, kv := range image {
				if k, v, ok := strings.Cut(kv, "="); ok && k == key {
					cur = v
				}
			}
		}
		if cur == "" {
			env[key] = HelperLibDir
		} else {
			env[key] = HelperLibDir + ":" + cur
		}
	}
	if e.helperDir != "" {
		prepend("PYTHONPATH")
		prepend("NODE_PATH")
		env["BASH_ENV"] = filepath.Join(HelperLibDir, "cronium.sh")
		env["CRONIUM_HELPER"] = HelperBin
	}
	if apiURL != "" {
		env["CRONIUM_RUNTIME_API"] = apiURL
		env["CRONIUM_EXECUTION_TOKEN"] = token
	}
	return env
}
