package config

import (
	"bytes"
	"fmt"

	"gopkg.in/yaml.v3"
)

// Example renders the default configuration as a commented YAML file, the
// one packaging/agent.yaml ships.
func Example() ([]byte, error) {
	body, err := yaml.Marshal(Default())
	if err != nil {
		return nil, fmt.Errorf("render default configuration: %w", err)
	}
	var b bytes.Buffer
	b.WriteString("# cronium-agent configuration: every key below is shown with its default.\n")
	b.WriteString("# An absent or empty file means all defaults. Every key can also be set by an\n")
	b.WriteString("# environment variable: CRONIUM_ + the key path in upper snake case, e.g.\n")
	b.WriteString("#   containerd.address      -> CRONIUM_CONTAINERD_ADDRESS\n")
	b.WriteString("#   jobs.defaultTimeout     -> CRONIUM_JOBS_DEFAULT_TIMEOUT\n")
	b.WriteString("#   resources.max.memory    -> CRONIUM_RESOURCES_MAX_MEMORY\n")
	b.WriteString("# Sizes take KiB/MiB/GiB; durations take s/m/h; lists in variables are comma-separated.\n")
	b.WriteString("# resources.defaults apply to jobs that ask for nothing; job requests above\n")
	b.WriteString("# resources.max are lowered to it. userns maps container ids 0..size-1 to host\n")
	b.WriteString("# ids hostUID.. / hostGID..; jobs run as 1000:1000 inside.\n\n")
	b.Write(body)
	return b.Bytes(), nil
}
