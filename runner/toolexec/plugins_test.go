package toolexec

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// receiver is a loopback stand-in for a service: it records each request
// and answers with status and body.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	got    []received
	status int
	body   string
}

type received struct {
	method, path, query string
	header              http.Header
	body                []byte
}

func newReceiver(t *testing.T, status int, body string) *receiver {
	t.Helper()
	r := &receiver{status: status, body: body}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, received{req.Method, req.URL.Path, req.URL.RawQuery, req.Header.Clone(), b})
		r.mu.Unlock()
		w.WriteHeader(r.status)
		io.WriteString(w, r.body)
	}))
	t.Cleanup(r.Close)
	return r
}

// one returns the only request received, its body decoded.
func (r *receiver) one(t *testing.T) (received, map[string]any) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.got) != 1 {
		t.Fatalf("receiver got %d requests, want 1", len(r.got))
	}
	var m map[string]any
	_ = json.Unmarshal(r.got[0].body, &m) // nil for a body that is not JSON
	return r.got[0], m
}

func run(t *testing.T, r *Runner, body string) Result {
	t.Helper()
	req, err := Parse([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	r.log = slog.New(slog.DiscardHandler)
	res, err := r.Run(context.Background(), req)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return res
}

func asJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestPlugins(t *testing.T) {
	type check func(t *testing.T, got received, payload map[string]any)
	field := func(payload map[string]any, want map[string]any) []string {
		var bad []string
		for k, v := range want {
			if !reflect.DeepEqual(payload[k], v) {
				bad = append(bad, k+"="+asJSON(payload[k])+" want "+asJSON(v))
			}
		}
		return bad
	}
	tests := []struct {
		name         string
		status       int
		reply        string
		body         func(url string) string
		creds        func(url string) map[string]Credential
		check        check
		wantData     string
		wantFailText string
	}{
		{
			name: "slack incoming webhook", status: 200, reply: "ok",
			body: func(u string) string {
				return `{"tool":"slack","action":"send_message","params":{"text":"deploy done","channel":"#ops","username":"cronium","iconEmoji":":rocket:","thread_ts":"1.2","webhookUrl":"` + u + `/services/T0/B0/XXXX"}}`
			},
			check: func(t *testing.T, got received, p map[string]any) {
				if got.method != "POST" || got.path != "/services/T0/B0/XXXX" || !strings.HasPrefix(got.header.Get("Content-Type"), "application/json") {
					t.Errorf("request %s %s %v", got.method, got.path, got.header)
				}
				if got.header.Get("Authorization") != "" {
					t.Errorf("a webhook call carries Authorization %q", got.header.Get("Authorization"))
				}
				want := map[string]any{"text": "deploy done", "channel": "#ops", "username": "cronium", "icon_emoji": ":rocket:", "thread_ts": "1.2"}
				if bad := field(p, want); bad != nil || len(p) != len(want) {
					t.Errorf("payload %v: %v", p, bad)
				}
			},
			wantData: `{"response":"ok","statusCode":200}`,
		},
		{
			name: "slack chat.postMessage with a bot token from the agent", status: 200, reply: `{"ok":true,"channel":"C123","ts":"1700000000.000100"}`,
			body: func(string) string {
				return `{"toolType":"SLACK","config":{"actionId":"slack-send-message","credential":"ops-bot","parameters":{"channel":"C123","text":"hi","blocks":[{"type":"section"}]}}}`
			},
			creds: func(u string) map[string]Credential {
				return map[string]Credential{"ops-bot": {Tool: "slack", Token: "xoxb-123-secret", BaseURL: u + "/api/"}}
			},
			check: func(t *testing.T, got received, p map[string]any) {
				if got.method != "POST" || got.path != "/api/chat.postMessage" || got.header.Get("Authorization") != "Bearer xoxb-123-secret" ||
					got.header.Get("Content-Type") != "application/json; charset=utf-8" {
					t.Errorf("request %s %s %v", got.method, got.path, got.header)
				}
				want := map[string]any{"channel": "C123", "text": "hi", "blocks": []any{map[string]any{"type": "section"}}}
				if bad := field(p, want); bad != nil || len(p) != len(want) {
					t.Errorf("payload %v: %v", p, bad)
				}
			},
			wantData: `{"channel":"C123","ts":"1700000000.000100"}`,
		},
		{
			name: "slack says not ok", status: 200, reply: `{"ok":false,"error":"channel_not_found"}`,
			body: func(u string) string {
				return `{"tool":"slack","params":{"channel":"#nope","text":"x","credentials":{"token":"xoxb-9-secret","baseUrl":"` + u + `"}}}`
			},
			check:        func(*testing.T, received, map[string]any) {},
			wantFailText: `slack: POST chat.postMessage: HTTP 200 OK: slack says channel_not_found: {"ok":false,"error":"channel_not_found"}`,
		},
		{
			name: "discord webhook", status: 200, reply: `{"id":"111","channel_id":"222","content":"x"}`,
			body: func(u string) string {
				return `{"tool":"discord","action":"send_message","config":{"channelId":"ignored","content":"build 7 passed","username":"ci","avatarUrl":"http://a/x.png","embed":{"title":"t"},"webhookUrl":"` + u + `/api/webhooks/1/tok?thread_id=5"}}`
			},
			check: func(t *testing.T, got received, p map[string]any) {
				if got.method != "POST" || got.path != "/api/webhooks/1/tok" || got.query != "thread_id=5&wait=true" {
					t.Errorf("request %s %s?%s", got.method, got.path, got.query)
				}
				want := map[string]any{"content": "build 7 passed", "username": "ci", "avatar_url": "http://a/x.png", "embeds": []any{map[string]any{"title": "t"}}}
				if bad := field(p, want); bad != nil || len(p) != len(want) {
					t.Errorf("payload %v: %v", p, bad)
				}
			},
			wantData: `{"channelId":"222","messageId":"111"}`,
		},
		{
			name: "teams adaptive card", status: 202, reply: "",
			body: func(string) string { return `{"tool":"teams","params":{"title":"Backup","text":"finished in 3 min"}}` },
			creds: func(u string) map[string]Credential {
				return map[string]Credential{"teams": {URL: u + "/workflows/abc"}}
			},
			check: func(t *testing.T, got received, p map[string]any) {
				if got.method != "POST" || got.path != "/workflows/abc" {
					t.Errorf("request %s %s", got.method, got.path)
				}
				if p["type"] != "message" {
					t.Errorf("type %v", p["type"])
				}
				att, _ := p["attachments"].([]any)
				if len(att) != 1 {
					t.Fatalf("attachments %v", p["attachments"])
				}
				a := att[0].(map[string]any)
				if a["contentType"] != "application/vnd.microsoft.card.adaptive" {
					t.Errorf("contentType %v", a["contentType"])
				}
				card := a["content"].(map[string]any)
				if card["type"] != "AdaptiveCard" || card["version"] != "1.4" {
					t.Errorf("card %v", card)
				}
				body := card["body"].([]any)
				if len(body) != 2 || body[0].(map[string]any)["text"] != "Backup" || body[0].(map[string]any)["weight"] != "Bolder" ||
					body[1].(map[string]any)["text"] != "finished in 3 min" || body[1].(map[string]any)["wrap"] != true {
					t.Errorf("card body %v", body)
				}
			},
			wantData: `{"statusCode":202}`,
		},
		{
			name: "teams connector that did not deliver", status: 200, reply: "Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error 429",
			body:         func(u string) string { return `{"tool":"teams","params":{"text":"x","webhookUrl":"` + u + `/hook"}}` },
			check:        func(*testing.T, received, map[string]any) {},
			wantFailText: "teams: POST webhook: HTTP 200 OK: Teams did not deliver: Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error 429",
		},
		{
			name: "generic webhook", status: 201, reply: `{"id":5}`,
			body: func(u string) string {
				return `{"tool":"webhook","action":"send","params":{"url":"` + u + `/in","method":"put","headers":{"X-Trace":"t1"},"body":{"n":1.50,"ok":true}}}`
			},
			check: func(t *testing.T, got received, p map[string]any) {
				if got.method != "PUT" || got.path != "/in" || got.header.Get("X-Trace") != "t1" || got.header.Get("Content-Type") != "application/json; charset=utf-8" {
					t.Errorf("request %s %s %v", got.method, got.path, got.header)
				}
				if string(got.body) != `{"n":1.50,"ok":true}` {
					t.Errorf("body %s", got.body)
				}
			},
			wantData: `{"body":{"id":5},"statusCode":201}`,
		},
		{
			name: "generic webhook with the agent's headers", status: 200, reply: "fine",
			body: func(string) string { return `{"tool":"webhook","params":{"body":"raw text"}}` },
			creds: func(u string) map[string]Credential {
				return map[string]Credential{"webhook": {URL: u + "/agent", Headers: map[string]string{"X-Api-Key": "k-secret"}}}
			},
			check: func(t *testing.T, got received, p map[string]any) {
				if got.method != "POST" || got.path != "/agent" || got.header.Get("X-Api-Key") != "k-secret" || string(got.body) != "raw text" {
					t.Errorf("request %s %s %v %q", got.method, got.path, got.header, got.body)
				}
			},
			wantData: `{"body":"fine","statusCode":200}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rcv := newReceiver(t, tt.status, tt.reply)
			var opts []Option
			if tt.creds != nil {
				opts = append(opts, WithCredentials(tt.creds(rcv.URL)))
			}
			res := run(t, New(opts...), tt.body(rcv.URL))
			got, payload := rcv.one(t)
			tt.check(t, got, payload)
			if tt.wantFailText != "" {
				if res.Success || res.Error != tt.wantFailText {
					t.Errorf("result %+v\nwant failure %q", res, tt.wantFailText)
				}
				if strings.Contains(res.Error, "secret") {
					t.Errorf("error shows a secret: %q", res.Error)
				}
				return
			}
			if !res.Success || res.Error != "" || asJSON(res.Data) != tt.wantData {
				t.Errorf("result %+v (data %s), want data %s", res, asJSON(res.Data), tt.wantData)
			}
		})
	}
}

// A service failing with 500 fails the action with its status and an
// excerpt of its reply: at most 200 bytes, on one line, the credential's
// secrets masked wherever they appear.
func TestFailureExcerpt(t *testing.T) {
	rcv := newReceiver(t, 500, "")
	hook := rcv.URL + "/services/T1/B1/hook-secret-path"
	rcv.body = "upstream exploded\n\twhile posting to " + hook + " with token xoxb-777-secret " + strings.Repeat("x", 400)
	res := run(t, New(), `{"tool":"slack","params":{"text":"x","webhookUrl":"`+hook+`"}}`)
	const head = "slack: POST " // then the receiver's host
	if res.Success || !strings.HasPrefix(res.Error, head) || !strings.Contains(res.Error, ": HTTP 500 Internal Server Error: upstream exploded while posting to ") {
		t.Fatalf("result %+v", res)
	}
	if strings.Contains(res.Error, "hook-secret-path") {
		t.Errorf("the webhook URL shows: %q", res.Error)
	}
	_, ex, _ := strings.Cut(res.Error, "Internal Server Error: ")
	if len(ex) > maxExcerpt+len("…") || !strings.HasSuffix(ex, "…") || strings.ContainsAny(ex, "\n\t") {
		t.Errorf("excerpt (%d bytes) %q", len(ex), ex)
	}

	// A bot token is masked too.
	rcv2 := newReceiver(t, 500, `{"error":"bad token xoxb-777-secret"}`)
	res = run(t, New(), `{"tool":"slack","params":{"channel":"C1","text":"x","token":"xoxb-777-secret","baseUrl":"`+rcv2.URL+`"}}`)
	if res.Success || strings.Contains(res.Error, "xoxb-777-secret") || !strings.Contains(res.Error, `HTTP 500 Internal Server Error: {"error":"bad token ***"}`) {
		t.Errorf("result %+v", res)
	}

	// No reply at all: the error has no URL (the secret) either.
	rcv3 := newReceiver(t, 200, "")
	dead := rcv3.URL + "/api/webhooks/9/dead-secret"
	rcv3.Close()
	res = run(t, New(), `{"tool":"discord","params":{"content":"x","webhookUrl":"`+dead+`"}}`)
	if res.Success || strings.Contains(res.Error, "dead-secret") || !strings.Contains(res.Error, "connection refused") {
		t.Errorf("result %+v", res)
	}
}

func TestPrepareRefuses(t *testing.T) {
	tests := []struct{ body, want string }{
		{`{"tool":"slack","action":"archive","params":{"text":"x","webhookUrl":"http://127.0.0.1/h"}}`, `slack: no action "archive" (it has: send-message, post-message, send)`},
		{`{"tool":"slack","params":{"webhookUrl":"http://127.0.0.1/h"}}`, "slack: no text"},
		{`{"tool":"slack","params":{"text":"x","token":"xoxb-1"}}`, "no channel"},
		{`{"tool":"discord","params":{"content":"` + strings.Repeat("é", 2001) + `","webhookUrl":"http://127.0.0.1/h"}}`, "content is 2001 characters"},
		{`{"tool":"teams","params":{"webhookUrl":"http://127.0.0.1/h"}}`, "teams: no text"},
		{`{"tool":"webhook","params":{"url":"ftp://127.0.0.1/secret-x"}}`, ""},
		{`{"tool":"email","params":{"to":"a@example.test","subject":"s","body":"b","host":"127.0.0.1","from":"nobody"}}`, "no valid from address"},
		{`{"tool":"email","params":{"to":"not an address","body":"b","host":"127.0.0.1","from":"a@example.test"}}`, `to: "not an address" is not an email address`},
		{`{"tool":"email","params":{"to":"a@example.test","subject":"a\r\nBcc: x@y","body":"b","host":"127.0.0.1","from":"a@example.test"}}`, "subject must be one line"},
		{`{"tool":"email","params":{"to":"a@example.test","body":"b","host":"127.0.0.1","from":"a@example.test","tls":"maybe"}}`, `tls "maybe"`},
		{`{"tool":"teams","params":{"text":"x"}}`, "teams needs a credential"},
	}
	for _, tt := range tests {
		req, err := Parse([]byte(tt.body))
		if err != nil {
			t.Fatal(err)
		}
		a, err := New().Prepare(req)
		if tt.want == "" {
			// Refused when sent, without the URL.
			if err != nil {
				t.Errorf("%s: Prepare: %v", tt.body, err)
				continue
			}
			res := a.Do(context.Background())
			if res.Success || !strings.Contains(res.Error, "not an http:// or https:// URL") || strings.Contains(res.Error, "secret-x") {
				t.Errorf("%s: %+v", tt.body, res)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want %q", tt.body[:min(len(tt.body), 60)], err, tt.want)
		}
	}
}
