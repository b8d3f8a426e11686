package runner

import (
	"strings"
	"testing"
)

func TestCappedBuffer(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cap    int
		writes []string
		want   string
	}{
		{"fits", 10, []string{"abc", "def"}, "abcdef"},
		{"exactly the cap", 6, []string{"abcdef"}, "abcdef"},
		{"head and tail", 6, []string{"abcdefghij"}, "abc\n[... 4 bytes omitted ...]\nhij"},
		{"many small writes", 4, []string{"1", "2", "3", "4", "5", "6", "7"}, "12\n[... 3 bytes omitted ...]\n67"},
		{"head ends a line", 8, []string{"abc\n", "0123456789", "wxyz"}, "abc\n[... 10 bytes omitted ...]\nwxyz"},
		{"empty", 4, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCappedBuffer(tc.cap)
			for _, w := range tc.writes {
				c.Write([]byte(w))
			}
			if got := c.String(); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	big := newCappedBuffer(1 << 20)
	for range 3000 {
		big.Write([]byte(strings.Repeat("x", 1023) + "\n"))
	}
	if s := big.String(); len(s) > 1<<20+64 || !strings.Contains(s, "bytes omitted") {
		t.Errorf("3 MB capped to %d bytes", len(s))
	}
}
