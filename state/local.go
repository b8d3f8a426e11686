package state

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Buckets of a Local file:
//
//	variables/<userID>/<key>  = value (string bytes)
//	outputs/<executionID>     = output (JSON text)
//	conditions/<executionID>  = "true" | "false"
var (
	bucketVariables  = []byte("variables")
	bucketOutputs    = []byte("outputs")
	bucketConditions = []byte("conditions")
)

// openTimeout bounds the wait for the file lock of a file another process
// has open.
const openTimeout = 5 * time.Second

// ErrInvalid is returned for an empty user id, key or execution id, or a key
// too long for the store.
var ErrInvalid = errors.New("state: invalid argument")

// Local is a bbolt file of variables, outputs and conditions. It is safe for
// concurrent use; every write is durable when it returns.
type Local struct {
	db *bolt.DB
}

// OpenLocal opens (creating it, mode 0600) the store at path.
func OpenLocal(path string) (*Local, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: openTimeout})
	if err != nil {
		return nil, fmt.Errorf("state: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketVariables, bucketOutputs, bucketConditions} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("state: initialize %s: %w", path, err)
	}
	return &Local{db: db}, nil
}

// Close closes the file.
func (l *Local) Close() error { return l.db.Close() }

func checkKey(what, k string) error {
	if k == "" {
		return fmt.Errorf("%w: empty %s", ErrInvalid, what)
	}
	if len(k) > bolt.MaxKeySize {
		return fmt.Errorf("%w: %s of %d bytes", ErrInvalid, what, len(k))
	}
	return nil
}

// GetVariable returns a user's variable and whether it is set.
func (l *Local) GetVariable(ctx context.Context, userID, key string) (value string, found bool, err error) {
	if err := errors.Join(checkKey("user id", userID), checkKey("variable key", key)); err != nil {
		return "", false, err
	}
	if err := ctx.Err(); err != nil {
		return "", false, err
	}
	err = l.db.View(func(tx *bolt.Tx) error {
		user := tx.Bucket(bucketVariables).Bucket([]byte(userID))
		if user == nil {
			return nil
		}
		if v := user.Get([]byte(key)); v != nil {
			value, found = string(v), true // string() copies out of the mmap
		}
		return nil
	})
	if err != nil {
		return "", false, fmt.Errorf("state: read variable: %w", err)
	}
	return value, found, nil
}

// SetVariable sets a user's variable.
func (l *Local) SetVariable(ctx context.Context, userID, key, value string) error {
	if err := errors.Join(checkKey("user id", userID), checkKey("variable key", key)); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	err := l.db.Update(func(tx *bolt.Tx) error {
		user, err := tx.Bucket(bucketVariables).CreateBucketIfNotExists([]byte(userID))
		if err != nil {
			return err
		}
		return user.Put([]byte(key), []byte(value))
	})
	if err != nil {
		return fmt.Errorf("state: write variable: %w", err)
	}
	return nil
}

// SetOutput records an execution's output (last call wins); nil is null.
func (l *Local) SetOutput(ctx context.Context, executionID string, value json.RawMessage) error {
	if err := checkKey("execution id", executionID); err != nil {
		return err
	}
	if value == nil {
		value = json.RawMessage("null")
	}
	return l.put(ctx, bucketOutputs, executionID, value, "output")
}

// SetCondition records an execution's condition (last call wins).
func (l *Local) SetCondition(ctx context.Context, executionID string, value bool) error {
	if err := checkKey("execution id", executionID); err != nil {
		return err
	}
	v := []byte("false")
	if value {
		v = []byte("true")
	}
	return l.put(ctx, bucketConditions, executionID, v, "condition")
}

func (l *Local) put(ctx context.Context, bucket []byte, key string, value []byte, what string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := l.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).Put([]byte(key), value)
	})
	if err != nil {
		return fmt.Errorf("state: write %s: %w", what, err)
	}
	return nil
}

func (l *Local) get(ctx context.Context, bucket []byte, key, what string) ([]byte, error) {
	if err := checkKey("execution id", key); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []byte
	err := l.db.View(func(tx *bolt.Tx) error {
		out = bytes.Clone(tx.Bucket(bucket).Get([]byte(key))) // nil stays nil
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("state: read %s: %w", what, err)
	}
	return out, nil
}

// Output returns an execution's recorded output and whether there is one.
func (l *Local) Output(ctx context.Context, executionID string) (json.RawMessage, bool, error) {
	v, err := l.get(ctx, bucketOutputs, executionID, "output")
	if err != nil || v == nil {
		return nil, false, err
	}
	return json.RawMessage(v), true, nil
}

// Condition returns an execution's recorded condition and whether there is
// one.
func (l *Local) Condition(ctx context.Context, executionID string) (bool, bool, error) {
	v, err := l.get(ctx, bucketConditions, executionID, "condition")
	if err != nil || v == nil {
		return false, false, err
	}
	return string(v) == "true", true, nil
}
