package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// listFlag is a repeatable flag kept in order.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(s string) error {
	*l = append(*l, s)
	return nil
}

// toolActionJSON is the execution.toolAction of `submit --tool`, shaped as
// the contract's (the plan's) {"toolType","config":{"actionId",
// "parameters",...}}: toolType upper case as the backend writes it,
// parameters from --param KEY=VALUE (a VALUE that is a JSON object or array
// is sent as that JSON, any other as a string), and each --credential
// either NAME (config.credential: the agent's tools.credentials entry) or
// KEY=VALUE (config.credentials, the job's own: webhookUrl, token, host...).
func toolActionJSON(tool, action string, params, creds []string) (json.RawMessage, error) {
	tool = strings.TrimSpace(tool)
	if tool == "" {
		return nil, errors.New("--tool is empty")
	}
	if action == "" {
		action = "send-message"
	}
	p := map[string]any{}
	for _, kv := range params {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--param wants KEY=VALUE, got %q", kv)
		}
		p[k] = paramValue(v)
	}
	cfg := map[string]any{"actionId": action, "parameters": p}
	inline := map[string]any{}
	for _, c := range creds {
		k, v, ok := strings.Cut(c, "=")
		switch {
		case !ok && strings.TrimSpace(c) != "":
			if _, dup := cfg["credential"]; dup {
				return nil, errors.New("--credential NAME is given twice")
			}
			cfg["credential"] = strings.TrimSpace(c)
		case ok && k != "":
			inline[k] = paramValue(v)
		default:
			return nil, fmt.Errorf("--credential wants NAME or KEY=VALUE, got %q", c)
		}
	}
	if len(inline) > 0 {
		cfg["credentials"] = inline
	}
	return json.Marshal(map[string]any{"toolType": strings.ToUpper(tool), "config": cfg})
}

func paramValue(v string) any {
	if t := strings.TrimSpace(v); (strings.HasPrefix(t, "{") || strings.HasPrefix(t, "[")) && json.Valid([]byte(t)) {
		return json.RawMessage(t)
	}
	return v
}
