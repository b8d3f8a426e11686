package state

import (
	"encoding/json"
	"reflect"
	"testing"
)

// Progress records journaled before Usage existed still read, and a
// figure that is unknown stays apart from a zero one.
func TestProgressUsageJSON(t *testing.T) {
	for _, tc := range []struct {
		name, record string
		want         *Usage
	}{
		{"older journal", `{"jobId":"j","stream":"job/j/1","state":"finished","claimedAt":"2026-01-02T03:04:05Z","attempts":1,"attempt":1,"logSeq":3,"entries":2,"status":"completed","exitCode":0}`, nil},
		{"both figures", `{"jobId":"j","usage":{"cpuSeconds":1.5,"peakMemoryBytes":1048576}}`, &Usage{CPUSeconds: new(1.5), PeakMemoryBytes: new(int64(1 << 20))}},
		{"peak unknown", `{"jobId":"j","usage":{"cpuSeconds":0}}`, &Usage{CPUSeconds: new(0.0)}},
		{"measured, nothing known", `{"jobId":"j","usage":{}}`, &Usage{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p Progress
			if err := json.Unmarshal([]byte(tc.record), &p); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(p.Usage, tc.want) {
				t.Fatalf("usage %+v, want %+v", p.Usage, tc.want)
			}
			again, err := json.Marshal(p)
			if err != nil {
				t.Fatal(err)
			}
			var back Progress
			if err := json.Unmarshal(again, &back); err != nil || !reflect.DeepEqual(back.Usage, tc.want) {
				t.Errorf("round trip %s: usage %+v, %v", again, back.Usage, err)
			}
		})
	}
}
