package authz

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/open-policy-agent/opa/v1/config"
	"github.com/open-policy-agent/opa/v1/plugins"
	"github.com/open-policy-agent/opa/v1/plugins/rest"
	"github.com/open-policy-agent/opa/v1/util"
)

// opaLimits bounds what the services of policy.opa may make the server
// hold: OPA's size_limit_bytes is per file of a bundle, and OPA reads a
// whole bundle into memory before it checks its signature, so a small
// gzip bomb from a compromised or spoofed bundle server could take
// gigabytes. Each bundle without size_limit_bytes gets
// DefaultBundleSizeLimit, and every response of every service is cut off
// past the limit once uncompressed (sizeLimitedBody): the larger of
// DefaultBundleSizeLimit and the largest size_limit_bytes configured.
//
// OPA has no setting for a total, and builds its HTTP clients itself, from
// a service's credentials (an HTTPAuthPlugin). So each service's
// credentials are replaced with a plugin of ours (limitedAuth), registered
// with the manager, which makes the client of the original credentials
// and wraps its transport.
type opaLimits struct {
	limit atomic.Int64

	mu       sync.Mutex
	manager  *plugins.Manager
	wrappers map[string]*limitedAuth // by service name and credentials
	pending  []*limitedAuth          // made before the manager was
}

// limitPluginPrefix starts the names of the plugins standing for services'
// credentials.
const limitPluginPrefix = "srht-registry-size-limit-"

func newOPALimits() *opaLimits {
	l := &opaLimits{wrappers: map[string]*limitedAuth{}}
	l.limit.Store(DefaultBundleSizeLimit)
	return l
}

// setManager registers the plugins made so far with m; later ones (a
// discovered configuration's) are registered as they are made.
func (l *opaLimits) setManager(m *plugins.Manager) {
	l.mu.Lock()
	l.manager = m
	pending := l.pending
	l.pending = nil
	l.mu.Unlock()
	for _, w := range pending {
		register(m, w)
	}
}

// register makes w known to m by name. It has nothing to start: it is
// ready at once.
func register(m *plugins.Manager, w *limitedAuth) {
	m.Register(w.name, w)
	m.UpdatePluginStatus(w.name, &plugins.Status{State: plugins.StateOK})
}

// rewriteConfig applies the limits to an OPA configuration document (JSON
// or YAML), and returns it as JSON.
func (l *opaLimits) rewriteConfig(raw []byte) ([]byte, error) {
	var generic any
	if err := util.Unmarshal(raw, &generic); err != nil {
		return nil, err
	}
	js, err := json.Marshal(generic)
	if err != nil {
		return nil, err
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(js, &doc); err != nil {
		return nil, err
	}
	services, bundles, err := l.rewrite(doc["services"], doc["bundles"])
	if err != nil {
		return nil, err
	}
	if services != nil {
		doc["services"] = services
	}
	if bundles != nil {
		doc["bundles"] = bundles
	}
	return json.Marshal(doc)
}

// OnConfigDiscovery applies the limits to a configuration a discovery
// bundle delivers (hooks.ConfigDiscoveryHook).
func (l *opaLimits) OnConfigDiscovery(_ context.Context, c *config.Config) (*config.Config, error) {
	services, bundles, err := l.rewrite(c.Services, c.Bundles)
	if err != nil {
		return nil, err
	}
	c.Services, c.Bundles = services, bundles
	return c, nil
}

// rewrite returns the services and bundles sections with the limits
// applied, and sets the total limit from the bundles. A section that does
// not parse is returned as it is, for OPA to report.
func (l *opaLimits) rewrite(services, bundles json.RawMessage) (json.RawMessage, json.RawMessage, error) {
	limit := int64(DefaultBundleSizeLimit)
	var bs map[string]map[string]json.RawMessage
	if len(bundles) > 0 && json.Unmarshal(bundles, &bs) == nil {
		for _, b := range bs {
			if b == nil {
				continue
			}
			n, err := strconv.ParseInt(strings.TrimSpace(string(b["size_limit_bytes"])), 10, 64)
			if err != nil || n <= 0 {
				b["size_limit_bytes"] = json.RawMessage(strconv.Itoa(DefaultBundleSizeLimit))
				continue
			}
			limit = max(limit, n)
		}
		var err error
		if bundles, err = json.Marshal(bs); err != nil {
			return nil, nil, err
		}
	}
	l.limit.Store(limit)
	if len(services) == 0 {
		return services, bundles, nil
	}
	// A list of services with names, or a map by name; neither is left
	// as it is, for OPA to report.
	var list []map[string]json.RawMessage
	var byName map[string]map[string]json.RawMessage
	switch {
	case json.Unmarshal(services, &list) == nil:
		for _, s := range list {
			if s == nil {
				continue
			}
			var name string
			_ = json.Unmarshal(s["name"], &name)
			l.wrap(name, s)
		}
		out, err := json.Marshal(list)
		return out, bundles, err
	case json.Unmarshal(services, &byName) == nil:
		for name, s := range byName {
			if s != nil {
				l.wrap(name, s)
			}
		}
		out, err := json.Marshal(byName)
		return out, bundles, err
	}
	return services, bundles, nil
}

// wrap replaces the credentials of the service s with a limitedAuth
// standing for them.
func (l *opaLimits) wrap(service string, s map[string]json.RawMessage) {
	creds := s["credentials"]
	var compact bytes.Buffer
	if json.Compact(&compact, creds) == nil {
		creds = compact.Bytes()
	}
	var already struct {
		Plugin string `json:"plugin"`
	}
	if json.Unmarshal(creds, &already) == nil && strings.HasPrefix(already.Plugin, limitPluginPrefix) {
		return
	}
	l.mu.Lock()
	key := service + "\x00" + string(creds)
	w := l.wrappers[key]
	var m *plugins.Manager
	if w == nil {
		w = &limitedAuth{name: limitPluginPrefix + strconv.Itoa(len(l.wrappers)+1), service: service, limits: l}
		if len(creds) > 0 && string(creds) != "null" {
			w.creds = creds
		}
		l.wrappers[key] = w
		if m = l.manager; m == nil {
			l.pending = append(l.pending, w)
		}
	}
	l.mu.Unlock()
	if m != nil {
		register(m, w)
	}
	s["credentials"] = json.RawMessage(fmt.Sprintf(`{"plugin": %q}`, w.name))
}

// lookup finds an auth plugin the operator's credentials name.
func (l *opaLimits) lookup(name string) rest.HTTPAuthPlugin {
	l.mu.Lock()
	m := l.manager
	l.mu.Unlock()
	if m == nil {
		return nil
	}
	return m.AuthPlugin(name)
}

// limitedAuth stands for a service's credentials: it makes the client
// those credentials make, with sizeLimitTransport around its transport, and
// prepares each request as they do. It is a plugin of the manager only so
// that the manager can find it by name.
type limitedAuth struct {
	name, service string
	creds         json.RawMessage // the service's own credentials; nil: none
	limits        *opaLimits

	mu   sync.Mutex
	orig rest.HTTPAuthPlugin
}

var (
	_ rest.HTTPAuthPlugin = (*limitedAuth)(nil)
	_ plugins.Plugin      = (*limitedAuth)(nil)
)

// NewClient makes the client of the service's own credentials, the same
// configuration otherwise, and limits its responses.
func (a *limitedAuth) NewClient(c rest.Config) (*http.Client, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	own := c
	own.Credentials = rest.Config{}.Credentials
	if a.creds != nil {
		if err := json.Unmarshal(a.creds, &own.Credentials); err != nil {
			return nil, fmt.Errorf("service %s: credentials: %w", a.service, err)
		}
	}
	if a.orig == nil {
		p, err := own.AuthPlugin(a.limits.lookup)
		if err != nil {
			return nil, err
		}
		a.orig = p
	}
	hc, err := a.orig.NewClient(own)
	if err != nil {
		return nil, err
	}
	base := hc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	limited := *hc
	limited.Transport = &sizeLimitTransport{base: base, service: a.service, limit: &a.limits.limit}
	return &limited, nil
}

// Prepare prepares a request as the service's own credentials do.
func (a *limitedAuth) Prepare(r *http.Request) error {
	a.mu.Lock()
	p := a.orig
	a.mu.Unlock()
	if p == nil {
		return errors.New("service " + a.service + ": no client yet")
	}
	return p.Prepare(r)
}

// Start, Stop and Reconfigure: there is nothing to run.
func (a *limitedAuth) Start(context.Context) error      { return nil }
func (a *limitedAuth) Stop(context.Context)             {}
func (a *limitedAuth) Reconfigure(context.Context, any) {}

// sizeLimitTransport limits every response body (sizeLimitedBody).
type sizeLimitTransport struct {
	base    http.RoundTripper
	service string
	limit   *atomic.Int64
}

func (t *sizeLimitTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil || resp.Body == nil {
		return resp, err
	}
	limit := t.limit.Load()
	resp.Body = newSizeLimitedBody(resp.Body, limit,
		fmt.Sprintf("the response of service %s to %s %s", t.service, req.Method, req.URL.Path),
		fmt.Sprintf(" (the limit of policy.opa when no bundle sets a higher size_limit_bytes is %d bytes: set size_limit_bytes on the bundle to raise it)", DefaultBundleSizeLimit))
	return resp, nil
}
