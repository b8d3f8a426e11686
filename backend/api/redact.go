package api

import (
	"fmt"
	"strings"
)

// These String and GoString methods make sure that printing a job, a
// target or a server with fmt (%v, %+v, %#v, %s, also nested in other
// values) never shows a secret: SSH keys and passwords, environment values,
// HTTP headers and bodies, tool configurations and the raw metadata are
// left out.

// String describes the server without its secrets.
func (s Server) String() string {
	var b strings.Builder
	if s.Name != "" {
		b.WriteString(s.Name + " ")
	}
	fmt.Fprintf(&b, "(id %q) %s@%s:%d", s.ID, s.Username, s.Host, s.Port)
	switch {
	case s.PrivateKey != "" && s.Password != "":
		b.WriteString(" [private key and password redacted]")
	case s.PrivateKey != "":
		b.WriteString(" [private key redacted]")
	case s.Password != "":
		b.WriteString(" [password redacted]")
	}
	return b.String()
}

// GoString is String, so that %#v does not show the secrets either.
func (s Server) GoString() string { return "backend.Server{" + s.String() + "}" }

// String describes the target without secrets.
func (t Target) String() string {
	switch {
	case t.Server != nil:
		return t.Type + " " + t.Server.String()
	case t.ServerID != "":
		return t.Type + " id " + t.ServerID
	}
	return t.Type
}

// GoString is String.
func (t Target) GoString() string { return "backend.Target{" + t.String() + "}" }

// String describes the metadata by its plain fields; Raw and the servers'
// secrets are left out.
func (m Metadata) String() string {
	s := fmt.Sprintf("event %q (id %s) user %s triggered by %s log %d", m.EventName, m.EventID, m.UserID, m.TriggeredBy, m.LogID)
	if m.MultiServer || len(m.Servers) > 0 {
		s += fmt.Sprintf(" servers %d", len(m.Servers))
	}
	return s
}

// GoString is String.
func (m Metadata) GoString() string { return "backend.Metadata{" + m.String() + "}" }

// String describes the job without its environment values, script, HTTP
// request details or any secret.
func (j Job) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s %s", j.ID, j.Type, j.OriginalType)
	if j.Script != nil {
		b.WriteString(" " + j.Script.Runtime)
	}
	if j.HTTP != nil {
		b.WriteString(" " + j.HTTP.Method)
	}
	if j.ToolAction != nil {
		b.WriteString(" tool " + j.ToolAction.ToolType)
	}
	b.WriteString(")")
	if j.Type == WireSSH {
		b.WriteString(" on " + j.Target.String())
	}
	if j.Timeout > 0 {
		fmt.Fprintf(&b, " timeout %s", j.Timeout)
	}
	if len(j.Environment) > 0 {
		fmt.Fprintf(&b, " env %d values", len(j.Environment))
	}
	b.WriteString(" " + j.Metadata.String())
	return b.String()
}

// GoString is String.
func (j Job) GoString() string { return "backend.Job{" + j.String() + "}" }

// String describes the request without headers or body (they may hold
// credentials); the URL's query and user info are left out too.
func (h HTTPRequest) String() string {
	u := h.URL
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		u = u[:i]
	}
	if i := strings.Index(u, "://"); i >= 0 {
		if at := strings.LastIndex(u[i+3:], "@"); at >= 0 {
			if slash := strings.Index(u[i+3:], "/"); slash < 0 || at < slash {
				u = u[:i+3] + u[i+3+at+1:]
			}
		}
	}
	return fmt.Sprintf("%s %s (%d headers, %d bytes of body)", h.Method, u, len(h.Headers), len(h.Body))
}

// GoString is String.
func (h HTTPRequest) GoString() string { return "backend.HTTPRequest{" + h.String() + "}" }

// String describes the action without its configuration.
func (t ToolAction) String() string { return fmt.Sprintf("tool %s action %s", t.ToolType, t.ActionID) }

// GoString is String.
func (t ToolAction) GoString() string { return "backend.ToolAction{" + t.String() + "}" }
