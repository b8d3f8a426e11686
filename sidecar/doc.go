// Package sidecar will serve each job its runtime API and tokens
// (../shared/contract/runtime-api.md, issue 3).
package sidecar
