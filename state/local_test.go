package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func openTemp(t *testing.T) (*Local, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "local.db")
	l, err := OpenLocal(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, path
}

func TestOpenLocalCreatesPrivateFile(t *testing.T) {
	_, path := openTemp(t)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm&^0o600 != 0 {
		t.Fatalf("mode %#o, want 0600 or stricter", perm)
	}
}

func TestVariables(t *testing.T) {
	ctx := context.Background()
	l, _ := openTemp(t)
	// Seed: user u1 has a=1, u2 has a=2.
	for _, s := range []struct{ user, key, value string }{{"u1", "a", "1"}, {"u2", "a", "2"}} {
		if err := l.SetVariable(ctx, s.user, s.key, s.value); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name      string
		user, key string
		set       *string // written first when non-nil
		want      string
		wantFound bool
	}{
		{name: "per user u1", user: "u1", key: "a", want: "1", wantFound: true},
		{name: "per user u2", user: "u2", key: "a", want: "2", wantFound: true},
		{name: "missing key", user: "u1", key: "nope"},
		{name: "missing user", user: "u3", key: "a"},
		{name: "empty string is found", user: "u1", key: "empty", set: ptr(""), want: "", wantFound: true},
		{name: "overwrite", user: "u1", key: "a", set: ptr("one"), want: "one", wantFound: true},
		{name: "unicode and slash key", user: "u1", key: "dir/clé ✓", set: ptr(`{"a":1}`), want: `{"a":1}`, wantFound: true},
		{name: "binary-ish value", user: "u1", key: "nul", set: ptr("a\x00b"), want: "a\x00b", wantFound: true},
		{name: "large value", user: "u1", key: "big", set: ptr(strings.Repeat("x", 1<<20)), want: strings.Repeat("x", 1<<20), wantFound: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.set != nil {
				if err := l.SetVariable(ctx, tt.user, tt.key, *tt.set); err != nil {
					t.Fatal(err)
				}
			}
			got, found, err := l.GetVariable(ctx, tt.user, tt.key)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want || found != tt.wantFound {
				t.Fatalf("GetVariable = %.40q, %v; want %.40q, %v", got, found, tt.want, tt.wantFound)
			}
		})
	}
}

func TestOutputAndCondition(t *testing.T) {
	ctx := context.Background()
	l, _ := openTemp(t)
	tests := []struct {
		name    string
		outputs []json.RawMessage // written in order
		conds   []bool
		wantOut json.RawMessage
		wantCnd bool
	}{
		{name: "none"},
		{name: "one", outputs: []json.RawMessage{json.RawMessage(`{"a":1}`)}, conds: []bool{true}, wantOut: json.RawMessage(`{"a":1}`), wantCnd: true},
		{name: "last wins", outputs: []json.RawMessage{json.RawMessage(`1`), json.RawMessage(`"two"`)}, conds: []bool{true, false}, wantOut: json.RawMessage(`"two"`), wantCnd: false},
		{name: "nil is null", outputs: []json.RawMessage{nil}, wantOut: json.RawMessage(`null`)},
		{name: "falsy", outputs: []json.RawMessage{json.RawMessage(`0`)}, conds: []bool{false}, wantOut: json.RawMessage(`0`)},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := fmt.Sprintf("exec_job%d_1700000000", i)
			for _, o := range tt.outputs {
				if err := l.SetOutput(ctx, id, o); err != nil {
					t.Fatal(err)
				}
			}
			for _, c := range tt.conds {
				if err := l.SetCondition(ctx, id, c); err != nil {
					t.Fatal(err)
				}
			}
			out, found, err := l.Output(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if found != (tt.outputs != nil) || string(out) != string(tt.wantOut) {
				t.Fatalf("Output = %s, %v; want %s, %v", out, found, tt.wantOut, tt.outputs != nil)
			}
			cond, found, err := l.Condition(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if found != (tt.conds != nil) || cond != tt.wantCnd {
				t.Fatalf("Condition = %v, %v; want %v, %v", cond, found, tt.wantCnd, tt.conds != nil)
			}
		})
	}
}

func TestPersistsAcrossReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "local.db")
	l, err := OpenLocal(path)
	if err != nil {
		t.Fatal(err)
	}
	must(t, l.SetVariable(ctx, "u1", "counter", "41"))
	must(t, l.SetVariable(ctx, "u1", "counter", "42"))
	must(t, l.SetOutput(ctx, "exec_1", json.RawMessage(`[1,2]`)))
	must(t, l.SetCondition(ctx, "exec_1", true))
	must(t, l.Close())

	l, err = OpenLocal(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if v, found, err := l.GetVariable(ctx, "u1", "counter"); err != nil || !found || v != "42" {
		t.Fatalf("variable after reopen = %q, %v, %v", v, found, err)
	}
	if v, found, err := l.Output(ctx, "exec_1"); err != nil || !found || string(v) != `[1,2]` {
		t.Fatalf("output after reopen = %s, %v, %v", v, found, err)
	}
	if v, found, err := l.Condition(ctx, "exec_1"); err != nil || !found || !v {
		t.Fatalf("condition after reopen = %v, %v, %v", v, found, err)
	}
}

func TestInvalidArguments(t *testing.T) {
	ctx := context.Background()
	l, _ := openTemp(t)
	long := strings.Repeat("k", 40000)
	tests := []struct {
		name string
		call func() error
	}{
		{"get empty user", func() error { _, _, err := l.GetVariable(ctx, "", "k"); return err }},
		{"get empty key", func() error { _, _, err := l.GetVariable(ctx, "u", ""); return err }},
		{"set empty user", func() error { return l.SetVariable(ctx, "", "k", "v") }},
		{"set empty key", func() error { return l.SetVariable(ctx, "u", "", "v") }},
		{"set key too long", func() error { return l.SetVariable(ctx, "u", long, "v") }},
		{"output empty id", func() error { return l.SetOutput(ctx, "", json.RawMessage(`1`)) }},
		{"condition empty id", func() error { return l.SetCondition(ctx, "", true) }},
		{"read output empty id", func() error { _, _, err := l.Output(ctx, ""); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestCanceledContext(t *testing.T) {
	l, _ := openTemp(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.SetVariable(ctx, "u", "k", "v"); !errors.Is(err, context.Canceled) {
		t.Fatalf("SetVariable: %v", err)
	}
	if _, _, err := l.GetVariable(ctx, "u", "k"); !errors.Is(err, context.Canceled) {
		t.Fatalf("GetVariable: %v", err)
	}
	if err := l.SetOutput(ctx, "e", nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("SetOutput: %v", err)
	}
}

func TestConcurrentWrites(t *testing.T) {
	ctx := context.Background()
	l, _ := openTemp(t)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 20 {
				if err := l.SetVariable(ctx, "u", fmt.Sprintf("k%d", w), fmt.Sprint(i)); err != nil {
					t.Error(err)
				}
				if _, _, err := l.GetVariable(ctx, "u", "k0"); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	for w := range 8 {
		if v, _, _ := l.GetVariable(ctx, "u", fmt.Sprintf("k%d", w)); v != "19" {
			t.Fatalf("k%d = %q, want 19", w, v)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
