package doctor

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cronium/cronium-agent/backend"
	"github.com/cronium/cronium-agent/internal/config"
	"github.com/cronium/cronium-agent/state/identity"
)

// Clock skew bounds against the backend.
const (
	skewWarn = 5 * time.Second
	skewFail = time.Minute
)

// The variable doctor reads to prove the token: a read of a user nobody
// has, so it changes nothing and finds nothing.
const (
	probeUser = "cronium-agent-doctor"
	probeKey  = "token-check"
)

// doctorOrchID stands in for the agent's id when it has none yet.
const doctorOrchID = "cronium-agent-doctor"

// serviceEnvFile is where the packaged service keeps its environment. A
// shell does not read it, so doctor run by hand would miss what is set
// there: the fix says how to run it with that file.
const serviceEnvFile = "/etc/default/cronium-agent"

func (d *doctor) backendFix() string {
	return fmt.Sprintf("set backend.url and backend.token in %s, or %s and %s in the service's environment file %s (to check with it: (set -a; . %s; cronium-agent doctor))",
		d.configPath, config.EnvName("backend", "url"), config.EnvName("backend", "token"), serviceEnvFile, serviceEnvFile)
}

func tokenFix() string {
	return fmt.Sprintf("set backend.token / %s to the backend's INTERNAL_API_KEY", config.EnvName("backend", "token"))
}

// backend: the agent takes its jobs there. Two reads, and no call that
// changes anything (a heartbeat would make this look like the agent): the
// health probe, which a backend may answer without looking at the token,
// then a variable read, which it never answers without it.
func (d *doctor) backend(ctx context.Context) Result {
	if d.cfg.Backend.URL == "" {
		return warn(d.backendFix(), "not configured: backend.url is not set, so `cronium-agent run` refuses to start")
	}
	client, err := d.backendClient()
	if err != nil {
		return fail(d.backendFix(), "%v", err)
	}
	base := client.BaseURL()
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	healthErr := client.BackendHealth(ctx)
	if r, final := refusedOrUnreachable(base, healthErr); final {
		return r
	}
	_, _, err = client.GetVariable(ctx, probeUser, probeKey)
	if r, final := refusedOrUnreachable(base, err); final {
		return r
	}
	if err != nil {
		return warn("check that backend.url names the Cronium backend, and its logs",
			"%s is reachable, but the token is not confirmed: %v", base, err)
	}
	if healthErr != nil {
		return warn("check the backend's own health and logs", "%s accepts the token, but its health probe failed: %v", base, healthErr)
	}
	return pass("%s answers and accepts the token", base)
}

// refusedOrUnreachable turns a refused token or an unreachable backend into
// the check's failure.
func refusedOrUnreachable(base string, err error) (Result, bool) {
	var te *backend.TransportError
	switch {
	case err == nil:
		return Result{}, false
	case backend.IsStatus(err, http.StatusUnauthorized), backend.IsStatus(err, http.StatusForbidden):
		return fail(tokenFix(), "token refused by %s: %v", base, err), true
	case errors.As(err, &te), errors.Is(err, context.DeadlineExceeded):
		return fail(fmt.Sprintf("check backend.url / %s, this host's network and that the backend runs", config.EnvName("backend", "url")),
			"%s is not reachable: %v", base, err), true
	}
	return Result{}, false
}

// backendClient is a client that tries each call once: doctor reports what
// it finds and does not wait out an outage.
func (d *doctor) backendClient() (*backend.Client, error) {
	if d.cfg.Backend.Token == "" {
		return nil, errors.New("backend.url is set, but backend.token is not")
	}
	c, err := backend.NewClient(d.cfg.Backend.URL, d.cfg.Backend.Token, d.orchestratorID(),
		backend.WithRetry(1, 0, 0), backend.WithAttemptTimeout(d.timeout))
	if err != nil {
		return nil, fmt.Errorf("backend client: %w", err)
	}
	return c, nil
}

// orchestratorID is the id the agent claims jobs as, read without making
// one: doctor writes nothing.
func (d *doctor) orchestratorID() string {
	if id := d.cfg.Backend.OrchestratorID; id != "" {
		return id
	}
	if id, _, err := identity.Peek(d.cfg.State.Dir); err == nil {
		return id
	}
	return doctorOrchID
}

// clock compares this host's clock with the backend's Date header: the
// agent stamps every status, start and end it reports, and the backend
// sets them beside its own times.
func (d *doctor) clock(ctx context.Context) Result {
	if d.cfg.Backend.URL == "" {
		return pass("not checked: no backend configured")
	}
	base, err := baseURL(d.cfg.Backend.URL)
	if err != nil {
		return warn("fix the backend check first", "not checked: %v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	backendTime, local, err := d.backendDate(ctx, base)
	if err != nil {
		return warn("fix the backend check first", "not checked: %v", err)
	}
	// Date has whole seconds: the backend's time was up to a second past it.
	return judgeSkew(backendTime.Add(500 * time.Millisecond).Sub(local))
}

// backendDate reads the Date header of the health probe and the local time
// halfway through the request. The header comes with any answer, a 401
// included, so it is read even with a wrong token.
func (d *doctor) backendDate(ctx context.Context, base string) (backendTime, local time.Time, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/internal/orchestrator/health", nil)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("request: %w", err)
	}
	if d.cfg.Backend.Token != "" {
		req.Header.Set("Authorization", "Bearer "+d.cfg.Backend.Token)
	}
	req.Header.Set("User-Agent", "cronium-agent-doctor")
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	sent := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("backend GET orchestrator/health: %w", err)
	}
	resp.Body.Close()
	local = sent.Add(time.Since(sent) / 2)
	date := resp.Header.Get("Date")
	if date == "" {
		return time.Time{}, time.Time{}, errors.New("the backend's answer has no Date header")
	}
	backendTime, err = http.ParseTime(date)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("the backend's Date header %q: %w", date, err)
	}
	return backendTime, local, nil
}

// judgeSkew: skew is the backend's time minus this host's.
func judgeSkew(skew time.Duration) Result {
	off := skew.Abs().Round(time.Second)
	if off < time.Second {
		return pass("within a second of the backend's")
	}
	how := fmt.Sprintf("%s behind the backend's", off)
	if skew < 0 {
		how = fmt.Sprintf("%s ahead of the backend's", off)
	}
	const fix = "synchronise this host's clock: timedatectl set-ntp true (systemd-timesyncd), or install chrony; if it is right, the backend's clock is off"
	switch {
	case skew.Abs() > skewFail:
		return fail(fix, "this host's clock is %s (more than %s)", how, skewFail)
	case skew.Abs() > skewWarn:
		return warn(fix, "this host's clock is %s (more than %s)", how, skewWarn)
	}
	return pass("this host's clock is %s", how)
}

// baseURL keeps the scheme and host of the backend's URL, as the client
// does.
func baseURL(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return "", fmt.Errorf("backend.url: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("backend.url %q: want http:// or https:// and a host", raw)
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host}).String(), nil
}
