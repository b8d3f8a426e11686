package toolexec

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"unicode/utf8"
)

// discordMaxContent is Discord's limit on a message's content.
const discordMaxContent = 2000

// discord posts to a channel's webhook ({content, username, avatar_url,
// tts, embeds, allowed_mentions}) with ?wait=true, so that Discord answers
// with the message (data: {messageId, channelId}).
func (r *Runner) discord(action string, p params, c Credential) (string, func(context.Context) (any, error), error) {
	name, err := checkAction(action, "send-message", "post-message", "send")
	if err != nil {
		return "", nil, err
	}
	msg := map[string]any{}
	if err := p.strings(msg,
		field{key: "content", names: []string{"content", "text", "message"}},
		field{key: "username", names: []string{"username"}},
		field{key: "avatar_url", names: []string{"avatar_url", "avatarUrl"}},
	); err != nil {
		return "", nil, err
	}
	if s, _ := p.str("tts"); s == "true" {
		msg["tts"] = true
	}
	if v := p.raw("embeds"); v != nil {
		msg["embeds"] = v
	} else if v := p.raw("embed"); v != nil {
		msg["embeds"] = []any{v}
	}
	if v := p.raw("allowed_mentions", "allowedMentions"); v != nil {
		msg["allowed_mentions"] = v
	}
	content, _ := msg["content"].(string)
	if content == "" && msg["embeds"] == nil {
		return "", nil, errors.New("no content: give content (or embeds)")
	}
	if n := utf8.RuneCountInString(content); n > discordMaxContent {
		return "", nil, fmt.Errorf("content is %d characters; Discord takes at most %d", n, discordMaxContent)
	}
	if c.URL == "" {
		return "", nil, errors.New("the credential has no webhook URL")
	}
	u, err := url.Parse(c.URL)
	if err != nil {
		return "", nil, errors.New("the webhook URL does not parse")
	}
	q := u.Query()
	q.Set("wait", "true")
	u.RawQuery = q.Encode()
	target := u.String()
	return name, func(ctx context.Context) (any, error) {
		rep, err := r.postJSON(ctx, target, nil, msg)
		if err != nil {
			return nil, err
		}
		var m struct {
			ID        string `json:"id"`
			ChannelID string `json:"channel_id"`
		}
		if json.Unmarshal(rep.body, &m) == nil && m.ID != "" {
			return map[string]any{"messageId": m.ID, "channelId": m.ChannelID}, nil
		}
		return map[string]any{"statusCode": rep.status}, nil
	}, nil
}
