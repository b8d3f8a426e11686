package devserver

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/cronium/cronium-agent/backend/api"
)

func TestDevClient(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	c, err := NewDevClient(e.ts.URL+"/ignored/path", testToken)
	if err != nil {
		t.Fatal(err)
	}
	id, err := c.Submit(ctx, SubmitRequest{Runtime: "bash", Script: "echo hi", Timeout: "5s", Priority: 3})
	if err != nil {
		t.Fatal(err)
	}
	// Raw jobs keep their bytes, HTML characters included.
	raw := json.RawMessage(`{"id":"job_Raw000000001","execution":{"script":{"type":"BASH","content":"a > b && c < d"}},"metadata":{"originalType":"SCRIPT"}}`)
	if rid, err := c.SubmitRaw(ctx, raw); err != nil || rid != "job_Raw000000001" {
		t.Fatalf("SubmitRaw: %q %v", rid, err)
	}
	jobs, err := c.Jobs(ctx)
	if err != nil || len(jobs) != 2 || jobs[0].ID != id || jobs[0].Priority != 3 || jobs[0].Runtime != "bash" {
		t.Fatalf("Jobs: %+v %v", jobs, err)
	}
	body := string(e.must(200, "GET", "/api/internal/jobs/queue?batchSize=5", "agent", nil))
	if !strings.Contains(body, string(raw)) {
		t.Errorf("raw job changed on the way: %s", body)
	}
	e.must(200, "POST", "/api/internal/jobs/"+id+"/logs", "agent",
		`{"executionId":"x","entries":[{"seq":2,"stream":"stderr","line":"b","timestamp":"2026-11-27T12:00:00Z"},{"seq":1,"stream":"stdout","line":"a","timestamp":"2026-11-27T12:00:00Z"}]}`)
	logs, err := c.Logs(ctx, id, 0)
	if err != nil || len(logs) != 2 || logs[0] != (api.LogEntry{Seq: 1, Stream: "stdout", Line: "a", Timestamp: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}) || logs[1].Line != "b" {
		t.Fatalf("Logs: %+v %v", logs, err)
	}
	if logs, err := c.Logs(ctx, id, 1); err != nil || len(logs) != 1 {
		t.Errorf("Logs after 1: %+v %v", logs, err)
	}
	e.must(200, "POST", "/api/internal/jobs/"+id+"/complete", "agent", complete("completed", 0))
	v, err := c.Wait(ctx, id, time.Millisecond)
	if err != nil || !v.Done() || v.Completions != 1 || v.ExitCode == nil || *v.ExitCode != 0 {
		t.Fatalf("Wait: %+v %v", v, err)
	}
	res, err := c.Cancel(ctx, "job_Raw000000001")
	if err != nil || !res.CancelRequested || res.Status != StatusClaimed {
		t.Errorf("Cancel: %+v %v", res, err)
	}
	st, err := c.Stats(ctx)
	if err != nil || st.Jobs != 2 || st.Completions[id] != 1 || len(st.Duplicates) != 0 {
		t.Errorf("Stats: %+v %v", st, err)
	}
	sid, err := c.RegisterServer(ctx, api.Server{Host: "127.0.0.1", Username: "u", Password: "p"})
	if err != nil || sid == "" {
		t.Errorf("RegisterServer: %q %v", sid, err)
	}

	var ae *APIError
	if _, err := c.Job(ctx, "job_None00000000"); !errors.As(err, &ae) || ae.StatusCode != 404 || ae.Message != "Job not found" {
		t.Errorf("Job of an unknown id: %v", err)
	}
	bad, _ := NewDevClient(e.ts.URL, "wrong")
	if _, err := bad.Jobs(ctx); !errors.As(err, &ae) || ae.StatusCode != 401 {
		t.Errorf("wrong token: %v", err)
	}
}

func TestDevClientUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c, err := NewDevClient("http://"+addr, "t")
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Jobs(context.Background())
	var ue *UnreachableError
	if !errors.As(err, &ue) || ue.URL != "http://"+addr || !strings.Contains(err.Error(), addr) {
		t.Errorf("unreachable: %v", err)
	}
	for _, u := range []string{"", "127.0.0.1:5001", "ftp://x", "http://"} {
		if _, err := NewDevClient(u, "t"); err == nil {
			t.Errorf("NewDevClient(%q) accepted", u)
		}
	}
}

func TestDevClientServers(t *testing.T) {
	e := newTestEnv(t)
	ctx := context.Background()
	c, err := NewDevClient(e.ts.URL, testToken)
	if err != nil {
		t.Fatal(err)
	}
	key := testPrivateKey(t)
	v, err := c.AddServer(ctx, api.Server{Name: "web-1", Host: "127.0.0.1", Port: 2222, Username: "deploy", PrivateKey: key})
	if err != nil || v.ID != "1" || !v.HasKey || v.HasPassword || v.Port != 2222 || v.CreatedAt.IsZero() {
		t.Fatalf("AddServer: %+v %v", v, err)
	}
	v2, err := c.AddServer(ctx, api.Server{Host: "::1", Username: "ops", Password: "pw"})
	if err != nil || v2.ID != "2" || v2.Port != 22 || v2.Auth() != "password" {
		t.Fatalf("AddServer with a password: %+v %v", v2, err)
	}
	var ae *APIError
	if _, err := c.AddServer(ctx, api.Server{Host: "h", Username: "u", PrivateKey: "not a key"}); !errors.As(err, &ae) || ae.StatusCode != 400 ||
		!strings.Contains(ae.Message, "privateKey: not a private key") {
		t.Errorf("AddServer with a bad key: %v", err)
	}
	list, err := c.Servers(ctx)
	if err != nil || len(list) != 2 || list[0] != v || list[1] != v2 {
		t.Errorf("Servers: %+v %v", list, err)
	}
	if err := c.RemoveServer(ctx, "1"); err != nil {
		t.Errorf("RemoveServer: %v", err)
	}
	if err := c.RemoveServer(ctx, "1"); !errors.As(err, &ae) || ae.StatusCode != 404 || ae.Path != "/api/dev/servers/1" {
		t.Errorf("RemoveServer again: %v", err)
	}
	if list, err := c.Servers(ctx); err != nil || len(list) != 1 || list[0].ID != "2" {
		t.Errorf("Servers after rm: %+v %v", list, err)
	}
}
