// Package helpercli is the helper program a job finds at /cronium/bin/cronium
// (the agent binary started under the name "cronium"). The bash helper
// library (cronium.sh) calls it for every operation, so bash scripts need no
// curl or jq in their image. It speaks the job's runtime API
// (docs/runtime-api.md, "Endpoints" and "Helper libraries") with the same
// semantics as the Python and Node.js helpers.
//
// Subcommands (each also accepted in the snake_case and camelCase spellings,
// and "context" for "event"):
//
//	cronium input                  print the step input as JSON
//	cronium output <json or text>  set the step output
//	cronium get-variable <key>     print a variable (strings raw, other JSON compact, missing: nothing)
//	cronium set-variable <key> <json or text>
//	cronium set-condition <bool>   true/false, 1/0, yes/no, on/off (any case)
//	cronium event                  print the execution context as JSON
//
// Exit status: 0 on success, 1 when the call fails (runtime not available,
// 4xx, or 5xx/transport errors after the retries), 2 for usage errors. Every
// failure prints one line on stderr.
package helpercli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultBackoff is the wait before each retry of a call that failed with a
// transport error or a 5xx: three retries (0.2 s, 0.4 s, 0.8 s), so at most
// four attempts.
func DefaultBackoff() []time.Duration {
	return []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond}
}

// DefaultTimeout bounds one attempt of the default client.
const DefaultTimeout = 30 * time.Second

// MaxResponseBytes bounds a reply read from the runtime API.
const MaxResponseBytes = 64 << 20

// NotAvailable is the message of every call made without CRONIUM_RUNTIME_API.
const NotAvailable = "cronium runtime not available: CRONIUM_RUNTIME_API is not set"

// CLI is the helper program with its transport settings. The zero value uses
// the defaults.
type CLI struct {
	// Backoff is the wait before each retry; nil means DefaultBackoff(), an
	// empty non-nil slice means no retries.
	Backoff []time.Duration
	// Client sends the requests; nil means a client with DefaultTimeout that
	// ignores proxy settings (the runtime API is always reached directly).
	Client *http.Client
}

// Main runs the helper program with the defaults. args are the arguments
// after the program name (os.Args[1:]); env is the environment as "KEY=value"
// pairs (os.Environ()). It returns the exit status.
func Main(args []string, env []string, stdout, stderr io.Writer) int {
	return CLI{}.Main(args, env, stdout, stderr)
}

// exit statuses
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

const usageText = `usage: cronium <command> [args]
  input                       print the step input as JSON
  output <json or text>       set the step output
  get-variable <key>          print a variable's value
  set-variable <key> <value>  set a variable (JSON if it parses, else a string)
  set-condition <bool>        true|false, 1|0, yes|no, on|off
  event                       print the execution context as JSON
`

type command struct {
	name  string // canonical name, for messages
	nargs int
	args  string // argument synopsis, for messages
	run   func(c *client, args []string, stdout io.Writer) error
}

var commands = []command{
	{"input", 0, "", runInput},
	{"output", 1, "<json or text>", runOutput},
	{"get-variable", 1, "<key>", runGetVariable},
	{"set-variable", 2, "<key> <json or text>", runSetVariable},
	{"set-condition", 1, "true|false", runSetCondition},
	{"event", 0, "", runEvent},
}

// lookup finds a command by any accepted spelling.
func lookup(name string) (command, bool) {
	switch name {
	case "get_variable", "getVariable":
		name = "get-variable"
	case "set_variable", "setVariable":
		name = "set-variable"
	case "set_condition", "setCondition":
		name = "set-condition"
	case "context":
		name = "event"
	}
	for _, c := range commands {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// usageError is a wrong invocation: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// Main runs the helper program; see the package function Main.
func (c CLI) Main(args []string, env []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, "cronium: missing command\n"+usageText)
		return exitUsage
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usageText)
		return exitOK
	}
	cmd, ok := lookup(args[0])
	if !ok {
		fmt.Fprintf(stderr, "cronium: unknown command %q (run `cronium help`)\n", args[0])
		return exitUsage
	}
	rest := args[1:]
	if len(rest) != cmd.nargs {
		synopsis := strings.TrimSpace("cronium " + cmd.name + " " + cmd.args)
		fmt.Fprintf(stderr, "cronium: %s takes %d argument(s), got %d; usage: %s\n", cmd.name, cmd.nargs, len(rest), synopsis)
		return exitUsage
	}
	cl, err := c.newClient(env)
	if err == nil {
		err = cmd.run(cl, rest, stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, oneLine(err))
		var ue usageError
		if errors.As(err, &ue) {
			return exitUsage
		}
		return exitFail
	}
	return exitOK
}

// oneLine renders an error as the single stderr line.
func oneLine(err error) string {
	msg := err.Error()
	if !strings.HasPrefix(msg, "cronium runtime not available:") {
		msg = "cronium: " + msg
	}
	return strings.Join(strings.Fields(msg), " ")
}

// ---- subcommands ----

func runInput(c *client, _ []string, stdout io.Writer) error {
	data, err := c.call(http.MethodGet, "/input", nil)
	if err != nil {
		return err
	}
	return printJSON(stdout, data)
}

func runEvent(c *client, _ []string, stdout io.Writer) error {
	data, err := c.call(http.MethodGet, "/context", nil)
	if err != nil {
		return err
	}
	return printJSON(stdout, data)
}

func runOutput(c *client, args []string, _ io.Writer) error {
	body, err := json.Marshal(struct {
		Data json.RawMessage `json:"data"`
	}{jsonOrString(args[0])})
	if err != nil {
		return err
	}
	_, err = c.call(http.MethodPost, "/output", body)
	return err
}

func runGetVariable(c *client, args []string, stdout io.Writer) error {
	key, err := checkKey(args[0])
	if err != nil {
		return err
	}
	data, err := c.call(http.MethodGet, "/variables/"+EscapeKey(key), nil)
	var ae *apiError
	if errors.As(err, &ae) && ae.status == http.StatusNotFound {
		return nil // a missing variable prints nothing
	}
	if err != nil {
		return err
	}
	var v struct {
		Value json.RawMessage `json:"value"`
	}
	if len(data) > 0 && !isNull(data) {
		if err := json.Unmarshal(data, &v); err != nil {
			return fmt.Errorf("invalid reply from runtime API: %v", err)
		}
	}
	if len(v.Value) == 0 || isNull(v.Value) {
		return nil
	}
	var s string
	if v.Value[0] == '"' && json.Unmarshal(v.Value, &s) == nil {
		_, err := io.WriteString(stdout, s+"\n")
		return err
	}
	return printJSON(stdout, v.Value)
}

func runSetVariable(c *client, args []string, _ io.Writer) error {
	key, err := checkKey(args[0])
	if err != nil {
		return err
	}
	body, err := json.Marshal(struct {
		Value json.RawMessage `json:"value"`
	}{jsonOrString(args[1])})
	if err != nil {
		return err
	}
	_, err = c.call(http.MethodPut, "/variables/"+EscapeKey(key), body)
	return err
}

func runSetCondition(c *client, args []string, _ io.Writer) error {
	b, ok := ParseBool(args[0])
	if !ok {
		return usageError{fmt.Sprintf("set-condition: %q is not a boolean (use true/false, 1/0, yes/no or on/off)", args[0])}
	}
	body, _ := json.Marshal(struct {
		Condition bool `json:"condition"`
	}{b})
	_, err := c.call(http.MethodPost, "/condition", body)
	return err
}

// ParseBool accepts the bash spellings of a condition: true/false, 1/0,
// yes/no, on/off, in any letter case (surrounding blanks ignored).
func ParseBool(s string) (value, ok bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "1", "yes", "on":
		return true, true
	case "false", "0", "no", "off":
		return false, true
	}
	return false, false
}

// jsonOrString is s itself (compacted) when it is valid JSON, else s as a
// JSON string.
func jsonOrString(s string) json.RawMessage {
	if strings.TrimSpace(s) != "" && json.Valid([]byte(s)) {
		var buf bytes.Buffer
		if json.Compact(&buf, []byte(s)) == nil {
			return buf.Bytes()
		}
	}
	b, _ := json.Marshal(s)
	return b
}

func checkKey(key string) (string, error) {
	if key == "" {
		return "", usageError{"variable key must not be empty"}
	}
	return key, nil
}

func isNull(b []byte) bool { return string(bytes.TrimSpace(b)) == "null" }

// printJSON prints a JSON value compactly on one line; no value prints null.
func printJSON(w io.Writer, data json.RawMessage) error {
	var buf bytes.Buffer
	if len(bytes.TrimSpace(data)) == 0 {
		buf.WriteString("null")
	} else if err := json.Compact(&buf, data); err != nil {
		return fmt.Errorf("invalid reply from runtime API: %v", err)
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}

// EscapeKey percent-encodes a variable key for a path segment: every byte
// but the unreserved characters (A-Z a-z 0-9 - . _ ~) is encoded, so "/"
// becomes %2F.
func EscapeKey(key string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(key); i++ {
		ch := key[i]
		switch {
		case 'a' <= ch && ch <= 'z', 'A' <= ch && ch <= 'Z', '0' <= ch && ch <= '9',
			ch == '-', ch == '.', ch == '_', ch == '~':
			b.WriteByte(ch)
		default:
			b.WriteByte('%')
			b.WriteByte(hex[ch>>4])
			b.WriteByte(hex[ch&15])
		}
	}
	return b.String()
}

// ---- transport ----

type client struct {
	base, execID, token string
	backoff             []time.Duration
	http                *http.Client
}

func (c CLI) newClient(env []string) (*client, error) {
	vars := map[string]string{}
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			vars[k] = v
		}
	}
	base := strings.TrimSpace(vars["CRONIUM_RUNTIME_API"])
	if base == "" {
		return nil, errors.New(NotAvailable)
	}
	execID := vars["CRONIUM_EXECUTION_ID"]
	if execID == "" {
		return nil, errors.New("cronium runtime not available: CRONIUM_EXECUTION_ID is not set")
	}
	token := vars["CRONIUM_EXECUTION_TOKEN"]
	if token == "" {
		return nil, errors.New("cronium runtime not available: CRONIUM_EXECUTION_TOKEN is not set")
	}
	backoff := c.Backoff
	if backoff == nil {
		backoff = DefaultBackoff()
	}
	hc := c.Client
	if hc == nil {
		hc = &http.Client{
			Timeout: DefaultTimeout,
			Transport: &http.Transport{
				Proxy:               nil,
				DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
				TLSHandshakeTimeout: 10 * time.Second,
				DisableKeepAlives:   true,
			},
		}
	}
	return &client{
		base:    strings.TrimRight(base, "/"),
		execID:  execID,
		token:   token,
		backoff: backoff,
		http:    hc,
	}, nil
}

// apiError is a reply with an error status.
type apiError struct {
	status  int
	message string
}

func (e *apiError) Error() string { return e.message }

// retryable reports whether a failed attempt is tried again.
func retryable(err error) bool {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.status >= 500
	}
	var te *transportError
	return errors.As(err, &te)
}

type transportError struct{ err error }

func (e *transportError) Error() string { return e.err.Error() }
func (e *transportError) Unwrap() error { return e.err }

// call sends one request with retries and returns the reply's data.
func (c *client) call(method, path string, body []byte) (json.RawMessage, error) {
	target := c.base + "/executions/" + EscapeKey(c.execID) + path
	var err error
	for attempt := 0; ; attempt++ {
		var data json.RawMessage
		data, err = c.once(method, target, body)
		if err == nil {
			return data, nil
		}
		if !retryable(err) || attempt >= len(c.backoff) {
			break
		}
		time.Sleep(c.backoff[attempt])
	}
	var te *transportError
	if errors.As(err, &te) {
		if len(c.backoff) == 0 {
			return nil, fmt.Errorf("%s %s: %v", method, target, te.err)
		}
		return nil, fmt.Errorf("%s %s: %v (after %d attempts)", method, target, te.err, len(c.backoff)+1)
	}
	return nil, err
}

func (c *client) once(method, target string, body []byte) (json.RawMessage, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, target, rd)
	if err != nil {
		return nil, err // a malformed CRONIUM_RUNTIME_API: not retried
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, &transportError{stripURL(err)}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes))
	if err != nil {
		return nil, &transportError{err}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, &apiError{status: resp.StatusCode, message: errorMessage(resp, raw)}
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, nil
	}
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return nil, fmt.Errorf("invalid reply from runtime API (HTTP %d): %v", resp.StatusCode, err)
	}
	return env.Data, nil
}

// stripURL drops the *url.Error wrapper; call adds method and URL once.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		return ue.Err
	}
	return err
}

// errorMessage is the server's message for an error reply, falling back to
// its error field and then to the status line.
func errorMessage(resp *http.Response, raw []byte) string {
	var e struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}
	_ = json.Unmarshal(raw, &e)
	switch {
	case e.Message != "":
		return e.Message
	case e.Error != "":
		return e.Error
	}
	status := fmt.Sprintf("HTTP %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	if t := strings.TrimSpace(string(raw)); t != "" && len(t) < 200 {
		return status + ": " + t
	}
	return status
}
