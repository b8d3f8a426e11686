package api

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cronium/cronium-agent/internal/contracttest"
)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	return contracttest.Fixture(t, name)
}

func decodeOK(t *testing.T, body []byte, opts DecodeOptions) []QueueItem {
	t.Helper()
	items, err := DecodeQueue(body, opts)
	if err != nil {
		t.Fatalf("DecodeQueue: %v", err)
	}
	return items
}

func TestDecodeSingleBash(t *testing.T) {
	items := decodeOK(t, fixture(t, "queue-single-bash.json"), DecodeOptions{})
	if len(items) != 1 || items[0].Err != nil {
		t.Fatalf("items = %+v", items)
	}
	j := items[0].Job
	want := &Job{
		ID: "job_Ab3dE6gH9jK2", Type: "container", OriginalType: TypeScript, Priority: 5,
		CreatedAt:    time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC),
		ScheduledFor: time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC),
		Environment:  map[string]string{"GREETING": "hello"},
		Timeout:      30 * time.Second,
		Input:        json.RawMessage("{}"),
		Script:       &Script{Runtime: "bash", Content: "echo \"$GREETING from bash\"\nexit 0\n"},
		Target:       Target{Type: "local"},
		Metadata: Metadata{EventName: "say hello", EventID: "42", UserID: "user_7Qx", TriggeredBy: "manual", LogID: 101,
			Raw: map[string]any{"eventName": "say hello", "triggeredBy": "manual", "logId": 101.0, "originalType": "SCRIPT", "eventId": 42.0, "userId": "user_7Qx"}},
	}
	if !reflect.DeepEqual(j, want) {
		t.Errorf("job =\n%#v\nwant\n%#v", *j, *want)
		gj, _ := json.Marshal(j)
		wj, _ := json.Marshal(want)
		t.Errorf("%s\n%s", gj, wj)
	}
	if items[0].ID != j.ID {
		t.Errorf("item id %q", items[0].ID)
	}
}

func TestDecodeMixedBatch(t *testing.T) {
	items := decodeOK(t, fixture(t, "queue-mixed-batch.json"), DecodeOptions{})
	if len(items) != 5 {
		t.Fatalf("%d items, want 5", len(items))
	}
	jobs := map[string]*Job{}
	var bad []QueueItem
	for _, it := range items {
		if (it.Job == nil) == (it.Err == nil) {
			t.Fatalf("item %q: want exactly one of Job and Err: %+v", it.ID, it)
		}
		if it.Err != nil {
			bad = append(bad, it)
			continue
		}
		jobs[it.ID] = it.Job
	}
	if len(jobs) != 4 || len(bad) != 1 {
		t.Fatalf("%d jobs and %d malformed, want 4 and 1", len(jobs), len(bad))
	}

	// The malformed job: its id is kept, and the error names every bad field.
	b := bad[0]
	if b.ID != "job_Bad000000005" {
		t.Errorf("malformed item id %q", b.ID)
	}
	var de *DecodeError
	if !errors.As(b.Err, &de) {
		t.Fatalf("error %T, want *DecodeError", b.Err)
	}
	fields := map[string]bool{}
	for _, f := range de.Fields {
		fields[f.Field] = true
	}
	if !reflect.DeepEqual(fields, map[string]bool{"execution.timeout": true, "execution.script.type": true}) {
		t.Errorf("bad fields %v, want execution.timeout and execution.script.type only", de.Fields)
	}
	msg := b.Err.Error()
	for _, s := range []string{"job_Bad000000005", "execution.timeout", "thirty seconds", "execution.script.type", "RUBY"} {
		if !strings.Contains(msg, s) {
			t.Errorf("error %q does not mention %q", msg, s)
		}
	}
	if strings.Contains(msg, "environment") {
		t.Errorf("error %q: non-string environment values are converted, not errors", msg)
	}

	py := jobs["job_Py0000000001"]
	if py.Script.Runtime != "python" || py.Timeout != 120*time.Second || py.Priority != 10 {
		t.Errorf("python job %v", py)
	}
	if !reflect.DeepEqual(py.Resources, &Resources{CPU: 0.25, Memory: 134217728, Disk: 1073741824, Pids: 64}) {
		t.Errorf("resources %+v", py.Resources)
	}
	var in map[string]any
	if err := json.Unmarshal(py.Input, &in); err != nil || in["source"] != "previous step" {
		t.Errorf("input %s", py.Input)
	}
	if py.Metadata.Raw["workflowId"] != 5.0 || py.Metadata.TriggeredBy != "workflow" {
		t.Errorf("metadata %+v", py.Metadata.Raw)
	}

	nd := jobs["job_Nd0000000002"]
	if nd.Script.Runtime != "node" || string(nd.Input) != `[{"id": 1}, {"id": 2}]` {
		t.Errorf("node job %v input %s", nd, nd.Input)
	}
	if !reflect.DeepEqual(nd.Retry, &RetryPolicy{MaxAttempts: 2, BackoffType: "exponential", Delay: 5 * time.Second}) {
		t.Errorf("retry %+v", nd.Retry)
	}

	ht := jobs["job_Ht0000000003"]
	if ht.OriginalType != TypeHTTP || ht.Script != nil || ht.HTTP == nil {
		t.Fatalf("http job %v", ht)
	}
	wantHTTP := &HTTPRequest{Method: "POST", URL: "http://127.0.0.1:18080/hook",
		Headers: [][2]string{{"Content-Type", "application/json"}, {"Authorization", "Bearer abc"}}, Body: `{"ping":true}`}
	if !reflect.DeepEqual(ht.HTTP, wantHTTP) {
		t.Errorf("http %+v", *ht.HTTP)
	}

	to := jobs["job_To0000000004"]
	if to.OriginalType != TypeToolAction || to.Script != nil || to.HTTP != nil || to.ToolAction != nil {
		t.Errorf("tool action job %v", to)
	}

	// The same malformed job with its two bad fields fixed decodes, with
	// its non-string environment values as their JSON text.
	var batch struct {
		Jobs []map[string]any `json:"jobs"`
	}
	if err := json.Unmarshal(fixture(t, "queue-mixed-batch.json"), &batch); err != nil {
		t.Fatal(err)
	}
	fixed := batch.Jobs[4]
	ex := fixed["execution"].(map[string]any)
	ex["timeout"] = "30000000000" // a numeric string is accepted
	ex["script"].(map[string]any)["type"] = "bash"
	body, _ := json.Marshal(map[string]any{"jobs": []any{fixed}, "count": 1})
	it := decodeOK(t, body, DecodeOptions{})[0]
	if it.Err != nil {
		t.Fatal(it.Err)
	}
	wantEnv := map[string]string{"PORT": "8080", "DEBUG": "true", "TAGS": `["a","b"]`}
	if !reflect.DeepEqual(it.Job.Environment, wantEnv) {
		t.Errorf("environment %q, want %q", it.Job.Environment, wantEnv)
	}
	if it.Job.Timeout != 30*time.Second || it.Job.Metadata.EventID != "47" {
		t.Errorf("timeout %v eventId %q", it.Job.Timeout, it.Job.Metadata.EventID)
	}
}

func TestDecodeDeployedBackend(t *testing.T) {
	var fx struct {
		Key      string                       `json:"encryptionKeyHex"`
		Expected map[string]map[string]string `json:"expectedEnvironment"`
		Response json.RawMessage              `json:"response"`
	}
	if err := json.Unmarshal(fixture(t, "queue-deployed-backend.json"), &fx); err != nil {
		t.Fatal(err)
	}
	key, err := ParseEnvKey(fx.Key)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("with key", func(t *testing.T) {
		items := decodeOK(t, fx.Response, DecodeOptions{EnvKey: key})
		if len(items) != 2 {
			t.Fatalf("%d items", len(items))
		}
		for _, it := range items {
			if it.Err != nil {
				t.Fatalf("%s: %v", it.ID, it.Err)
			}
			if want, ok := fx.Expected[it.ID]; ok {
				if !reflect.DeepEqual(it.Job.Environment, want) {
					t.Errorf("%s environment %q, want %q", it.ID, it.Job.Environment, want)
				}
			}
			if len(it.Job.EncryptedEnv) != 0 {
				t.Errorf("%s EncryptedEnv %v", it.ID, it.Job.EncryptedEnv)
			}
		}
		h := items[1].Job
		if h.OriginalType != TypeHTTP || h.HTTP == nil {
			t.Fatalf("http job %v", h)
		}
		want := &HTTPRequest{Method: "POST", URL: "http://127.0.0.1:18080/hook",
			Headers: [][2]string{{"Content-Type", "application/json"}, {"X-Trace", "abc"}}, Body: `{"ping":true}`}
		if !reflect.DeepEqual(h.HTTP, want) {
			t.Errorf("http %#v", *h.HTTP)
		}
		if h.Environment == nil || len(h.Environment) != 0 {
			t.Errorf("empty environment decoded as %#v", h.Environment)
		}
	})

	t.Run("without key", func(t *testing.T) {
		items := decodeOK(t, fx.Response, DecodeOptions{})
		j := items[0].Job
		var raw struct {
			Jobs []struct {
				Execution struct {
					Environment map[string]string `json:"environment"`
				} `json:"execution"`
			} `json:"jobs"`
		}
		_ = json.Unmarshal(fx.Response, &raw)
		if !reflect.DeepEqual(j.Environment, raw.Jobs[0].Execution.Environment) {
			t.Errorf("values must pass unchanged without a key: %q", j.Environment)
		}
		if !reflect.DeepEqual(j.EncryptedEnv, []string{"API_TOKEN", "GREETING"}) {
			t.Errorf("EncryptedEnv %v", j.EncryptedEnv)
		}
	})

	t.Run("wrong key", func(t *testing.T) {
		other := bytes.Repeat([]byte{7}, 32)
		j := decodeOK(t, fx.Response, DecodeOptions{EnvKey: other})[0].Job
		if j.Environment["GREETING"] == "hello from env" || len(j.EncryptedEnv) != 2 {
			t.Errorf("env %q encrypted %v", j.Environment, j.EncryptedEnv)
		}
	})

	t.Run("bad key length", func(t *testing.T) {
		if _, err := DecodeQueue(fx.Response, DecodeOptions{EnvKey: []byte("short")}); err == nil {
			t.Error("a 5-byte key was accepted")
		}
	})
}

func encryptEnv(t *testing.T, key []byte, plain string) string {
	t.Helper()
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	aead, err := cipher.NewGCMWithNonceSize(block, 16)
	if err != nil {
		t.Fatal(err)
	}
	iv := make([]byte, 16)
	_, _ = rand.Read(iv)
	return base64.StdEncoding.EncodeToString(append(iv, aead.Seal(nil, iv, []byte(plain), []byte(envAAD))...))
}

func TestEnvDecryption(t *testing.T) {
	key := bytes.Repeat([]byte{0x42}, 32)
	plainB64 := base64.StdEncoding.EncodeToString([]byte(`{"some":"json document that is long enough"}`))
	env := map[string]any{
		"ENC":      encryptEnv(t, key, "secret value"),
		"EMPTY":    encryptEnv(t, key, ""),
		"PLAIN":    "just text",
		"B64TEXT":  plainB64,
		"NUMBER":   12,
		"OTHERKEY": encryptEnv(t, bytes.Repeat([]byte{1}, 32), "not for us"),
	}
	body := queueOf(t, job(map[string]any{"environment": env, "script": bashScript}, nil))
	j := decodeOK(t, body, DecodeOptions{EnvKey: key})[0].Job
	if j.Environment["ENC"] != "secret value" || j.Environment["EMPTY"] != "" || j.Environment["PLAIN"] != "just text" ||
		j.Environment["B64TEXT"] != plainB64 || j.Environment["NUMBER"] != "12" || j.Environment["OTHERKEY"] != env["OTHERKEY"] {
		t.Errorf("environment %q", j.Environment)
	}
	if !reflect.DeepEqual(j.EncryptedEnv, []string{"OTHERKEY"}) {
		t.Errorf("EncryptedEnv %v, want OTHERKEY (looks encrypted, does not decrypt)", j.EncryptedEnv)
	}
	if !reflect.DeepEqual(j.DecryptedEnv, []string{"EMPTY", "ENC"}) {
		t.Errorf("DecryptedEnv %v, want EMPTY and ENC (decrypted: secrets to mask)", j.DecryptedEnv)
	}
	j = decodeOK(t, body, DecodeOptions{})[0].Job
	if !reflect.DeepEqual(j.EncryptedEnv, []string{"ENC", "OTHERKEY"}) {
		// EMPTY is 32 bytes: iv and tag only, below the heuristic's 33.
		t.Errorf("EncryptedEnv without key %v", j.EncryptedEnv)
	}
}

func TestParseEnvKey(t *testing.T) {
	k, err := ParseEnvKey(" 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n")
	if err != nil || len(k) != 32 || k[31] != 0x1f {
		t.Fatalf("key %x err %v", k, err)
	}
	for _, bad := range []string{"", "0001", strings.Repeat("zz", 32), strings.Repeat("00", 33)} {
		_, err := ParseEnvKey(bad)
		if err == nil {
			t.Errorf("ParseEnvKey(%q) accepted", bad)
		} else if bad != "" && strings.Contains(err.Error(), bad) {
			t.Errorf("error %q quotes the key", err)
		}
	}
}

func TestDecodeSSH(t *testing.T) {
	items := decodeOK(t, fixture(t, "queue-ssh.json"), DecodeOptions{})
	if len(items) != 2 {
		t.Fatalf("%d items", len(items))
	}
	for _, it := range items {
		if it.Err != nil {
			t.Fatalf("%s: %v", it.ID, it.Err)
		}
	}
	one := items[0].Job
	if one.Type != WireSSH || one.Target.Type != "server" || one.Target.ServerID != "7" || one.Metadata.EventID != "48" {
		t.Errorf("ssh job %v", one)
	}
	wantSrv := &Server{ID: "7", Name: "web-1", Host: "127.0.0.1", Port: 2222, Username: "deploy",
		PrivateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\n(test key generated by the test)\n-----END OPENSSH PRIVATE KEY-----\n"}
	if !reflect.DeepEqual(one.Target.Server, wantSrv) {
		t.Errorf("serverDetails %#v", one.Target.Server)
	}
	if one.Script.WorkingDirectory != "/tmp" {
		t.Errorf("workingDirectory %q", one.Script.WorkingDirectory)
	}

	multi := items[1].Job
	if multi.Target.Server != nil || multi.Target.ServerID != "7" || !multi.Metadata.MultiServer || len(multi.Metadata.Servers) != 2 {
		t.Fatalf("multi-server job %v", multi)
	}
	if s := multi.Metadata.Servers[1]; s.ID != "8" || s.Port != 2223 || s.Password != "(test password)" || s.PrivateKey != "" {
		t.Errorf("second server %#v", s)
	}

	// No String, GoString or Error method shows a secret.
	secrets := []string{"BEGIN OPENSSH", "(test key", "(test password)"}
	for _, it := range items {
		for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
			for _, v := range []any{it, &it, it.Job, *it.Job, it.Job.Target, it.Job.Metadata, it.Job.Metadata.Servers} {
				out := fmt.Sprintf(format, v)
				for _, s := range secrets {
					if strings.Contains(out, s) {
						t.Errorf("%s of %T shows a secret: %s", format, v, out)
					}
				}
			}
		}
	}
	if s := fmt.Sprint(wantSrv); !strings.Contains(s, "deploy@127.0.0.1:2222") || !strings.Contains(s, "redacted") {
		t.Errorf("Server.String %q", s)
	}
}

func TestDecodeOrphanedFixture(t *testing.T) {
	rows, err := DecodeOrphaned(fixture(t, "orphaned.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 {
		t.Fatalf("%d rows", len(rows))
	}
	if rows[0].ID != "job_Or0000000008" || rows[0].Status != "running" || !rows[0].StartedAt.Equal(time.Date(2026, 11, 20, 9, 0, 2, 0, time.UTC)) {
		t.Errorf("snake_case row %+v", rows[0])
	}
	if rows[1].ID != "job_Or0000000009" || rows[1].Status != "claimed" || !rows[1].StartedAt.IsZero() {
		t.Errorf("camelCase row %+v", rows[1])
	}
	if rows[0].Raw["orchestrator_id"] != "agent-edge-01" || rows[1].Raw["orchestratorId"] != "agent-edge-01" {
		t.Errorf("raw rows %v / %v", rows[0].Raw, rows[1].Raw)
	}
	rows, err = DecodeOrphaned([]byte(`[{"id":"a","status":"running","startedAt":"2026-11-20T09:00:02Z","claimedAt":"2026-11-20 09:00:01"},{"status":"x"},7]`))
	if err != nil || len(rows) != 1 || rows[0].StartedAt.IsZero() || rows[0].ClaimedAt.IsZero() {
		t.Errorf("rows %+v err %v", rows, err)
	}
	if _, err := DecodeOrphaned([]byte(`{"error":"x"}`)); err == nil {
		t.Error("an object without jobs was accepted")
	}
}

// ---- field rules, one job at a time ----

var bashScript = map[string]any{"type": "BASH", "content": "echo hi"}

// job builds one wire job: exec and meta are merged over a valid SCRIPT job
// (a nil value deletes the key).
func job(exec, meta map[string]any) map[string]any {
	e := map[string]any{"environment": map[string]any{}, "timeout": 30000000000, "inputData": map[string]any{},
		"target": map[string]any{"type": "local"}, "script": bashScript}
	m := map[string]any{"originalType": "SCRIPT", "eventId": 1, "userId": "u"}
	for k, v := range exec {
		if v == nil {
			delete(e, k)
		} else {
			e[k] = v
		}
	}
	for k, v := range meta {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	return map[string]any{"id": "job_T", "type": "container", "priority": 1, "createdAt": "2026-11-20T10:00:00.000Z",
		"attempts": 0, "execution": e, "metadata": m}
}

func queueOf(t testing.TB, jobs ...any) []byte {
	b, err := json.Marshal(map[string]any{"jobs": jobs, "count": len(jobs)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeFieldRules(t *testing.T) {
	type check func(t *testing.T, j *Job)
	cases := []struct {
		name    string
		job     map[string]any
		badWant []string // fields the error must name; nil: decodes
		check   check
	}{
		{"timeout number", job(map[string]any{"timeout": 5000000000}, nil), nil,
			func(t *testing.T, j *Job) { eq(t, j.Timeout, 5*time.Second) }},
		{"timeout numeric string", job(map[string]any{"timeout": "5000000000"}, nil), nil,
			func(t *testing.T, j *Job) { eq(t, j.Timeout, 5*time.Second) }},
		{"timeout float notation", job(map[string]any{"timeout": 3e10}, nil), nil,
			func(t *testing.T, j *Job) { eq(t, j.Timeout, 30*time.Second) }},
		{"timeout zero", job(map[string]any{"timeout": 0}, nil), nil,
			func(t *testing.T, j *Job) { eq(t, j.Timeout, time.Duration(0)) }},
		{"timeout absent", job(map[string]any{"timeout": nil}, nil), nil,
			func(t *testing.T, j *Job) { eq(t, j.Timeout, time.Duration(0)) }},
		{"timeout negative", job(map[string]any{"timeout": -1}, nil), []string{"execution.timeout"}, nil},
		{"timeout words", job(map[string]any{"timeout": "thirty seconds"}, nil), []string{"execution.timeout"}, nil},
		{"timeout fraction", job(map[string]any{"timeout": 1.5}, nil), []string{"execution.timeout"}, nil},
		{"timeout object", job(map[string]any{"timeout": map[string]any{}}, nil), []string{"execution.timeout"}, nil},

		{"script python lower", job(map[string]any{"script": map[string]any{"type": "python", "content": "x"}}, nil), nil,
			func(t *testing.T, j *Job) { eq(t, j.Script.Runtime, "python") }},
		{"script NODE", job(map[string]any{"script": map[string]any{"type": "NODE", "content": "x"}}, nil), nil,
			func(t *testing.T, j *Job) { eq(t, j.Script.Runtime, "node") }},
		{"script NodeJs", job(map[string]any{"script": map[string]any{"type": "NodeJs", "content": "x"}}, nil), nil,
			func(t *testing.T, j *Job) { eq(t, j.Script.Runtime, "node") }},
		{"script RUBY", job(map[string]any{"script": map[string]any{"type": "RUBY", "content": "x"}}, nil), []string{"execution.script.type"}, nil},
		{"script type missing", job(map[string]any{"script": map[string]any{"content": "x"}}, nil), []string{"execution.script.type"}, nil},
		{"script content missing", job(map[string]any{"script": map[string]any{"type": "BASH"}}, nil), []string{"execution.script.content"}, nil},
		{"SCRIPT without script", job(map[string]any{"script": nil}, nil), []string{"execution.script"}, nil},

		{"HTTP without http", job(nil, map[string]any{"originalType": "HTTP_REQUEST"}), []string{"execution.http"}, nil},
		{"http headers object keeps order", job(map[string]any{"script": nil, "http": json.RawMessage(`{"method":"put","url":"https://x.test/a","headers":{"B":"1","A":2}}`)},
			map[string]any{"originalType": "HTTP_REQUEST"}), nil,
			func(t *testing.T, j *Job) {
				eq(t, j.HTTP.Method, "PUT")
				eq(t, fmt.Sprint(j.HTTP.Headers), "[[B 1] [A 2]]")
			}},
		{"http headers array and default method", job(map[string]any{"script": nil, "http": map[string]any{"url": "http://x.test",
			"headers": []any{map[string]any{"key": "K", "value": "v"}}}}, map[string]any{"originalType": nil}), nil,
			func(t *testing.T, j *Job) {
				eq(t, j.OriginalType, TypeHTTP)
				eq(t, j.HTTP.Method, "GET")
				eq(t, fmt.Sprint(j.HTTP.Headers), "[[K v]]")
			}},
		{"http bad url and headers", job(map[string]any{"script": nil, "http": map[string]any{"url": "ftp://x", "headers": "nope"}},
			map[string]any{"originalType": "HTTP_REQUEST"}), []string{"execution.http.url", "execution.http.headers"}, nil},

		{"TOOL_ACTION without toolAction", job(map[string]any{"script": nil}, map[string]any{"originalType": "TOOL_ACTION"}), nil,
			func(t *testing.T, j *Job) {
				eq(t, j.OriginalType, TypeToolAction)
				if j.Script != nil || j.ToolAction != nil {
					t.Errorf("script %v tool %v", j.Script, j.ToolAction)
				}
			}},
		{"toolAction transported", job(map[string]any{"script": nil, "toolAction": map[string]any{"toolType": "SLACK",
			"config": map[string]any{"actionId": "send-message", "parameters": map[string]any{"text": "hi"}}}}, map[string]any{"originalType": nil}), nil,
			func(t *testing.T, j *Job) {
				eq(t, j.OriginalType, TypeToolAction)
				eq(t, j.ToolAction.ToolType, "SLACK")
				eq(t, j.ToolAction.ActionID, "send-message")
			}},
		{"originalType inferred SCRIPT", job(nil, map[string]any{"originalType": nil}), nil,
			func(t *testing.T, j *Job) { eq(t, j.OriginalType, TypeScript) }},
		{"originalType lower case", job(nil, map[string]any{"originalType": "script"}), nil,
			func(t *testing.T, j *Job) { eq(t, j.OriginalType, TypeScript) }},
		{"originalType not inferable", job(map[string]any{"script": nil}, map[string]any{"originalType": nil}), []string{"metadata.originalType"}, nil},
		{"originalType unknown", job(nil, map[string]any{"originalType": "EMAIL"}), []string{"metadata.originalType"}, nil},

		{"environment conversions", job(map[string]any{"environment": json.RawMessage(`{"A":1.50,"B":false,"C":{"x": [1, 2]},"D":null,"E":""}`)}, nil), nil,
			func(t *testing.T, j *Job) {
				eq(t, fmt.Sprint(j.Environment), `map[A:1.50 B:false C:{"x":[1,2]} D:null E:]`)
			}},
		{"environment not an object", job(map[string]any{"environment": []any{"A=1"}}, nil), []string{"execution.environment"}, nil},
		{"environment bad name", job(map[string]any{"environment": map[string]any{"A=B": "x"}}, nil), []string{"execution.environment"}, nil},

		{"inputData absent", job(map[string]any{"inputData": nil}, nil), nil,
			func(t *testing.T, j *Job) { eq(t, string(j.Input), "null") }},
		{"inputData scalar", job(map[string]any{"inputData": 42}, nil), nil,
			func(t *testing.T, j *Job) { eq(t, string(j.Input), "42") }},

		{"resources negative", job(map[string]any{"resources": map[string]any{"cpuLimit": -1, "memoryLimit": "lots"}}, nil),
			[]string{"execution.resources.cpuLimit", "execution.resources.memoryLimit"}, nil},
		{"retry delay fractional seconds", job(map[string]any{"retryPolicy": map[string]any{"maxAttempts": 3, "backoffType": "Linear", "backoffDelay": 1.5}}, nil), nil,
			func(t *testing.T, j *Job) {
				eq(t, *j.Retry, RetryPolicy{MaxAttempts: 3, BackoffType: "linear", Delay: 1500 * time.Millisecond})
			}},
		{"retry bad", job(map[string]any{"retryPolicy": map[string]any{"maxAttempts": -1, "backoffType": "random"}}, nil),
			[]string{"execution.retryPolicy.maxAttempts", "execution.retryPolicy.backoffType"}, nil},

		{"eventId string, userId number", job(nil, map[string]any{"eventId": "47", "userId": 9}), nil,
			func(t *testing.T, j *Job) { eq(t, j.Metadata.EventID+"/"+j.Metadata.UserID, "47/9") }},
		{"eventId object", job(nil, map[string]any{"eventId": map[string]any{}}), []string{"metadata.eventId"}, nil},

		{"wire type unknown", func() map[string]any { j := job(nil, nil); j["type"] = "vm"; return j }(), []string{"type"}, nil},
		{"id missing", func() map[string]any { j := job(nil, nil); delete(j, "id"); return j }(), []string{"id"}, nil},
		{"createdAt bad", func() map[string]any { j := job(nil, nil); j["createdAt"] = "yesterday"; return j }(), []string{"createdAt"}, nil},
		{"execution missing", func() map[string]any { j := job(nil, nil); delete(j, "execution"); return j }(), []string{"execution"}, nil},

		{"ssh with numeric serverId", func() map[string]any {
			j := job(map[string]any{"target": map[string]any{"type": "server", "serverId": 7}}, nil)
			j["type"] = "ssh"
			return j
		}(), nil, func(t *testing.T, j *Job) { eq(t, j.Target.ServerID, "7") }},
		{"ssh without server", func() map[string]any {
			j := job(map[string]any{"target": map[string]any{"type": "server"}}, nil)
			j["type"] = "ssh"
			return j
		}(), []string{"execution.target"}, nil},
		{"ssh without target", func() map[string]any {
			j := job(map[string]any{"target": nil}, nil)
			j["type"] = "ssh"
			return j
		}(), []string{"execution.target"}, nil},
		{"serverDetails bad", func() map[string]any {
			j := job(map[string]any{"target": map[string]any{"type": "server", "serverDetails": map[string]any{"port": 70000, "password": 5}}}, nil)
			j["type"] = "ssh"
			return j
		}(), []string{"execution.target.serverDetails.host", "execution.target.serverDetails.port", "execution.target.serverDetails.password"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			items := decodeOK(t, queueOf(t, c.job), DecodeOptions{})
			if len(items) != 1 {
				t.Fatalf("%d items", len(items))
			}
			it := items[0]
			if c.badWant == nil {
				if it.Err != nil {
					t.Fatalf("unexpected error: %v", it.Err)
				}
				if c.check != nil {
					c.check(t, it.Job)
				}
				return
			}
			if it.Err == nil {
				t.Fatalf("decoded, want an error naming %v", c.badWant)
			}
			if it.Job != nil {
				t.Error("a malformed item has a Job")
			}
			var de *DecodeError
			if !errors.As(it.Err, &de) {
				t.Fatalf("error %T", it.Err)
			}
			var got []string
			for _, f := range de.Fields {
				got = append(got, f.Field)
			}
			if !reflect.DeepEqual(got, c.badWant) {
				t.Errorf("bad fields %v, want %v (%v)", got, c.badWant, it.Err)
			}
		})
	}
}

func eq[T any](t *testing.T, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestDecodeErrorsNeverShowSecrets(t *testing.T) {
	j := job(map[string]any{
		"environment": map[string]any{"PASSWORD": "hunter2-secret\x00"},
		"target":      map[string]any{"type": "server", "serverDetails": map[string]any{"host": "h", "privateKey": 12345678, "password": []any{"pw-secret"}}},
		"http":        map[string]any{"url": "https://x.test", "headers": map[string]any{"Authorization": "Bearer tok-secret\r\nX: y"}},
	}, nil)
	j["type"] = "ssh"
	it := decodeOK(t, queueOf(t, j), DecodeOptions{})[0]
	if it.Err == nil {
		t.Fatal("decoded")
	}
	msg := it.Err.Error()
	for _, s := range []string{"hunter2", "12345678", "pw-secret", "tok-secret"} {
		if strings.Contains(msg, s) {
			t.Errorf("error shows %q: %s", s, msg)
		}
	}
	for _, f := range []string{"execution.environment.PASSWORD", "privateKey", "password", "execution.http.headers"} {
		if !strings.Contains(msg, f) {
			t.Errorf("error does not name %s: %s", f, msg)
		}
	}
}

func TestDecodeEnvelope(t *testing.T) {
	for _, bad := range []string{``, `nope`, `[]`, `null`, `{}`, `{"jobs":{}}`, `{"jobs":"x"}`} {
		if _, err := DecodeQueue([]byte(bad), DecodeOptions{}); err == nil {
			t.Errorf("envelope %q accepted", bad)
		}
	}
	items, err := DecodeQueue([]byte(`{"jobs":null,"count":0}`), DecodeOptions{})
	if err != nil || len(items) != 0 {
		t.Errorf("null jobs: %v %v", items, err)
	}
	// A job that is not an object, and a duplicate id.
	items = decodeOK(t, queueOf(t, 7, job(nil, nil), job(nil, nil), "x", job(nil, nil)), DecodeOptions{})
	if len(items) != 3 || items[0].Err == nil || items[0].ID != "" || items[1].Job == nil || items[2].Err == nil {
		t.Errorf("items %+v", items)
	}
	if items[1].Repeats != 2 || items[0].Repeats != 0 || items[2].Repeats != 0 {
		t.Errorf("repeats %d %d %d, want the duplicate counted twice", items[0].Repeats, items[1].Repeats, items[2].Repeats)
	}
}

func TestLooksEncrypted(t *testing.T) {
	key := bytes.Repeat([]byte{9}, 32)
	for _, c := range []struct {
		v    string
		want bool
	}{
		{encryptEnv(t, key, "x"), true},
		{encryptEnv(t, key, strings.Repeat("long value ", 20)), true},
		{"hello", false},
		{base64.StdEncoding.EncodeToString([]byte("a plain sentence that is base64 encoded")), false},
		{"not base64 at all, though it is long enough to be considered", false},
	} {
		if got := looksEncrypted(c.v); got != c.want {
			t.Errorf("looksEncrypted(%q) = %v, want %v", c.v, got, c.want)
		}
	}
}

func FuzzDecodeQueue(f *testing.F) {
	for _, n := range []string{"queue-single-bash.json", "queue-mixed-batch.json", "queue-ssh.json", "orphaned.json"} {
		f.Add(fixture(f, n))
	}
	var fx struct {
		Response json.RawMessage `json:"response"`
	}
	_ = json.Unmarshal(fixture(f, "queue-deployed-backend.json"), &fx)
	f.Add([]byte(fx.Response))
	f.Add([]byte(`{"jobs":[{"id":1,"execution":{"timeout":"1e400","environment":{"":1}},"metadata":{"servers":[null,{}]}}]}`))
	key, _ := ParseEnvKey("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, opts := range []DecodeOptions{{}, {EnvKey: key}} {
			items, err := DecodeQueue(body, opts)
			if err != nil {
				continue
			}
			for _, it := range items {
				if (it.Job == nil) == (it.Err == nil) {
					t.Fatalf("item with both or neither of Job and Err: %+v", it)
				}
				if it.Job != nil {
					if it.Job.ID == "" || it.Job.OriginalType == "" || !json.Valid(it.Job.Input) {
						t.Fatalf("decoded job incomplete: %#v", it.Job)
					}
					_ = it.Job.String()
				} else {
					_ = it.Err.Error()
				}
			}
		}
		_, _ = DecodeOrphaned(body)
	})
}

// The deployed backend's SSH jobs: credentials in clear, environment values
// encrypted, ids as strings, the multi-server target repeated in servers.
func TestDecodeDeployedSSH(t *testing.T) {
	// The fixture's note gives the throw-away key it was captured with.
	key, err := ParseEnvKey("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
	if err != nil {
		t.Fatal(err)
	}
	items := decodeOK(t, fixture(t, "queue-deployed-ssh.json"), DecodeOptions{EnvKey: key})
	if len(items) != 2 || items[0].Err != nil || items[1].Err != nil {
		t.Fatalf("items %+v", items)
	}
	one, multi := items[0].Job, items[1].Job
	if one.Type != WireSSH || one.Target.ServerID != "3" || one.Metadata.EventID != "40" || one.Metadata.MultiServer {
		t.Errorf("single-server job %v", one)
	}
	if got := one.Environment["REMOTE_GREETING"]; got != "hello over ssh" {
		t.Errorf("REMOTE_GREETING decrypted to %q", got)
	}
	s := one.Target.Server
	if s == nil || s.ID != "3" || s.Host != "127.0.0.1" || s.Port != 57827 || s.Username != "cronium-remote" ||
		!strings.HasPrefix(s.PrivateKey, "-----BEGIN OPENSSH PRIVATE KEY-----\n") ||
		!strings.HasSuffix(s.PrivateKey, "-----END OPENSSH PRIVATE KEY-----\n") || s.Password != "" {
		t.Errorf("serverDetails %v (key %d bytes)", s, len(s.PrivateKey))
	}
	if one.Script.WorkingDirectory != "" {
		t.Errorf("workingDirectory %q", one.Script.WorkingDirectory)
	}
	if !multi.Metadata.MultiServer || len(multi.Metadata.Servers) != 2 || multi.Target.ServerID != "3" {
		t.Fatalf("multi-server job %v", multi)
	}
	if a, b := multi.Metadata.Servers[0], multi.Metadata.Servers[1]; a.ID != "3" || a.PrivateKey != s.PrivateKey ||
		b.ID != "4" || b.Password != "cronium-remote-pw" || b.PrivateKey != "" {
		t.Errorf("servers %v / %v", a, b)
	}
	for _, it := range items {
		for _, v := range []any{it, it.Job, it.Job.Target, it.Job.Metadata.Servers} {
			out := fmt.Sprintf("%+v %#v", v, v)
			for _, secret := range []string{"BEGIN OPENSSH", "cronium-remote-pw"} {
				if strings.Contains(out, secret) {
					t.Errorf("%T shows a secret: %s", v, out)
				}
			}
		}
	}
}
