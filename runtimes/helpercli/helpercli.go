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
//	cronium execute-tool-action <tool> <action> [<json object> | -] [key=text | key:=json ...]
//	                               run a tool action, print its result as JSON
//	cronium send-email <to> <subject> <body>
//	cronium send-slack-message <text> [<channel>]
//	cronium send-discord-message <content>
//	cronium send-teams-message <text> [<title>]
//
// Exit status: 0 on success, 1 when the call fails (runtime not available,
// 4xx, or 5xx/transport errors after the retries) or a tool action ran and
// failed (its result, with success false, is printed all the same), 2 for
// usage errors. Every failure prints one line on stderr.
//
// A tool action is never sent twice: it may have had its effect even when
// its reply is lost or is a 5xx, so it is retried only when the connection
// was refused (the request never left), and an attempt waits ToolTimeout.
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
	"os"
	"strings"
	"syscall"
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

// ToolTimeout bounds a tool action's call with the default client: longer
// than the agent's own 60 s bound on an action, since a call cut short
// could leave the action half done.
const ToolTimeout = 90 * time.Second

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
	// Client sends the requests; nil means a client with DefaultTimeout
	// (ToolTimeout for tool actions) that ignores proxy settings (the
	// runtime API is always reached directly).
	Client *http.Client
	// Stdin is read by `execute-tool-action TOOL ACTION -`; nil means
	// os.Stdin.
	Stdin io.Reader
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
  execute-tool-action <tool> <action> [<json object> | -] [key=text | key:=json ...]
                              run a tool action (params: a JSON object, - to
                              read one from stdin, and/or key=value pairs);
                              prints the result {"success","data","error"}
  send-email <to> <subject> <body>
  send-slack-message <text> [<channel>]
  send-discord-message <content>
  send-teams-message <text> [<title>]
                              tool actions; a failed action prints its
                              result and exits with status 1
`

type command struct {
	name string // canonical name, for messages
	min  int    // argument count: at least min,
	max  int    // at most max (-1: any number)
	args string // argument synopsis, for messages
	run  func(c *client, args []string, stdout io.Writer) error
}

var commands = []command{
	{"input", 0, 0, "", runInput},
	{"output", 1, 1, "<json or text>", runOutput},
	{"get-variable", 1, 1, "<key>", runGetVariable},
	{"set-variable", 2, 2, "<key> <json or text>", runSetVariable},
	{"set-condition", 1, 1, "true|false", runSetCondition},
	{"event", 0, 0, "", runEvent},
	{"execute-tool-action", 2, -1, "<tool> <action> [<json object> | -] [key=text | key:=json ...]", runExecuteToolAction},
	{"send-email", 3, 3, "<to> <subject> <body>", runSendEmail},
	{"send-slack-message", 1, 2, "<text> [<channel>]", runSendSlackMessage},
	{"send-discord-message", 1, 1, "<content>", runSendDiscordMessage},
	{"send-teams-message", 1, 2, "<text> [<title>]", runSendTeamsMessage},
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
	case "execute_tool_action", "executeToolAction", "tool-action", "tool":
		name = "execute-tool-action"
	case "send_email", "sendEmail":
		name = "send-email"
	case "send_slack_message", "sendSlackMessage":
		name = "send-slack-message"
	case "send_discord_message", "sendDiscordMessage":
		name = "send-discord-message"
	case "send_teams_message", "sendTeamsMessage":
		name = "send-teams-message"
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
	if len(rest) < cmd.min || (cmd.max >= 0 && len(rest) > cmd.max) {
		synopsis := strings.TrimSpace("cronium " + cmd.name + " " + cmd.args)
		var n string
		switch {
		case cmd.min == cmd.max:
			n = fmt.Sprint(cmd.min)
		case cmd.max < 0:
			n = fmt.Sprintf("at least %d", cmd.min)
		default:
			n = fmt.Sprintf("%d to %d", cmd.min, cmd.max)
		}
		fmt.Fprintf(stderr, "cronium: %s takes %s argument(s), got %d; usage: %s\n", cmd.name, n, len(rest), synopsis)
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

// ---- tool actions ----

// runExecuteToolAction runs `execute-tool-action TOOL ACTION [PARAMS...]`.
// The parameters are, in order: optionally a JSON object (or "-" to read
// one from stdin), then key=text pairs (the value sent as a string, as it
// is) and key:=json pairs (the value sent as JSON); a pair replaces the
// same key of the object.
func runExecuteToolAction(c *client, args []string, stdout io.Writer) error {
	tool, action := args[0], args[1]
	if strings.TrimSpace(tool) == "" {
		return usageError{"execute-tool-action: the tool must not be empty (webhook, slack, discord, teams or email)"}
	}
	params := map[string]json.RawMessage{}
	for i, a := range args[2:] {
		switch {
		case i == 0 && a == "-":
			b, err := io.ReadAll(io.LimitReader(c.stdin, MaxResponseBytes))
			if err != nil {
				return fmt.Errorf("execute-tool-action: read the parameters from stdin: %v", err)
			}
			if err := decodeParams(b, params); err != nil {
				return usageError{"execute-tool-action: stdin: " + err.Error()}
			}
		case i == 0 && strings.HasPrefix(strings.TrimSpace(a), "{"):
			if err := decodeParams([]byte(a), params); err != nil {
				return usageError{"execute-tool-action: " + err.Error()}
			}
		default:
			k, v, err := paramPair(a)
			if err != nil {
				return usageError{"execute-tool-action: " + err.Error()}
			}
			params[k] = v
		}
	}
	return runTool(c, tool, action, params, stdout)
}

// decodeParams adds the members of a JSON object to params.
func decodeParams(b []byte, params map[string]json.RawMessage) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil || m == nil {
		return errors.New("the parameters must be a JSON object")
	}
	for k, v := range m {
		params[k] = v
	}
	return nil
}

// paramPair reads key=text (a string) or key:=json (a JSON value).
func paramPair(a string) (string, json.RawMessage, error) {
	k, v, ok := strings.Cut(a, "=")
	if !ok {
		return "", nil, fmt.Errorf("%q is not a parameter: give a JSON object, -, key=text or key:=json", clip(a))
	}
	if key, isJSON := strings.CutSuffix(k, ":"); isJSON {
		if key == "" {
			return "", nil, fmt.Errorf("%q: the parameter's name is empty", clip(a))
		}
		var buf bytes.Buffer
		if strings.TrimSpace(v) == "" || json.Compact(&buf, []byte(v)) != nil {
			return "", nil, fmt.Errorf("%s:=: %q is not valid JSON", key, clip(v))
		}
		return key, buf.Bytes(), nil
	}
	if k == "" {
		return "", nil, fmt.Errorf("%q: the parameter's name is empty", clip(a))
	}
	return k, stringJSON(v), nil
}

func clip(s string) string {
	if r := []rune(s); len(r) > 40 {
		return string(r[:40]) + "…"
	}
	return s
}

func stringJSON(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}

// textParams are a wrapper's parameters, sent as strings; empty optional
// ones are left out.
func textParams(required map[string]string, optional map[string]string) map[string]json.RawMessage {
	p := map[string]json.RawMessage{}
	for k, v := range required {
		p[k] = stringJSON(v)
	}
	for k, v := range optional {
		if v != "" {
			p[k] = stringJSON(v)
		}
	}
	return p
}

func runSendEmail(c *client, args []string, stdout io.Writer) error {
	return runTool(c, "email", "send-message", textParams(map[string]string{"to": args[0], "subject": args[1], "body": args[2]}, nil), stdout)
}

func runSendSlackMessage(c *client, args []string, stdout io.Writer) error {
	return runTool(c, "slack", "send-message", textParams(map[string]string{"text": args[0]}, map[string]string{"channel": optArg(args, 1)}), stdout)
}

func runSendDiscordMessage(c *client, args []string, stdout io.Writer) error {
	return runTool(c, "discord", "send-message", textParams(map[string]string{"content": args[0]}, nil), stdout)
}

func runSendTeamsMessage(c *client, args []string, stdout io.Writer) error {
	return runTool(c, "teams", "send-message", textParams(map[string]string{"text": args[0]}, map[string]string{"title": optArg(args, 1)}), stdout)
}

func optArg(args []string, i int) string {
	if i < len(args) {
		return args[i]
	}
	return ""
}

// runTool sends a tool action, prints its result and fails when the action
// did (success not true).
func runTool(c *client, tool, action string, params map[string]json.RawMessage, stdout io.Writer) error {
	body, err := json.Marshal(struct {
		Tool   string                     `json:"tool"`
		Action string                     `json:"action,omitempty"`
		Params map[string]json.RawMessage `json:"params"`
	}{tool, action, params})
	if err != nil {
		return err
	}
	data, err := c.callTool(body)
	if err != nil {
		return err
	}
	var res struct {
		Success *bool           `json:"success"`
		Error   json.RawMessage `json:"error"`
	}
	if len(data) == 0 || isNull(data) || bytes.TrimSpace(data)[0] != '{' || json.Unmarshal(data, &res) != nil {
		return errors.New("invalid reply from runtime API: no tool action result")
	}
	if err := printJSON(stdout, data); err != nil {
		return err
	}
	if res.Success != nil && *res.Success {
		return nil
	}
	var msg string
	if len(res.Error) > 0 && !isNull(res.Error) {
		if json.Unmarshal(res.Error, &msg) != nil {
			msg = string(res.Error)
		}
	}
	if msg == "" {
		return errors.New("tool action failed")
	}
	return errors.New("tool action failed: " + msg)
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
	toolHTTP            *http.Client // for tool actions
	stdin               io.Reader
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
	hc, toolHC := c.Client, c.Client
	if hc == nil {
		hc, toolHC = defaultHTTP(DefaultTimeout), defaultHTTP(ToolTimeout)
	}
	stdin := c.Stdin
	if stdin == nil {
		stdin = os.Stdin
	}
	return &client{
		base:     strings.TrimRight(base, "/"),
		execID:   execID,
		token:    token,
		backoff:  backoff,
		http:     hc,
		toolHTTP: toolHC,
		stdin:    stdin,
	}, nil
}

func defaultHTTP(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
			TLSHandshakeTimeout: 10 * time.Second,
			DisableKeepAlives:   true,
		},
	}
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

// refused reports whether a failed attempt never reached the server: the
// connection was refused. Only such an attempt of a tool action is retried.
func refused(err error) bool {
	var te *transportError
	return errors.As(err, &te) && errors.Is(te.err, syscall.ECONNREFUSED)
}

type transportError struct{ err error }

func (e *transportError) Error() string { return e.err.Error() }
func (e *transportError) Unwrap() error { return e.err }

// call sends one request of the execution with retries and returns the
// reply's data.
func (c *client) call(method, path string, body []byte) (json.RawMessage, error) {
	return c.send(c.http, method, c.base+"/executions/"+EscapeKey(c.execID)+path, body, retryable)
}

// callTool sends a tool action (POST /tool-actions/execute) and returns the
// reply's data, the action's result. It is retried only when the
// connection was refused: after any other failure (a 5xx, a timeout, a
// connection lost) the action may have run.
func (c *client) callTool(body []byte) (json.RawMessage, error) {
	return c.send(c.toolHTTP, http.MethodPost, c.base+"/tool-actions/execute", body, refused)
}

// send makes attempts while retry says so, up to the backoff's length.
func (c *client) send(hc *http.Client, method, target string, body []byte, retry func(error) bool) (json.RawMessage, error) {
	var err error
	attempt := 0
	for ; ; attempt++ {
		var data json.RawMessage
		data, err = c.once(hc, method, target, body)
		if err == nil {
			return data, nil
		}
		if !retry(err) || attempt >= len(c.backoff) {
			break
		}
		time.Sleep(c.backoff[attempt])
	}
	var te *transportError
	if errors.As(err, &te) {
		if attempt == 0 {
			return nil, fmt.Errorf("%s %s: %v", method, target, te.err)
		}
		return nil, fmt.Errorf("%s %s: %v (after %d attempts)", method, target, te.err, attempt+1)
	}
	return nil, err
}

func (c *client) once(hc *http.Client, method, target string, body []byte) (json.RawMessage, error) {
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
	resp, err := hc.Do(req)
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
