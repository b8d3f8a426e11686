// Package cni will give each job its own network namespace and bridge via
// libcni (see ../shared/DESIGN.md, issue 3). Until then jobs get a network
// namespace of their own holding only loopback, set up by the runtime.
package cni
