package doctor

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/cronium/cronium-agent/internal/config"
)

func TestSubordinateIDs(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  want
	}{
		{"no files", nil, want{status: Pass, detail: []string{"uids 100000-165535", "no "}}},
		{"apart", map[string]string{"subuid": "alice:200000:65536\n", "subgid": "alice:200000:65536\n"},
			want{status: Pass, detail: []string{"no user of"}}},
		{"adjacent is apart", map[string]string{"subuid": "alice:165536:65536\nbob:34464:65536\n"},
			want{status: Pass}},
		{"useradd's first range", map[string]string{"subuid": "# rootless\nbob:300000:10\nalice:100000:65536\n", "subgid": "alice:100000:65536\n"},
			want{status: Warn, detail: []string{"gives user alice uids 100000-165535", "gives user alice gids 100000-165535"}, absent: []string{"bob"},
				fix: []string{"userns.hostUID", "CRONIUM_USERNS_HOST_UID"}}},
		{"partial overlap in subgid only", map[string]string{"subuid": "carol:500000:65536\n", "subgid": "carol:165000:1000\n"},
			want{status: Warn, detail: []string{"subgid gives user carol gids 165000-165999"}, absent: []string{"subuid gives"}}},
		{"malformed lines skipped", map[string]string{"subuid": "broken\nx:y:z\nzero:100000:0\n"},
			want{status: Pass}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			etc := t.TempDir()
			writeTree(t, etc, tc.files)
			tc.want.check(t, runCheck(t, config.Default(), "subids", WithEtcDir(etc)))
		})
	}
}

func TestStateDir(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, base string) string // returns state.dir
		want  want
	}{
		{"0711", func(t *testing.T, base string) string { return mkdir(t, base, "state", 0o711) },
			want{status: Pass, detail: []string{"root's, mode 0711"}}},
		{"0755", func(t *testing.T, base string) string { return mkdir(t, base, "state", 0o755) },
			want{status: Pass}},
		{"0700", func(t *testing.T, base string) string { return mkdir(t, base, "state", 0o700) },
			want{status: Fail, detail: []string{"(state.dir) has mode 0700: jobs cannot reach their script files", "uid 100000"}, fix: []string{"chmod o+x ", "0711"}}},
		{"world-writable", func(t *testing.T, base string) string { return mkdir(t, base, "state", 0o777) },
			want{status: Fail, detail: []string{"mode 0777: others may write in it"}, fix: []string{"chmod 0711 "}}},
		{"not root's", func(t *testing.T, base string) string {
			d := mkdir(t, base, "state", 0o711)
			if err := os.Chown(d, 65534, 65534); err != nil {
				t.Skipf("chown needs root: %v", err)
			}
			return d
		}, want{status: Fail, detail: []string{"owned by uid 65534, not root"}, fix: []string{"chown root:root "}}},
		{"parent closed", func(t *testing.T, base string) string {
			parent := mkdir(t, base, "closed", 0o700)
			return mkdir(t, parent, "state", 0o711)
		}, want{status: Fail, detail: []string{"/closed above state.dir has mode 0700"}, fix: []string{"chmod o+x "}}},
		{"to be made", func(t *testing.T, base string) string { return filepath.Join(base, "a", "b", "state") },
			want{status: Pass, detail: []string{"does not exist yet", "0711"}}},
		{"to be made below a closed directory", func(t *testing.T, base string) string {
			return filepath.Join(mkdir(t, base, "closed", 0o700), "state")
		}, want{status: Fail, detail: []string{"/closed above state.dir has mode 0700"}}},
		{"a file in the way", func(t *testing.T, base string) string {
			if err := os.WriteFile(filepath.Join(base, "file"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(base, "file", "state")
		}, want{status: Fail, detail: []string{"/file is not a directory"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.State.Dir = tc.setup(t, searchableDir(t))
			tc.want.check(t, runCheck(t, cfg, "state-dir"))
		})
	}
}

// mkdir makes dir/name with exactly mode (umask aside).
func mkdir(t *testing.T, dir, name string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.Mkdir(p, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDisk(t *testing.T) {
	for _, tc := range []struct {
		name   string
		budget config.ByteSize
		sub    string // state.dir below the test's directory; it need not exist
		want   want
	}{
		{"room", 1 * config.MiB, "state", want{status: Pass, detail: []string{"free on the file system of", "journal.budget 1.0 MiB"}}},
		{"budget beyond the disk", 1 << 60, "state", want{status: Warn, detail: []string{"less than journal.budget (1024.0 PiB)"}, fix: []string{"journal.budget", "CRONIUM_JOURNAL_BUDGET"}}},
		{"state.dir not made yet", 1 * config.MiB, "not/yet/made", want{status: Pass}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			base := t.TempDir()
			if err := os.Mkdir(filepath.Join(base, "state"), 0o711); err != nil {
				t.Fatal(err)
			}
			cfg.State.Dir = filepath.Join(base, tc.sub)
			cfg.Journal.Budget = tc.budget
			tc.want.check(t, runCheck(t, cfg, "disk"))
		})
	}
}
