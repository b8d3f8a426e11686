package api

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Canonical runtime names of SCRIPT jobs (Script.Runtime).
const (
	RuntimeBash   = "bash"
	RuntimePython = "python"
	RuntimeNode   = "node"
)

// Wire job types (Job.Type).
const (
	WireContainer = "container"
	WireSSH       = "ssh"
)

// envAAD is the additional data of the deployed backend's at-rest
// encryption of environment values (contract §7).
const envAAD = "cronium-server-encryption"

// DecodeOptions tune DecodeQueue.
type DecodeOptions struct {
	// EnvKey is the deployed backend's ENCRYPTION_KEY (32 bytes, see
	// ParseEnvKey), or nil. When set, every environment value that decrypts
	// with it is replaced by its plaintext; others pass unchanged.
	EnvKey []byte
}

// FieldError is one bad field of a job.
type FieldError struct {
	Field   string // dotted path as on the wire, e.g. "execution.timeout"
	Problem string
}

func (e FieldError) Error() string { return e.Field + ": " + e.Problem }

// DecodeError says why one job of a batch could not be decoded. It names
// every bad field found, never a secret (environment values, passwords,
// keys are not quoted).
type DecodeError struct {
	JobID  string // empty when the id itself is unreadable
	Fields []FieldError
}

func (e *DecodeError) Error() string {
	var b strings.Builder
	b.WriteString("malformed job")
	if e.JobID != "" {
		b.WriteString(" " + e.JobID)
	}
	switch len(e.Fields) {
	case 0:
		return b.String()
	case 1:
		b.WriteString(": ")
	default:
		fmt.Fprintf(&b, " (%d bad fields): ", len(e.Fields))
	}
	for i, f := range e.Fields {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(f.Error())
	}
	return b.String()
}

// ParseEnvKey parses the backend's ENCRYPTION_KEY: 64 hex characters.
func ParseEnvKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if len(s) != 64 {
		return nil, fmt.Errorf("environment encryption key: want 64 hex characters, got %d characters", len(s))
	}
	k, err := hex.DecodeString(s)
	if err != nil {
		// Do not quote the key.
		return nil, errors.New("environment encryption key: not hexadecimal")
	}
	return k, nil
}

// DecodeQueue decodes the body of GET jobs/queue. Only an unreadable
// envelope is an error; every job is then decoded on its own, and a
// malformed one becomes a QueueItem with Err set (a *DecodeError naming
// every bad field) and Job nil, so the caller can fail it alone. A job id
// that appears twice in one batch is kept once (the first), its Repeats
// counting the copies dropped.
func DecodeQueue(body []byte, opts DecodeOptions) ([]QueueItem, error) {
	var aead cipher.AEAD
	if opts.EnvKey != nil {
		if len(opts.EnvKey) != 32 {
			return nil, fmt.Errorf("environment encryption key: want 32 bytes, got %d", len(opts.EnvKey))
		}
		block, err := aes.NewCipher(opts.EnvKey)
		if err != nil {
			return nil, fmt.Errorf("environment encryption key: %v", err)
		}
		aead, err = cipher.NewGCMWithNonceSize(block, 16)
		if err != nil {
			return nil, fmt.Errorf("environment encryption key: %v", err)
		}
	}

	var env map[string]json.RawMessage
	if err := json.Unmarshal(body, &env); err != nil || env == nil {
		return nil, fmt.Errorf("queue response: not a JSON object %s", describeJSONErr(err))
	}
	rawJobs, ok := env["jobs"]
	if !ok {
		return nil, errors.New(`queue response: no "jobs" array`)
	}
	var jobs []json.RawMessage
	if err := json.Unmarshal(rawJobs, &jobs); err != nil {
		return nil, errors.New(`queue response: "jobs" is not an array`)
	}
	items := make([]QueueItem, 0, len(jobs))
	seen := make(map[string]int, len(jobs)) // index in items
	for _, raw := range jobs {
		it := decodeJob(raw, aead)
		if it.ID != "" {
			if i, dup := seen[it.ID]; dup {
				items[i].Repeats++
				continue
			}
			seen[it.ID] = len(items)
		}
		items = append(items, it)
	}
	return items, nil
}

func describeJSONErr(err error) string {
	if err == nil {
		return ""
	}
	return "(" + err.Error() + ")"
}

// jobDecoder collects the problems of one job.
type jobDecoder struct {
	errs []FieldError
}

func (d *jobDecoder) bad(field, format string, args ...any) {
	d.errs = append(d.errs, FieldError{Field: field, Problem: fmt.Sprintf(format, args...)})
}

// obj is a decoded JSON object with its fields kept raw.
type obj map[string]json.RawMessage

// get returns the field, treating null as absent.
func (o obj) get(k string) (json.RawMessage, bool) {
	r, ok := o[k]
	if !ok || isNull(r) {
		return nil, false
	}
	return r, true
}

func isNull(r json.RawMessage) bool {
	return len(r) == 0 || string(bytes.TrimSpace(r)) == "null"
}

// object decodes r as a JSON object or reports field as bad.
func (d *jobDecoder) object(field string, r json.RawMessage) (obj, bool) {
	var o obj
	if err := json.Unmarshal(r, &o); err != nil || o == nil {
		d.bad(field, "not a JSON object (%s)", kindOf(r))
		return nil, false
	}
	return o, true
}

// kindOf names the JSON kind of r for messages (never its content).
func kindOf(r json.RawMessage) string {
	t := bytes.TrimSpace(r)
	if len(t) == 0 {
		return "empty"
	}
	switch t[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}

// quote shows a short non-secret value in an error message.
func quote(s string) string {
	const max = 40
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "..."
	}
	return strconv.Quote(s)
}

// str decodes a JSON string.
func str(r json.RawMessage) (string, bool) {
	var s string
	if len(r) == 0 || r[0] != '"' {
		t := bytes.TrimSpace(r)
		if len(t) == 0 || t[0] != '"' {
			return "", false
		}
		r = t
	}
	if err := json.Unmarshal(r, &s); err != nil {
		return "", false
	}
	return s, true
}

// text decodes a string as itself and any other JSON value as its compact
// JSON text (8080 → "8080", true → "true", ["a", "b"] → `["a","b"]`).
func text(r json.RawMessage) string {
	if s, ok := str(r); ok {
		return s
	}
	var b bytes.Buffer
	if err := json.Compact(&b, r); err != nil {
		return string(bytes.TrimSpace(r))
	}
	return b.String()
}

// idText decodes an identifier sent as a string or a number.
func idText(r json.RawMessage) (string, bool) {
	if s, ok := str(r); ok {
		return s, true
	}
	t := bytes.TrimSpace(r)
	if len(t) == 0 || !(t[0] == '-' || (t[0] >= '0' && t[0] <= '9')) {
		return "", false
	}
	if n, ok := intOf(string(t)); ok {
		return strconv.FormatInt(n, 10), true
	}
	return string(t), true
}

// intOf parses an integer written as an integer or as an integral float
// ("3e10", "30000000000.0").
func intOf(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f != math.Trunc(f) || f >= 9.2e18 || f <= -9.2e18 {
		return 0, false
	}
	return int64(f), true
}

// number is the text of a JSON number, or of a JSON string holding one
// (numeric strings are accepted everywhere a number is).
func number(r json.RawMessage) (string, bool) {
	if s, ok := str(r); ok {
		s = strings.TrimSpace(s)
		if s == "" {
			return "", false
		}
		if _, err := strconv.ParseFloat(s, 64); err != nil {
			return "", false
		}
		return s, true
	}
	t := bytes.TrimSpace(r)
	if len(t) == 0 || !(t[0] == '-' || (t[0] >= '0' && t[0] <= '9')) {
		return "", false
	}
	return string(t), true
}

// integer decodes an integer field (number or numeric string); min is
// the smallest value allowed.
func (d *jobDecoder) integer(field string, r json.RawMessage, min int64) (int64, bool) {
	s, ok := number(r)
	if !ok {
		d.bad(field, "want an integer, got %s", describe(r))
		return 0, false
	}
	n, ok := intOf(s)
	if !ok {
		d.bad(field, "want an integer, got %s", quote(s))
		return 0, false
	}
	if n < min {
		d.bad(field, "must be at least %d, got %d", min, n)
		return 0, false
	}
	return n, true
}

// float decodes a non-negative number field.
func (d *jobDecoder) float(field string, r json.RawMessage) (float64, bool) {
	s, ok := number(r)
	if !ok {
		d.bad(field, "want a number, got %s", describe(r))
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		d.bad(field, "want a number, got %s", quote(s))
		return 0, false
	}
	if f < 0 {
		d.bad(field, "must not be negative, got %s", s)
		return 0, false
	}
	return f, true
}

// intField decodes an optional integer field of o (see integer); false
// when it is absent or bad.
func (d *jobDecoder) intField(field string, o obj, key string, min int64) (int64, bool) {
	r, ok := o.get(key)
	if !ok {
		return 0, false
	}
	return d.integer(field, r, min)
}

// floatField decodes an optional non-negative number field of o (see
// float); false when it is absent or bad.
func (d *jobDecoder) floatField(field string, o obj, key string) (float64, bool) {
	r, ok := o.get(key)
	if !ok {
		return 0, false
	}
	return d.float(field, r)
}

// describe shows a scalar's value (strings quoted and shortened) or the
// kind of a composite value, for fields that are never secret.
func describe(r json.RawMessage) string {
	if s, ok := str(r); ok {
		return quote(s)
	}
	switch k := kindOf(r); k {
	case "an object", "an array", "empty":
		return k
	default:
		return quote(string(bytes.TrimSpace(r)))
	}
}

// stringField decodes an optional string field; any other scalar is taken
// as its JSON text, objects and arrays are an error.
func (d *jobDecoder) stringField(field string, o obj, key string) string {
	r, ok := o.get(key)
	if !ok {
		return ""
	}
	if s, ok := str(r); ok {
		return s
	}
	switch kindOf(r) {
	case "an object", "an array":
		d.bad(field, "want a string, got %s", kindOf(r))
		return ""
	}
	return text(r)
}

// timeOf parses a timestamp as the backend writes them: RFC 3339 (with or
// without fraction), PostgreSQL's "2006-01-02 15:04:05[.fff][-07]" or epoch
// milliseconds.
func timeOf(r json.RawMessage) (time.Time, bool) {
	if s, ok := str(r); ok {
		s = strings.TrimSpace(s)
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999Z07", "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999"} {
			if t, err := time.Parse(layout, s); err == nil {
				return t.UTC(), true
			}
		}
		return time.Time{}, false
	}
	if s, ok := number(r); ok {
		if ms, ok := intOf(s); ok {
			return time.UnixMilli(ms).UTC(), true
		}
	}
	return time.Time{}, false
}

func (d *jobDecoder) timeField(field string, o obj, key string) time.Time {
	r, ok := o.get(key)
	if !ok {
		return time.Time{}
	}
	t, ok := timeOf(r)
	if !ok {
		d.bad(field, "not a timestamp: %s", describe(r))
	}
	return t
}

func decodeJob(raw json.RawMessage, aead cipher.AEAD) QueueItem {
	d := &jobDecoder{}
	var top obj
	if err := json.Unmarshal(raw, &top); err != nil || top == nil {
		return QueueItem{Err: &DecodeError{Fields: []FieldError{{Field: "job", Problem: "not a JSON object (" + kindOf(raw) + ")"}}}}
	}
	job := &Job{}

	if r, ok := top.get("id"); !ok {
		d.bad("id", "missing")
	} else if id, ok := idText(r); !ok || strings.TrimSpace(id) == "" {
		d.bad("id", "want a non-empty string, got %s", describe(r))
	} else {
		job.ID = id
	}

	if r, ok := top.get("type"); !ok {
		d.bad("type", `missing (want "container" or "ssh")`)
	} else if s, ok := str(r); !ok {
		d.bad("type", `want "container" or "ssh", got %s`, describe(r))
	} else {
		switch t := strings.ToLower(strings.TrimSpace(s)); t {
		case WireContainer, WireSSH:
			job.Type = t
		default:
			d.bad("type", `want "container" or "ssh", got %s`, quote(s))
		}
	}
	if n, ok := d.intField("priority", top, "priority", math.MinInt32); ok {
		job.Priority = int(min(n, math.MaxInt32))
	}
	if n, ok := d.intField("attempts", top, "attempts", 0); ok {
		job.Attempts = int(min(n, math.MaxInt32))
	}
	job.CreatedAt = d.timeField("createdAt", top, "createdAt")
	job.ScheduledFor = d.timeField("scheduledFor", top, "scheduledFor")

	// metadata first: originalType decides what execution must hold.
	var meta obj
	if r, ok := top.get("metadata"); ok {
		meta, _ = d.object("metadata", r)
	}
	d.metadata(job, meta, r0(top, "metadata"))

	var exec obj
	if r, ok := top.get("execution"); !ok {
		d.bad("execution", "missing")
	} else {
		exec, _ = d.object("execution", r)
	}
	d.execution(job, exec, aead)

	// The backend job type, given or inferred.
	origField := "metadata.originalType"
	given := ""
	if meta != nil {
		if r, ok := meta.get("originalType"); ok {
			if s, ok := str(r); ok {
				given = s
			} else {
				d.bad(origField, "want a string, got %s", describe(r))
				given = "?"
			}
		}
	}
	switch t := strings.ToUpper(strings.TrimSpace(given)); {
	case t == TypeScript || t == TypeHTTP || t == TypeToolAction:
		job.OriginalType = t
	case given == "?":
	case given != "":
		d.bad(origField, "unknown job type %s (want SCRIPT, HTTP_REQUEST or TOOL_ACTION)", quote(given))
	case exec == nil:
		// execution already reported
	case has(exec, "script") && !has(exec, "http"):
		job.OriginalType = TypeScript
	case has(exec, "http") && !has(exec, "script"):
		job.OriginalType = TypeHTTP
	case has(exec, "toolAction") && !has(exec, "script") && !has(exec, "http"):
		job.OriginalType = TypeToolAction
	default:
		d.bad(origField, "missing, and execution holds neither exactly one of script or http nor a toolAction")
	}
	if exec != nil {
		switch job.OriginalType {
		case TypeScript:
			if !has(exec, "script") {
				d.bad("execution.script", "missing (required for a SCRIPT job)")
			}
		case TypeHTTP:
			if !has(exec, "http") {
				d.bad("execution.http", "missing (required for an HTTP_REQUEST job)")
			}
		}
	}

	// An ssh job must name a server somehow.
	if job.Type == WireSSH && exec != nil && job.Target.ServerID == "" && job.Target.Server == nil && len(job.Metadata.Servers) == 0 {
		if !d.hasErrPrefix("execution.target") && !d.hasErrPrefix("metadata.servers") {
			d.bad("execution.target", "an ssh job names no server (serverId, serverDetails or metadata.servers)")
		}
	}
	if job.Type != "" && job.Target.Type == "" {
		if job.Type == WireSSH {
			job.Target.Type = "server"
		} else {
			job.Target.Type = "local"
		}
	}

	if len(d.errs) > 0 {
		return QueueItem{ID: job.ID, Err: &DecodeError{JobID: job.ID, Fields: d.errs}}
	}
	return QueueItem{ID: job.ID, Job: job}
}

func r0(o obj, k string) json.RawMessage { r, _ := o.get(k); return r }

func has(o obj, k string) bool { _, ok := o.get(k); return ok }

func (d *jobDecoder) hasErrPrefix(p string) bool {
	for _, e := range d.errs {
		if strings.HasPrefix(e.Field, p) {
			return true
		}
	}
	return false
}

func (d *jobDecoder) metadata(job *Job, meta obj, raw json.RawMessage) {
	job.Metadata.Raw = map[string]any{}
	if meta == nil {
		return
	}
	var all map[string]any
	if err := json.Unmarshal(raw, &all); err == nil && all != nil {
		job.Metadata.Raw = all
	}
	m := &job.Metadata
	m.EventName = d.stringField("metadata.eventName", meta, "eventName")
	m.TriggeredBy = d.stringField("metadata.triggeredBy", meta, "triggeredBy")
	if r, ok := meta.get("eventId"); ok {
		if s, ok := idText(r); ok {
			m.EventID = s
		} else {
			d.bad("metadata.eventId", "want a number or a string, got %s", describe(r))
		}
	}
	if r, ok := meta.get("userId"); ok {
		if s, ok := idText(r); ok {
			m.UserID = s
		} else {
			d.bad("metadata.userId", "want a string, got %s", describe(r))
		}
	}
	m.LogID, _ = d.intField("metadata.logId", meta, "logId", math.MinInt64)
	if r, ok := meta.get("multiServer"); ok {
		switch strings.ToLower(text(r)) {
		case "true", "1":
			m.MultiServer = true
		case "false", "0", "":
		default:
			d.bad("metadata.multiServer", "want a boolean, got %s", describe(r))
		}
	}
	if r, ok := meta.get("servers"); ok {
		var list []json.RawMessage
		if err := json.Unmarshal(r, &list); err != nil {
			d.bad("metadata.servers", "want an array, got %s", kindOf(r))
		} else {
			for i, sr := range list {
				if s := d.server(fmt.Sprintf("metadata.servers[%d]", i), sr); s != nil {
					m.Servers = append(m.Servers, *s)
				}
			}
		}
	}
}

// server decodes one SSH server description. Secrets are never quoted.
func (d *jobDecoder) server(field string, r json.RawMessage) *Server {
	o, ok := d.object(field, r)
	if !ok {
		return nil
	}
	n := len(d.errs)
	s := &Server{}
	if r, ok := o.get("id"); ok {
		if id, ok := idText(r); ok {
			s.ID = id
		} else {
			d.bad(field+".id", "want a string or a number, got %s", kindOf(r))
		}
	}
	s.Name = d.stringField(field+".name", o, "name")
	s.Host = strings.TrimSpace(d.stringField(field+".host", o, "host"))
	if s.Host == "" && !d.hasErrPrefix(field+".host") {
		// "address" is what servers/{id} calls it.
		s.Host = strings.TrimSpace(d.stringField(field+".address", o, "address"))
	}
	if s.Host == "" {
		d.bad(field+".host", "missing")
	}
	if p, ok := d.intField(field+".port", o, "port", 0); ok {
		if p > 65535 {
			d.bad(field+".port", "out of range: %d", p)
		} else {
			s.Port = int(p)
		}
	}
	s.Username = d.stringField(field+".username", o, "username")
	if r, ok := o.get("privateKey"); ok {
		if v, ok := str(r); ok {
			s.PrivateKey = v
		} else {
			d.bad(field+".privateKey", "want a string, got %s", kindOf(r))
		}
	}
	if r, ok := o.get("password"); ok {
		if v, ok := str(r); ok {
			s.Password = v
		} else {
			d.bad(field+".password", "want a string, got %s", kindOf(r))
		}
	}
	if len(d.errs) > n {
		return nil
	}
	return s
}

func (d *jobDecoder) execution(job *Job, exec obj, aead cipher.AEAD) {
	job.Input = json.RawMessage("null")
	if exec == nil {
		return
	}
	if r, ok := exec.get("timeout"); ok {
		job.Timeout = d.timeout(r)
	}
	if r, ok := exec.get("inputData"); ok {
		job.Input = append(json.RawMessage(nil), bytes.TrimSpace(r)...)
	}
	if r, ok := exec.get("environment"); ok {
		d.environment(job, r, aead)
	}
	if r, ok := exec.get("script"); ok {
		job.Script = d.script(r)
	}
	if r, ok := exec.get("http"); ok {
		job.HTTP = d.http(r)
	}
	if r, ok := exec.get("toolAction"); ok {
		job.ToolAction = d.toolAction(r)
	}
	if r, ok := exec.get("resources"); ok {
		job.Resources = d.resources(r)
	}
	if r, ok := exec.get("retryPolicy"); ok {
		job.Retry = d.retry(r)
	}
	if r, ok := exec.get("target"); ok {
		d.target(job, r)
	}
}

// timeout decodes execution.timeout: an integer of nanoseconds, as a JSON
// number or a string holding one; negative or non-numeric is an error.
func (d *jobDecoder) timeout(r json.RawMessage) time.Duration {
	const f = "execution.timeout"
	s, ok := number(r)
	if !ok {
		d.bad(f, "want an integer number of nanoseconds, got %s", describe(r))
		return 0
	}
	n, ok := intOf(s)
	if !ok {
		d.bad(f, "want an integer number of nanoseconds, got %s", quote(s))
		return 0
	}
	if n < 0 {
		d.bad(f, "must not be negative, got %d", n)
		return 0
	}
	return time.Duration(n)
}

func (d *jobDecoder) environment(job *Job, r json.RawMessage, aead cipher.AEAD) {
	const f = "execution.environment"
	o, ok := d.object(f, r)
	if !ok {
		return
	}
	keys := make([]string, 0, len(o))
	for k := range o {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	env := make(map[string]string, len(o))
	for _, k := range keys {
		v := o[k]
		if k == "" || strings.ContainsAny(k, "=\x00") {
			d.bad(f, "invalid variable name %s", quote(k))
			continue
		}
		s, isString := str(v)
		if !isString {
			s = text(v)
		} else if aead != nil {
			if p, ok := decryptEnv(aead, s); ok {
				s = p
				job.DecryptedEnv = append(job.DecryptedEnv, k)
			} else if looksEncrypted(s) {
				job.EncryptedEnv = append(job.EncryptedEnv, k)
			}
		} else if looksEncrypted(s) {
			job.EncryptedEnv = append(job.EncryptedEnv, k)
		}
		if strings.IndexByte(s, 0) >= 0 {
			d.bad(f+"."+k, "value contains a NUL byte")
			continue
		}
		env[k] = s
	}
	job.Environment = env
}

// decryptEnv decrypts one value of the deployed backend's at-rest
// encryption: base64(iv(16) || ciphertext || tag(16)), AES-256-GCM with
// additional data "cronium-server-encryption". GCM authenticates, so a
// plain value never decrypts by accident.
func decryptEnv(aead cipher.AEAD, s string) (string, bool) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) < 16+aead.Overhead() {
		return "", false
	}
	p, err := aead.Open(nil, b[:16], b[16:], []byte(envAAD))
	if err != nil {
		return "", false
	}
	return string(p), true
}

// looksEncrypted tells whether a value looks like that ciphertext: padded
// standard base64 of at least 33 bytes (iv, tag and one byte of plaintext)
// whose bytes are not text (random bytes almost never are; a base64
// encoding of a word, a JSON document or a PEM body is).
func looksEncrypted(s string) bool {
	if len(s) < 44 || len(s)%4 != 0 {
		return false
	}
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || len(b) < 33 {
		return false
	}
	printable := 0
	for _, c := range b {
		if c >= 0x20 && c < 0x7f || c == '\n' || c == '\r' || c == '\t' {
			printable++
		}
	}
	return printable*10 < len(b)*9 // under 90 % printable ASCII
}

func (d *jobDecoder) script(r json.RawMessage) *Script {
	const f = "execution.script"
	o, ok := d.object(f, r)
	if !ok {
		return nil
	}
	n := len(d.errs)
	s := &Script{}
	if r, ok := o.get("type"); !ok {
		d.bad(f+".type", "missing (want BASH, PYTHON or NODEJS)")
	} else if t, ok := str(r); !ok {
		d.bad(f+".type", "want BASH, PYTHON or NODEJS, got %s", describe(r))
	} else {
		switch strings.ToUpper(strings.TrimSpace(t)) {
		case "BASH":
			s.Runtime = RuntimeBash
		case "PYTHON":
			s.Runtime = RuntimePython
		case "NODEJS", "NODE":
			s.Runtime = RuntimeNode
		default:
			d.bad(f+".type", "unknown script type %s (want BASH, PYTHON or NODEJS)", quote(t))
		}
	}
	if r, ok := o.get("content"); !ok {
		d.bad(f+".content", "missing")
	} else if c, ok := str(r); !ok {
		d.bad(f+".content", "want a string, got %s", kindOf(r))
	} else {
		s.Content = c
	}
	s.WorkingDirectory = d.stringField(f+".workingDirectory", o, "workingDirectory")
	if len(d.errs) > n {
		return nil
	}
	return s
}

func (d *jobDecoder) http(r json.RawMessage) *HTTPRequest {
	const f = "execution.http"
	o, ok := d.object(f, r)
	if !ok {
		return nil
	}
	n := len(d.errs)
	h := &HTTPRequest{Method: "GET"}
	if r, ok := o.get("method"); ok {
		m, ok := str(r)
		m = strings.ToUpper(strings.TrimSpace(m))
		if !ok || m == "" || strings.IndexFunc(m, func(c rune) bool { return c < 'A' || c > 'Z' }) >= 0 {
			d.bad(f+".method", "not an HTTP method: %s", describe(r))
		} else {
			h.Method = m
		}
	}
	if r, ok := o.get("url"); !ok {
		d.bad(f+".url", "missing")
	} else if s, ok := str(r); !ok {
		d.bad(f+".url", "want a string, got %s", kindOf(r))
	} else if u, err := url.Parse(strings.TrimSpace(s)); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		d.bad(f+".url", "want an absolute http or https URL")
	} else {
		h.URL = strings.TrimSpace(s)
	}
	if r, ok := o.get("headers"); ok {
		h.Headers = d.headers(f+".headers", r)
	}
	if r, ok := o.get("body"); ok {
		h.Body = text(r) // a string; an object or array is sent as its JSON text
	}
	if len(d.errs) > n {
		return nil
	}
	return h
}

// headers decodes an object {"Name":"value"} (in the order written) or the
// deployed backend's array [{"key":"Name","value":"v"}]. Header values are
// never quoted in errors (they may carry credentials).
func (d *jobDecoder) headers(f string, r json.RawMessage) [][2]string {
	out := [][2]string{}
	switch kindOf(r) {
	case "an array":
		var list []json.RawMessage
		if err := json.Unmarshal(r, &list); err != nil {
			d.bad(f, "not a JSON array")
			return nil
		}
		for i, e := range list {
			ef := fmt.Sprintf("%s[%d]", f, i)
			o, ok := d.object(ef, e)
			if !ok {
				continue
			}
			kr, ok := o.get("key")
			if !ok {
				kr, ok = o.get("name")
			}
			k, _ := str(kr)
			if !ok || strings.TrimSpace(k) == "" {
				d.bad(ef+".key", "missing")
				continue
			}
			v := ""
			if vr, ok := o.get("value"); ok {
				v = text(vr)
			}
			out = append(out, [2]string{strings.TrimSpace(k), v})
		}
	case "an object":
		dec := json.NewDecoder(bytes.NewReader(r))
		if _, err := dec.Token(); err != nil {
			d.bad(f, "not a JSON object")
			return nil
		}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				d.bad(f, "not a JSON object")
				return nil
			}
			k, _ := kt.(string)
			var v json.RawMessage
			if err := dec.Decode(&v); err != nil {
				d.bad(f, "not a JSON object")
				return nil
			}
			if strings.TrimSpace(k) == "" {
				d.bad(f, "empty header name")
				continue
			}
			if isNull(v) {
				continue
			}
			out = append(out, [2]string{strings.TrimSpace(k), text(v)})
		}
	default:
		d.bad(f, "want an object or an array of {key, value}, got %s", kindOf(r))
		return nil
	}
	for _, kv := range out {
		if strings.ContainsAny(kv[0], " \t\r\n:") || strings.ContainsAny(kv[1], "\r\n\x00") {
			d.bad(f, "invalid header %s", quote(kv[0]))
		}
	}
	return out
}

func (d *jobDecoder) toolAction(r json.RawMessage) *ToolAction {
	const f = "execution.toolAction"
	o, ok := d.object(f, r)
	if !ok {
		return nil
	}
	t := &ToolAction{ToolType: d.stringField(f+".toolType", o, "toolType")}
	if cr, ok := o.get("config"); ok {
		if c, ok := d.object(f+".config", cr); ok {
			t.Config = append(json.RawMessage(nil), bytes.TrimSpace(cr)...)
			t.ActionID = d.stringField(f+".config.actionId", c, "actionId")
		}
	}
	return t
}

func (d *jobDecoder) resources(r json.RawMessage) *Resources {
	const f = "execution.resources"
	o, ok := d.object(f, r)
	if !ok {
		return nil
	}
	res := &Resources{}
	res.CPU, _ = d.floatField(f+".cpuLimit", o, "cpuLimit")
	res.Memory, _ = d.intField(f+".memoryLimit", o, "memoryLimit", 0)
	res.Disk, _ = d.intField(f+".diskLimit", o, "diskLimit", 0)
	res.Pids, _ = d.intField(f+".pidsLimit", o, "pidsLimit", 0)
	return res
}

func (d *jobDecoder) retry(r json.RawMessage) *RetryPolicy {
	const f = "execution.retryPolicy"
	o, ok := d.object(f, r)
	if !ok {
		return nil
	}
	p := &RetryPolicy{}
	if n, ok := d.intField(f+".maxAttempts", o, "maxAttempts", 0); ok {
		p.MaxAttempts = int(min(n, math.MaxInt32))
	}
	if r, ok := o.get("backoffType"); ok {
		s, _ := str(r)
		switch t := strings.ToLower(strings.TrimSpace(s)); t {
		case "exponential", "linear", "fixed", "":
			p.BackoffType = t
		default:
			d.bad(f+".backoffType", "want exponential, linear or fixed, got %s", describe(r))
		}
	}
	if s, ok := d.floatField(f+".backoffDelay", o, "backoffDelay"); ok {
		if s > (math.MaxInt64/float64(time.Second))-1 {
			d.bad(f+".backoffDelay", "too large")
		} else {
			p.Delay = time.Duration(s * float64(time.Second))
		}
	}
	return p
}

func (d *jobDecoder) target(job *Job, r json.RawMessage) {
	const f = "execution.target"
	o, ok := d.object(f, r)
	if !ok {
		return
	}
	if r, ok := o.get("type"); ok {
		s, _ := str(r)
		switch t := strings.ToLower(strings.TrimSpace(s)); t {
		case "local", "server":
			job.Target.Type = t
		default:
			d.bad(f+".type", `want "local" or "server", got %s`, describe(r))
		}
	}
	if r, ok := o.get("serverId"); ok {
		if s, ok := idText(r); ok {
			job.Target.ServerID = strings.TrimSpace(s)
		} else {
			d.bad(f+".serverId", "want a string or a number, got %s", describe(r))
		}
	}
	if r, ok := o.get("serverDetails"); ok {
		job.Target.Server = d.server(f+".serverDetails", r)
		if s := job.Target.Server; s != nil && job.Target.ServerID == "" {
			job.Target.ServerID = s.ID
		}
	}
}
