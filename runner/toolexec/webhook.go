package toolexec

import (
	"context"
	"fmt"
	"net/http"
	"strings"
)

// webhook is the generic HTTP call: params url (or the credential's),
// method (POST), headers (an object), body (a string sent as it is, or any
// other JSON sent as JSON). The credential's headers and token
// (Authorization: Bearer) are added. Data: {statusCode, body} (the body
// parsed when it is JSON).
func (r *Runner) webhook(action string, p params, c Credential) (string, func(context.Context) (any, error), error) {
	name, err := checkAction(action, "send", "request", "call", "post", "send-message")
	if err != nil {
		return "", nil, err
	}
	method, err := p.str("method")
	if err != nil {
		return "", nil, err
	}
	method = strings.ToUpper(strings.TrimSpace(method))
	if method == "" {
		method = http.MethodPost
	}
	if strings.ContainsAny(method, " \t\r\n/") {
		return "", nil, fmt.Errorf("invalid method %q", clip(method, 20))
	}
	if c.URL == "" {
		return "", nil, fmt.Errorf("no url: give url in the parameters or the credential")
	}
	header := http.Header{}
	if h, ok := p.raw("headers").(map[string]any); ok {
		for k, v := range h {
			s, ok := v.(string)
			if !ok || strings.ContainsAny(k, " \t\r\n:") || strings.ContainsAny(s, "\r\n\x00") {
				return "", nil, fmt.Errorf("invalid header %q", clip(k, 40))
			}
			header.Set(k, s)
		}
	} else if p.raw("headers") != nil {
		return "", nil, fmt.Errorf("parameter \"headers\" must be an object of strings")
	}
	for k, v := range c.Headers {
		header.Set(k, v)
	}
	if c.Token != "" && header.Get("Authorization") == "" {
		header.Set("Authorization", "Bearer "+c.Token)
	}
	var body []byte
	switch v := p.raw("body", "payload", "json").(type) {
	case nil:
	case string:
		body = []byte(v)
	default:
		if body, err = jsonBytes(v); err != nil {
			return "", nil, err
		}
		if header.Get("Content-Type") == "" {
			header.Set("Content-Type", "application/json; charset=utf-8")
		}
	}
	return name, func(ctx context.Context) (any, error) {
		rep, err := r.send(ctx, method, c.URL, header, body)
		if err != nil {
			return nil, err
		}
		return map[string]any{"statusCode": rep.status, "body": decodeBody(rep.body)}, nil
	}, nil
}
