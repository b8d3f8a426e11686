package httpexec

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestDo(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/echo":
			w.Header().Set("X-Method", r.Method)
			w.Write([]byte(r.Header.Get("Authorization") + "|" + string(body)))
		case "/fail":
			http.Error(w, "nope", http.StatusTeapot)
		case "/slow":
			time.Sleep(300 * time.Millisecond)
		}
	}))
	defer srv.Close()
	r := New(nil)
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		req     Request
		timeout time.Duration
		status  int
		body    string
		err     string
	}{
		{"post with headers", Request{Method: "post", URL: srv.URL + "/echo", Headers: [][2]string{{"Authorization", "Bearer x"}}, Body: `{"a":1}`}, time.Second, 200, `Bearer x|{"a":1}`, ""},
		{"error status is a result", Request{URL: srv.URL + "/fail"}, time.Second, 418, "nope\n", ""},
		{"timeout", Request{URL: srv.URL + "/slow"}, 50 * time.Millisecond, 0, "", "no response within 50ms"},
		{"bad url", Request{URL: "ftp://x/y"}, time.Second, 0, "", "invalid request URL"},
		{"refused", Request{URL: "http://127.0.0.1:1/x"}, time.Second, 0, "", "connection refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := r.Do(ctx, tc.req, tc.timeout)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || res.StatusCode != tc.status || string(res.Body) != tc.body {
				t.Errorf("got %d %q %v", res.StatusCode, res.Body, err)
			}
		})
	}
}
