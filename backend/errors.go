package backend

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/cronium/cronium-agent/backend/api"
)

// Sentinel errors of the client: those of package api, which callers
// that do not use the client itself test for.
var (
	ErrNotClaimed      = api.ErrNotClaimed
	ErrNoLogEndpoint   = api.ErrNoLogEndpoint
	ErrInvalidArgument = api.ErrInvalidArgument
	ErrSuperseded      = api.ErrSuperseded
)

// APIError is a non-2xx answer of the backend. Message comes from the
// body's "error", "message" and "details" (the deployed backend answers
// {"error":"..."}), or is the status text. Body is the start of the raw
// body. Neither ever holds the service token (it is masked if a backend
// echoes it).
type APIError struct {
	Method  string
	Path    string
	Status  int
	Message string
	Body    string
}

func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	return fmt.Sprintf("backend %s %s: %d %s", e.Method, e.Path, e.Status, msg)
}

// Is makes a 409 naming api.SupersededCode an api.ErrSuperseded, so that
// callers without the client (the syncer) recognize it.
func (e *APIError) Is(target error) bool {
	return target == api.ErrSuperseded && e.Status == http.StatusConflict && strings.Contains(e.Message, api.SupersededCode)
}

// TransportError is a request that got no HTTP answer (connection refused,
// reset, timeout, unreadable response).
type TransportError struct {
	Method string
	Path   string
	Err    error
}

func (e *TransportError) Error() string {
	inner := e.Err
	var ue *url.Error
	if errors.As(inner, &ue) {
		inner = ue.Err // the URL is already in Path, without the host
	}
	return fmt.Sprintf("backend %s %s: %v", e.Method, e.Path, inner)
}

func (e *TransportError) Unwrap() error { return e.Err }

// IsStatus tells whether err is (or wraps) an APIError with that status.
func IsStatus(err error, code int) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == code
}

// IsTransient is api.IsTransient: whether the backend did not give a
// final answer (a transport error, 429 or a 5xx after the client's own
// retries, the caller's context ending).
func IsTransient(err error) bool { return api.IsTransient(err) }

// Transient: 429 and 5xx are answers to try again later.
func (e *APIError) Transient() bool { return retryableStatus(e.Status) }

// Transient: a request that got no answer may get one later.
func (e *TransportError) Transient() bool { return true }

func retryableStatus(code int) bool {
	return code == http.StatusTooManyRequests || code >= 500
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidArgument, fmt.Sprintf(format, args...))
}

const maxErrorBody = 4 << 10

// newAPIError builds the error of a non-2xx answer, masking secret.
func newAPIError(method, path string, status int, body []byte, secret string) *APIError {
	e := &APIError{Method: method, Path: path, Status: status}
	e.Message = api.ErrorMessage(body)
	if e.Message == "" {
		e.Message = http.StatusText(status)
	}
	b := body
	if len(b) > maxErrorBody {
		b = b[:maxErrorBody]
	}
	e.Body = strings.ToValidUTF8(string(b), "\uFFFD")
	e.Message = mask(e.Message, secret)
	e.Body = mask(e.Body, secret)
	return e
}

// mask hides secret in s (only secrets long enough not to mangle text).
func mask(s, secret string) string {
	if len(secret) < 6 {
		return s
	}
	return strings.ReplaceAll(s, secret, "[redacted]")
}

// IsDuplicateID reports whether err is a backend's refusal of this agent
// process as a second live process under its orchestrator id (409 with
// api.DuplicateIDCode): it must not claim jobs under that id.
func IsDuplicateID(err error) bool {
	var e *APIError
	return errors.As(err, &e) && e.Status == http.StatusConflict && strings.Contains(e.Message, api.DuplicateIDCode)
}
