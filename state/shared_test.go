package state

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
)

// Two stores over one file, as two exec processes have, both work.
func TestSharedAllowsConcurrentUsers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "local.db")
	a, b := NewShared(path), NewShared(path)
	ctx := context.Background()
	var wg sync.WaitGroup
	for i, s := range []*Shared{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 20 {
				if err := s.SetVariable(ctx, "u", "k", string(rune('a'+i))); err != nil {
					t.Errorf("store %d write %d: %v", i, j, err)
				}
			}
		}()
	}
	wg.Wait()
	v, found, err := b.GetVariable(ctx, "u", "k")
	if err != nil || !found || (v != "a" && v != "b") {
		t.Fatalf("GetVariable = %q %v %v", v, found, err)
	}
	if _, found, _ := a.GetVariable(ctx, "u", "missing"); found {
		t.Error("missing variable found")
	}
}
