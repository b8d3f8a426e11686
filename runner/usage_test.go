package runner

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/cronium/cronium-agent/runner/container"
	"github.com/cronium/cronium-agent/state"
)

// The end of an execution carries what its run consumed in its metadata,
// as journaled: a figure the executor could not get, and any figure of an
// executor that measures nothing, has no key.
func TestEndUpdateUsage(t *testing.T) {
	s := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	p := state.Progress{ExecutionID: "exec_j_1", Attempt: 1, Attempts: 1, AttemptStart: s.Add(-time.Second), StartedAt: s}
	for _, tc := range []struct {
		name     string
		executor Target
		usage    *Usage
		want     map[string]any // the usage keys of the decoded metadata
	}{
		{"container, both figures", TargetContainer, containerUsage(container.Usage{CPUSeconds: new(1.25), PeakMemoryBytes: new(int64(52 << 20))}),
			map[string]any{"cpuSeconds": 1.25, "peakMemoryBytes": float64(52 << 20)}},
		{"container on cgroup v2 before Linux 5.19", TargetContainer, containerUsage(container.Usage{CPUSeconds: new(0.5)}),
			map[string]any{"cpuSeconds": 0.5}},
		{"container run lost with its cgroup", TargetContainer, containerUsage(container.Usage{}),
			map[string]any{}},
		{"container job that used nothing measurable", TargetContainer, &Usage{CPUSeconds: new(0.0), PeakMemoryBytes: new(int64(0))},
			map[string]any{"cpuSeconds": 0.0, "peakMemoryBytes": 0.0}},
		{"http request: not measured", TargetHTTP, nil, map[string]any{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := outcome{Result: Result{Status: "completed", End: s.Add(time.Second), Usage: tc.usage}, executor: tc.executor}
			items, err := endItems(p, o)
			if err != nil || len(items) != 1 {
				t.Fatalf("%d items, %v; want 1", len(items), err)
			}
			var it struct {
				Update struct {
					ExecutionMetadata map[string]any `json:"executionMetadata"`
				} `json:"update"`
			}
			if err := json.Unmarshal(items[0].Payload, &it); err != nil {
				t.Fatal(err)
			}
			got := map[string]any{}
			for _, k := range []string{"cpuSeconds", "peakMemoryBytes"} {
				if v, ok := it.Update.ExecutionMetadata[k]; ok {
					got[k] = v
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("usage in the metadata %v, want %v (item %s)", got, tc.want, items[0].Payload)
			}
			if it.Update.ExecutionMetadata["executorType"] != string(tc.executor) {
				t.Errorf("metadata lost its other keys: %s", items[0].Payload)
			}
		})
	}
}
