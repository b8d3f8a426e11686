package toolexec

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// smtpServer is testdata/smtpd.py: a real SMTP server (aiosmtpd) on
// loopback requiring AUTH, writing what it receives to a file.
type smtpServer struct {
	port int
	out  string
}

const (
	smtpUser     = "mailer"
	smtpPassword = "s3cret-pass"
)

// aiosmtpdPython finds a python3 that has aiosmtpd (Debian's
// python3-aiosmtpd, in /usr/bin/python3 even when another python3 comes
// first in PATH). Missing, the test is skipped, but fails in CI.
func aiosmtpdPython(t *testing.T) string {
	t.Helper()
	for _, py := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(py, "-c", "import aiosmtpd").Run() == nil {
			return py
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("python3-aiosmtpd is missing (hack/deps.sh installs it)")
	}
	t.Skip("python3-aiosmtpd is missing (hack/deps.sh installs it)")
	return ""
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// selfSigned writes a certificate for 127.0.0.1 and its key, and returns
// the pool that trusts it.
func selfSigned(t *testing.T, dir string) (cert, key string, pool *x509.CertPool) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), 0o600)
	c, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(c)
	return cert, key, pool
}

func startSMTP(t *testing.T, py, mode, cert, key string) smtpServer {
	t.Helper()
	s := smtpServer{port: freePort(t), out: filepath.Join(t.TempDir(), "mail.jsonl")}
	args := []string{"testdata/smtpd.py", "--port", fmt.Sprint(s.port), "--out", s.out, "--user", smtpUser, "--password", smtpPassword, "--mode", mode}
	if mode != "plain" {
		args = append(args, "--cert", cert, "--key", key)
	}
	cmd := exec.Command(py, args...)
	stdin, err := cmd.StdinPipe() // closed at cleanup: the server ends
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	ready := make(chan bool, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		ready <- strings.TrimSpace(line) == "ready"
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatalf("smtpd.py did not start: %s", stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("smtpd.py not ready after 20 s: %s", stderr.String())
	}
	return s
}

type mailRecord struct {
	MailFrom  string   `json:"mail_from"`
	RcptTos   []string `json:"rcpt_tos"`
	Mechanism string   `json:"mechanism"`
	Login     string   `json:"login"`
	TLS       bool     `json:"tls"`
	Data      string   `json:"data"`
}

func (s smtpServer) received(t *testing.T) []mailRecord {
	t.Helper()
	b, err := os.ReadFile(s.out)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []mailRecord
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line == "" {
			continue
		}
		var r mailRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// The email tool against a real SMTP server: authenticated (PLAIN or
// LOGIN) over plain text on loopback, after STARTTLS, and over implicit
// TLS; the message's envelope, headers (CRLF) and parts as sent.
func TestEmailThroughSMTP(t *testing.T) {
	py := aiosmtpdPython(t)
	cert, key, pool := selfSigned(t, t.TempDir())
	tests := []struct {
		name, mode, tls, auth string
		html                  string
		wantMech              string
		wantTLS               bool
	}{
		{"plain text, AUTH PLAIN on loopback", "plain", "", "", "", "PLAIN", false},
		{"STARTTLS, AUTH LOGIN, html alternative", "starttls", "starttls", "login", "<p>All <b>good</b></p>", "LOGIN", true},
		{"implicit TLS", "tls", "tls", "", "", "PLAIN", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startSMTP(t, py, tt.mode, cert, key)
			creds := map[string]Credential{"mail": {Tool: "email", Host: "127.0.0.1", Port: srv.port, Username: smtpUser, Password: smtpPassword,
				TLS: tt.tls, Auth: tt.auth, From: "Cronium <cronium@example.test>"}}
			r := New(WithCredentials(creds), WithTLSConfig(&tls.Config{RootCAs: pool}), WithLogger(slog.New(slog.DiscardHandler)))
			params := map[string]any{
				"to": "ops@example.test, Dev Team <dev@example.test>", "cc": []any{"cc@example.test"}, "bcc": "hidden@example.test",
				"subject": "Nightly report ✓", "body": "Line one\nLine two is long: " + strings.Repeat("y", 100),
			}
			if tt.html != "" {
				params["html"] = tt.html
			}
			res, err := r.Run(context.Background(), Request{Tool: "email", Action: "send", Params: params})
			if err != nil {
				t.Fatal(err)
			}
			if !res.Success {
				t.Fatalf("result %+v", res)
			}
			got := srv.received(t)
			if len(got) != 1 {
				t.Fatalf("server received %d messages", len(got))
			}
			m := got[0]
			if m.MailFrom != "cronium@example.test" || strings.Join(m.RcptTos, ",") != "ops@example.test,dev@example.test,cc@example.test,hidden@example.test" {
				t.Errorf("envelope from %q to %q", m.MailFrom, m.RcptTos)
			}
			if m.Mechanism != tt.wantMech || m.Login != smtpUser || m.TLS != tt.wantTLS {
				t.Errorf("session: mechanism %q login %q tls %v; want %s, %s, %v", m.Mechanism, m.Login, m.TLS, tt.wantMech, smtpUser, tt.wantTLS)
			}
			head, body, ok := strings.Cut(m.Data, "\r\n\r\n")
			if !ok {
				t.Fatalf("no CRLF blank line after the headers: %q", m.Data)
			}
			if strings.Contains(strings.ReplaceAll(m.Data, "\r\n", ""), "\n") {
				t.Errorf("a bare LF in the message: %q", m.Data)
			}
			hdr := map[string]string{}
			for _, l := range strings.Split(head, "\r\n") {
				k, v, _ := strings.Cut(l, ": ")
				hdr[k] = v
			}
			wantHdr := map[string]string{
				"From": `"Cronium" <cronium@example.test>`, "To": `<ops@example.test>, "Dev Team" <dev@example.test>`, "Cc": "<cc@example.test>",
				"Subject": "=?utf-8?q?Nightly_report_=E2=9C=93?=", "MIME-Version": "1.0",
			}
			for k, v := range wantHdr {
				if hdr[k] != v {
					t.Errorf("header %s = %q, want %q", k, hdr[k], v)
				}
			}
			if _, ok := hdr["Bcc"]; ok {
				t.Error("Bcc is in the headers")
			}
			if id, _ := res.Data.(map[string]any)["messageId"].(string); hdr["Message-ID"] != "<"+id+">" || !strings.HasSuffix(id, "@example.test") {
				t.Errorf("Message-ID %q, data %v", hdr["Message-ID"], res.Data)
			}
			if _, err := time.Parse(time.RFC1123Z, hdr["Date"]); err != nil {
				t.Errorf("Date %q: %v", hdr["Date"], err)
			}
			if tt.html == "" {
				if hdr["Content-Type"] != "text/plain; charset=utf-8" || hdr["Content-Transfer-Encoding"] != "quoted-printable" {
					t.Errorf("content headers %q %q", hdr["Content-Type"], hdr["Content-Transfer-Encoding"])
				}
				if !strings.HasPrefix(body, "Line one\r\nLine two is long: yyy") || !strings.Contains(body, "=\r\n") {
					t.Errorf("body %q", body)
				}
			} else {
				if !strings.HasPrefix(hdr["Content-Type"], "multipart/alternative; boundary=") ||
					!strings.Contains(body, "Content-Type: text/plain; charset=utf-8\r\n") ||
					!strings.Contains(body, "Content-Type: text/html; charset=utf-8\r\n") ||
					!strings.Contains(body, "<p>All <b>good</b></p>") {
					t.Errorf("multipart %q body %q", hdr["Content-Type"], body)
				}
			}
		})
	}

	t.Run("wrong password", func(t *testing.T) {
		srv := startSMTP(t, py, "plain", "", "")
		r := New(WithLogger(slog.New(slog.DiscardHandler)))
		res, err := r.Run(context.Background(), Request{Tool: "email", Params: map[string]any{
			"to": "a@example.test", "from": "b@example.test", "subject": "s", "body": "b",
			"host": "127.0.0.1", "port": json.Number(fmt.Sprint(srv.port)), "username": smtpUser, "password": "wrong-password-123",
		}})
		if err != nil {
			t.Fatal(err)
		}
		if res.Success || !strings.Contains(res.Error, "email: SMTP AUTH: 535") || strings.Contains(res.Error, "wrong-password-123") {
			t.Errorf("result %+v", res)
		}
		if n := len(srv.received(t)); n != 0 {
			t.Errorf("%d messages received", n)
		}
	})

	t.Run("STARTTLS required but not offered", func(t *testing.T) {
		srv := startSMTP(t, py, "plain", "", "")
		r := New(WithLogger(slog.New(slog.DiscardHandler)))
		res, _ := r.Run(context.Background(), Request{Tool: "email", Params: map[string]any{
			"to": "a@example.test", "from": "b@example.test", "body": "b",
			"credentials": map[string]any{"host": "127.0.0.1", "port": json.Number(fmt.Sprint(srv.port)), "username": smtpUser, "password": smtpPassword, "tls": "starttls"},
		}, Inline: map[string]any{"host": "127.0.0.1", "port": json.Number(fmt.Sprint(srv.port)), "username": smtpUser, "password": smtpPassword, "tls": "starttls"}})
		if res.Success || !strings.Contains(res.Error, "does not offer STARTTLS") {
			t.Errorf("result %+v", res)
		}
	})
}
