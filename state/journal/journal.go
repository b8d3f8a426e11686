package journal

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// SchemaVersion is the schema of the files this package writes.
const SchemaVersion = 1

// Defaults of the options.
const (
	DefaultBudget   = 1 << 30 // bytes
	DefaultMaxDelay = 2 * time.Millisecond
	DefaultMaxBatch = 1000
	DefaultKeepLogs = 32 // log items kept at the head and at the tail of a stream
)

// openTimeout bounds the wait for the file lock of a file another process
// has open.
const openTimeout = 5 * time.Second

// Errors.
var (
	ErrClosed        = errors.New("journal: closed")
	ErrInvalid       = errors.New("journal: invalid argument")
	ErrSchemaTooNew  = errors.New("journal: file written by a newer agent")
	ErrNotJournal    = errors.New("journal: not a journal file")
	ErrUnknownStream = errors.New("journal: unknown stream")
	ErrStreamClosed  = errors.New("journal: stream closed")
	ErrNoKey         = errors.New("journal: no secret key configured")
	ErrUnseal        = errors.New("journal: cannot unseal (wrong key or damaged data)")
)

var (
	bucketMeta    = []byte("meta")
	bucketRecords = []byte("records")
	bucketStreams = []byte("streams")
	bucketItems   = []byte("items")

	keySchema = []byte("schema")
	keyTotals = []byte("totals")
)

// upgradeStep turns a file of schema v into one of schema v+1, inside the
// transaction that opens it.
type upgradeStep func(tx *bolt.Tx) error

// upgrades holds the registered upgrade steps, by the schema they start
// from. Schema 1 is the first, so there are none yet; a change of layout adds
// upgrades[1] (1→2) and raises SchemaVersion.
var upgrades = map[uint64]upgradeStep{}

// Option configures Open.
type Option func(*config)

type config struct {
	key      []byte
	hasKey   bool
	budget   int64
	maxDelay time.Duration
	maxBatch int
	now      func() time.Time
	keepHead int
	keepTail int

	schema      uint64
	upgrades    map[uint64]upgradeStep
	openTimeout time.Duration
}

// WithSecretKey sets the 32-byte AES-256 key of Seal and Unseal. The key is
// kept in memory only, never in the file.
func WithSecretKey(key []byte) Option {
	return func(c *config) { c.key, c.hasKey = append([]byte(nil), key...), true }
}

// WithOpenTimeout sets how long Open waits for the file while another
// process has it open (default 5 s).
func WithOpenTimeout(d time.Duration) Option { return func(c *config) { c.openTimeout = d } }

// WithBudget sets the disk budget of Prune in stored bytes (default 1 GiB).
func WithBudget(bytes int64) Option { return func(c *config) { c.budget = bytes } }

// WithGroupCommit sets how long the first write of a batch may wait for
// others (default 2 ms; 0 commits what is queued at once) and how many
// writes one transaction takes at most (default 1000). A batch does not
// wait once it holds as many writes as are expected (the writers of the
// previous batch and those that queued during its commit): a lone writer is
// committed at once.
func WithGroupCommit(maxDelay time.Duration, maxBatch int) Option {
	return func(c *config) { c.maxDelay, c.maxBatch = maxDelay, maxBatch }
}

// WithClock sets the clock for the times the journal records.
func WithClock(now func() time.Time) Option { return func(c *config) { c.now = now } }

// WithKeepLogs sets how many undelivered log items Prune always keeps at the
// head and at the tail of a stream (default 32 each).
func WithKeepLogs(head, tail int) Option {
	return func(c *config) { c.keepHead, c.keepTail = head, tail }
}

// withSchema replaces the schema version and upgrade steps (tests).
func withSchema(version uint64, steps map[uint64]upgradeStep) Option {
	return func(c *config) { c.schema, c.upgrades = version, steps }
}

// Journal is an open journal file. It is safe for concurrent use.
type Journal struct {
	db   *bolt.DB
	cfg  config
	aead cipher.AEAD

	mu     sync.RWMutex // held for reading while a write is enqueued
	closed atomic.Bool
	reqs   chan *request
	done   chan struct{}

	pruneMu      sync.Mutex
	commits      atomic.Int64 // transactions committed (tests)
	largestBatch atomic.Int64 // most requests in one transaction (tests)
}

// Open opens the journal at path, creating it (mode 0600) if needed, and
// upgrades an older schema.
func Open(path string, opts ...Option) (*Journal, error) {
	cfg := config{
		budget:   DefaultBudget,
		maxDelay: DefaultMaxDelay,
		maxBatch: DefaultMaxBatch,
		now:      time.Now,
		keepHead: DefaultKeepLogs,
		keepTail: DefaultKeepLogs,
		schema:   SchemaVersion,
		upgrades: upgrades,

		openTimeout: openTimeout,
	}
	for _, o := range opts {
		o(&cfg)
	}
	switch {
	case cfg.budget <= 0:
		return nil, fmt.Errorf("%w: budget %d", ErrInvalid, cfg.budget)
	case cfg.maxDelay < 0 || cfg.maxBatch < 1:
		return nil, fmt.Errorf("%w: group commit %v/%d", ErrInvalid, cfg.maxDelay, cfg.maxBatch)
	case cfg.keepHead < 0 || cfg.keepTail < 0:
		return nil, fmt.Errorf("%w: keep logs %d/%d", ErrInvalid, cfg.keepHead, cfg.keepTail)
	case cfg.now == nil:
		return nil, fmt.Errorf("%w: nil clock", ErrInvalid)
	}
	j := &Journal{cfg: cfg}
	if cfg.hasKey {
		if len(cfg.key) != 32 {
			return nil, fmt.Errorf("%w: secret key of %d bytes, want 32", ErrInvalid, len(cfg.key))
		}
		block, err := aes.NewCipher(cfg.key)
		if err != nil {
			return nil, fmt.Errorf("journal: key: %w", err)
		}
		if j.aead, err = cipher.NewGCM(block); err != nil {
			return nil, fmt.Errorf("journal: key: %w", err)
		}
		clear(j.cfg.key) // the cipher keeps its own expanded key
		j.cfg.key = nil
	}

	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: cfg.openTimeout,
		// The freelist is rebuilt on open instead of written on every
		// commit: commits stay cheap however large the file grows.
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if err != nil {
		return nil, fmt.Errorf("journal: open %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return initSchema(tx, cfg.schema, cfg.upgrades) }); err != nil {
		db.Close()
		return nil, fmt.Errorf("journal: open %s: %w", path, err)
	}
	// bbolt creates the file with the mode asked for only when it creates
	// it; a file left by something else keeps its mode otherwise.
	if err := os.Chmod(path, 0o600); err != nil {
		db.Close()
		return nil, fmt.Errorf("journal: open %s: %w", path, err)
	}
	j.db = db
	j.reqs = make(chan *request, 4*cfg.maxBatch)
	j.done = make(chan struct{})
	go j.run()
	return j, nil
}

// initSchema creates the layout of a new file, or checks and upgrades the
// schema of an existing one, in the opening transaction.
func initSchema(tx *bolt.Tx, current uint64, steps map[uint64]upgradeStep) error {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		empty := true
		_ = tx.ForEach(func([]byte, *bolt.Bucket) error { empty = false; return nil })
		if !empty {
			return ErrNotJournal
		}
		return createLayout(tx, current)
	}
	v := meta.Get(keySchema)
	if len(v) != 8 {
		return fmt.Errorf("%w: bad schema version", ErrNotJournal)
	}
	schema := binary.BigEndian.Uint64(v)
	if schema > current {
		return fmt.Errorf("%w: schema %d, this agent knows schema %d at most", ErrSchemaTooNew, schema, current)
	}
	for ; schema < current; schema++ {
		step := steps[schema]
		if step == nil {
			return fmt.Errorf("journal: no upgrade from schema %d", schema)
		}
		if err := step(tx); err != nil {
			return fmt.Errorf("journal: upgrade from schema %d: %w", schema, err)
		}
	}
	return createLayout(tx, current)
}

// createLayout creates what is missing of the layout and stamps the schema.
func createLayout(tx *bolt.Tx, schema uint64) error {
	for _, name := range [][]byte{bucketMeta, bucketRecords, bucketStreams, bucketItems} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	meta := tx.Bucket(bucketMeta)
	if err := meta.Put(keySchema, binary.BigEndian.AppendUint64(nil, schema)); err != nil {
		return err
	}
	if meta.Get(keyTotals) == nil {
		return meta.Put(keyTotals, totals{}.encode())
	}
	return nil
}

// Close waits for queued writes, then closes the file. Calls after Close
// return ErrClosed.
func (j *Journal) Close() error {
	j.mu.Lock()
	if j.closed.Swap(true) {
		j.mu.Unlock()
		return ErrClosed
	}
	close(j.reqs)
	j.mu.Unlock()
	<-j.done
	return j.db.Close()
}

// Path returns the path of the file.
func (j *Journal) Path() string { return j.db.Path() }

// view runs fn in a read transaction.
func (j *Journal) view(fn func(tx *bolt.Tx) error) error {
	if j.closed.Load() {
		return ErrClosed
	}
	err := j.db.View(fn)
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}
