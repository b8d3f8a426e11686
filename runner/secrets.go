package runner

import (
	"slices"
	"strings"

	"github.com/cronium/cronium-agent/backend/api"
	"github.com/cronium/cronium-agent/runner/mask"
)

// Masking says which of a job's values are replaced by *** in everything
// the agent journals and delivers about the job (live lines, the
// completion's output, its own lines, error messages). The zero value
// masks, by mask.DefaultNames.
type Masking struct {
	// Off turns masking off (logs.mask: false).
	Off bool
	// Names are the patterns of secret variable names, case-insensitive
	// substrings (logs.maskNames); nil means mask.DefaultNames.
	Names []string
}

// masker is the masker of job's secrets, nil when masking is off: the
// values of its environment whose name looks secret or that arrived
// encrypted, and the passwords and private keys of its servers. Secrets
// learned later (tool credentials, a server's details fetched during the
// run) are added through Attempt.AddSecrets.
func (m Masking) masker(job *api.Job) *mask.Masker {
	if m.Off {
		return nil
	}
	var secrets []string
	for name, v := range job.Environment {
		if mask.SecretName(name, m.Names) || slices.Contains(job.EncryptedEnv, name) || slices.Contains(job.DecryptedEnv, name) {
			secrets = append(secrets, v)
		}
	}
	if s := job.Target.Server; s != nil {
		secrets = append(secrets, ServerSecrets(*s)...)
	}
	for _, s := range job.Metadata.Servers {
		secrets = append(secrets, ServerSecrets(s)...)
	}
	return mask.New(secrets...)
}

// ServerSecrets are what of a server's details must never be shown: its
// password, and each line of its private key's body (the armor lines
// "-----BEGIN ... KEY-----" are not secret, and a script printing a key
// of its own may show them).
func ServerSecrets(s api.Server) []string {
	var out []string
	if s.Password != "" {
		out = append(out, s.Password)
	}
	for _, l := range strings.Split(s.PrivateKey, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "-----") {
			out = append(out, l)
		}
	}
	return out
}
