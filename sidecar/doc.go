// Package sidecar serves each running job its runtime API
// (docs/runtime-api.md): one HTTP listener per execution,
// authenticated by an HS256 token (JWT) that is valid only for that
// execution and only while it runs.
//
// The package never talks to the backend: every read and write of data goes
// through a Store (the journal in package state, or a backend-backed
// implementation wired by the caller).
//
// Choices where the contract is silent:
//
//   - A failing Store call is answered 503 Service Unavailable with
//     Retry-After: 1 and a generic message (the error itself is only logged):
//     the helpers treat 5xx as transport-like and retry.
//   - The rate limit is a sliding window log: a call is accepted when fewer
//     than n calls of the same execution were accepted in the preceding
//     period (default 1000 per minute), so no window of that length ever
//     holds more than n accepted calls. Every authenticated call counts
//     (including ones later refused with 403 or 400); refused calls (429) do
//     not.
//   - A known path with the wrong method is answered 405 with the error
//     envelope and an Allow header, before authentication; unknown paths are
//     404, also before authentication.
//   - A token is accepted only while its execution has a live Session in the
//     same Server; Session.Close revokes it at once for every listener.
//     Because the check is by execution id (not by token), a Session started
//     again for the same execution (recovery after an agent restart, with the
//     same persisted secret) accepts the token the job already holds.
//   - Keys in /variables/{key} are taken from the escaped path, everything
//     after "variables/", and unescaped once: "a%2Fb" and "a/b" both name the
//     key "a/b". The keys "." and ".." (however percent-encoded: "%2e",
//     "%2E%2e", ...) are refused with 400, for GET and PUT alike: the
//     backend's variable URLs carry the key as a path segment, where they are
//     dot-segments, so it refuses them and a write accepted here would be
//     lost. Keys that merely contain dots ("...", ".env", "a/..") are keys.
//   - Each listener holds at most 64 connections at once (WithMaxConns); one
//     over the bound is accepted and closed at once with a reset, not left
//     queued, so that the job's own calls fail fast (the helpers retry
//     transport errors) instead of waiting behind its surplus connections,
//     and one job can take no more than 64 of the agent's file descriptors.
//     A connection must send its request headers within 5 s and is closed
//     after 10 s idle (WithConnTimeouts), so that idle connections give
//     their slots back. Refused connections are logged at most once per 10 s
//     per execution, with their count.
//   - Requests without a valid token (missing, malformed, wrongly signed,
//     expired, or of an execution that is not running) are limited per
//     listener, that is per job: 60 a minute (sliding window,
//     WithAuthFailureLimit) are answered 401; the ones beyond get 429 with
//     Retry-After until the window slides, as calls over the rate limit do.
//     The token is checked first, so a valid token is never refused for
//     them. They are logged at most once per 10 s per execution: one line
//     with how many were refused (and how many of those got 429) and the
//     last reason; the remainder when the execution ends.
package sidecar
