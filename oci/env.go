package oci

import (
	"fmt"
	"sort"
	"strings"
)

// defaultPath is used when the image sets no PATH.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Env merges the environment of a job, in increasing precedence: the image's
// own variables, the agent's base (PATH, HOME), the job's variables, and the
// agent's CRONIUM_* variables, which a job cannot override. Keys of job and
// agent maps come out sorted so the spec is deterministic.
func Env(image []string, job, agent map[string]string) ([]string, error) {
	vals := map[string]string{}
	var order []string
	set := func(k, v string) {
		if _, ok := vals[k]; !ok {
			order = append(order, k)
		}
		vals[k] = v
	}
	for _, kv := range image {
		k, v, _ := strings.Cut(kv, "=")
		set(k, v)
	}
	if _, ok := vals["PATH"]; !ok {
		set("PATH", defaultPath)
	}
	set("HOME", WorkspaceDir)
	for _, m := range []map[string]string{job, agent} {
		keys := make([]string, 0, len(m))
		for k := range m {
			if err := validKey(k); err != nil {
				return nil, err
			}
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			set(k, m[k])
		}
	}
	out := make([]string, 0, len(order))
	for _, k := range order {
		out = append(out, k+"="+vals[k])
	}
	return out, nil
}

func validKey(k string) error {
	if k == "" || strings.ContainsAny(k, "=\x00") {
		return fmt.Errorf("invalid environment variable name %q", k)
	}
	return nil
}

// Clamp fills the zero fields of a job's request with the defaults and lowers
// every field above the maxima to the maximum. A job is never refused for
// asking too much.
func Clamp(req, defaults, max Resources) Resources {
	pickF := func(r, d, m float64) float64 {
		if r <= 0 {
			r = d
		}
		if r > m {
			r = m
		}
		return r
	}
	pickI := func(r, d, m int64) int64 {
		if r <= 0 {
			r = d
		}
		if r > m {
			r = m
		}
		return r
	}
	return Resources{
		CPU:            pickF(req.CPU, defaults.CPU, max.CPU),
		MemoryBytes:    pickI(req.MemoryBytes, defaults.MemoryBytes, max.MemoryBytes),
		Pids:           pickI(req.Pids, defaults.Pids, max.Pids),
		TmpBytes:       pickI(req.TmpBytes, defaults.TmpBytes, max.TmpBytes),
		WorkspaceBytes: pickI(req.WorkspaceBytes, defaults.WorkspaceBytes, max.WorkspaceBytes),
	}
}
