package config

import (
	"bytes"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Reference renders docs/configuration.md: every key with its environment
// variable, default and meaning, from the schema itself so it cannot drift.
func Reference() ([]byte, error) {
	// Each top-level section of the reference starts with what it is for.
	sectionDocs := map[string]string{
		"containerd": "How the agent reaches containerd and where jobs are created there.",
		"state":      "Where the agent keeps what it must not lose.",
		"runtimes":   "The image of each script runtime.",
		"jobs":       "Timeouts, concurrency and the pace of the agent's calls to the backend.",
		"resources":  "`defaults` apply to a job that asks for nothing; a job's requests above `max` are lowered to it (the job is not refused).",
		"userns":     "The subordinate id range every job's user namespace maps to.",
		"registry":   "Image pulls (runtime images are imported, other images are pulled).",
		"network":    "The per-job networks and runtime APIs, and the outbound policy: what scripts (`egress`) and HTTP jobs and tool actions (`http.egress`) may reach. See [operations](operations.md#the-outbound-policy).",
		"http":       "HTTP_REQUEST jobs and tool actions: their mode of the outbound policy (its lists are `network.allow` and `network.deny`), the response kept, the connect timeout.",
		"logs":       "What the journal and the backend never show of a job: its secrets are masked (`***`).",
		"tools":      "Tool actions (webhook, Slack, Discord, Teams, email): the agent's credentials. See [operations](operations.md#tool-actions).",
		"backend":    "The Cronium backend's internal API.",
		"journal":    "The on-disk journal every fact about a run goes through before the backend hears of it.",
		"admin":      "The local inspection socket.",
		"ssh":        "Connections to the servers jobs run on over SSH: host key checking (see [operations](operations.md#ssh-host-keys)), the pool of connections and the per-server circuit breaker.",
	}
	def := reflect.ValueOf(Default())
	var b bytes.Buffer
	b.WriteString("# Configuration reference\n\n")
	b.WriteString("<!-- Generated from internal/config by its tests: do not edit. After changing the schema, run\n")
	b.WriteString("     UPDATE_GOLDEN=1 go test ./internal/config/ -->\n\n")
	fmt.Fprintf(&b, "The agent reads `%s` (`--config FILE` for another). An absent or empty file means all\n", DefaultPath)
	b.WriteString("defaults; unknown keys are refused, so a typo never silently becomes a default. Every key can also be\n")
	b.WriteString("set by an environment variable, `CRONIUM_` and the key path in upper snake case; the variable wins\n")
	b.WriteString("over the file. Sizes take `KiB`, `MiB`, `GiB` (or a bare number of bytes); durations take `s`, `m`,\n")
	b.WriteString("`h` (or a bare number of seconds); lists in variables are comma-separated.\n")
	b.WriteString("[`packaging/agent.yaml`](../packaging/agent.yaml) is the same defaults as a file to start from.\n")
	b.WriteString("Secrets (`backend.token`, `backend.envEncryptionKey`) are best set in the environment.\n")

	section := ""
	err := walk(def, nil, func(path []string, f reflect.StructField, v reflect.Value) error {
		doc := f.Tag.Get("doc")
		if doc == "" {
			return fmt.Errorf("config key %s has no doc tag", strings.Join(path, "."))
		}
		if path[0] != section {
			section = path[0]
			fmt.Fprintf(&b, "\n## %s\n\n", section)
			if s := sectionDocs[section]; s != "" {
				b.WriteString(s + "\n\n")
			}
			b.WriteString("| key | environment variable | default | meaning |\n|---|---|---|---|\n")
		}
		fmt.Fprintf(&b, "| `%s` | `%s` | %s | %s |\n", strings.Join(path, "."), EnvName(path...), defaultText(v), doc)
		return nil
	})
	if err != nil {
		return nil, err
	}

	b.WriteString("\n## Names of the earlier Cronium orchestrator\n\n")
	b.WriteString("These variables are accepted too, so an operator can swap that orchestrator for this agent\n")
	b.WriteString("without rewriting its environment. The agent's own name wins when both are set.\n\n")
	b.WriteString("| variable | sets |\n|---|---|\n")
	aliases := Aliases()
	names := make([]string, 0, len(aliases))
	for n := range aliases {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "| `%s` | `%s` |\n", n, aliases[n])
	}
	return b.Bytes(), nil
}

// defaultText writes a default as the YAML file would hold it.
func defaultText(v reflect.Value) string {
	out, err := yaml.Marshal(v.Interface())
	s := strings.TrimSpace(string(out))
	switch {
	case err != nil:
		return "?"
	case v.Kind() == reflect.Slice && v.Len() == 0, s == `""`:
		return "(none)"
	case v.Kind() == reflect.Slice:
		var items []string
		for i := 0; i < v.Len(); i++ {
			items = append(items, fmt.Sprintf("`%v`", v.Index(i).Interface()))
		}
		return strings.Join(items, ", ")
	}
	return "`" + s + "`"
}
