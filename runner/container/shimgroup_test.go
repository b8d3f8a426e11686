package container

import (
	"testing"
	"time"
)

func TestShimGroups(t *testing.T) {
	keeper := func(id string) *sandbox { return &sandbox{id: id} }
	ids := func(ks []*sandbox) []string {
		var out []string
		for _, k := range ks {
			out = append(out, k.id)
		}
		return out
	}
	tests := []struct {
		name string
		run  func(t *testing.T, g *shimGroups)
	}{
		{"no group to join until a keeper is added", func(t *testing.T, g *shimGroups) {
			if !g.wanted() || g.join("r1") != "" {
				t.Fatal("joined a group that does not exist")
			}
			if !g.add(keeper("k1")) || g.wanted() {
				t.Fatal("keeper not taken")
			}
			if g.add(keeper("k2")) {
				t.Fatal("a second current group")
			}
			if got := g.join("r2"); got != "k1" {
				t.Fatalf("joined %q", got)
			}
		}},
		{"a full group retires; its keeper goes with its last run", func(t *testing.T, g *shimGroups) {
			g.add(keeper("k1"))
			for _, r := range []string{"r1", "r2", "r3"} {
				if got := g.join(r); got != "k1" {
					t.Fatalf("%s joined %q", r, got)
				}
			}
			if !g.wanted() || g.join("r4") != "" {
				t.Fatal("a retired group took a run")
			}
			if g.leave("r1") != nil || g.leave("r2") != nil || g.leave("r1") != nil {
				t.Fatal("keeper given up while runs are left")
			}
			if k := g.leave("r3"); k == nil || k.id != "k1" {
				t.Fatalf("last run left: keeper %v", k)
			}
			if g.leave("r3") != nil || g.leave("unknown") != nil {
				t.Fatal("keeper given up twice")
			}
		}},
		{"an idle group retires, a busy one does not", func(t *testing.T, g *shimGroups) {
			g.add(keeper("k1"))
			g.join("r1")
			if ks := g.idle(time.Now().Add(time.Hour), time.Minute); len(ks) != 0 {
				t.Fatalf("busy group retired: %v", ids(ks))
			}
			g.leave("r1")
			if ks := g.idle(time.Now(), time.Minute); len(ks) != 0 {
				t.Fatalf("retired before its idle time: %v", ids(ks))
			}
			if ks := ids(g.idle(time.Now().Add(2*time.Minute), time.Minute)); len(ks) != 1 || ks[0] != "k1" {
				t.Fatalf("idle group: %v", ks)
			}
			if !g.wanted() {
				t.Fatal("no keeper wanted after the idle one went")
			}
		}},
		{"close gives up the keepers without runs; the others go with their last run", func(t *testing.T, g *shimGroups) {
			g.add(keeper("k1"))
			g.join("r1")
			g.join("r2")
			g.join("r3") // k1 is full
			g.add(keeper("k2"))
			if ks := ids(g.close()); len(ks) != 1 || ks[0] != "k2" {
				t.Fatalf("close: %v", ks)
			}
			if g.wanted() || g.join("r4") != "" || g.add(keeper("k3")) {
				t.Fatal("closed groups take keepers or runs")
			}
			g.leave("r1")
			g.leave("r2")
			if k := g.leave("r3"); k == nil || k.id != "k1" {
				t.Fatalf("after close, last run left: keeper %v", k)
			}
		}},
		{"a failed keeper holds off the next", func(t *testing.T, g *shimGroups) {
			g.failed()
			if g.wanted() {
				t.Fatal("keeper wanted right after a failure")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, newShimGroups(3)) })
	}
	var none *shimGroups
	if none.join("r") != "" || none.leave("r") != nil || none.wanted() || none.idle(time.Now(), 0) != nil || none.close() != nil {
		t.Error("no groups: a run must get a shim of its own")
	}
}

func TestShimGroupsRetire(t *testing.T) {
	g := newShimGroups(3)
	k1, k2 := &sandbox{id: "k1"}, &sandbox{id: "k2"}
	g.add(k1)
	if g.current() != k1 {
		t.Fatal("current is not the keeper added")
	}
	g.join("r1")
	if g.retire(k2) != nil || g.current() != k1 {
		t.Fatal("retired a group that is not the current one")
	}
	if g.retire(k1) != nil {
		t.Fatal("keeper given up while a run is in its group")
	}
	if g.current() != nil || !g.wanted() || g.join("r2") != "" {
		t.Fatal("a retired group is still joined")
	}
	if k := g.leave("r1"); k != k1 {
		t.Fatalf("last run left: keeper %v", k)
	}
	g.add(k2)
	if g.retire(k2) != k2 {
		t.Fatal("keeper of an empty group kept")
	}
	var none *shimGroups
	if none.current() != nil {
		t.Fatal("no groups have a current keeper")
	}
}
