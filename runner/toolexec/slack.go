package toolexec

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// DefaultSlackAPI is Slack's Web API base (chat.postMessage).
const DefaultSlackAPI = "https://slack.com/api"

// slack sends a message: with a bot token through chat.postMessage
// (Authorization: Bearer, {channel, text, ...}; Slack's {"ok":false,
// "error":...} is a failure), else to the incoming webhook URL ({text, ...}).
// Params: text (or blocks/attachments), channel (required with a token),
// username, icon_emoji/iconEmoji, icon_url/iconUrl, thread_ts/threadTs,
// blocks, attachments.
func (r *Runner) slack(action string, p params, c Credential) (string, func(context.Context) (any, error), error) {
	name, err := checkAction(action, "send-message", "post-message", "send")
	if err != nil {
		return "", nil, err
	}
	msg := map[string]any{}
	if err := p.strings(msg,
		field{key: "text", names: []string{"text", "message"}},
		field{key: "channel", names: []string{"channel", "channelId", "channel_id"}},
		field{key: "username", names: []string{"username"}},
		field{key: "icon_emoji", names: []string{"icon_emoji", "iconEmoji"}},
		field{key: "icon_url", names: []string{"icon_url", "iconUrl"}},
		field{key: "thread_ts", names: []string{"thread_ts", "threadTs"}},
	); err != nil {
		return "", nil, err
	}
	for _, k := range []string{"blocks", "attachments"} {
		if v := p.raw(k); v != nil {
			msg[k] = v
		}
	}
	if msg["text"] == nil && msg["blocks"] == nil && msg["attachments"] == nil {
		return "", nil, errors.New("no text: give text (or blocks)")
	}
	if c.Token == "" {
		if c.URL == "" {
			return "", nil, errors.New("the credential has neither a webhook URL nor a bot token")
		}
		return name, func(ctx context.Context) (any, error) {
			rep, err := r.postJSON(ctx, c.URL, nil, msg)
			if err != nil {
				return nil, err
			}
			return map[string]any{"statusCode": rep.status, "response": decodeBody(rep.body)}, nil
		}, nil
	}
	if msg["channel"] == nil {
		return "", nil, errors.New("no channel: chat.postMessage needs one")
	}
	endpoint := strings.TrimRight(cmpOr(c.BaseURL, DefaultSlackAPI), "/") + "/chat.postMessage"
	return name, func(ctx context.Context) (any, error) {
		h := http.Header{"Authorization": {"Bearer " + c.Token}}
		rep, err := r.postJSON(ctx, endpoint, h, msg)
		if err != nil {
			return nil, err
		}
		var out struct {
			OK      bool   `json:"ok"`
			Error   string `json:"error"`
			Channel string `json:"channel"`
			TS      string `json:"ts"`
		}
		if err := json.Unmarshal(rep.body, &out); err != nil {
			return nil, &httpError{what: "POST chat.postMessage", status: statusText(rep.status), detail: "the reply is not Slack's JSON", body: rep.body}
		}
		if !out.OK {
			return nil, &httpError{what: "POST chat.postMessage", status: statusText(rep.status), detail: "slack says " + cmpOr(out.Error, "not ok"), body: rep.body}
		}
		return map[string]any{"channel": out.Channel, "ts": out.TS}, nil
	}, nil
}

// jsonBytes encodes a parameter value given as JSON (numbers kept exact).
func jsonBytes(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode the body: %w", err)
	}
	return b, nil
}
