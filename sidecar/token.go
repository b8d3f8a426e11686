package sidecar

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Token constants.
const (
	// Issuer is the iss claim of every runtime token.
	Issuer = "cronium-agent"
	// TokenGrace is how long a token outlives its execution's timeout.
	TokenGrace = 5 * time.Minute
)

// claims are the runtime token's claims (contract §2).
type claims struct {
	ExecutionID string `json:"executionId"`
	JobID       string `json:"jobId"`
	UserID      string `json:"userId"`
	EventID     string `json:"eventId"`
	jwt.RegisteredClaims
}

var errShortSecret = fmt.Errorf("sidecar: token secret shorter than %d bytes", SecretSize)

// IssueToken returns the HS256 runtime token of exec: claims executionId,
// jobId, userId, eventId, iss, sub = job:<jobId>, iat = nbf = now, and
// exp = StartTime (now when zero) + Timeout + TokenGrace. The token is
// accepted only while exec has a live Session on this Server.
func (s *Server) IssueToken(exec Execution) (string, error) {
	if len(s.secret) < SecretSize {
		return "", errShortSecret
	}
	switch {
	case exec.ExecutionID == "":
		return "", errors.New("sidecar: execution id is required")
	case exec.JobID == "":
		return "", fmt.Errorf("sidecar: execution %s: job id is required", exec.ExecutionID)
	case exec.Timeout <= 0:
		return "", fmt.Errorf("sidecar: execution %s: timeout must be positive", exec.ExecutionID)
	}
	now := s.now()
	start := exec.StartTime
	if start.IsZero() {
		start = now
	}
	exp := start.Add(exec.Timeout + TokenGrace)
	if !exp.After(now) {
		return "", fmt.Errorf("sidecar: execution %s is past its timeout", exec.ExecutionID)
	}
	c := claims{
		ExecutionID: exec.ExecutionID,
		JobID:       exec.JobID,
		UserID:      exec.UserID,
		EventID:     exec.EventID,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    Issuer,
			Subject:   "job:" + exec.JobID,
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(exp),
		},
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(s.secret)
	if err != nil {
		return "", fmt.Errorf("sidecar: sign token: %w", err)
	}
	return tok, nil
}

// verify checks a token's signature (HS256 only) and claims; it does not
// check that the execution is live.
func (s *Server) verify(raw string) (*claims, error) {
	if len(s.secret) < SecretSize {
		return nil, errShortSecret
	}
	c := new(claims)
	_, err := s.parser.ParseWithClaims(raw, c, func(t *jwt.Token) (any, error) {
		if t.Method != jwt.SigningMethodHS256 { // already refused by WithValidMethods
			return nil, errors.New("unexpected signing method")
		}
		return s.secret, nil
	})
	if err != nil {
		return nil, err
	}
	if c.ExecutionID == "" || c.JobID == "" || c.Subject != "job:"+c.JobID {
		return nil, errors.New("token claims are incomplete")
	}
	return c, nil
}
