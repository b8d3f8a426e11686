// Package backend will hold the internal-API client and the development
// backend (../shared/contract/backend-api.md, issue 4).
package backend
