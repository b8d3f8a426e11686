package journal

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"testing"
)

func testKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealRoundTrip(t *testing.T) {
	key := testKey(t)
	j := openTest(t, WithSecretKey(key))
	if !j.CanSeal() {
		t.Fatal("CanSeal is false with a key")
	}
	for _, tc := range []struct {
		name  string
		plain []byte
	}{
		{"empty", []byte{}},
		{"env value", []byte("s3cr3t-token")},
		{"ssh key", bytes.Repeat([]byte("-----BEGIN OPENSSH PRIVATE KEY-----\n"), 40)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := j.Seal(tc.plain)
			if err != nil {
				t.Fatal(err)
			}
			b, err := j.Seal(tc.plain)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(a, b) {
				t.Error("two seals of the same text are equal (nonce reused)")
			}
			if len(tc.plain) > 4 && bytes.Contains(a, tc.plain) {
				t.Error("sealed data contains the plaintext")
			}
			got, err := j.Unseal(a)
			if err != nil || !bytes.Equal(got, tc.plain) {
				t.Fatalf("Unseal: %q %v", got, err)
			}
		})
	}
}

func TestUnsealRejects(t *testing.T) {
	j := openTest(t, WithSecretKey(testKey(t)))
	other := openTest(t, WithSecretKey(testKey(t)))
	sealed, err := j.Seal([]byte("password"))
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte {
		c := bytes.Clone(sealed)
		c[i] ^= 1
		return c
	}
	for _, tc := range []struct {
		name   string
		j      *Journal
		sealed []byte
	}{
		{"other key", other, sealed},
		{"format byte", j, flip(0)},
		{"nonce", j, flip(3)},
		{"ciphertext", j, flip(len(sealed) - 20)},
		{"tag", j, flip(len(sealed) - 1)},
		{"truncated", j, sealed[:len(sealed)-1]},
		{"too short", j, sealed[:10]},
		{"empty", j, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, err := tc.j.Unseal(tc.sealed); !errors.Is(err, ErrUnseal) {
				t.Fatalf("Unseal: %q %v, want ErrUnseal", got, err)
			}
		})
	}
}

func TestSealWithoutKey(t *testing.T) {
	j := openTest(t)
	if j.CanSeal() {
		t.Error("CanSeal is true without a key")
	}
	if _, err := j.Seal([]byte("x")); !errors.Is(err, ErrNoKey) {
		t.Errorf("Seal without key: %v", err)
	}
	if _, err := j.Unseal([]byte{1, 2, 3}); !errors.Is(err, ErrNoKey) {
		t.Errorf("Unseal without key: %v", err)
	}
}

// TestKeyNotInFile: the key is not written to the file, and the caller's
// slice may be reused after Open.
func TestKeyNotInFile(t *testing.T) {
	key := testKey(t)
	orig := bytes.Clone(key)
	j := openTest(t, WithSecretKey(key))
	clear(key)
	sealed, err := j.Seal([]byte("secret env"))
	if err != nil {
		t.Fatal(err)
	}
	if err := j.PutRecord(context.Background(), "job", "j1", map[string][]byte{"env": sealed}); err != nil {
		t.Fatal(err)
	}
	plain, err := j.Unseal(sealed)
	if err != nil || string(plain) != "secret env" {
		t.Fatalf("Unseal after the caller cleared its key: %q %v", plain, err)
	}
	data, err := os.ReadFile(j.Path())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(data, orig) {
		t.Error("the key is in the file")
	}
	if bytes.Contains(data, []byte("secret env")) {
		t.Error("the plaintext is in the file")
	}
}
