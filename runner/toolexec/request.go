// Package toolexec runs tool actions (TOOL_ACTION jobs and the runtime
// API's POST /tool-actions/execute): a generic webhook, Slack, Discord,
// Microsoft Teams and email over SMTP. Each action is one outbound call
// whose outcome is a Result ({success, data, error}).
//
// Requests come in three shapes, all normalised to a Request:
//
//	plan job:  execution.toolAction {"toolType":"SLACK","config":{"actionId":"send-message","parameters":{...}}}
//	helpers:   {"tool":"slack","action":"send_message","params":{...}}
//	helpers:   {"tool":"slack","action":"send_message","config":{...}}
//
// Credentials travel in the request (job-supplied) or come from the agent's
// tools.credentials (see Credential); they never reach a log or an error.
package toolexec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/cronium/cronium-agent/backend/api"
)

// Request is one tool action, whatever shape it came in.
type Request struct {
	// Tool is the canonical tool name: webhook, slack, discord, teams or
	// email.
	Tool string
	// Action is the canonical action name (lower case, dashes, without the
	// tool's prefix: "slack-send-message" and "send_message" are both
	// "send-message"); empty means the tool's default.
	Action string
	// Params are the action's parameters. They may hold credential fields
	// (webhookUrl, token, password...): never log them.
	Params map[string]any
	// CredentialName names an entry of tools.credentials; "" lets the
	// tool's name pick one.
	CredentialName string
	// Inline are credential fields the request carries itself (a
	// "credentials" object); nil when none.
	Inline map[string]any
}

// toolName maps an accepted tool name (lower case, dashes) to the
// canonical one, or "".
func toolName(n string) string {
	switch n {
	case "webhook", "http", "http-request":
		return "webhook"
	case "slack":
		return "slack"
	case "discord":
		return "discord"
	case "teams", "msteams", "microsoft-teams", "microsoftteams":
		return "teams"
	case "email", "smtp", "mail":
		return "email"
	}
	return ""
}

// Tools are the canonical tool names, for messages.
const Tools = "webhook, slack, discord, teams, email"

// canonicalTool returns the canonical name of a tool, or an error naming
// the ones there are.
func canonicalTool(name string) (string, error) {
	n := strings.ReplaceAll(strings.ToLower(strings.TrimSpace(name)), "_", "-")
	if n == "" {
		return "", errors.New("no tool named: want one of " + Tools)
	}
	if t := toolName(n); t != "" {
		return t, nil
	}
	return "", fmt.Errorf("unknown tool %q: want one of %s", clip(name, 40), Tools)
}

// canonicalAction lower-cases an action id, writes it with dashes and drops
// the tool's own prefix (the plan's action ids are "slack-send-message").
func canonicalAction(tool, raw, name string) string {
	a := strings.ReplaceAll(strings.ToLower(strings.TrimSpace(name)), "_", "-")
	for _, p := range []string{tool + "-", strings.ReplaceAll(strings.ToLower(strings.TrimSpace(raw)), "_", "-") + "-"} {
		if p != "-" {
			a = strings.TrimPrefix(a, p)
		}
	}
	return a
}

// FromJob is the request of a TOOL_ACTION job (the plan's
// {"toolType","config":{"actionId","parameters",...}}). A job without a
// toolAction is refused with a message saying why: the deployed backend
// does not transport it.
func FromJob(ta *api.ToolAction) (Request, error) {
	if ta == nil {
		return Request{}, errors.New("this TOOL_ACTION job carries no execution.toolAction (the deployed Cronium backend does not transport it, contract §7): there is no action to run")
	}
	cfg := map[string]any{}
	if len(bytes.TrimSpace(ta.Config)) > 0 {
		if err := decodeObject(ta.Config, &cfg); err != nil {
			return Request{}, fmt.Errorf("execution.toolAction.config: %w", err)
		}
	}
	return fromPlan(ta.ToolType, cfg)
}

// fromPlan builds a request from the plan's config object.
func fromPlan(toolType string, cfg map[string]any) (Request, error) {
	tool, err := canonicalTool(toolType)
	if err != nil {
		return Request{}, fmt.Errorf("toolType: %w", err)
	}
	action, err := optString(cfg, "actionId")
	if err != nil {
		return Request{}, err
	}
	params, err := optObject(cfg, "parameters")
	if err != nil {
		return Request{}, err
	}
	req := Request{Tool: tool, Action: canonicalAction(tool, toolType, action), Params: params}
	return withCredentialRef(req, cfg)
}

// Parse reads a request body in any of the three shapes.
func Parse(body []byte) (Request, error) {
	m := map[string]any{}
	if err := decodeObject(body, &m); err != nil {
		return Request{}, err
	}
	if _, plan := m["toolType"]; plan {
		tt, err := optString(m, "toolType")
		if err != nil {
			return Request{}, err
		}
		if c, ok := m["config"]; ok {
			cfg, ok := c.(map[string]any)
			if !ok {
				return Request{}, errors.New(`"config" must be an object`)
			}
			return fromPlan(tt, cfg)
		}
		return fromPlan(tt, m) // {"toolType","actionId","parameters"} flattened
	}
	name, err := optString(m, "tool")
	if err != nil {
		return Request{}, err
	}
	tool, err := canonicalTool(name)
	if err != nil {
		return Request{}, fmt.Errorf("tool: %w", err)
	}
	action, err := optString(m, "action")
	if err != nil {
		return Request{}, err
	}
	_, hasParams := m["params"]
	_, hasConfig := m["config"]
	if hasParams && hasConfig {
		return Request{}, errors.New(`give the action's parameters as "params" or as "config", not both`)
	}
	key := "params"
	if hasConfig {
		key = "config"
	}
	params, err := optObject(m, key)
	if err != nil {
		return Request{}, err
	}
	req := Request{Tool: tool, Action: canonicalAction(tool, name, action), Params: params}
	// A credential reference or inline credentials may sit beside the
	// parameters or among them.
	if req, err = withCredentialRef(req, m); err != nil {
		return Request{}, err
	}
	if req.CredentialName == "" && req.Inline == nil {
		return withCredentialRef(req, params)
	}
	return req, nil
}

// withCredentialRef reads the credential reference ("credential",
// "credentialId" or the plan's "toolId") and the inline "credentials"
// object of m into req.
func withCredentialRef(req Request, m map[string]any) (Request, error) {
	for _, k := range []string{"credential", "credentialId", "toolId"} {
		v, ok := m[k]
		if !ok || v == nil {
			continue
		}
		switch v := v.(type) {
		case string:
			req.CredentialName = strings.TrimSpace(v)
		case json.Number:
			req.CredentialName = v.String()
		default:
			return req, fmt.Errorf("%q must be a string naming a credential", k)
		}
		if req.CredentialName != "" {
			break // the first reference given wins
		}
	}
	if v, ok := m["credentials"]; ok && v != nil {
		c, ok := v.(map[string]any)
		if !ok {
			return req, errors.New(`"credentials" must be an object`)
		}
		req.Inline = c
	}
	return req, nil
}

func decodeObject(b []byte, out *map[string]any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(out); err != nil || *out == nil {
		return errors.New("the request must be a JSON object")
	}
	if dec.More() {
		return errors.New("the request must be one JSON object")
	}
	return nil
}

func optString(m map[string]any, key string) (string, error) {
	v, ok := m[key]
	if !ok || v == nil {
		return "", nil
	}
	switch v := v.(type) {
	case string:
		return v, nil
	case json.Number:
		return v.String(), nil
	}
	return "", fmt.Errorf("%q must be a string", key)
}

func optObject(m map[string]any, key string) (map[string]any, error) {
	v, ok := m[key]
	if !ok || v == nil {
		return map[string]any{}, nil
	}
	o, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%q must be an object", key)
	}
	return o, nil
}

// params reads typed parameters; the first of several accepted names wins.
type params map[string]any

// field is a message field: its key in the payload and the parameter
// names it is taken from, first found first.
type field struct {
	key   string
	names []string
}

// strings sets each field's string parameter in msg, leaving out those
// not given or empty.
func (p params) strings(msg map[string]any, fields ...field) error {
	for _, f := range fields {
		s, err := p.str(f.names...)
		if err != nil {
			return err
		}
		if s != "" {
			msg[f.key] = s
		}
	}
	return nil
}

// str returns the first of keys that is set, as a string (numbers and
// booleans as their text).
func (p params) str(keys ...string) (string, error) {
	for _, k := range keys {
		v, ok := p[k]
		if !ok || v == nil {
			continue
		}
		switch v := v.(type) {
		case string:
			return v, nil
		case json.Number:
			return v.String(), nil
		case bool:
			return strconv.FormatBool(v), nil
		}
		return "", fmt.Errorf("parameter %q must be a string", k)
	}
	return "", nil
}

// list returns the first of keys that is set as a list of strings: an
// array, or a string of comma-separated items.
func (p params) list(keys ...string) ([]string, error) {
	for _, k := range keys {
		v, ok := p[k]
		if !ok || v == nil {
			continue
		}
		var out []string
		switch v := v.(type) {
		case string:
			for _, s := range strings.Split(v, ",") {
				if s = strings.TrimSpace(s); s != "" {
					out = append(out, s)
				}
			}
		case []any:
			for _, item := range v {
				s, ok := item.(string)
				if !ok {
					return nil, fmt.Errorf("parameter %q must be a list of strings", k)
				}
				if s = strings.TrimSpace(s); s != "" {
					out = append(out, s)
				}
			}
		default:
			return nil, fmt.Errorf("parameter %q must be a string or a list of strings", k)
		}
		return out, nil
	}
	return nil, nil
}

// raw returns the first of keys that is set, as it is (an object, a list,
// a string...), or nil.
func (p params) raw(keys ...string) any {
	for _, k := range keys {
		if v, ok := p[k]; ok && v != nil {
			return v
		}
	}
	return nil
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}
