package journal

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

type runRecord struct {
	ID      string `json:"id"`
	Attempt int    `json:"attempt"`
	State   string `json:"state"`
}

func TestRecords(t *testing.T) {
	j := openTest(t)
	ctx := context.Background()
	steps := []struct {
		name string
		do   func() error
	}{
		{"put", func() error { return j.PutRecord(ctx, "run", "r1", runRecord{"r1", 1, "claimed"}) }},
		{"put other", func() error { return j.PutRecord(ctx, "run", "r2", runRecord{"r2", 1, "running"}) }},
		{"put other kind, same id", func() error { return j.PutRecord(ctx, "job", "r1", map[string]string{"image": "bash"}) }},
		{"replace", func() error { return j.PutRecord(ctx, "run", "r1", runRecord{"r1", 2, "running"}) }},
		{"delete", func() error { return j.DeleteRecord(ctx, "run", "r2") }},
		{"delete again", func() error { return j.DeleteRecord(ctx, "run", "r2") }},
		{"delete of unknown kind", func() error { return j.DeleteRecord(ctx, "nope", "r2") }},
		{"raw JSON", func() error { return j.PutRecord(ctx, "raw", "x", json.RawMessage(`{"a": [1, 2]}`)) }},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if err := verify(j); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
	}
	for _, tc := range []struct {
		name, kind, id string
		wantOK         bool
		want           runRecord
	}{
		{"replaced", "run", "r1", true, runRecord{"r1", 2, "running"}},
		{"deleted", "run", "r2", false, runRecord{}},
		{"unknown kind", "nope", "r1", false, runRecord{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got runRecord
			ok, err := j.GetRecord(ctx, tc.kind, tc.id, &got)
			if err != nil || ok != tc.wantOK || got != tc.want {
				t.Fatalf("GetRecord: %+v %v %v, want %+v %v", got, ok, err, tc.want, tc.wantOK)
			}
		})
	}
	var job map[string]string
	if ok, err := j.GetRecord(ctx, "job", "r1", &job); !ok || err != nil || job["image"] != "bash" {
		t.Fatalf("job r1: %v %v %v", job, ok, err)
	}
	// A record that does not decode into out is an error, and is found.
	var n int
	if ok, err := j.GetRecord(ctx, "job", "r1", &n); !ok || err == nil {
		t.Fatalf("decoding an object into an int: %v %v", ok, err)
	}
	u, err := j.Usage(ctx)
	if err != nil || u.Records != 3 {
		t.Fatalf("usage %+v %v", u, err)
	}
}

func TestRecordsInvalid(t *testing.T) {
	j := openTest(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		kind, id string
		value    any
	}{
		{"empty kind", "", "x", 1},
		{"empty id", "run", "", 1},
		{"long kind", strings.Repeat("k", maxKindLen+1), "x", 1},
		{"long id", "run", strings.Repeat("i", maxNameLen+1), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := j.PutRecord(ctx, tc.kind, tc.id, tc.value); !errors.Is(err, ErrInvalid) {
				t.Errorf("PutRecord: %v", err)
			}
			if _, err := j.GetRecord(ctx, tc.kind, tc.id, new(int)); !errors.Is(err, ErrInvalid) {
				t.Errorf("GetRecord: %v", err)
			}
			if err := j.DeleteRecord(ctx, tc.kind, tc.id); !errors.Is(err, ErrInvalid) {
				t.Errorf("DeleteRecord: %v", err)
			}
		})
	}
	if err := j.PutRecord(ctx, "run", "x", make(chan int)); err == nil {
		t.Error("PutRecord of a value JSON cannot encode succeeded")
	}
}

func TestListRecords(t *testing.T) {
	j := openTest(t)
	ctx := context.Background()
	for _, id := range []string{"c", "a", "b"} {
		if err := j.PutRecord(ctx, "run", id, runRecord{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.PutRecord(ctx, "job", "z", 1); err != nil {
		t.Fatal(err)
	}
	var ids []string
	err := j.ListRecords(ctx, "run", func(id string, raw json.RawMessage) error {
		var r runRecord
		if err := json.Unmarshal(raw, &r); err != nil || r.ID != id {
			t.Errorf("%s: %s %v", id, raw, err)
		}
		ids = append(ids, id)
		// fn may write to the journal (it runs outside the read transaction).
		return j.PutRecord(ctx, "seen", id, true)
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(ids, ",") != "a,b,c" {
		t.Errorf("ids %v", ids)
	}
	stop := errors.New("stop")
	n := 0
	err = j.ListRecords(ctx, "run", func(string, json.RawMessage) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("stopping: %v after %d", err, n)
	}
	if err := j.ListRecords(ctx, "none", func(string, json.RawMessage) error { t.Error("called"); return nil }); err != nil {
		t.Error(err)
	}
}
