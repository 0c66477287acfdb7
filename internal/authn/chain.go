package authn

import (
	"context"
	"fmt"
	"slices"

	"git.sr.ht/~zozs/srht-registry/internal/identity"
)

// PasswordChecker checks a user name and password.
type PasswordChecker interface {
	Authenticate(ctx context.Context, user string, password identity.Secret) (identity.Identity, error)
}

// Chain dispatches credentials to the method that handles them and adds the
// configured groups to the identity it gets back.
type Chain struct {
	// Anonymous allows requests without credentials, as identity.Anonymous.
	Anonymous bool
	// Passwords checks Basic credentials; nil means no password users.
	Passwords PasswordChecker
	// Groups maps a group name to its member subjects.
	Groups map[string][]string
}

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
		if cred.Username == "" {
			return identity.Identity{}, fmt.Errorf("%w: empty user name", identity.ErrUnauthenticated)
		}
		if c.Passwords == nil {
			return identity.Identity{}, fmt.Errorf("%w: password login is not configured", identity.ErrUnauthenticated)
		}
		id, err := c.Passwords.Authenticate(ctx, cred.Username, cred.Secret)
		if err != nil {
			return identity.Identity{}, err
		}
		id.Groups = c.groupsOf(id.Subject)
		return id, nil
	default:
		return identity.Identity{}, fmt.Errorf("%w: unsupported credentials", identity.ErrUnauthenticated)
	}
}

func (c *Chain) groupsOf(subject string) []string {
	var groups []string
	for g, members := range c.Groups {
		if slices.Contains(members, subject) {
			groups = append(groups, g)
		}
	}
	slices.Sort(groups)
	return groups
}
