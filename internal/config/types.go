package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Byte size units.
const (
	KiB ByteSize = 1 << 10
	MiB ByteSize = 1 << 20
	GiB ByteSize = 1 << 30
)

// ByteSize is a number of bytes written as an integer or with a unit
// (512MiB, 1GiB, 64M, 100k).
type ByteSize int64

// ParseByteSize parses "512MiB", "1g", "65536" and the like.
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	i := len(t)
	for i > 0 && (t[i-1] < '0' || t[i-1] > '9') {
		i--
	}
	num, unit := strings.TrimSpace(t[:i]), strings.ToLower(strings.TrimSpace(t[i:]))
	var mult float64
	switch unit {
	case "", "b":
		mult = 1
	case "k", "kb", "ki", "kib":
		mult = float64(KiB)
	case "m", "mb", "mi", "mib":
		mult = float64(MiB)
	case "g", "gb", "gi", "gib":
		mult = float64(GiB)
	default:
		return 0, fmt.Errorf("invalid size %q: unknown unit %q (use KiB, MiB or GiB)", s, unit)
	}
	// Allow a decimal point in the number ("1.5GiB"): the digit scan above stops at it.
	if j := strings.LastIndexFunc(num, func(r rune) bool { return (r < '0' || r > '9') && r != '.' }); j >= 0 {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	return ByteSize(f * mult), nil
}

func (b ByteSize) String() string {
	switch {
	case b >= GiB && b%GiB == 0:
		return fmt.Sprintf("%dGiB", b/GiB)
	case b >= MiB && b%MiB == 0:
		return fmt.Sprintf("%dMiB", b/MiB)
	case b >= KiB && b%KiB == 0:
		return fmt.Sprintf("%dKiB", b/KiB)
	}
	return strconv.FormatInt(int64(b), 10)
}

// UnmarshalYAML accepts an integer or a string with a unit.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// MarshalYAML writes the size with its unit.
func (b ByteSize) MarshalYAML() (any, error) { return b.String(), nil }

// Duration is a time.Duration written as "30s", "5m" or "1h30m".
type Duration time.Duration

func (d Duration) String() string { return time.Duration(d).String() }

// ParseDuration reads a Go duration ("30s", "1h30m"); a bare number is
// seconds, as the existing Cronium orchestrator's settings are written.
func ParseDuration(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseFloat(s, 64); err == nil && n >= 0 {
		return Duration(n * float64(time.Second)), nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q (want e.g. 30s, 5m or a number of seconds)", s)
	}
	return Duration(v), nil
}

// UnmarshalYAML accepts a Go duration string or a number of seconds.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseDuration(n.Value)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// Egress is network.egress: none, allowlist or all (see runner/netpolicy).
type Egress string

// The values of network.egress.
const (
	EgressNone      Egress = "none"
	EgressAllowlist Egress = "allowlist"
	EgressAll       Egress = "all"
)

// ParseEgress reads network.egress. The booleans it was before are still
// read, so that no existing file or variable breaks: true is all, false
// none (the YAML 1.1 spellings yes/no/on/off included).
func ParseEgress(s string) (Egress, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	switch Egress(t) {
	case EgressNone, EgressAllowlist, EgressAll:
		return Egress(t), nil
	}
	switch t {
	case "yes", "on":
		return EgressAll, nil
	case "no", "off":
		return EgressNone, nil
	}
	if b, err := strconv.ParseBool(t); err == nil {
		if b {
			return EgressAll, nil
		}
		return EgressNone, nil
	}
	return "", fmt.Errorf("invalid egress %q: want none, allowlist or all", s)
}

// UnmarshalYAML accepts a mode or a boolean.
func (e *Egress) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseEgress(n.Value)
	if err != nil {
		return err
	}
	*e = v
	return nil
}

// ScriptRoute says whether script jobs get a route out (default route and
// masquerading): all and allowlist do, under their per-job forwarding rules
// (package cni), which for allowlist let out only network.allow and DNS.
func (e Egress) ScriptRoute() bool { return e == EgressAll || e == EgressAllowlist }
