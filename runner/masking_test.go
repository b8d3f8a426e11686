package runner_test

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cronium/cronium-agent/backend/devserver"
)

// A job's secrets never reach its live log, its completion or the
// journal: a value of a variable with a secret name, and one that arrived
// encrypted (no key: passed on as it came), each printed on stdout and
// stderr, split across two writes, and at the end of the output without a
// newline. A value of a variable with an ordinary name is shown.
func TestSecretsMaskedEverywhere(t *testing.T) {
	const (
		secret = "s3cr3t-T0ken-value-42"
		plain  = "visible-value-17"
	)
	// Padded base64 of random bytes: what the deployed backend's
	// encryption looks like (the agent has no key to decrypt it).
	encrypted := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x8f, 0x01, 0xc3, 0xfe, 0x7a, 0x99}, 8))

	b := startBackend(t)
	w := newWorld(t)
	dir := t.TempDir()
	a := newAgent(t, b, w, dir, agentConfig{}).start()

	script := strings.Join([]string{
		"out token=" + secret,
		"err " + secret + " on stderr",
		// Split across two writes: the first ends in the secret's head.
		"frag before " + secret[:5],
		"out " + secret[5:] + " after",
		"efrag " + encrypted[:10],
		"efrag " + encrypted[10:],
		"err",
		"out conn=" + encrypted,
		"out plain=" + plain,
		// The last line, without a newline: the secret, then the head of
		// it that never completes (given out at the end, as it is).
		"frag tail " + secret,
		"frag end:" + secret[:8],
	}, "\n")
	id := b.submit(t, devserver.SubmitRequest{Script: script, Env: map[string]string{
		"API_TOKEN": secret, "DB_CONN": encrypted, "GREETING": plain, "SHORT_SECRET": "abc",
	}})
	v := b.waitDone(t, id)
	if exitCode(v) != 0 || v.Output == nil {
		t.Fatalf("job ended %s, exit %d, output %v", v.Status, exitCode(v), v.Output)
	}

	wantOut := "token=***\nbefore *** after\nconn=***\nplain=" + plain + "\ntail ***end:" + secret[:8]
	if v.Output.Stdout != wantOut {
		t.Errorf("completion stdout %q, want %q", v.Output.Stdout, wantOut)
	}
	if want := "*** on stderr\n***\n"; v.Output.Stderr != want {
		t.Errorf("completion stderr %q, want %q", v.Output.Stderr, want)
	}

	stdout, stderr, system := b.liveLog(t, id)
	live := strings.Join(stdout, "|")
	// Each entry is a live line; a held-back head comes with the next
	// entry of its stream, or on its own at the end.
	if want := "token=***|before |*** after|conn=***|plain=" + plain + "|tail ***|end:|" + secret[:8]; live != want {
		t.Errorf("live stdout %q, want %q", live, want)
	}
	if got, want := strings.Join(stderr, "|"), "*** on stderr|***|"; got != want {
		t.Errorf("live stderr %q, want %q", got, want)
	}
	for _, l := range append(append(stdout, stderr...), system...) {
		if strings.Contains(l, secret) || strings.Contains(l, encrypted) {
			t.Errorf("live line %q shows a secret", l)
		}
	}

	// The journal's file, every byte of it.
	a.stop()
	raw, err := os.ReadFile(filepath.Join(dir, "journal.db"))
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]string{"API_TOKEN": secret, "DB_CONN": encrypted, "its head split off": secret[:5] + secret[5:]} {
		if bytes.Contains(raw, []byte(v)) {
			t.Errorf("the journal holds the value of %s in clear", name)
		}
	}
	// The search would find it: the ordinary value is there.
	if !bytes.Contains(raw, []byte("plain="+plain)) {
		t.Errorf("the journal does not hold the ordinary value: the search proves nothing")
	}
}

// A run adopted after a restart reads its output again from the start and
// journals only what is not journaled: a secret whose head the killed
// agent held back (its fragment journaled without it) is masked whole by
// the next agent, without a gap or a copy in the live log.
func TestSecretsMaskedAcrossAdoption(t *testing.T) {
	const secret = "s3cr3t-T0ken-value-42"
	b, w := startBackend(t), newWorld(t)
	dir := t.TempDir()
	first := newAgent(t, b, w, dir, agentConfig{}).start()
	id := b.submit(t, devserver.SubmitRequest{
		Script: "out first\nfrag before " + secret[:7] + "\ngate rest\nout " + secret[7:] + " after",
		Env:    map[string]string{"API_TOKEN": secret},
	})
	// Two live lines: "first" and "before " (the fragment without the
	// held-back head of the secret).
	waitFor(t, "the fragment to be journaled", func() bool {
		p, ok := first.progress(id)
		return ok && p.Entries >= 2 && p.LogSeq >= 2
	})
	next := first.kill(id, 2)

	second := newAgent(t, b, w, next, agentConfig{})
	second.recover()
	second.start()
	w.open("rest")
	v := b.waitDone(t, id)
	if want := "first\nbefore *** after\n"; v.Output == nil || v.Output.Stdout != want {
		t.Errorf("completion output %+v, want stdout %q", v.Output, want)
	}
	stdout, _, _ := b.liveLog(t, id) // checks the seqs: no gap, no copy
	if got, want := strings.Join(stdout, "|"), "first|before |*** after"; got != want {
		t.Errorf("live stdout %q, want %q", got, want)
	}
	second.stop()
	for _, d := range []string{dir, next} {
		raw, err := os.ReadFile(filepath.Join(d, "journal.db"))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(raw, []byte(secret)) {
			t.Errorf("the journal in %s holds the secret", d)
		}
	}
}

// What the HTTP executor says of a request goes through the same mask: a
// refused request's error quotes its URL, a secret of the job's
// environment in it.
func TestSecretsMaskedInHTTPError(t *testing.T) {
	const secret = "s3cr3t-T0ken-value-42"
	b, w := startBackend(t), newWorld(t)
	dir := t.TempDir()
	a := newAgent(t, b, w, dir, agentConfig{}).start()
	id := b.submit(t, devserver.SubmitRequest{HTTP: &devserver.HTTPSpec{URL: "http://127.0.0.1:1/hook?token=" + secret},
		Env: map[string]string{"API_TOKEN": secret}})
	v := b.waitDone(t, id)
	if v.Output == nil || !strings.Contains(v.Output.Stderr, "token=***") || strings.Contains(v.Output.Stderr, secret) {
		t.Errorf("completion output %+v, want the secret masked in stderr", v.Output)
	}
	_, stderr, system := b.liveLog(t, id)
	all := strings.Join(append(stderr, system...), "|")
	if !strings.Contains(all, "token=***") || strings.Contains(all, secret) {
		t.Errorf("live lines %q, want the secret masked", all)
	}
	a.stop()
	raw, err := os.ReadFile(filepath.Join(dir, "journal.db"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(secret)) {
		t.Error("the journal holds the secret")
	}
}
