package cni

import (
	"context"
	"errors"
	"testing"

	"github.com/vishvananda/netlink"
)

// A network whose owner died (its lock went with the process) is taken over
// whole; one that lost a part is removed and reported as ErrNoNetwork; one
// whose owner lives is refused.
func TestAdopt(t *testing.T) {
	m := testManager(t, false)
	ctx := context.Background()
	cases := []struct {
		name string
		// damage is done to the network after its owner is gone (or, with
		// keepOwner, while it lives).
		damage    func(t *testing.T, n *Network)
		keepOwner bool
		wantErr   error // nil: adopted
	}{
		{name: "intact", damage: func(*testing.T, *Network) {}},
		{name: "namespace gone", damage: func(t *testing.T, n *Network) {
			if err := deleteNetNS(n.NetNS); err != nil {
				t.Fatal(err)
			}
		}, wantErr: ErrNoNetwork},
		{name: "bridge gone", damage: func(t *testing.T, n *Network) {
			if err := deleteLink(n.Bridge); err != nil {
				t.Fatal(err)
			}
		}, wantErr: ErrNoNetwork},
		{name: "record gone", damage: func(t *testing.T, n *Network) {
			if err := removeIfExists(m.recordPath(n.ID)); err != nil {
				t.Fatal(err)
			}
		}, wantErr: ErrNoNetwork},
		{name: "owner alive", damage: func(*testing.T, *Network) {}, keepOwner: true},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id := "job_netadopt" + string(rune('a'+i))
			orig, err := m.Setup(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				_ = m.Teardown(ctx, orig)
				assertGone(t, m, orig)
			})
			if !c.keepOwner {
				orig.lock.Close() // as when its process is killed
				orig.lock = nil
			}
			c.damage(t, orig)

			n, err := m.Adopt(ctx, id)
			switch {
			case c.keepOwner:
				if err == nil || errors.Is(err, ErrNoNetwork) {
					t.Fatalf("adopting a live network: %v, want an error other than ErrNoNetwork", err)
				}
				return
			case c.wantErr != nil:
				if !errors.Is(err, c.wantErr) {
					t.Fatalf("adopt: %v, want %v", err, c.wantErr)
				}
				// The remains are removed at once, while still locked.
				assertGone(t, m, orig)
				return
			case err != nil:
				t.Fatal(err)
			}
			if n.ID != orig.ID || n.NetNS != orig.NetNS || n.Bridge != orig.Bridge || n.Subnet != orig.Subnet ||
				n.Gateway != orig.Gateway || n.Address != orig.Address {
				t.Errorf("adopted %+v, set up %+v", n, orig)
			}
			if !m.locked(id) {
				t.Error("the adopted network is not locked: a sweep would remove it")
			}
			rep, err := m.Sweep(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if contains(rep.Networks, id) {
				t.Fatal("the sweep removed the adopted network")
			}
			if _, err := netlink.LinkByName(n.Bridge); err != nil {
				t.Errorf("bridge of the adopted network: %v", err)
			}
			if err := m.Teardown(ctx, n); err != nil {
				t.Fatal(err)
			}
			assertGone(t, m, n)
		})
	}
}
