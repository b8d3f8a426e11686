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
//     key "a/b".
package sidecar
