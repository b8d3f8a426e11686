package toolexec

import (
	"context"
	"errors"
	"strings"
)

// teamsFailed starts the reply of a (legacy connector) Teams webhook that
// did not deliver, which it may send with a 2xx status.
const teamsFailed = "Webhook message delivery failed"

// teams posts an Adaptive Card message to an incoming webhook (a Workflows
// webhook, or a legacy Office 365 connector, which take this shape too):
// {"type":"message","attachments":[{"contentType":
// "application/vnd.microsoft.card.adaptive","content":{AdaptiveCard 1.4}}]}
// with a bold title (optional) and the text. Params: text, title, or card
// (an Adaptive Card object sent as the content, as it is).
func (r *Runner) teams(action string, p params, c Credential) (string, func(context.Context) (any, error), error) {
	name, err := checkAction(action, "send-message", "post-message", "send")
	if err != nil {
		return "", nil, err
	}
	text, err := p.str("text", "message", "content")
	if err != nil {
		return "", nil, err
	}
	title, err := p.str("title", "subject")
	if err != nil {
		return "", nil, err
	}
	card := p.raw("card")
	if card == nil {
		if text == "" {
			return "", nil, errors.New("no text: give text (or card)")
		}
		var body []any
		if title != "" {
			body = append(body, map[string]any{"type": "TextBlock", "text": title, "weight": "Bolder", "size": "Medium", "wrap": true})
		}
		body = append(body, map[string]any{"type": "TextBlock", "text": text, "wrap": true})
		card = map[string]any{
			"$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
			"type":    "AdaptiveCard",
			"version": "1.4",
			"body":    body,
		}
	}
	if c.URL == "" {
		return "", nil, errors.New("the credential has no webhook URL")
	}
	msg := map[string]any{
		"type": "message",
		"attachments": []any{map[string]any{
			"contentType": "application/vnd.microsoft.card.adaptive",
			"contentUrl":  nil,
			"content":     card,
		}},
	}
	return name, func(ctx context.Context) (any, error) {
		rep, err := r.postJSON(ctx, c.URL, nil, msg)
		if err != nil {
			return nil, err
		}
		if strings.HasPrefix(strings.TrimSpace(string(rep.body)), teamsFailed) {
			return nil, &httpError{what: "POST webhook", status: statusText(rep.status), detail: "Teams did not deliver", body: rep.body}
		}
		return map[string]any{"statusCode": rep.status}, nil
	}, nil
}
