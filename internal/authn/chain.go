package authn

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"

	"git.sr.ht/~zozs/srht-registry/internal/authn/sourcehut"
	"git.sr.ht/~zozs/srht-registry/internal/identity"
)

// PasswordChecker checks a user name and password.
type PasswordChecker interface {
	Authenticate(ctx context.Context, user string, password identity.Secret) (identity.Identity, error)
}

// TokenChecker checks a bearer token (a Sourcehut OAuth2 token) presented
// for the registry named service. A string that is not such a token gives an
// error wrapping sourcehut.ErrNotToken.
type TokenChecker interface {
	Authenticate(ctx context.Context, service string, token identity.Secret) (identity.Identity, error)
}

// RefreshChecker redeems a refresh token (the OAuth2 refresh_token grant,
// cred.Secret) for the registry cred.Service and the client cred.ClientID;
// *token.Refresher is the real one. Every failure wraps
// identity.ErrUnauthenticated.
type RefreshChecker interface {
	Redeem(ctx context.Context, cred identity.Credentials) (identity.Identity, error)
}

// Chain dispatches credentials to the method that handles them and adds the
// configured groups to the identity it gets back.
type Chain struct {
	// Anonymous allows requests without credentials, as identity.Anonymous.
	Anonymous bool
	// Passwords checks Basic credentials; nil means no password users.
	Passwords PasswordChecker
	// Tokens checks Sourcehut tokens, sent as a Bearer token or as the
	// password of Basic credentials (any user name); nil turns them off.
	Tokens TokenChecker
	// Refresh redeems refresh tokens; nil refuses them.
	Refresh RefreshChecker
	// Groups maps a group name to its member subjects. SetGroups
	// replaces it while requests run.
	Groups map[string][]string

	reloadedGroups atomic.Pointer[map[string][]string]
}

// SetGroups replaces the groups, for a reloaded config.
func (c *Chain) SetGroups(groups map[string][]string) { c.reloadedGroups.Store(&groups) }

// Authenticate returns the identity the credentials prove. A request with
// credentials never falls back to anonymous: wrong credentials are an error.
func (c *Chain) Authenticate(ctx context.Context, cred identity.Credentials) (identity.Identity, error) {
	switch cred.Kind {
	case identity.CredentialNone:
		if !c.Anonymous {
			return identity.Identity{}, identity.ErrCredentialsRequired
		}
		return identity.Anonymous, nil
	case identity.CredentialBasic:
		// `docker login -u sourcehut -p "$OAUTH2_TOKEN"` puts the token in
		// the password; a password that does not decode as a token is
		// checked as a password.
		if c.Tokens != nil {
			id, err := c.Tokens.Authenticate(ctx, cred.Service, cred.Secret)
			if !errors.Is(err, sourcehut.ErrNotToken) {
				return c.withGroups(id, err)
			}
		}
		if cred.Username == "" {
			return identity.Identity{}, fmt.Errorf("%w: empty user name", identity.ErrUnauthenticated)
		}
		if c.Passwords == nil {
			return identity.Identity{}, fmt.Errorf("%w: password login is not configured", identity.ErrUnauthenticated)
		}
		return c.withGroups(c.Passwords.Authenticate(ctx, cred.Username, cred.Secret))
	case identity.CredentialBearer:
		if c.Tokens == nil {
			return identity.Identity{}, fmt.Errorf("%w: bearer tokens are not accepted", identity.ErrUnauthenticated)
		}
		id, err := c.Tokens.Authenticate(ctx, cred.Service, cred.Secret)
		if errors.Is(err, sourcehut.ErrNotToken) {
			return identity.Identity{}, fmt.Errorf("%w: the bearer token is not a Sourcehut token", identity.ErrUnauthenticated)
		}
		return c.withGroups(id, err)
	case identity.CredentialRefresh:
		// The identity a refresh token stands for gets the groups of now,
		// not of its login: a config change applies at once.
		if c.Refresh == nil {
			return identity.Identity{}, fmt.Errorf("%w: refresh tokens are not accepted", identity.ErrUnauthenticated)
		}
		return c.withGroups(c.Refresh.Redeem(ctx, cred))
	default:
		return identity.Identity{}, fmt.Errorf("%w: unsupported credentials", identity.ErrUnauthenticated)
	}
}

// withGroups adds the configured groups of a successfully authenticated
// identity: password and Sourcehut users share one space of names.
func (c *Chain) withGroups(id identity.Identity, err error) (identity.Identity, error) {
	if err != nil {
		return identity.Identity{}, err
	}
	id.Groups = c.groupsOf(id.Subject)
	return id, nil
}

func (c *Chain) groupsOf(subject string) []string {
	all := c.Groups
	if reloaded := c.reloadedGroups.Load(); reloaded != nil {
		all = *reloaded
	}
	var groups []string
	for g, members := range all {
		if slices.Contains(members, subject) {
			groups = append(groups, g)
		}
	}
	slices.Sort(groups)
	return groups
}
