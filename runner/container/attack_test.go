package container_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/cronium/cronium-agent/runner/output"
)

// attackScript is run inside job A. It attacks its own runtime API with the
// tokens the test forged, and B's API with its own token, and prints one
// JSON object of what it got.
const attackScript = `import json, os, socket, urllib.request, urllib.error
api = os.environ["CRONIUM_RUNTIME_API"]
me = os.environ["CRONIUM_EXECUTION_ID"]
tok = os.environ["CRONIUM_EXECUTION_TOKEN"]
def call(path, token=None, method="GET", body=None, base=api, timeout=5):
    req = urllib.request.Request(base + path, method=method, data=body)
    if token is not None:
        req.add_header("Authorization", "Bearer " + token)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except (urllib.error.URLError, OSError) as e:
        return "unreachable"
inp = "/executions/%s/input" % me
res = {
    "own token": call(inp, tok),
    "no token": call(inp),
    "expired": call(inp, os.environ["T_EXPIRED"]),
    "other secret": call(inp, os.environ["T_OTHER_SECRET"]),
    "alg none": call(inp, os.environ["T_NONE"]),
    "hs512": call(inp, os.environ["T_HS512"]),
    "B's execution id": call("/executions/%s/input" % os.environ["B_EXEC"], tok),
    "B's API": call("/executions/%s/input" % os.environ["B_EXEC"], tok, base="http://%s:8081" % os.environ["B_GW"], timeout=2),
    "20 MiB body": call("/executions/%s/output" % me, tok, "POST", b'{"data":"' + b"x" * (20 << 20) + b'"}'),
}
codes = [call(inp, tok) for _ in range(1500)]
res["1500 calls ok"] = codes.count(200)
res["1500 calls 429"] = codes.count(429)
print(json.dumps(res))
`

func TestAttacksFromInsideAJob(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()

	// Job B runs while A attacks; it tells its gateway and execution id.
	bInfo := make(chan [2]string, 1)
	bDone := make(chan *result, 1)
	stopB, cancelB := context.WithCancel(ctx)
	defer cancelB()
	go func() {
		bDone <- h.runWith(stopB, t, "bash", `echo "$(getent hosts runtime-api | cut -d' ' -f1) $CRONIUM_EXECUTION_ID"; sleep 60`, func(e output.Entry) {
			if f := strings.Fields(string(e.Data)); len(f) == 2 {
				bInfo <- [2]string{f[0], f[1]}
			}
		})
	}()
	var b [2]string
	select {
	case b = <-bInfo:
	case r := <-bDone:
		t.Fatalf("job B ended early: %v %s", r.err, r.stderr.String())
	case <-time.After(2 * time.Minute):
		t.Fatal("job B did not start")
	}

	req := h.request(t, "python", attackScript, withTimeout(2*time.Minute))
	x := req.Execution
	claims := func(exp time.Time) jwt.MapClaims {
		return jwt.MapClaims{
			"executionId": x.ExecutionID, "jobId": x.JobID, "userId": x.UserID, "eventId": x.EventID,
			"iss": "cronium-agent", "sub": "job:" + x.JobID,
			"iat": time.Now().Add(-time.Hour).Unix(), "nbf": time.Now().Add(-time.Hour).Unix(), "exp": exp.Unix(),
		}
	}
	sign := func(method jwt.SigningMethod, key []byte, c jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(method, c).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	payload, _ := json.Marshal(claims(time.Now().Add(time.Hour)))
	enc := base64.RawURLEncoding.EncodeToString
	req.Env["T_EXPIRED"] = sign(jwt.SigningMethodHS256, h.secret, claims(time.Now().Add(-time.Minute)))
	req.Env["T_OTHER_SECRET"] = sign(jwt.SigningMethodHS256, []byte("another agent's secret, 32 bytes"), claims(time.Now().Add(time.Hour)))
	req.Env["T_NONE"] = enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc(payload) + "."
	req.Env["T_HS512"] = sign(jwt.SigningMethodHS512, h.secret, claims(time.Now().Add(time.Hour)))
	req.Env["B_GW"], req.Env["B_EXEC"] = b[0], b[1]

	r := h.runRequest(ctx, t, req, nil)
	cancelB()
	<-bDone
	if r.err != nil || r.ExitCode != 0 {
		t.Fatalf("attack job: %v exit %d: %s", r.err, r.ExitCode, r.stderr.String())
	}
	var got map[string]any
	if err := json.Unmarshal(r.stdout.Bytes(), &got); err != nil {
		t.Fatalf("attack output %q: %v", r.stdout.String(), err)
	}
	for k, want := range map[string]any{
		"own token": 200.0, "no token": 401.0, "expired": 401.0, "other secret": 401.0, "alg none": 401.0, "hs512": 401.0,
		"B's execution id": 403.0,
		// B's runtime API is not even reachable from A: the firewall drops it.
		"B's API":     "unreachable",
		"20 MiB body": 413.0,
		// Three calls before the loop counted (own token, B's id, the
		// large body): 997 more fit in the minute.
		"1500 calls ok": 997.0, "1500 calls 429": 503.0,
	} {
		if got[k] != want {
			t.Errorf("%s: got %v, want %v", k, got[k], want)
		}
	}
}
