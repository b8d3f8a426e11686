package sshworker

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// environment is a run's environment being made: names in first-seen
// order, later values winning, as `set -a; . env` in run.sh leaves it.
type environment struct {
	order []string
	vals  map[string]string
}

func (e *environment) set(k, v string) {
	if _, ok := e.vals[k]; !ok {
		e.order = append(e.order, k)
	}
	e.vals[k] = v
}

func (e *environment) get(k string) string { return e.vals[k] }

// take returns a variable meant for the launcher and removes it.
func (e *environment) take(k string) string {
	v := e.vals[k]
	delete(e.vals, k)
	return v
}

func (e *environment) list() []string {
	out := make([]string, 0, len(e.vals))
	for _, k := range e.order {
		if v, ok := e.vals[k]; ok {
			out = append(out, k+"="+v)
		}
	}
	return out
}

// env is the run's environment, made as run.sh makes it: the session's,
// then the job's env file (read, then removed), then the helpers' paths.
func (r *run) env() (*environment, error) {
	e := &environment{vals: map[string]string{}}
	for _, kv := range r.w.environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			e.set(k, v)
		}
	}
	path := filepath.Join(r.dir, "env")
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the environment file: %w", err)
	}
	_ = os.Remove(path)
	vars, err := parseEnvFile(string(data))
	if err != nil {
		return nil, fmt.Errorf("read the environment file: %w", err)
	}
	for _, kv := range vars {
		e.set(kv[0], kv[1])
	}
	lib := filepath.Join(r.dir, "lib")
	for _, k := range []string{"PYTHONPATH", "NODE_PATH"} {
		v := lib
		if old := e.get(k); old != "" {
			v += ":" + old
		}
		e.set(k, v)
	}
	e.set("BASH_ENV", filepath.Join(lib, "cronium.sh"))
	if rel := e.take("CRONIUM_HELPER_IN_HOME"); rel != "" {
		e.set("CRONIUM_HELPER", e.get("HOME")+"/"+rel)
	}
	return e, nil
}

// parseEnvFile reads the env file the agent writes (runner/sshexec's
// envFile): one NAME='value' a line, a ' inside a value written '\”.
// It reads that form only, not sh at large.
func parseEnvFile(s string) ([][2]string, error) {
	var out [][2]string
	for s != "" {
		name, rest, ok := strings.Cut(s, "=")
		if !ok || name == "" || strings.ContainsAny(name, "\n'") {
			return nil, errors.New("not NAME='value' lines")
		}
		var v strings.Builder
	value:
		for {
			switch {
			case strings.HasPrefix(rest, "'"):
				end := strings.IndexByte(rest[1:], '\'')
				if end < 0 {
					return nil, fmt.Errorf("unterminated value of %s", name)
				}
				v.WriteString(rest[1 : 1+end])
				rest = rest[end+2:]
			case strings.HasPrefix(rest, `\'`):
				v.WriteByte('\'')
				rest = rest[2:]
			case strings.HasPrefix(rest, "\n"):
				rest = rest[1:]
				break value
			case rest == "":
				break value
			default:
				return nil, fmt.Errorf("unexpected text after the value of %s", name)
			}
		}
		out = append(out, [2]string{name, v.String()})
		s = rest
	}
	return out, nil
}
