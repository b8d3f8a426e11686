package sidecar

import (
	"net"
	"testing"
	"time"
)

func TestLogThrottle(t *testing.T) {
	base := time.Unix(1_700_000_000, 0)
	type event struct {
		at      time.Duration
		limited bool
	}
	tests := []struct {
		name   string
		events []event
		want   []tally // the lines written, the flush's last
	}{
		{"one event", []event{{0, false}}, []tally{{1, 0, "r0"}}},
		{"a burst is one line, then the flush", []event{{0, false}, {time.Second, false}, {2 * time.Second, true}},
			[]tally{{1, 0, "r0"}, {2, 1, "r2"}}},
		{"the next interval's first event carries the count", []event{{0, false}, {time.Second, true}, {10 * time.Second, false}, {11 * time.Second, false}},
			[]tally{{1, 0, "r0"}, {2, 1, "r2"}, {1, 0, "r3"}}},
		{"spaced out events are each a line", []event{{0, false}, {10 * time.Second, false}, {25 * time.Second, true}},
			[]tally{{1, 0, "r0"}, {1, 0, "r1"}, {1, 1, "r2"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lt := logThrottle{every: 10 * time.Second}
			var got []tally
			for i, e := range tt.events {
				if line, ok := lt.add(base.Add(e.at), "r"+string(rune('0'+i)), e.limited); ok {
					got = append(got, line)
				}
			}
			if line, ok := lt.flush(); ok {
				got = append(got, line)
			}
			if _, ok := lt.flush(); ok {
				t.Fatal("a second flush had something to log")
			}
			if len(got) != len(tt.want) {
				t.Fatalf("lines %+v, want %+v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("line %d: %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

// Closing a connection twice gives its slot back once.
func TestSlotConnReleasesOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := 0
	l := newLimitListener(ln, 2, func() { refused++ })
	defer l.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	for range 2 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	a, b := <-accepted, <-accepted
	a.Close()
	a.Close()
	if n := len(l.slots); n != 1 {
		t.Fatalf("%d slots taken after closing one of two connections twice, want 1", n)
	}
	b.Close()
	if n := len(l.slots); n != 0 || refused != 0 {
		t.Fatalf("%d slots taken, %d refused", n, refused)
	}
}
