package images

import "testing"

func TestNormalize(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"debian:12", "docker.io/library/debian:12"},
		{"127.0.0.1:5000/me/app", "127.0.0.1:5000/me/app:latest"},
		{"cronium.local/runtimes/bash:latest", "cronium.local/runtimes/bash:latest"},
		{"localhost:5000/x:1", "localhost:5000/x:1"},
	} {
		got, err := Normalize(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("Normalize(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	if _, err := Normalize("UPPER/Case:x"); err == nil {
		t.Error("invalid reference accepted")
	}
}
