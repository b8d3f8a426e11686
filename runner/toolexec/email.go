package toolexec

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"strconv"
	"strings"
	"time"
)

// TLS modes of an SMTP server (Credential.TLS).
const (
	// TLSAuto (or empty) upgrades with STARTTLS when the server offers it;
	// empty on port 465 means TLSImplicit.
	TLSAuto = "auto"
	// TLSStartTLS requires STARTTLS: a server without it is refused.
	TLSStartTLS = "starttls"
	// TLSImplicit speaks TLS from the first byte (SMTPS, port 465).
	TLSImplicit = "tls"
	// TLSNone never upgrades. Authentication over plain text is still
	// refused to anything but a loopback server.
	TLSNone = "none"
)

// email sends one message over SMTP. Params: to, cc, bcc (a list or a
// comma-separated string), subject, body/text (plain text), html (an HTML
// alternative; html: true sends body as HTML, as upstream Cronium's helpers
// do), from (else the credential's), replyTo. Data: {messageId, recipients}.
func (r *Runner) email(action string, p params, c Credential) (string, func(context.Context) (any, error), error) {
	name, err := checkAction(action, "send-message", "send", "send-email")
	if err != nil {
		return "", nil, err
	}
	m, err := newMessage(p, c, r.now())
	if err != nil {
		return "", nil, err
	}
	if c.Host == "" {
		return "", nil, errors.New("the credential has no SMTP host")
	}
	mode := strings.ToLower(strings.TrimSpace(c.TLS))
	port := c.Port
	switch {
	case mode == "" && port == 465:
		mode = TLSImplicit
	case mode == "":
		mode = TLSAuto
	case mode == "ssl" || mode == "implicit":
		mode = TLSImplicit
	case mode != TLSAuto && mode != TLSStartTLS && mode != TLSImplicit && mode != TLSNone:
		return "", nil, fmt.Errorf("tls %q: want auto, starttls, tls or none", clip(mode, 20))
	}
	if port == 0 {
		port = 587
		if mode == TLSImplicit {
			port = 465
		}
	}
	auth := strings.ToLower(c.Auth)
	if auth != "" && auth != "plain" && auth != "login" {
		return "", nil, fmt.Errorf("auth %q: want plain or login", clip(auth, 20))
	}
	s := smtpSend{
		addr: net.JoinHostPort(c.Host, strconv.Itoa(port)), host: c.Host, mode: mode,
		user: c.Username, pass: c.Password, auth: auth, dial: r.dial, tls: r.tls,
	}
	return name, func(ctx context.Context) (any, error) {
		if err := s.send(ctx, m); err != nil {
			return nil, err
		}
		return map[string]any{"messageId": m.id, "recipients": len(m.rcpt)}, nil
	}, nil
}

// message is a composed email.
type message struct {
	from string
	rcpt []string
	id   string
	data []byte // headers and body, CRLF line ends
}

func newMessage(p params, c Credential, now time.Time) (message, error) {
	var m message
	fromText, err := p.str("from")
	if err != nil {
		return m, err
	}
	from, err := mail.ParseAddress(cmpOr(fromText, cmpOr(c.From, c.Username)))
	if err != nil {
		return m, errors.New("no valid from address: give from in the parameters or the credential")
	}
	m.from = from.Address
	header := textproto.MIMEHeader{}
	header.Set("From", from.String())
	for _, f := range []struct {
		param, header string
		keys          []string
	}{{"to", "To", []string{"to"}}, {"cc", "Cc", []string{"cc"}}, {"bcc", "", []string{"bcc"}}} {
		list, err := p.list(f.keys...)
		if err != nil {
			return m, err
		}
		var shown []string
		for _, a := range list {
			addr, err := mail.ParseAddress(a)
			if err != nil {
				return m, fmt.Errorf("%s: %q is not an email address", f.param, clip(a, 60))
			}
			m.rcpt = append(m.rcpt, addr.Address)
			shown = append(shown, addr.String())
		}
		if f.header != "" && len(shown) > 0 {
			header.Set(f.header, strings.Join(shown, ", "))
		}
	}
	if len(m.rcpt) == 0 {
		return m, errors.New("no recipient: give to")
	}
	if rt, err := p.str("replyTo", "reply_to"); err != nil {
		return m, err
	} else if rt != "" {
		addr, err := mail.ParseAddress(rt)
		if err != nil {
			return m, fmt.Errorf("replyTo: %q is not an email address", clip(rt, 60))
		}
		header.Set("Reply-To", addr.String())
	}
	subject, err := p.str("subject")
	if err != nil {
		return m, err
	}
	if strings.ContainsAny(subject, "\r\n") {
		return m, errors.New("the subject must be one line")
	}
	header.Set("Subject", mime.QEncoding.Encode("utf-8", subject))
	header.Set("Date", now.Format(time.RFC1123Z))
	m.id = messageID(m.from)
	header.Set("Message-ID", "<"+m.id+">")
	header.Set("MIME-Version", "1.0")

	text, err := p.str("body", "text", "message")
	if err != nil {
		return m, err
	}
	var html string
	switch v := p.raw("html").(type) {
	case bool:
		if v {
			html, text = text, ""
		}
	case string:
		html = v
	case nil:
	default:
		return m, errors.New(`parameter "html" must be a string or a boolean`)
	}
	if text == "" && html == "" {
		return m, errors.New("no body: give body (or html)")
	}
	var body bytes.Buffer
	switch {
	case html == "":
		header.Set("Content-Type", "text/plain; charset=utf-8")
		header.Set("Content-Transfer-Encoding", "quoted-printable")
		writeQP(&body, text)
	case text == "":
		header.Set("Content-Type", "text/html; charset=utf-8")
		header.Set("Content-Transfer-Encoding", "quoted-printable")
		writeQP(&body, html)
	default:
		mw := multipart.NewWriter(&body)
		header.Set("Content-Type", "multipart/alternative; boundary="+mw.Boundary())
		for _, part := range []struct{ typ, s string }{{"text/plain", text}, {"text/html", html}} {
			w, err := mw.CreatePart(textproto.MIMEHeader{
				"Content-Type":              {part.typ + "; charset=utf-8"},
				"Content-Transfer-Encoding": {"quoted-printable"},
			})
			if err != nil {
				return m, fmt.Errorf("compose the message: %w", err)
			}
			writeQP(w, part.s)
		}
		if err := mw.Close(); err != nil {
			return m, fmt.Errorf("compose the message: %w", err)
		}
	}
	var out bytes.Buffer
	for _, k := range []string{"From", "To", "Cc", "Reply-To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type", "Content-Transfer-Encoding"} {
		if v := header.Get(k); v != "" {
			out.WriteString(k + ": " + v + "\r\n")
		}
	}
	out.WriteString("\r\n")
	out.Write(body.Bytes())
	m.data = out.Bytes()
	return m, nil
}

// writeQP writes s quoted-printable with CRLF line ends (the writer turns
// text line breaks into CRLF and keeps lines under 76 characters).
func writeQP(w io.Writer, s string) {
	qp := quotedprintable.NewWriter(w)
	_, _ = io.WriteString(qp, strings.ReplaceAll(s, "\r\n", "\n"))
	_ = qp.Close()
}

func messageID(from string) string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	domain := "cronium-agent"
	if _, d, ok := strings.Cut(from, "@"); ok && d != "" {
		domain = d
	}
	return hex.EncodeToString(b[:]) + "@" + domain
}

// smtpSend is one SMTP session's settings.
type smtpSend struct {
	addr, host, mode string
	user, pass, auth string
	dial             DialFunc
	tls              *tls.Config
}

func (s smtpSend) tlsConfig() *tls.Config {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if s.tls != nil {
		c = s.tls.Clone()
	}
	c.ServerName = s.host
	return c
}

// send delivers m: connect (TLS first for implicit TLS), EHLO, STARTTLS as
// the mode says, AUTH when a user is set, MAIL, RCPT, DATA, QUIT.
func (s smtpSend) send(ctx context.Context, m message) error {
	conn, err := s.dial(ctx, "tcp", s.addr)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", s.addr, err)
	}
	// The SMTP client has no context: a deadline and a close on
	// cancellation bound it.
	if d, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	defer conn.Close()
	if s.mode == TLSImplicit {
		tc := tls.Client(conn, s.tlsConfig())
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("TLS with %s: %w", s.addr, err)
		}
		conn = tc
	}
	c, err := smtp.NewClient(conn, s.host)
	if err != nil {
		return smtpError("greeting", err)
	}
	defer c.Close()
	if err := c.Hello("localhost"); err != nil {
		return smtpError("EHLO", err)
	}
	if s.mode == TLSAuto || s.mode == TLSStartTLS {
		if ok, _ := c.Extension("STARTTLS"); ok {
			if err := c.StartTLS(s.tlsConfig()); err != nil {
				return smtpError("STARTTLS", err)
			}
		} else if s.mode == TLSStartTLS {
			return fmt.Errorf("%s does not offer STARTTLS, which tls: starttls requires", s.addr)
		}
	}
	if s.user != "" {
		a, err := s.authenticator(c)
		if err != nil {
			return err
		}
		if err := c.Auth(a); err != nil {
			return smtpError("AUTH", err)
		}
	}
	if err := c.Mail(m.from); err != nil {
		return smtpError("MAIL FROM", err)
	}
	for _, r := range m.rcpt {
		if err := c.Rcpt(r); err != nil {
			return smtpError("RCPT TO", err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return smtpError("DATA", err)
	}
	if _, err := w.Write(m.data); err != nil {
		return smtpError("DATA", err)
	}
	if err := w.Close(); err != nil {
		return smtpError("DATA", err)
	}
	// The message is accepted once DATA ends; a failed QUIT changes
	// nothing of that.
	_ = c.Quit()
	return nil
}

// authenticator picks PLAIN or LOGIN: the configured one, else PLAIN when
// the server offers it, else LOGIN.
func (s smtpSend) authenticator(c *smtp.Client) (smtp.Auth, error) {
	ok, mechs := c.Extension("AUTH")
	if !ok {
		return nil, fmt.Errorf("%s offers no AUTH, but a username is set", s.addr)
	}
	offered := strings.Fields(strings.ToUpper(mechs))
	has := func(m string) bool {
		for _, o := range offered {
			if o == m {
				return true
			}
		}
		return false
	}
	mech := s.auth
	if mech == "" {
		switch {
		case has("PLAIN"):
			mech = "plain"
		case has("LOGIN"):
			mech = "login"
		default:
			return nil, fmt.Errorf("%s offers AUTH %s; the agent speaks PLAIN and LOGIN", s.addr, clip(mechs, 60))
		}
	}
	if mech == "login" {
		return &loginAuth{user: s.user, pass: s.pass, host: s.host}, nil
	}
	return smtp.PlainAuth("", s.user, s.pass, s.host), nil
}

// loginAuth is the LOGIN mechanism (net/smtp has PLAIN and CRAM-MD5 only).
// Like PlainAuth, it sends the password only over TLS or to loopback.
type loginAuth struct {
	user, pass, host string
	step             int
}

func (a *loginAuth) Start(server *smtp.ServerInfo) (string, []byte, error) {
	if !server.TLS && !isLoopback(server.Name) {
		return "", nil, errors.New("unencrypted connection: the password is not sent")
	}
	if server.Name != a.host {
		return "", nil, errors.New("wrong host name")
	}
	return "LOGIN", nil, nil
}

func (a *loginAuth) Next(fromServer []byte, more bool) ([]byte, error) {
	if !more {
		return nil, nil
	}
	a.step++
	prompt := strings.ToLower(strings.TrimSpace(string(fromServer)))
	switch {
	case strings.HasPrefix(prompt, "user"), prompt == "" && a.step == 1:
		return []byte(a.user), nil
	case strings.HasPrefix(prompt, "pass"), prompt == "" && a.step == 2:
		return []byte(a.pass), nil
	}
	return nil, fmt.Errorf("unexpected LOGIN prompt %q", clip(prompt, 40))
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// smtpError says which step failed, with the server's code and text.
func smtpError(step string, err error) error {
	if te, ok := errors.AsType[*textproto.Error](err); ok {
		return fmt.Errorf("SMTP %s: %d %s", step, te.Code, excerpt(te.Msg))
	}
	return fmt.Errorf("SMTP %s: %w", step, err)
}
