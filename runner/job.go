// Package runner owns the job lifecycle: it turns a job into a run request
// under the agent's policy and hands it to an executor.
package runner

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cronium/cronium-agent/backend/api"

	"github.com/cronium/cronium-agent/oci"
	"github.com/cronium/cronium-agent/runner/container"
	"github.com/cronium/cronium-agent/runtimes"
	"github.com/cronium/cronium-agent/sidecar"
)

// Job is a script job as the runner sees it, whatever its source.
type Job struct {
	ID      string
	EventID string
	UserID  string
	Runtime string
	Script  []byte
	Env     map[string]string
	// Timeout zero means the configured default.
	Timeout time.Duration
	// Resources zero fields mean the configured defaults.
	Resources oci.Resources
	// Image overrides the runtime's configured image.
	Image string
	// Input is the step's input (execution.inputData), any JSON.
	Input json.RawMessage
	// EventName, EventType and Trigger describe the event, for the context
	// the runtime API serves; Metadata is the job's metadata as received.
	EventName, EventType, Trigger string
	Metadata                      map[string]any
}

// Policy is what the agent's configuration says about every job.
type Policy struct {
	Images         map[string]string // by canonical runtime name
	Defaults, Max  oci.Resources
	DefaultTimeout time.Duration
	MaxTimeout     time.Duration
}

// DefaultPolicy is the policy of the configuration's defaults (jobs.* and
// resources.*), for tests and tools that have no configuration file.
func DefaultPolicy() Policy {
	const mib = 1 << 20
	return Policy{
		Images: map[string]string{
			"bash":   "cronium.local/runtimes/bash:latest",
			"python": "cronium.local/runtimes/python:latest",
			"node":   "cronium.local/runtimes/node:latest",
		},
		Defaults:       oci.Resources{CPU: 0.5, MemoryBytes: 512 * mib, Pids: 100, TmpBytes: 64 * mib, WorkspaceBytes: 256 * mib},
		Max:            oci.Resources{CPU: 2, MemoryBytes: 4096 * mib, Pids: 1024, TmpBytes: 1024 * mib, WorkspaceBytes: 4096 * mib},
		DefaultTimeout: time.Hour,
		MaxTimeout:     24 * time.Hour,
	}
}

// Timeout is the time a job asking for t gets: the default when it asks
// for none, never more than the maximum.
func (p Policy) Timeout(t time.Duration) time.Duration {
	if t <= 0 {
		t = p.DefaultTimeout
	}
	return min(t, p.MaxTimeout)
}

// ExecutionID is the id of one run of a job, shared by the runtime token, the
// script's CRONIUM_EXECUTION_ID and the backend's execution row.
func ExecutionID(jobID string, start time.Time) string {
	return "exec_" + jobID + "_" + strconv.FormatInt(start.Unix(), 10)
}

// ServerExecutionID is the id of the run of a multi-server job on one of
// its servers (§3): exec_<job>_<server>_<unix seconds>.
func ServerExecutionID(jobID, serverID string, start time.Time) string {
	return "exec_" + jobID + "_" + serverID + "_" + strconv.FormatInt(start.Unix(), 10)
}

// attemptExecutionID is the id of an attempt's execution: a multi-server
// job's first one is that of its first server.
func attemptExecutionID(job *api.Job, start time.Time) string {
	if m := job.Metadata; m.MultiServer && len(m.Servers) > 0 {
		return ServerExecutionID(job.ID, m.Servers[0].ID, start)
	}
	return ExecutionID(job.ID, start)
}

// Request turns a job into a container run request: the runtime and image
// resolved, the timeout and resources clamped, the CRONIUM_* variables set.
func (p Policy) Request(job Job, now time.Time) (container.Request, error) {
	if job.ID == "" {
		return container.Request{}, fmt.Errorf("job has no id")
	}
	rt, err := runtimes.Lookup(job.Runtime)
	if err != nil {
		return container.Request{}, fmt.Errorf("job %s: %w", job.ID, err)
	}
	image := job.Image
	if image == "" {
		image = p.Images[rt.Name]
	}
	if image == "" {
		return container.Request{}, fmt.Errorf("job %s: no image configured for runtime %s", job.ID, rt.Name)
	}
	timeout := p.Timeout(job.Timeout)
	execID := ExecutionID(job.ID, now)
	env := ScriptEnv(job, execID, "container")
	exec := job.Execution(execID, now, timeout)
	return container.Request{
		Execution: exec,
		RunID:     RunID(job.ID),
		JobID:     job.ID,
		Hostname:  Hostname(job.ID),
		Runtime:   rt,
		Image:     image,
		Script:    job.Script,
		Env:       env,
		Resources: oci.Clamp(job.Resources, p.Defaults, p.Max),
		Timeout:   timeout,
	}, nil
}

// ScriptEnv is the environment of a run of a script job in mode
// ("container", "ssh"): the job's own variables, then the CRONIUM_* ones of
// the runtime contract, set last so that a job cannot pass itself off as
// another execution.
func ScriptEnv(job Job, execID, mode string) map[string]string {
	env := make(map[string]string, len(job.Env)+5)
	for k, v := range job.Env {
		env[k] = v
	}
	env["CRONIUM_EXECUTION_ID"] = execID
	env["CRONIUM_JOB_ID"] = job.ID
	env["CRONIUM_EXECUTION_MODE"] = mode
	if job.EventID != "" {
		env["CRONIUM_EVENT_ID"] = job.EventID
	} else {
		delete(env, "CRONIUM_EVENT_ID")
	}
	return env
}

// Execution is what the runtime API serves a run of the job about.
func (job Job) Execution(execID string, start time.Time, timeout time.Duration) sidecar.Execution {
	return sidecar.Execution{
		ExecutionID: execID,
		JobID:       job.ID,
		UserID:      job.UserID,
		EventID:     job.EventID,
		EventName:   job.EventName,
		EventType:   job.EventType,
		Trigger:     job.Trigger,
		StartTime:   start,
		Timeout:     timeout,
		Input:       job.Input,
		Metadata:    job.Metadata,
	}
}

// RunID names one run's container: the job id made safe for containerd plus
// a random suffix, since a job may run more than once.
func RunID(jobID string) string {
	id := sanitize(jobID, 48)
	if id == "" {
		id = "job"
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "cronium-" + id + "-" + hex.EncodeToString(b)
}

// Hostname is cronium-<short job id>: the job id without its "job_" prefix,
// lower case, at most 12 characters.
func Hostname(jobID string) string {
	short := strings.ToLower(sanitize(strings.TrimPrefix(jobID, "job_"), 12))
	short = strings.Trim(strings.ReplaceAll(short, ".", "-"), "-_")
	if short == "" {
		return "cronium"
	}
	return "cronium-" + strings.ReplaceAll(short, "_", "-")
}

// sanitize keeps letters, digits, '-', '_' and '.', replacing the rest with
// '-', and cuts to max bytes.
func sanitize(s string, max int) string {
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= max {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	return strings.Trim(b.String(), "-_.")
}
