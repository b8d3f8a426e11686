package toolexec

import (
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
)

// Credential is what a tool needs to reach its service: an entry of the
// agent's tools.credentials, or the fields a request carries itself. Its
// fields mirror config.ToolCredential (a plain conversion turns one into the
// other). Secrets: it never prints them (String, LogValue).
type Credential struct {
	// Tool is the tool the entry is for; empty means the entry's name.
	Tool string
	// URL is the webhook URL (webhook, Slack incoming webhook, Discord,
	// Teams): the URL itself is the secret for these services.
	URL string
	// Token is a bearer token: Slack's bot token (chat.postMessage), or
	// the generic webhook's Authorization.
	Token string
	// BaseURL replaces a service's API base (Slack's https://slack.com/api).
	BaseURL string
	// Headers are added to the webhook tool's requests (e.g. an API key).
	Headers map[string]string
	// Host, Port, Username, Password, TLS (auto, starttls, tls or none),
	// Auth (plain or login; empty picks what the server offers) and From
	// are the email tool's SMTP server.
	Host     string
	Port     int
	Username string
	Password string
	TLS      string
	Auth     string
	From     string
}

// String never shows a secret.
func (c Credential) String() string {
	return fmt.Sprintf("credential for %s (secrets hidden)", cmpOr(c.Tool, "a tool"))
}

// GoString never shows a secret.
func (c Credential) GoString() string { return "toolexec.Credential{" + c.String() + "}" }

// LogValue never logs a secret.
func (c Credential) LogValue() slog.Value { return slog.StringValue(c.String()) }

// secrets are the values to mask wherever a message could show them.
func (c Credential) secrets() []string {
	out := []string{c.URL, c.Token, c.Password}
	for _, v := range c.Headers {
		out = append(out, v)
	}
	return out
}

// inlineCredential reads the credential fields a request carries: those of
// its "credentials" object, else the ones among its parameters. ok is false
// when it carries none that says where to send (a URL, a token, an SMTP
// host): the agent's credentials are used then, whole.
func inlineCredential(tool string, inline map[string]any, p params) (Credential, bool, error) {
	src := p
	if inline != nil {
		src = params(inline)
	}
	var c Credential
	var err error
	get := func(dst *string, keys ...string) {
		if err == nil {
			*dst, err = src.str(keys...)
		}
	}
	get(&c.URL, "webhookUrl", "webhookURL", "webhook_url", "webhook")
	if tool == "webhook" && c.URL == "" {
		get(&c.URL, "url")
	}
	get(&c.Token, "token", "botToken", "bot_token", "accessToken")
	get(&c.BaseURL, "baseUrl", "baseURL", "base_url", "apiUrl", "apiURL")
	get(&c.Host, "host", "smtpHost", "smtp_host")
	get(&c.Username, "username", "user", "smtpUser", "smtp_user")
	get(&c.Password, "password", "pass", "smtpPassword", "smtp_password")
	get(&c.TLS, "tls", "security")
	get(&c.Auth, "auth")
	if tool == "email" {
		get(&c.From, "from")
	}
	var port string
	get(&port, "port", "smtpPort", "smtp_port")
	if err != nil {
		return Credential{}, false, err
	}
	if port != "" {
		n, perr := strconv.Atoi(port)
		if perr != nil || n <= 0 || n > 65535 {
			return Credential{}, false, fmt.Errorf("port %q is not a TCP port", clip(port, 20))
		}
		c.Port = n
	}
	// Upstream Cronium's email credentials say "secure": true for
	// implicit TLS.
	if s, _ := src.str("secure"); s == "true" && c.TLS == "" {
		c.TLS = TLSImplicit
	}
	if h, ok := src.raw("headers").(map[string]any); ok && inline != nil {
		c.Headers = map[string]string{}
		for k, v := range h {
			if s, ok := v.(string); ok {
				c.Headers[k] = s
			}
		}
	}
	c.Tool = tool
	return c, c.URL != "" || c.Token != "" || c.Host != "", nil
}

// resolve picks the credential of a request: the one it carries (job
// config first), else tools.credentials[CredentialName], else the entry
// named after the tool, else the only entry for the tool. An agent entry is
// taken whole: a request never sends an agent's secret to a destination of
// its own choosing. Errors name entries, never secrets.
func resolve(req Request, agent map[string]Credential) (Credential, error) {
	if c, ok, err := inlineCredential(req.Tool, req.Inline, params(req.Params)); err != nil {
		return Credential{}, err
	} else if ok {
		return c, nil
	}
	pick := func(name string) (Credential, error) {
		c := agent[name]
		if t := cmpOr(c.Tool, name); canonical(t) != req.Tool {
			return Credential{}, fmt.Errorf("tools.credentials.%s is for %s, not %s", name, t, req.Tool)
		}
		c.Tool = req.Tool
		return c, nil
	}
	if req.CredentialName != "" {
		if _, ok := agent[req.CredentialName]; !ok {
			return Credential{}, fmt.Errorf("no credential %q in the agent's tools.credentials (it has: %s)", clip(req.CredentialName, 64), names(agent))
		}
		return pick(req.CredentialName)
	}
	if _, ok := agent[req.Tool]; ok {
		return pick(req.Tool)
	}
	var found []string
	for name, c := range agent {
		if canonical(cmpOr(c.Tool, name)) == req.Tool {
			found = append(found, name)
		}
	}
	switch len(found) {
	case 1:
		return pick(found[0])
	case 0:
		return Credential{}, fmt.Errorf("%s needs a credential: give it in the action (%s) or configure tools.credentials.%s on the agent", req.Tool, credentialHint(req.Tool), req.Tool)
	}
	sort.Strings(found)
	return Credential{}, fmt.Errorf("tools.credentials has several entries for %s (%s): name one with \"credential\"", req.Tool, strings.Join(found, ", "))
}

func credentialHint(tool string) string {
	switch tool {
	case "slack":
		return "webhookUrl, or token for chat.postMessage"
	case "email":
		return "host, port, username, password"
	case "webhook":
		return "url"
	}
	return "webhookUrl"
}

func canonical(name string) string {
	t, err := canonicalTool(name)
	if err != nil {
		return name
	}
	return t
}

func names(m map[string]Credential) string {
	if len(m) == 0 {
		return "none"
	}
	out := make([]string, 0, len(m))
	for n := range m {
		out = append(out, n)
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
