package cni

import (
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// subnets hands out /30s of the pool. A subnet is taken by creating a file
// named after its index (O_EXCL makes that race-free across processes); the
// file holds the owning network's id.
type subnets struct {
	dir  string
	pool netip.Prefix
}

const jobBits = 30

func (s *subnets) count() int {
	return 1 << (jobBits - s.pool.Bits())
}

func (s *subnets) nth(i int) netip.Prefix {
	base := big.NewInt(0).SetBytes(s.pool.Masked().Addr().AsSlice())
	base.Add(base, big.NewInt(int64(i)*4))
	b := base.FillBytes(make([]byte, 4))
	return netip.PrefixFrom(netip.AddrFrom4([4]byte(b)), jobBits)
}

func (s *subnets) allocate(id string) (netip.Prefix, error) {
	for i := 0; i < s.count(); i++ {
		f, err := os.OpenFile(filepath.Join(s.dir, strconv.Itoa(i)), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("allocate subnet: %w", err)
		}
		_, werr := f.WriteString(id)
		cerr := f.Close()
		if err := errors.Join(werr, cerr); err != nil {
			os.Remove(f.Name())
			return netip.Prefix{}, fmt.Errorf("allocate subnet: %w", err)
		}
		return s.nth(i), nil
	}
	return netip.Prefix{}, fmt.Errorf("network pool %s is exhausted (%d jobs)", s.pool, s.count())
}

// release frees the subnet held by id (found by scanning when p is unknown).
func (s *subnets) release(id string, p netip.Prefix) error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("release subnet: %w", err)
	}
	for _, e := range entries {
		path := filepath.Join(s.dir, e.Name())
		owner, err := os.ReadFile(path)
		if err != nil || strings.TrimSpace(string(owner)) != id {
			continue
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("release subnet %s: %w", p, err)
		}
	}
	return nil
}
