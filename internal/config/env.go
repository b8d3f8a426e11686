package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"unicode"
)

// EnvPrefix starts every environment variable the agent reads.
const EnvPrefix = "CRONIUM_"

// EnvName returns the variable that sets the key at the given yaml path:
// ["containerd","address"] -> CRONIUM_CONTAINERD_ADDRESS,
// ["jobs","defaultTimeout"] -> CRONIUM_JOBS_DEFAULT_TIMEOUT.
func EnvName(path ...string) string {
	parts := make([]string, len(path))
	for i, p := range path {
		parts[i] = snake(p)
	}
	return EnvPrefix + strings.Join(parts, "_")
}

func snake(s string) string {
	var b strings.Builder
	rs := []rune(s)
	for i, r := range rs {
		// A capital starts a word unless it continues an acronym (hostUID -> HOST_UID).
		if i > 0 && unicode.IsUpper(r) && (unicode.IsLower(rs[i-1]) || (i+1 < len(rs) && unicode.IsLower(rs[i+1]))) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToUpper(r))
	}
	return b.String()
}

// Keys lists every configuration key with its environment variable, in file order.
func Keys() [][2]string {
	var out [][2]string
	walk(reflect.ValueOf(&Config{}).Elem(), nil, func(path []string, _ reflect.StructField, _ reflect.Value) error {
		out = append(out, [2]string{strings.Join(path, "."), EnvName(path...)})
		return nil
	})
	return out
}

// Aliases are the variable names the existing Cronium orchestrator reads,
// accepted so that an operator can swap it for this agent without rewriting
// the environment. The agent's own name wins when both are set.
func Aliases() map[string]string {
	return map[string]string{
		"CRONIUM_API_ENDPOINT":       EnvName("backend", "url"),
		"CRONIUM_API_TOKEN":          EnvName("backend", "token"),
		"CRONIUM_ORCHESTRATOR_ID":    EnvName("backend", "orchestratorId"),
		"CRONIUM_ENV_ENCRYPTION_KEY": EnvName("backend", "envEncryptionKey"),
		"CRONIUM_MACHINE_ID_FILE":    EnvName("identity", "machineIdFile"),
	}
}

func applyEnv(cfg *Config, environ []string) error {
	env := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, EnvPrefix) {
			env[k] = v
		}
	}
	for alias, name := range Aliases() {
		if v, ok := env[alias]; ok {
			if _, own := env[name]; !own {
				env[name] = v
			}
		}
	}
	return walk(reflect.ValueOf(cfg).Elem(), nil, func(path []string, _ reflect.StructField, v reflect.Value) error {
		name := EnvName(path...)
		s, ok := env[name]
		if !ok {
			return nil
		}
		if err := setFromString(v, s); err != nil {
			return fmt.Errorf("environment %s: %w", name, err)
		}
		return nil
	})
}

// walk calls fn for every leaf field with its yaml path.
func walk(v reflect.Value, path []string, fn func([]string, reflect.StructField, reflect.Value) error) error {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if tag == "" || tag == "-" {
			continue
		}
		p := append(append([]string(nil), path...), tag)
		fv := v.Field(i)
		if fv.Kind() == reflect.Struct {
			if err := walk(fv, p, fn); err != nil {
				return err
			}
			continue
		}
		if err := fn(p, f, fv); err != nil {
			return err
		}
	}
	return nil
}

func setFromString(v reflect.Value, s string) error {
	switch v.Interface().(type) {
	case Duration:
		d, err := ParseDuration(s)
		if err != nil {
			return err
		}
		v.SetInt(int64(d))
		return nil
	case ByteSize:
		b, err := ParseByteSize(s)
		if err != nil {
			return err
		}
		v.SetInt(int64(b))
		return nil
	case Egress:
		e, err := ParseEgress(s)
		if err != nil {
			return err
		}
		v.SetString(string(e))
		return nil
	case []string:
		var list []string
		for _, item := range strings.Split(s, ",") {
			if item = strings.TrimSpace(item); item != "" {
				list = append(list, item)
			}
		}
		v.Set(reflect.ValueOf(list))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("invalid boolean %q", s)
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64, reflect.Int32:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("invalid integer %q", s)
		}
		v.SetInt(n)
	case reflect.Uint32, reflect.Uint64, reflect.Uint:
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return fmt.Errorf("invalid unsigned integer %q", s)
		}
		v.SetUint(n)
	case reflect.Float64:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("invalid number %q", s)
		}
		v.SetFloat(f)
	default:
		return fmt.Errorf("unsupported setting type %s", v.Type())
	}
	return nil
}
