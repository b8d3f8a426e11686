// Package sshconn holds the agent's SSH connections to the servers jobs run
// on: a pool of authenticated connections per server and credentials,
// kept alive and checked before reuse, closed when idle, dialled with a
// timeout and retries, behind a circuit breaker per server so that a dead
// host fails fast; and the host keys those connections trust (hostkeys.go).
//
// Credentials are only ever in memory: the pool keys connections by a hash
// of them and never logs them.
package sshconn

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"
)

// Endpoint is a server and the credentials to log in to it, as a job
// names them. PrivateKey and Password are secrets.
type Endpoint struct {
	Name       string // for messages
	Host       string
	Port       int
	User       string
	PrivateKey []byte // PEM or OpenSSH; takes precedence over Password
	Password   string
}

// Addr is host:port.
func (e Endpoint) Addr() string {
	port := e.Port
	if port == 0 {
		port = 22
	}
	return net.JoinHostPort(e.Host, strconv.Itoa(port))
}

// String names the endpoint as user@host:port; never the credentials.
func (e Endpoint) String() string { return e.User + "@" + e.Addr() }

// key is the pool key: connections are shared only by jobs that log in
// as the same user with the same credentials, so that a job never rides
// on a connection another job's credentials opened.
func (e Endpoint) key() string {
	h := sha256.New()
	h.Write(e.PrivateKey)
	h.Write([]byte{0})
	h.Write([]byte(e.Password))
	return e.String() + "#" + hex.EncodeToString(h.Sum(nil)[:8])
}

// HostKeyChecker is what the pool asks of the host keys it trusts.
type HostKeyChecker interface {
	Callback() ssh.HostKeyCallback
	// Algorithms lists the key algorithms known for hostport (nil: none),
	// so that a server with several host keys offers the pinned one.
	Algorithms(hostport string) []string
}

// ErrBreakerOpen is returned, wrapped with the server and the last dial
// error, while a server's circuit breaker is open.
var ErrBreakerOpen = errors.New("circuit breaker open")

// Option configures a Pool.
type Option func(*Pool)

// WithDialTimeout bounds one dial, TCP and SSH handshake (default 10 s).
func WithDialTimeout(d time.Duration) Option { return func(p *Pool) { p.dialTimeout = d } }

// WithKeepalive sets the interval of keepalive@openssh.com requests on
// each connection (default 15 s; 0 disables). A connection that does not
// answer one within the interval is closed.
func WithKeepalive(d time.Duration) Option { return func(p *Pool) { p.keepalive = d } }

// WithIdleTimeout closes connections nobody holds after d (default 5 min).
func WithIdleTimeout(d time.Duration) Option { return func(p *Pool) { p.idle = d } }

// WithLimits bounds connections per server and sessions open on one
// connection at once (defaults 4 and 8). One session of a connection is
// kept for its runs' worker (runner/sshexec/sshworker) and a run holds up
// to SessionsPerRun more, so a connection is shared by
// (sessionsPerConn-1)/SessionsPerRun runs (at least one).
func WithLimits(connsPerServer, sessionsPerConn int) Option {
	return func(p *Pool) {
		p.maxConns, p.maxLeases = max(1, connsPerServer), leasesFor(sessionsPerConn)
	}
}

func leasesFor(sessionsPerConn int) int { return max(1, (sessionsPerConn-1)/SessionsPerRun) }

// SessionsPerRun is the most sessions a run holds at once: two follow
// its output, a third does the rest.
const SessionsPerRun = 3

// WithBreaker opens a server's circuit breaker after failures dials in a
// row failed, for cooldown (defaults 3 and 30 s).
func WithBreaker(failures int, cooldown time.Duration) Option {
	return func(p *Pool) { p.breakerFailures, p.cooldown = max(1, failures), cooldown }
}

// WithDialRetries sets the tries of one Get (default 3) and the first
// wait between them (default 250 ms, doubled each time).
func WithDialRetries(tries int, first time.Duration) Option {
	return func(p *Pool) { p.tries, p.retryWait = max(1, tries), first }
}

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(p *Pool) { p.log = l } }

// Pool holds SSH connections by endpoint. It is safe for concurrent use.
type Pool struct {
	hostKeys        HostKeyChecker
	dialTimeout     time.Duration
	keepalive       time.Duration
	idle            time.Duration
	maxConns        int
	maxLeases       int
	breakerFailures int
	cooldown        time.Duration
	tries           int
	retryWait       time.Duration
	log             *slog.Logger
	now             func() time.Time

	dials atomic.Int64

	mu      sync.Mutex
	servers map[string]*server
	closed  bool
	stop    chan struct{}
	done    chan struct{}
}

// server is the pool's state of one endpoint.
type server struct {
	conns    []*conn
	dialing  int
	failures int
	openTill time.Time
	lastErr  error
	// changed is closed and replaced when a lease is given back or a
	// dial ends, waking Gets that wait for room.
	changed chan struct{}
}

// conn is one authenticated connection.
type conn struct {
	client   *ssh.Client
	leases   int
	lastUsed time.Time
	dead     chan struct{}
	deadOnce sync.Once
	err      error
}

func (c *conn) kill(err error) {
	c.deadOnce.Do(func() {
		c.err = err
		close(c.dead)
		_ = c.client.Close()
	})
}

func (c *conn) isDead() bool {
	select {
	case <-c.dead:
		return true
	default:
		return false
	}
}

// New returns a pool that trusts the host keys of hostKeys. Close it.
func New(hostKeys HostKeyChecker, opts ...Option) *Pool {
	p := &Pool{
		hostKeys: hostKeys, dialTimeout: 10 * time.Second, keepalive: 15 * time.Second, idle: 5 * time.Minute,
		maxConns: 4, maxLeases: leasesFor(8), breakerFailures: 3, cooldown: 30 * time.Second, tries: 3, retryWait: 250 * time.Millisecond,
		log: slog.Default(), now: time.Now,
		servers: map[string]*server{}, stop: make(chan struct{}), done: make(chan struct{}),
	}
	for _, o := range opts {
		o(p)
	}
	go p.janitor()
	return p
}

// Dials counts the connections dialled, successful or not.
func (p *Pool) Dials() int64 { return p.dials.Load() }

// Close closes every connection; leases held stop working.
func (p *Pool) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	var all []*conn
	for _, s := range p.servers {
		all = append(all, s.conns...)
	}
	p.mu.Unlock()
	close(p.stop)
	<-p.done
	for _, c := range all {
		c.kill(errors.New("the connection pool was closed"))
	}
	return nil
}

// Lease is a connection held by one run; Release gives it back. Sessions
// and forwards of a lease end when its connection dies (Dead).
type Lease struct {
	p    *Pool
	ep   Endpoint
	c    *conn
	once sync.Once
}

// Client is the leased connection.
func (l *Lease) Client() *ssh.Client { return l.c.client }

// Dead is closed when the connection is lost.
func (l *Lease) Dead() <-chan struct{} { return l.c.dead }

// Release gives the connection back to the pool.
func (l *Lease) Release() {
	l.once.Do(func() { l.p.release(l.ep.key(), l.c) })
}

// Get leases a connection to ep: a live one with room, else a new one if
// the server has room for it, else it waits for room until ctx ends.
func (p *Pool) Get(ctx context.Context, ep Endpoint) (*Lease, error) {
	key := ep.key()
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, errors.New("ssh: the connection pool is closed")
		}
		s := p.servers[key]
		if s == nil {
			s = &server{changed: make(chan struct{})}
			p.servers[key] = s
		}
		if c, last := p.pick(s); c != nil {
			p.mu.Unlock()
			if p.healthy(c, last) {
				return &Lease{p: p, ep: ep, c: c}, nil
			}
			p.release(key, c)
			continue
		}
		if now := p.now(); now.Before(s.openTill) {
			err := fmt.Errorf("ssh %s: %w after %d failed dials in a row (last: %v); next try after %s",
				ep, ErrBreakerOpen, s.failures, s.lastErr, s.openTill.Format(time.TimeOnly))
			p.mu.Unlock()
			return nil, err
		}
		if len(s.conns)+s.dialing < p.maxConns {
			s.dialing++
			p.mu.Unlock()
			c, err := p.dial(ctx, ep)
			p.mu.Lock()
			s.dialing--
			p.wake(s)
			if err != nil {
				p.mu.Unlock()
				return nil, err
			}
			c.leases, c.lastUsed = 1, p.now()
			s.conns = append(s.conns, c)
			p.mu.Unlock()
			go p.keepAlive(c)
			return &Lease{p: p, ep: ep, c: c}, nil
		}
		wait := s.changed
		p.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, fmt.Errorf("ssh %s: waiting for a free connection: %w", ep, context.Cause(ctx))
		}
	}
}

// pick leases the least held live connection with room, or returns nil,
// with when it was last used before. p.mu is held.
func (p *Pool) pick(s *server) (*conn, time.Time) {
	var best *conn
	live := s.conns[:0]
	for _, c := range s.conns {
		if c.isDead() && c.leases == 0 {
			continue // forgotten
		}
		live = append(live, c)
		if !c.isDead() && c.leases < p.maxLeases && (best == nil || c.leases < best.leases) {
			best = c
		}
	}
	s.conns = live
	if best == nil {
		return nil, time.Time{}
	}
	last := best.lastUsed
	best.leases++
	best.lastUsed = p.now()
	return best, last
}

// healthy checks a connection before it is reused: one that was idle a
// while answers a keepalive first (a NAT may have dropped it silently).
func (p *Pool) healthy(c *conn, lastUsed time.Time) bool {
	if c.isDead() {
		return false
	}
	if p.now().Sub(lastUsed) < time.Second {
		return true
	}
	if err := p.ping(c, min(p.dialTimeout, 5*time.Second)); err != nil {
		c.kill(fmt.Errorf("health check before reuse: %w", err))
		return false
	}
	return true
}

func (p *Pool) release(key string, c *conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c.leases--
	c.lastUsed = p.now()
	if s := p.servers[key]; s != nil {
		p.wake(s)
	}
}

// wake tells the Gets waiting on s that something changed. p.mu is held.
func (p *Pool) wake(s *server) {
	close(s.changed)
	s.changed = make(chan struct{})
}

// dial connects and logs in, retrying transport failures with backoff; it
// feeds the server's circuit breaker.
func (p *Pool) dial(ctx context.Context, ep Endpoint) (*conn, error) {
	cfg, err := p.clientConfig(ep)
	if err != nil {
		return nil, err
	}
	wait := p.retryWait
	for try := 1; ; try++ {
		c, err := p.dialOnce(ctx, ep, cfg)
		if err == nil {
			p.breaker(ep, nil)
			return c, nil
		}
		if !transient(err) {
			return nil, err // wrong credentials or host key: trying again changes nothing
		}
		if p.breaker(ep, err) || try >= p.tries || ctx.Err() != nil {
			return nil, err
		}
		p.log.Debug("ssh dial failed; retrying", "server", ep.String(), "try", try, "error", err, "retryIn", wait)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil, err
		}
		wait *= 2
	}
}

// breaker records a dial's outcome for ep's server; true when the
// breaker is now open.
func (p *Pool) breaker(ep Endpoint, err error) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.servers[ep.key()]
	if s == nil {
		return false
	}
	if err == nil {
		s.failures, s.lastErr, s.openTill = 0, nil, time.Time{}
		return false
	}
	s.failures++
	s.lastErr = err
	if s.failures >= p.breakerFailures {
		s.openTill = p.now().Add(p.cooldown)
		p.log.Warn("ssh server unreachable; failing its jobs fast for a while", "server", ep.String(), "failures", s.failures, "until", s.openTill, "error", err)
		return true
	}
	return false
}

func (p *Pool) clientConfig(ep Endpoint) (*ssh.ClientConfig, error) {
	cfg := &ssh.ClientConfig{
		User:            ep.User,
		HostKeyCallback: p.hostKeys.Callback(),
		Timeout:         p.dialTimeout,
	}
	if algs := p.hostKeys.Algorithms(ep.Addr()); len(algs) > 0 {
		cfg.HostKeyAlgorithms = algs
	}
	switch {
	case len(ep.PrivateKey) > 0:
		signer, err := ssh.ParsePrivateKey(ep.PrivateKey)
		if err != nil {
			var missing *ssh.PassphraseMissingError
			if errors.As(err, &missing) {
				return nil, fmt.Errorf("ssh %s: the private key is protected by a passphrase, which the agent cannot enter", ep)
			}
			// The parser's message never quotes the key.
			return nil, fmt.Errorf("ssh %s: the private key cannot be read: %w", ep, err)
		}
		cfg.Auth = []ssh.AuthMethod{ssh.PublicKeys(signer)}
	case ep.Password != "":
		cfg.Auth = []ssh.AuthMethod{ssh.Password(ep.Password)}
	default:
		return nil, fmt.Errorf("ssh %s: the server has neither a private key nor a password", ep)
	}
	return cfg, nil
}

// dialError is a dial that failed where trying again may help.
type dialError struct{ err error }

func (e *dialError) Error() string { return e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

func transient(err error) bool {
	var de *dialError
	return errors.As(err, &de)
}

func (p *Pool) dialOnce(ctx context.Context, ep Endpoint, cfg *ssh.ClientConfig) (*conn, error) {
	p.dials.Add(1)
	dctx, cancel := context.WithTimeout(ctx, p.dialTimeout)
	defer cancel()
	nc, err := (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext(dctx, "tcp", ep.Addr())
	if err != nil {
		return nil, &dialError{fmt.Errorf("ssh %s: connect: %w", ep, err)}
	}
	deadline, _ := dctx.Deadline()
	_ = nc.SetDeadline(deadline)
	stop := context.AfterFunc(dctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	sc, chans, reqs, err := ssh.NewClientConn(nc, ep.Addr(), cfg)
	stop()
	if err != nil {
		_ = nc.Close()
		return nil, classifyHandshake(ep, err)
	}
	_ = nc.SetDeadline(time.Time{})
	c := &conn{client: ssh.NewClient(sc, chans, reqs), dead: make(chan struct{})}
	go func() {
		err := c.client.Wait()
		c.kill(fmt.Errorf("connection to %s lost: %w", ep, err))
	}()
	return c, nil
}

// classifyHandshake says what failed in the handshake, and whether a new
// try may do better.
func classifyHandshake(ep Endpoint, err error) error {
	switch {
	case isAuthError(err):
		return fmt.Errorf("ssh %s: authentication failed (check the server's user and key or password): %w", ep, err)
	case isHostKeyError(err):
		return fmt.Errorf("ssh %s: %w", ep, err)
	}
	return &dialError{fmt.Errorf("ssh %s: handshake: %w", ep, err)}
}

// isAuthError: x/crypto/ssh reports a refused login only in its message.
func isAuthError(err error) bool {
	return strings.Contains(err.Error(), "unable to authenticate") || strings.Contains(err.Error(), "no supported methods remain")
}

// isHostKeyError: the host key callback refused the server; its error is
// wrapped in the handshake's.
func isHostKeyError(err error) bool {
	var unknown *UnknownHostError
	var changed *ChangedHostKeyError
	var revoked *RevokedHostKeyError
	return errors.As(err, &unknown) || errors.As(err, &changed) || errors.As(err, &revoked)
}

// ping sends keepalive@openssh.com and waits for the answer.
func (p *Pool) ping(c *conn, timeout time.Duration) error {
	errc := make(chan error, 1)
	go func() {
		_, _, err := c.client.SendRequest("keepalive@openssh.com", true, nil)
		errc <- err
	}()
	select {
	case err := <-errc:
		return err
	case <-time.After(timeout):
		return fmt.Errorf("no answer to a keepalive within %s", timeout)
	case <-c.dead:
		return c.err
	}
}

// keepAlive pings c every keepalive interval until it dies.
func (p *Pool) keepAlive(c *conn) {
	if p.keepalive <= 0 {
		return
	}
	t := time.NewTicker(p.keepalive)
	defer t.Stop()
	for {
		select {
		case <-c.dead:
			return
		case <-p.stop:
			return
		case <-t.C:
			if err := p.ping(c, p.keepalive); err != nil {
				c.kill(fmt.Errorf("keepalive: %w", err))
				return
			}
		}
	}
}

// janitor closes connections nobody held for the idle timeout.
func (p *Pool) janitor() {
	defer close(p.done)
	period := min(max(p.idle/4, 100*time.Millisecond), 30*time.Second)
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		var idle []*conn
		p.mu.Lock()
		for key, s := range p.servers {
			keep := s.conns[:0]
			for _, c := range s.conns {
				if c.leases == 0 && (c.isDead() || p.now().Sub(c.lastUsed) >= p.idle) {
					idle = append(idle, c)
					continue
				}
				keep = append(keep, c)
			}
			s.conns = keep
			if len(s.conns) == 0 && s.dialing == 0 && s.failures == 0 {
				delete(p.servers, key)
			}
		}
		p.mu.Unlock()
		for _, c := range idle {
			c.kill(errors.New("idle"))
		}
	}
}
