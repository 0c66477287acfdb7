package ldap

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"time"

	goldap "github.com/go-ldap/ldap/v3"

	"git.sr.ht/~zozs/srht-registry/internal/identity"
)

// pool holds up to size connections to the directory, dialled on demand
// through the URLs in order (the first that answers), and bound as the
// service account before each search. A request that finds every slot
// taken waits, for as long as its context and the timeout allow.
type pool struct {
	urls     []string
	startTLS bool
	tls      *tls.Config
	bindDN   string
	bindPW   identity.Secret
	timeout  time.Duration
	log      *slog.Logger

	slots chan struct{} // one per open or dialling connection
	idle  chan *conn
}

// conn is a pooled connection and whom it is bound as now.
type conn struct {
	*goldap.Conn
	url     string
	boundAs string // "" anonymous (or not yet bound)
	bound   bool
}

func newPool(o Options) *pool {
	return &pool{urls: o.URLs, startTLS: o.StartTLS, tls: o.TLS, bindDN: o.BindDN, bindPW: o.BindPassword,
		timeout: o.Timeout, log: o.Logger, slots: make(chan struct{}, o.PoolSize), idle: make(chan *conn, o.PoolSize)}
}

// with runs f on a connection, and once more on a new connection (the
// next URL that answers) when the first failed at the network level: an
// idle connection the server closed, or a server that went away.
func (p *pool) with(ctx context.Context, f func(c *conn) error) error {
	ctx, cancel := context.WithTimeout(ctx, 2*p.timeout*time.Duration(len(p.urls)+1))
	defer cancel()
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("%w: every directory connection is busy", identity.ErrUnavailable)
	}
	defer func() { <-p.slots }()
	c, fresh, err := p.get()
	for {
		if err != nil {
			return err
		}
		err = f(c)
		if !networkError(err) {
			p.put(c)
			return err
		}
		c.Close()
		if fresh {
			return fmt.Errorf("%w: directory %s: %w", identity.ErrUnavailable, c.url, err)
		}
		// An idle connection the server closed, or a server gone away:
		// the other idle ones are likely as dead. Once more, on a new
		// connection through the URLs in order.
		p.log.Info("directory connection lost; reconnecting", "url", c.url, "error", err)
		p.close()
		c, err = p.dial()
		fresh = true
	}
}

func (p *pool) get() (c *conn, fresh bool, err error) {
	for {
		select {
		case c := <-p.idle:
			if !c.IsClosing() {
				return c, false, nil
			}
			c.Close()
			continue
		default:
		}
		c, err = p.dial()
		return c, true, err
	}
}

func (p *pool) put(c *conn) {
	select {
	case p.idle <- c:
	default:
		c.Close()
	}
}

// dial connects to the first URL that answers, in order.
func (p *pool) dial() (*conn, error) {
	var errs []error
	for _, u := range p.urls {
		c, err := p.dialOne(u)
		if err == nil {
			return c, nil
		}
		p.log.Warn("directory server unreachable; trying the next URL", "url", u, "error", err)
		errs = append(errs, fmt.Errorf("%s: %w", u, err))
	}
	return nil, fmt.Errorf("%w: no directory server answered: %w", identity.ErrUnavailable, errors.Join(errs...))
}

func (p *pool) dialOne(u string) (*conn, error) {
	tlsConfig := p.tls.Clone()
	if tlsConfig == nil {
		tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	parsed, err := url.Parse(u)
	if err != nil {
		return nil, err
	}
	tlsConfig.ServerName = parsed.Hostname()
	lc, err := goldap.DialURL(u, goldap.DialWithDialer(&net.Dialer{Timeout: p.timeout}), goldap.DialWithTLSConfig(tlsConfig))
	if err != nil {
		return nil, err
	}
	lc.SetTimeout(p.timeout)
	if p.startTLS && parsed.Scheme == "ldap" {
		if err := lc.StartTLS(tlsConfig); err != nil {
			lc.Close()
			return nil, fmt.Errorf("StartTLS: %w", err)
		}
	}
	return &conn{Conn: lc, url: u}, nil
}

// asService binds c as the service account, unless it already is.
func (p *pool) asService(c *conn) error {
	if c.bound && c.boundAs == p.bindDN {
		return nil
	}
	c.bound = false
	var err error
	if p.bindDN == "" {
		err = c.UnauthenticatedBind("")
	} else {
		err = c.Bind(p.bindDN, p.bindPW.Reveal())
	}
	if err != nil {
		if networkError(err) {
			return err
		}
		// A directory that refuses our own account is misconfigured, not
		// a wrong password of the user: could not check.
		return fmt.Errorf("%w: the directory refused the bind as bind_dn (%s): %w", identity.ErrUnavailable, p.bindDN, err)
	}
	c.bound, c.boundAs = true, p.bindDN
	return nil
}

// networkError reports whether err is the connection's failure rather than
// the directory's answer.
func networkError(err error) bool {
	if err == nil {
		return false
	}
	var le *goldap.Error
	if errors.As(err, &le) {
		return le.ResultCode == goldap.ErrorNetwork
	}
	var ne net.Error
	return errors.As(err, &ne)
}

// close closes the idle connections.
func (p *pool) close() {
	for {
		select {
		case c := <-p.idle:
			c.Close()
		default:
			return
		}
	}
}
