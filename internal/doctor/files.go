package doctor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/cronium/cronium-agent/internal/command"
	"github.com/cronium/cronium-agent/internal/config"
)

// idRange is [start, start+size).
type idRange struct{ start, size uint64 }

func (r idRange) end() uint64 { return r.start + r.size }

func (r idRange) overlaps(o idRange) bool { return r.start < o.end() && o.start < r.end() }

func (r idRange) String() string { return fmt.Sprintf("%d-%d", r.start, r.end()-1) }

// subEntry is one line of /etc/subuid or /etc/subgid.
type subEntry struct {
	user string
	ids  idRange
}

// subordinateIDs: every job's user namespace maps the same host range.
// useradd hands ranges out from 100000 (the agent's default too), so the
// first user given one for rootless containers often gets exactly the
// jobs' ids: that user's containers could then reach the jobs' files and
// processes, and the jobs theirs.
func (d *doctor) subordinateIDs(context.Context) Result {
	u := d.cfg.UserNS
	var clashes, read []string
	for _, f := range []struct {
		file, kind string
		jobs       idRange
	}{
		{"subuid", "uids", idRange{uint64(u.HostUID), uint64(u.Size)}},
		{"subgid", "gids", idRange{uint64(u.HostGID), uint64(u.Size)}},
	} {
		path := filepath.Join(d.etc, f.file)
		entries, err := readSubIDs(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fail("make it readable by root", "read %s: %v", path, err)
		}
		read = append(read, path)
		for _, e := range entries {
			if e.ids.overlaps(f.jobs) {
				clashes = append(clashes, fmt.Sprintf("%s gives user %s %s %s, overlapping the jobs' %s %s", path, e.user, f.kind, e.ids, f.kind, f.jobs))
			}
		}
	}
	if len(clashes) > 0 {
		return warn(fmt.Sprintf("give the jobs a range nobody else has: set userns.hostUID and userns.hostGID (%s, %s), e.g. to 1000000; or move the user's range (usermod --del-subuids/--add-subuids)",
			config.EnvName("userns", "hostUID"), config.EnvName("userns", "hostGID")),
			"%s", strings.Join(clashes, "; "))
	}
	jobs := fmt.Sprintf("jobs' uids %s, gids %s", idRange{uint64(u.HostUID), uint64(u.Size)}, idRange{uint64(u.HostGID), uint64(u.Size)})
	if len(read) == 0 {
		return pass("%s; no %s or %s", jobs, filepath.Join(d.etc, "subuid"), filepath.Join(d.etc, "subgid"))
	}
	return pass("%s; no user of %s has any of them", jobs, strings.Join(read, " or "))
}

// readSubIDs reads "name:start:count" lines; others (comments, typos) are
// skipped, as shadow-utils skips them.
func readSubIDs(path string) ([]subEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []subEntry
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.Split(strings.TrimSpace(sc.Text()), ":")
		if len(parts) != 3 || strings.HasPrefix(parts[0], "#") {
			continue
		}
		start, err1 := strconv.ParseUint(parts[1], 10, 32)
		size, err2 := strconv.ParseUint(parts[2], 10, 32)
		if err1 != nil || err2 != nil || size == 0 {
			continue
		}
		out = append(out, subEntry{user: parts[0], ids: idRange{start, size}})
	}
	return out, sc.Err()
}

// stateDir checks what the agent needs of state.dir (it creates it with
// mode 0711, and the executor refuses a path that jobs cannot search):
// runc binds each job's script from <state.dir>/runs/<run>/ as the job's
// mapped root, which is "other" on the host, so the directory and every one
// above it must let others search (o+x). It holds the journal and keys, so
// nobody but root may write in it.
func (d *doctor) stateDir(context.Context) Result {
	dir := filepath.Clean(d.cfg.State.Dir)
	existing, fi, err := nearestExisting(dir)
	if err != nil {
		return fail("choose another state.dir", "%v", err)
	}
	if !fi.IsDir() {
		return fail("remove it, or choose another state.dir", "%s is not a directory", existing)
	}
	if existing != dir {
		if err := unix.Access(existing, unix.W_OK); err != nil {
			return fail("choose a state.dir on a writable file system", "%s does not exist and cannot be made in %s: %v", dir, existing, err)
		}
		if r := d.searchable(existing, dir); r.Status != Pass {
			return r
		}
		return pass("%s does not exist yet; the agent makes it with mode 0711", dir)
	}
	if r := ownedByRoot(dir, fi); r.Status != Pass {
		return r
	}
	if r := d.searchable(dir, dir); r.Status != Pass {
		return r
	}
	return pass("%s: root's, mode %04o", dir, fi.Mode().Perm())
}

// ownedByRoot: whoever owns the directory or may write in it could swap
// the journal or the keys for their own.
func ownedByRoot(dir string, fi fs.FileInfo) Result {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 {
		return fail("chown root:root "+dir, "%s is owned by uid %d, not root: that user could replace the journal and its keys", dir, st.Uid)
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return fail("chmod 0711 "+dir, "%s has mode %04o: others may write in it, and so replace the journal and its keys", dir, perm)
	}
	return Result{Status: Pass}
}

// searchable checks from start up to / that others may search every
// directory (state.dir itself included when it exists).
func (d *doctor) searchable(start, stateDir string) Result {
	for p := start; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return fail("choose another state.dir", "check %s: %v", p, err)
		}
		if perm := fi.Mode().Perm(); perm&0o001 == 0 {
			what := "above state.dir"
			if p == stateDir {
				what = "(state.dir)"
			}
			return fail(fmt.Sprintf("chmod o+x %s (the agent makes state.dir with mode 0711), or choose another state.dir", p),
				"%s %s has mode %04o: jobs cannot reach their script files through it (a job's root is uid %d on the host, which must search every directory down to its run directory)",
				p, what, perm, d.cfg.UserNS.HostUID)
		}
		if p == filepath.Dir(p) {
			return Result{Status: Pass}
		}
	}
}

// nearestExisting returns path, or its nearest ancestor that exists.
func nearestExisting(path string) (string, fs.FileInfo, error) {
	for p := path; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err == nil {
			return p, fi, nil
		}
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
			return "", nil, fmt.Errorf("check %s: %w", p, err)
		}
		if p == filepath.Dir(p) {
			return "", nil, fmt.Errorf("check %s: %w", path, err)
		}
	}
}

// disk: an outage queues every report in the journal, up to
// journal.budget; a file system with less free than that fills up first,
// and then the journal can no longer take the jobs' facts.
func (d *doctor) disk(context.Context) Result {
	dir, _, err := nearestExisting(filepath.Clean(d.cfg.State.Dir))
	if err != nil {
		return fail("choose another state.dir", "%v", err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return fail("choose another state.dir", "statfs %s: %v", dir, err)
	}
	free := int64(st.Bavail) * st.Bsize
	budget := int64(d.cfg.Journal.Budget)
	if free < budget {
		return warn(fmt.Sprintf("free space on that file system, lower journal.budget (%s), or move state.dir to a larger one", config.EnvName("journal", "budget")),
			"%s free on the file system of %s, less than journal.budget (%s): a long backend outage would fill it", command.HumanBytes(free), dir, command.HumanBytes(budget))
	}
	return pass("%s free on the file system of %s (journal.budget %s)", command.HumanBytes(free), dir, command.HumanBytes(budget))
}
