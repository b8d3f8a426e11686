package runner

import (
	"testing"

	"github.com/cronium/cronium-agent/backend/api"
	"github.com/cronium/cronium-agent/runner/mask"
	"github.com/cronium/cronium-agent/runner/output"
)

// Which of a job's values are masked, and logs.mask: false.
func TestMaskingOfJob(t *testing.T) {
	job := &api.Job{
		Environment: map[string]string{
			"API_TOKEN": "tok-value-1", "db_password": "pw-value-2", "DB_CONN": "enc-value-3",
			"GREETING": "hello-world", "MY_SECRET": "abc",
		},
		EncryptedEnv: []string{"DB_CONN"},
		Target: api.Target{Server: &api.Server{Password: "srv-pass-4",
			PrivateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nkeyline-one-5\n\nkeyline-two-6\n-----END OPENSSH PRIVATE KEY-----\n"}},
		Metadata: api.Metadata{Servers: []api.Server{{Password: "other-pass-7"}}},
	}
	const in = "tok-value-1 pw-value-2 enc-value-3 hello-world abc srv-pass-4 keyline-one-5 keyline-two-6 other-pass-7 -----BEGIN OPENSSH PRIVATE KEY-----"
	for _, tc := range []struct {
		name string
		m    Masking
		want string
	}{
		{"defaults", Masking{}, "*** *** *** hello-world abc *** *** *** *** -----BEGIN OPENSSH PRIVATE KEY-----"},
		{"names configured", Masking{Names: []string{"greet"}}, "tok-value-1 pw-value-2 *** *** abc *** *** *** *** -----BEGIN OPENSSH PRIVATE KEY-----"},
		{"no names", Masking{Names: []string{}}, "tok-value-1 pw-value-2 *** hello-world abc *** *** *** *** -----BEGIN OPENSSH PRIVATE KEY-----"},
		{"off", Masking{Off: true}, in},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.m.masker(job).Mask(in); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

// BenchmarkCaptureMasking is the cost of masking in the path of every
// output entry (capture: mask, then keep for the completion), per MiB of
// 100-byte lines, against masking off.
func BenchmarkCaptureMasking(b *testing.B) {
	line := []byte("2026-12-07T04:26:52Z INFO processed batch 1234 of 5678: 42 rows, checksum 9f86d081884c7d65 ok")
	lines := (1 << 20) / (len(line) + 1)
	job := &api.Job{Environment: map[string]string{
		"API_TOKEN": "tok-3f9a2c71d2e4", "DB_PASSWORD": "hunter2hunter2", "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
		"AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG", "WEBHOOK_SECRET": "s3cr3t-value", "PATH": "/usr/bin",
	}}
	for _, bc := range []struct {
		name string
		m    Masking
	}{{"off", Masking{Off: true}}, {"5 secrets", Masking{}}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(lines * (len(line) + 1)))
			mk := bc.m.masker(job)
			for b.Loop() {
				r := &run{stdout: newCappedBuffer(1 << 20), stderr: newCappedBuffer(1 << 20), mask: mk}
				r.masks = [2]*mask.Stream{mk.Stream(), mk.Stream()}
				for range lines {
					r.capture(output.Entry{Stream: output.Stdout, Data: line}, r.masks[0])
				}
			}
		})
	}
}
