package cni

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
)

// SweepReport lists what a sweep removed.
type SweepReport struct {
	Networks []string // torn down from their records
	NetNS    []string // namespaces without a record
	Bridges  []string // bridges without a record
	Veths    []string // host ends of job links without a record
}

// Sweep tears down every network no live process owns, then removes
// namespaces and bridges of ours that no record names. It runs at agent
// start and in `cronium-agent gc`.
//
// keep names networks to leave alone though no process holds them: those of
// runs a stopped agent's journal will adopt at its next start.
func (m *Manager) Sweep(ctx context.Context, keep ...string) (SweepReport, error) {
	var rep SweepReport
	var errs []error
	known := map[string]bool{} // netns, bridge and veth names of live networks
	spare := func(id string) {
		netnsName, bridge := Names(id)
		known[netnsName], known[bridge], known[vethName(id)] = true, true, true
	}
	for _, id := range keep {
		spare(id)
	}
	for _, id := range recordIDs(m.dir("nets")) {
		netnsName, bridge := Names(id)
		if known[netnsName] || m.locked(id) {
			spare(id)
			continue
		}
		n, err := m.readRecord(id)
		hasRecord := err == nil
		if hasRecord && m.others(n.Owner) {
			// Another agent's, which may adopt it at its next start.
			spare(id)
			continue
		}
		if !hasRecord {
			// Lock without record: setup died before writing it; the names
			// still follow from the id.
			n = &Network{ID: id, NetNS: netnsName, Bridge: bridge}
		}
		lock, err := m.lockSwept(id, hasRecord)
		if errors.Is(err, os.ErrNotExist) {
			continue // its owner tore it down since the listing
		}
		if err != nil {
			spare(id)
			continue // taken meanwhile
		}
		if _, err := os.Stat(m.recordPath(id)); hasRecord && errors.Is(err, os.ErrNotExist) {
			// Torn down by its owner between the read and the lock.
			_ = removeIfExists(lock.Name())
			lock.Close()
			continue
		}
		n.lock = lock
		if err := m.teardown(ctx, n); err != nil {
			errs = append(errs, err)
			continue
		}
		rep.Networks = append(rep.Networks, id)
	}

	// Namespaces and bridges that no record names. They are listed before
	// the records are read again: a setup writes its record before it makes
	// either, so anything listed here that is still someone's has a record
	// by the time of the second read.
	nsEntries, _ := os.ReadDir(netnsDir)
	links, err := listLinks()
	if err != nil {
		errs = append(errs, err)
	}
	for _, id := range recordIDs(m.dir("nets")) {
		spare(id)
	}
	for _, e := range nsEntries {
		if strings.HasPrefix(e.Name(), NetNSPrefix) && !known[e.Name()] {
			if err := deleteNetNS(e.Name()); err != nil {
				errs = append(errs, err)
				continue
			}
			rep.NetNS = append(rep.NetNS, e.Name())
		}
	}
	for _, l := range links {
		name := l.Attrs().Name
		if l.Type() == "bridge" && strings.HasPrefix(name, BridgePrefix) && !known[name] {
			if err := deleteLink(name); err != nil {
				errs = append(errs, err)
				continue
			}
			rep.Bridges = append(rep.Bridges, name)
		}
		// A host end whose namespace something still held when it was
		// removed (the veth goes with its namespace otherwise).
		if l.Type() == "veth" && strings.HasPrefix(name, VethPrefix) && !known[name] {
			if err := deleteLink(name); err != nil {
				errs = append(errs, err)
				continue
			}
			rep.Veths = append(rep.Veths, name)
		}
	}
	// Leases and subnets of networks that have no record any more.
	live := func(id string) bool { return m.locked(id) }
	if dirs, err := filepath.Glob(m.dir("ipam", "cronium-*")); err == nil {
		for _, d := range dirs {
			if id := strings.TrimPrefix(filepath.Base(d), "cronium-"); !live(id) {
				if err := os.RemoveAll(d); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	if files, err := os.ReadDir(m.dir("subnets")); err == nil {
		for _, f := range files {
			p := m.dir("subnets", f.Name())
			owner, err := os.ReadFile(p)
			if err == nil && !live(strings.TrimSpace(string(owner))) {
				if err := removeIfExists(p); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	if err := m.fw.removeTagged(func(id string) bool { return !live(id) }); err != nil {
		errs = append(errs, err)
	}
	return rep, errors.Join(errs...)
}

// listLinks lists the host's interfaces. A dump that links changed under
// (other jobs starting or ending) is retried; when it keeps changing, no
// links are returned, so that nothing is removed from a torn list.
func listLinks() ([]netlink.Link, error) {
	for attempt := 0; attempt < 10; attempt++ {
		links, err := netlink.LinkList()
		if err == nil {
			return links, nil
		}
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return nil, fmt.Errorf("list links: %w", err)
		}
		time.Sleep(time.Duration(attempt+1) * 10 * time.Millisecond)
	}
	return nil, nil
}

// others reports whether owner is another agent's that a sweep leaves
// alone: one whose state directory still exists, unless WithOthersSwept.
func (m *Manager) others(owner string) bool {
	if owner == "" || owner == m.owner || m.othersToo {
		return false
	}
	_, err := os.Stat(owner)
	return err == nil
}
