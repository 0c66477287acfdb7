package ldap

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	goldap "github.com/go-ldap/ldap/v3"

	"git.sr.ht/~zozs/srht-registry/internal/identity"
)

// Defaults of an authn.ldap entry's cache.
const (
	// DefaultCacheTTL is how long a successful login is remembered, and
	// how long a refresh token's user lookup is: the longest a user
	// removed from the directory, or from a group, keeps its rights
	// (plus the lifetime of access tokens already issued).
	DefaultCacheTTL  = time.Minute
	DefaultCacheSize = 10000
)

// maxUserLength bounds a login name: no directory has longer ones.
const maxUserLength = 256

// ErrUnknownUser is the error of a login name the directory has no entry
// for: the next provider may know it (authn.Chain).
var ErrUnknownUser = fmt.Errorf("%w: no such user in the directory", identity.ErrUnauthenticated)

// Options configure a directory.
type Options struct {
	Name             string // the provider name
	URLs             []string
	StartTLS         bool
	TLS              *tls.Config // nil: the system roots
	BindDN           string
	BindPassword     identity.Secret
	UserBase         string
	UserFilter       string
	SubjectAttribute string
	GroupBase        string
	GroupFilter      string // "" = memberOf of the user entry
	GroupAttribute   string
	Timeout          time.Duration
	PoolSize         int
	CacheTTL         time.Duration // 0 = no cache
	CacheSize        int
	Now              func() time.Time
	Logger           *slog.Logger
}

// Authenticator logs in the users of one directory.
type Authenticator struct {
	o      Options
	pool   *pool
	logins *cache // successful logins, by HMAC of user and password
	users  *cache // lookups for refresh tokens, by HMAC of the user
}

// New makes the authenticator of a directory; no connection is made yet.
func New(o Options) (*Authenticator, error) {
	switch {
	case o.Name == "":
		return nil, errors.New("ldap: no provider name")
	case len(o.URLs) == 0:
		return nil, errors.New("ldap: no URL")
	case o.Timeout <= 0 || o.PoolSize < 1:
		return nil, errors.New("ldap: a timeout and a pool size are required")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if err := CheckFilter(o.UserFilter, []string{PlaceholderUser}, true); err != nil {
		return nil, fmt.Errorf("ldap %s: user_filter: %w", o.Name, err)
	}
	a := &Authenticator{o: o, pool: newPool(o)}
	if o.CacheTTL > 0 {
		a.logins = newCache(o.CacheTTL, o.CacheSize, o.Now)
		a.users = newCache(o.CacheTTL, o.CacheSize, o.Now)
	}
	return a, nil
}

// Name is the provider name.
func (a *Authenticator) Name() string { return a.o.Name }

// Close closes the idle connections.
func (a *Authenticator) Close() { a.pool.close() }

// CachedLen is the number of logins remembered.
func (a *Authenticator) CachedLen() int {
	if a.logins == nil {
		return 0
	}
	return a.logins.Len()
}

// Authenticate checks a login name and password: the entry the user filter
// finds (exactly one) must accept a bind with the password. It returns the
// identity (method password, the provider's name, the subject attribute,
// the groups qualified by the provider), an error wrapping ErrUnknownUser
// when the directory has no such user, identity.ErrUnauthenticated for a
// wrong password or an entry the directory refuses, or
// identity.ErrUnavailable when the directory could not be asked.
func (a *Authenticator) Authenticate(ctx context.Context, user string, password identity.Secret) (identity.Identity, error) {
	if err := checkUser(user); err != nil {
		return identity.Identity{}, err
	}
	if password == "" {
		// An empty password is an "unauthenticated bind" (RFC 4513
		// 5.1.2), which many directories let succeed: never a login.
		return identity.Identity{}, fmt.Errorf("%w: empty password", identity.ErrUnauthenticated)
	}
	if a.logins == nil {
		return a.login(ctx, user, password)
	}
	key := a.logins.key(user, password.Reveal())
	if id, ok := a.logins.get(key); ok {
		return id, nil
	}
	// Concurrent first requests with the same credentials (a client
	// pulling layers in parallel) share one round trip.
	v, err, _ := a.logins.flight.Do(string(key[:]), func() (any, error) {
		id, err := a.login(ctx, user, password)
		if err == nil {
			a.logins.put(key, id)
		}
		return id, err
	})
	if err != nil {
		return identity.Identity{}, err
	}
	return v.(identity.Identity), nil
}

func (a *Authenticator) login(ctx context.Context, user string, password identity.Secret) (identity.Identity, error) {
	var id identity.Identity
	err := a.pool.with(ctx, func(c *conn) error {
		e, err := a.findUser(c, user)
		if err != nil {
			return err
		}
		// The bind changes whom the connection is bound as; the next
		// search binds it as the service account again.
		c.bound = false
		if err := c.Bind(e.DN, password.Reveal()); err != nil {
			if networkError(err) || goldap.IsErrorAnyOf(err, unavailableCodes...) {
				return fmt.Errorf("%w: bind: %w", identity.ErrUnavailable, err)
			}
			// Invalid credentials, and whatever else the directory refuses
			// at bind (a locked or disabled account).
			return fmt.Errorf("%w: wrong user name or password", identity.ErrUnauthenticated)
		}
		c.bound, c.boundAs = true, e.DN
		id, err = a.identityOf(c, user, e)
		return err
	})
	if err != nil {
		return identity.Identity{}, err
	}
	id.Method = identity.MethodPassword
	return id, nil
}

// Lookup finds user again, without a password, for a refresh token issued
// at its login: the identity it has now (subject and groups), an error
// wrapping identity.ErrUnauthenticated when the directory no longer has
// it, or identity.ErrUnavailable. Answers are remembered for the cache TTL:
// a refresh token asks the directory at most once per TTL per user.
func (a *Authenticator) Lookup(ctx context.Context, user string) (identity.Identity, error) {
	if err := checkUser(user); err != nil {
		return identity.Identity{}, err
	}
	if a.users == nil {
		return a.lookup(ctx, user)
	}
	key := a.users.key(user, "")
	if id, ok := a.users.get(key); ok {
		return id, nil
	}
	v, err, _ := a.users.flight.Do(string(key[:]), func() (any, error) {
		id, err := a.lookup(ctx, user)
		if err == nil {
			a.users.put(key, id)
		}
		return id, err
	})
	if err != nil {
		return identity.Identity{}, err
	}
	return v.(identity.Identity), nil
}

func (a *Authenticator) lookup(ctx context.Context, user string) (identity.Identity, error) {
	var id identity.Identity
	err := a.pool.with(ctx, func(c *conn) error {
		e, err := a.findUser(c, user)
		if err != nil {
			return err
		}
		id, err = a.identityOf(c, user, e)
		return err
	})
	return id, err
}

// Knows reports whether the directory has an entry for user (check-config
// asks it about the htpasswd file's names).
func (a *Authenticator) Knows(ctx context.Context, user string) (bool, error) {
	if user == "" || len(user) > maxUserLength {
		return false, nil // no login could name it
	}
	err := a.pool.with(ctx, func(c *conn) error {
		_, err := a.findUser(c, user)
		return err
	})
	switch {
	case errors.Is(err, ErrUnknownUser):
		return false, nil
	case err != nil && !errors.Is(err, identity.ErrUnauthenticated):
		return false, err
	}
	return true, nil
}

// unavailableCodes are the directory's answers that mean it could not
// answer now, rather than no.
var unavailableCodes = []uint16{goldap.LDAPResultBusy, goldap.LDAPResultUnavailable, goldap.LDAPResultOther,
	goldap.LDAPResultTimeLimitExceeded, goldap.LDAPResultAdminLimitExceeded, goldap.LDAPResultOperationsError}

func checkUser(user string) error {
	switch {
	case user == "":
		return fmt.Errorf("%w: empty user name", identity.ErrUnauthenticated)
	case len(user) > maxUserLength:
		return fmt.Errorf("%w: user name too long", identity.ErrUnauthenticated)
	}
	return nil
}

// findUser searches the entry of user, as the service account.
func (a *Authenticator) findUser(c *conn, user string) (*goldap.Entry, error) {
	if err := a.pool.asService(c); err != nil {
		return nil, err
	}
	filter, err := Expand(a.o.UserFilter, map[string]string{PlaceholderUser: user})
	if err != nil {
		return nil, fmt.Errorf("%w: user_filter: %w", identity.ErrUnavailable, err)
	}
	attrs := []string{a.o.SubjectAttribute}
	if a.o.GroupFilter == "" {
		attrs = append(attrs, "memberOf")
	}
	res, err := c.Search(goldap.NewSearchRequest(a.o.UserBase, goldap.ScopeWholeSubtree, goldap.DerefInSearching,
		2, int(a.o.Timeout/time.Second), false, filter, attrs, nil))
	switch {
	case goldap.IsErrorAnyOf(err, goldap.LDAPResultNoSuchObject):
		return nil, ErrUnknownUser
	case goldap.IsErrorAnyOf(err, goldap.LDAPResultSizeLimitExceeded) || (err == nil && len(res.Entries) > 1):
		// Two entries for one login name: no way to tell which one is
		// meant, so neither.
		a.o.Logger.Warn("the user filter matches more than one entry; refusing the login", "provider", a.o.Name)
		return nil, fmt.Errorf("%w: wrong user name or password", identity.ErrUnauthenticated)
	case err != nil:
		if networkError(err) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: user search: %w", identity.ErrUnavailable, err)
	case len(res.Entries) == 0:
		return nil, ErrUnknownUser
	}
	return res.Entries[0], nil
}

// identityOf reads the subject and the groups of the user's entry e.
func (a *Authenticator) identityOf(c *conn, user string, e *goldap.Entry) (identity.Identity, error) {
	subjects := e.GetAttributeValues(a.o.SubjectAttribute)
	if len(subjects) != 1 || subjects[0] == "" {
		a.o.Logger.Warn("the user entry has no single value of subject_attribute; refusing the login",
			"provider", a.o.Name, "dn", e.DN, "subject_attribute", a.o.SubjectAttribute, "values", len(subjects))
		return identity.Identity{}, fmt.Errorf("%w: the directory entry has no %s", identity.ErrUnauthenticated, a.o.SubjectAttribute)
	}
	var names []string
	if a.o.GroupFilter == "" {
		for _, dn := range e.GetAttributeValues("memberOf") {
			if n := groupName(dn, a.o.GroupAttribute); n != "" {
				names = append(names, n)
			}
		}
	} else {
		if err := a.pool.asService(c); err != nil {
			return identity.Identity{}, err
		}
		filter, err := Expand(a.o.GroupFilter, map[string]string{PlaceholderDN: e.DN, PlaceholderUser: user})
		if err != nil {
			return identity.Identity{}, fmt.Errorf("%w: group_filter: %w", identity.ErrUnavailable, err)
		}
		res, err := c.Search(goldap.NewSearchRequest(a.o.GroupBase, goldap.ScopeWholeSubtree, goldap.DerefInSearching,
			0, int(a.o.Timeout/time.Second), false, filter, []string{a.o.GroupAttribute}, nil))
		switch {
		case goldap.IsErrorAnyOf(err, goldap.LDAPResultNoSuchObject):
		case err != nil && networkError(err):
			return identity.Identity{}, err
		case err != nil:
			// Groups that cannot be read are not "no groups": a login
			// without them could pass a rule that denies by group.
			return identity.Identity{}, fmt.Errorf("%w: group search: %w", identity.ErrUnavailable, err)
		default:
			for _, g := range res.Entries {
				names = append(names, g.GetAttributeValues(a.o.GroupAttribute)...)
			}
		}
	}
	return identity.Identity{Provider: a.o.Name, Subject: subjects[0], DirectoryUser: user, Groups: a.qualify(names)}, nil
}

// qualify names the directory's groups by the provider, sorted, without
// duplicates: "devs" of corp is "corp:devs", never a group of groups:.
func (a *Authenticator) qualify(names []string) []string {
	var out []string
	for _, n := range names {
		n = strings.TrimSpace(n)
		if n == "" || strings.ContainsFunc(n, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			continue
		}
		out = append(out, identity.Principal(a.o.Name, n))
	}
	slices.Sort(out)
	return slices.Compact(out)
}
