package toolexec

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"

	"github.com/cronium/cronium-agent/backend/api"
)

func TestParseShapes(t *testing.T) {
	tests := []struct {
		name, body string
		want       Request
		wantErr    string
	}{
		{"helper params", `{"tool":"slack","action":"send-message","params":{"channel":"#ops","text":"hi"}}`,
			Request{Tool: "slack", Action: "send-message", Params: map[string]any{"channel": "#ops", "text": "hi"}}, ""},
		{"helper config, snake action", `{"tool":"Slack","action":"send_message","config":{"text":"hi"}}`,
			Request{Tool: "slack", Action: "send-message", Params: map[string]any{"text": "hi"}}, ""},
		{"plan shape", `{"toolType":"DISCORD","config":{"actionId":"discord-send-message","parameters":{"content":"x"},"credential":"team"}}`,
			Request{Tool: "discord", Action: "send-message", Params: map[string]any{"content": "x"}, CredentialName: "team"}, ""},
		{"plan shape flattened", `{"toolType":"teams","actionId":"send-message","parameters":{"text":"x"}}`,
			Request{Tool: "teams", Action: "send-message", Params: map[string]any{"text": "x"}}, ""},
		{"numeric toolId", `{"toolType":"EMAIL","config":{"actionId":"send","toolId":7}}`,
			Request{Tool: "email", Action: "send", Params: map[string]any{}, CredentialName: "7"}, ""},
		{"inline credentials among params", `{"tool":"discord","action":"send","params":{"content":"x","credentials":{"webhookUrl":"http://h/w"}}}`,
			Request{Tool: "discord", Action: "send", Params: map[string]any{"content": "x", "credentials": map[string]any{"webhookUrl": "http://h/w"}},
				Inline: map[string]any{"webhookUrl": "http://h/w"}}, ""},
		{"alias tool", `{"tool":"microsoft_teams","params":{}}`, Request{Tool: "teams", Params: map[string]any{}}, ""},
		{"both params and config", `{"tool":"slack","params":{},"config":{}}`, Request{}, "not both"},
		{"unknown tool", `{"tool":"fax","params":{}}`, Request{}, `unknown tool "fax"`},
		{"no tool", `{"action":"x"}`, Request{}, "no tool named"},
		{"params not an object", `{"tool":"slack","params":[1]}`, Request{}, `"params" must be an object`},
		{"not an object", `[1]`, Request{}, "JSON object"},
		{"two objects", `{"tool":"slack"}{}`, Request{}, "one JSON object"},
		{"credential not a string", `{"tool":"slack","credential":{}}`, Request{}, `"credential" must be a string`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.body))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse =\n%#v\nwant\n%#v", got, tt.want)
			}
		})
	}
}

func TestFromJob(t *testing.T) {
	got, err := FromJob(&api.ToolAction{ToolType: "SLACK", ActionID: "send-message",
		Config: json.RawMessage(`{"actionId":"slack-send-message","parameters":{"text":"hi","n":1.50},"credentials":{"token":"xoxb-1"}}`)})
	if err != nil {
		t.Fatal(err)
	}
	want := Request{Tool: "slack", Action: "send-message", Params: map[string]any{"text": "hi", "n": json.Number("1.50")},
		Inline: map[string]any{"token": "xoxb-1"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("FromJob = %#v", got)
	}
	if _, err := FromJob(nil); err == nil || !strings.Contains(err.Error(), "carries no execution.toolAction") {
		t.Errorf("FromJob(nil) error %v", err)
	}
	if _, err := FromJob(&api.ToolAction{ToolType: "SLACK", Config: json.RawMessage(`{"parameters":"x"}`)}); err == nil || !strings.Contains(err.Error(), `"parameters" must be an object`) {
		t.Errorf("bad parameters error %v", err)
	}
}

func TestResolveCredentials(t *testing.T) {
	agent := map[string]Credential{
		"slack":     {URL: "http://127.0.0.1/agent-slack"},
		"ops-bot":   {Tool: "slack", Token: "xoxb-agent", BaseURL: "http://127.0.0.1/api"},
		"team-hook": {Tool: "discord", URL: "http://127.0.0.1/agent-discord"},
		"mail":      {Tool: "email", Host: "127.0.0.1", Port: 2525},
	}
	tests := []struct {
		name    string
		req     Request
		agent   map[string]Credential
		want    Credential
		wantErr string
	}{
		{"job's own webhook wins", Request{Tool: "slack", Params: map[string]any{"webhookUrl": "http://127.0.0.1/job"}}, agent,
			Credential{Tool: "slack", URL: "http://127.0.0.1/job"}, ""},
		{"job's inline token", Request{Tool: "slack", Inline: map[string]any{"token": "xoxb-job", "baseUrl": "http://127.0.0.1/b"}}, agent,
			Credential{Tool: "slack", Token: "xoxb-job", BaseURL: "http://127.0.0.1/b"}, ""},
		{"agent entry named after the tool", Request{Tool: "slack"}, agent, Credential{Tool: "slack", URL: "http://127.0.0.1/agent-slack"}, ""},
		{"agent entry by name", Request{Tool: "slack", CredentialName: "ops-bot"}, agent,
			Credential{Tool: "slack", Token: "xoxb-agent", BaseURL: "http://127.0.0.1/api"}, ""},
		{"the only entry for the tool", Request{Tool: "discord"}, agent, Credential{Tool: "discord", URL: "http://127.0.0.1/agent-discord"}, ""},
		{"agent entry taken whole: a job's base URL does not redirect the agent's token",
			Request{Tool: "slack", CredentialName: "ops-bot", Params: map[string]any{"baseUrl": "http://evil.test"}}, agent,
			Credential{Tool: "slack", Token: "xoxb-agent", BaseURL: "http://127.0.0.1/api"}, ""},
		{"smtp fields inline", Request{Tool: "email", Inline: map[string]any{"host": "127.0.0.1", "port": json.Number("465"), "username": "u", "password": "p", "secure": true}}, nil,
			Credential{Tool: "email", Host: "127.0.0.1", Port: 465, Username: "u", Password: "p", TLS: TLSImplicit}, ""},
		{"entry of another tool", Request{Tool: "slack", CredentialName: "mail"}, agent, Credential{}, "tools.credentials.mail is for email, not slack"},
		{"unknown entry", Request{Tool: "slack", CredentialName: "nope"}, agent, Credential{}, `no credential "nope"`},
		{"none at all", Request{Tool: "teams"}, agent, Credential{}, "teams needs a credential"},
		{"ambiguous", Request{Tool: "discord"}, map[string]Credential{"a": {Tool: "discord"}, "b": {Tool: "discord"}}, Credential{}, "several entries for discord (a, b)"},
		{"bad port", Request{Tool: "email", Inline: map[string]any{"host": "h", "port": "99999"}}, nil, Credential{}, "not a TCP port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := resolve(tt.req, tt.agent)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("resolve error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("resolve = %#v, want %#v", got.fields(), tt.want.fields())
			}
		})
	}
}

// fields shows a credential's fields, secrets included (tests only).
func (c Credential) fields() string {
	type plain Credential
	return fmt.Sprintf("%+v", plain(c))
}

func TestCredentialNeverPrinted(t *testing.T) {
	c := Credential{Tool: "slack", URL: "http://h/secret-url", Token: "xoxb-secret", Password: "pw-secret", Headers: map[string]string{"X": "hdr-secret"}}
	var b strings.Builder
	slog.New(slog.NewTextHandler(&b, nil)).Info("x", "cred", c)
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%v %+v %#v %s", c, c, c, c), b.String()} {
		for _, secret := range []string{"secret-url", "xoxb-secret", "pw-secret", "hdr-secret"} {
			if strings.Contains(s, secret) {
				t.Errorf("%q shows %s", s, secret)
			}
		}
	}
}
