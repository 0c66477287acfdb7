package authn

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"

	"git.sr.ht/~zozs/srht-registry/internal/authn/ldap"
	"git.sr.ht/~zozs/srht-registry/internal/authn/sourcehut"
	"git.sr.ht/~zozs/srht-registry/internal/identity"
)

// PasswordChecker checks a user name and password.
type PasswordChecker interface {
	Authenticate(ctx context.Context, user string, password identity.Secret) (identity.Identity, error)
}

// TokenChecker checks a bearer token (a Sourcehut OAuth2 token) presented
// for the registry named service. A string that is not such a token gives an
// error wrapping sourcehut.ErrNotToken. Admits says whether a Sourcehut user
// may log in now, for the refresh tokens of earlier logins.
type TokenChecker interface {
	Authenticate(ctx context.Context, service string, token identity.Secret) (identity.Identity, error)
	Admits(user string) bool
}

// IDTokenChecker checks OIDC ID tokens of the configured issuers.
// Recognize says, without any network call, whether a string is an ID token
// of one of them (JWT-shaped, its iss a configured issuer): a token of any
// other issuer is not, and is never sent anywhere.
type IDTokenChecker interface {
	Recognize(token string) bool
	Authenticate(ctx context.Context, token identity.Secret) (identity.Identity, error)
}

// LocalAccounts says which names the local accounts (the htpasswd file)
// hold; *Htpasswd is the real one.
type LocalAccounts interface {
	HasUser(name string) bool
}

// RefreshChecker redeems a refresh token (the OAuth2 refresh_token grant,
// cred.Secret) for the registry cred.Service and the client cred.ClientID;
// *refresh.Tokens (internal/authn/refresh) is the real one. Every failure
// wraps identity.ErrUnauthenticated.
type RefreshChecker interface {
	Redeem(ctx context.Context, cred identity.Credentials) (identity.Identity, error)
}

// Directory is one directory of authn.ldap; *ldap.Authenticator is the
// real one. Authenticate returns an error wrapping ldap.ErrUnknownUser
// when the directory has no such user.
type Directory interface {
	Authenticate(ctx context.Context, user string, password identity.Secret) (identity.Identity, error)
}

// Chain dispatches credentials to the method that handles them and adds the
// configured groups to the identity it gets back.
type Chain struct {
	// Anonymous allows requests without credentials, as identity.Anonymous.
	Anonymous bool
	// Passwords checks Basic credentials; nil means no password users.
	Passwords PasswordChecker
	// Directories check Basic credentials too, in order, after the local
	// accounts: see password.
	Directories []Directory
	// Tokens checks Sourcehut tokens, sent as a Bearer token or as the
	// password of Basic credentials (any user name); nil turns them off.
	Tokens TokenChecker
	// IDTokens checks OIDC ID tokens, sent as a Bearer token or as the
	// password of Basic credentials (any user name); nil turns them off.
	IDTokens IDTokenChecker
	// Refresh redeems refresh tokens; nil refuses them.
	Refresh RefreshChecker
	// Local are the local accounts, whose names no other provider's
	// identity may own as a namespace; nil when there are none.
	Local LocalAccounts
	// Groups maps a group name to its members, principals such as
	// "htpasswd:alice". SetGroups replaces it while requests run.
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
		// `docker login -u oidc -p "$ID_TOKEN"` and `docker login -u
		// sourcehut -p "$OAUTH2_TOKEN"` put the token in the password; a
		// password that is neither kind of token is checked as a password.
		if c.IDTokens != nil && c.IDTokens.Recognize(cred.Secret.Reveal()) {
			return c.complete(c.IDTokens.Authenticate(ctx, cred.Secret))
		}
		if c.Tokens != nil {
			id, err := c.Tokens.Authenticate(ctx, cred.Service, cred.Secret)
			if !errors.Is(err, sourcehut.ErrNotToken) {
				return c.complete(id, err)
			}
		}
		if cred.Username == "" {
			return identity.Identity{}, fmt.Errorf("%w: empty user name", identity.ErrUnauthenticated)
		}
		if c.Passwords == nil && len(c.Directories) == 0 {
			return identity.Identity{}, fmt.Errorf("%w: password login is not configured", identity.ErrUnauthenticated)
		}
		return c.complete(c.password(ctx, cred.Username, cred.Secret))
	case identity.CredentialBearer:
		if c.IDTokens != nil && c.IDTokens.Recognize(cred.Secret.Reveal()) {
			return c.complete(c.IDTokens.Authenticate(ctx, cred.Secret))
		}
		if c.Tokens == nil {
			return identity.Identity{}, fmt.Errorf("%w: bearer tokens are not accepted", identity.ErrUnauthenticated)
		}
		id, err := c.Tokens.Authenticate(ctx, cred.Service, cred.Secret)
		if errors.Is(err, sourcehut.ErrNotToken) {
			return identity.Identity{}, fmt.Errorf("%w: the bearer token is not a Sourcehut token", identity.ErrUnauthenticated)
		}
		return c.complete(id, err)
	case identity.CredentialRefresh:
		// The identity a refresh token stands for gets the groups of now,
		// not of its login: a config change applies at once.
		if c.Refresh == nil {
			return identity.Identity{}, fmt.Errorf("%w: refresh tokens are not accepted", identity.ErrUnauthenticated)
		}
		id, err := c.Refresh.Redeem(ctx, cred)
		if err == nil {
			err = c.stillAdmitted(id)
		}
		return c.complete(id, err)
	default:
		return identity.Identity{}, fmt.Errorf("%w: unsupported credentials", identity.ErrUnauthenticated)
	}
}

// password checks a user name and password with the one provider that
// answers for the name: the local accounts (htpasswd) when they have the
// name, else the first directory, in the order of authn.ldap, that has an
// entry for it. Only that provider's answer counts: a wrong password is
// never tried on the next, and a directory that cannot be asked (down,
// misconfigured) is an error wrapping identity.ErrUnavailable, not a reason
// to ask the next one, which might know another person by the same name.
// A name nobody knows is checked by htpasswd (against its dummy hash, as
// any unknown name is) when there is a file, so it fails as slowly there.
func (c *Chain) password(ctx context.Context, user string, password identity.Secret) (identity.Identity, error) {
	if c.Passwords != nil && (len(c.Directories) == 0 || (c.Local != nil && c.Local.HasUser(user))) {
		return c.Passwords.Authenticate(ctx, user, password)
	}
	for _, d := range c.Directories {
		id, err := d.Authenticate(ctx, user, password)
		if errors.Is(err, ldap.ErrUnknownUser) {
			continue
		}
		return id, err
	}
	if c.Passwords != nil {
		return c.Passwords.Authenticate(ctx, user, password)
	}
	return identity.Identity{}, fmt.Errorf("%w: wrong user name or password", identity.ErrUnauthenticated)
}

// complete adds to a successfully authenticated identity what the site
// says of its principal now: its groups, and the namespace it owns.
func (c *Chain) complete(id identity.Identity, err error) (identity.Identity, error) {
	if err != nil {
		return identity.Identity{}, err
	}
	if id.Provider == "" || id.Subject == "" {
		// Every authenticator names its provider; one that does not is a
		// bug, and must not pass for someone.
		return identity.Identity{}, fmt.Errorf("%w: the identity names no provider", identity.ErrUnauthenticated)
	}
	// The site's groups (no colon in their names) by principal, and the
	// groups a directory vouched for, qualified by its own provider name
	// ("corp:devs" of the identity corp:alice); no other group a checker
	// returns is believed.
	groups := GroupsOf(c.groups(), id.Principal())
	for _, g := range id.Groups {
		if strings.HasPrefix(g, id.Provider+":") && len(g) > len(id.Provider)+1 {
			groups = append(groups, g)
		}
	}
	slices.Sort(groups)
	id.Groups = slices.Compact(groups)
	id.Namespace = NamespaceOf(id, c.Local)
	return id, nil
}

// pathComponent is one component of a repository name, as distribution's
// reference grammar defines it.
var pathComponent = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)

// stillAdmitted holds the refresh token of a Sourcehut login to who may log
// in with Sourcehut now: a user taken off authn.sourcehut.users, or
// Sourcehut login turned off, ends its refresh tokens too. (A password
// user's refresh token is bound to the user's htpasswd line instead.)
func (c *Chain) stillAdmitted(id identity.Identity) error {
	if id.Provider != identity.ProviderSourcehut {
		return nil
	}
	if c.Tokens == nil || !c.Tokens.Admits(id.Subject) {
		return fmt.Errorf("%w: refresh token is for a Sourcehut account that may no longer log in to this registry", identity.ErrUnauthenticated)
	}
	return nil
}

// NamespaceOf is the personal namespace the identity owns: its own name,
// for the providers whose accounts own one. Local (htpasswd) accounts come
// first: a Sourcehut account named like a local account owns nothing, so
// nobody can take over a local user's images by registering the name on
// sr.ht. Whether the site reserved the name (a shared namespace, a public
// prefix) is the policy's to say.
func NamespaceOf(id identity.Identity, local LocalAccounts) string {
	if !pathComponent.MatchString(id.Subject) {
		// Only a name that is one path component of a repository name
		// can own one: "team/x" must not own team/x/*.
		return ""
	}
	switch id.Provider {
	case identity.ProviderHtpasswd:
		return id.Subject
	case identity.ProviderSourcehut:
		if local != nil && local.HasUser(id.Subject) {
			return ""
		}
		return id.Subject
	default:
		return ""
	}
}

func (c *Chain) groups() map[string][]string {
	if reloaded := c.reloadedGroups.Load(); reloaded != nil {
		return *reloaded
	}
	return c.Groups
}

// GroupsOf lists, sorted, the groups whose members include principal.
func GroupsOf(groups map[string][]string, principal string) []string {
	var of []string
	for g, members := range groups {
		if slices.Contains(members, principal) {
			of = append(of, g)
		}
	}
	slices.Sort(of)
	return of
}
