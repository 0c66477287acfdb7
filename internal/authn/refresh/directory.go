package refresh

import (
	"context"
	"errors"
	"fmt"

	"git.sr.ht/~zozs/srht-registry/internal/identity"
)

// Directory looks a directory's user up again, by the name it logged in
// with; *ldap.Authenticator (internal/authn/ldap) is the real one, which
// asks the directory at most once per authn.ldap[].cache_ttl per user.
type Directory interface {
	Lookup(ctx context.Context, user string) (identity.Identity, error)
}

// directoryClaims are what a directory login's refresh token carries: the
// login name (the subject is the configured attribute, which may differ),
// by which each redemption finds the user again. Nothing secret: the
// password is never in it.
type directoryClaims struct {
	User string `json:"user"`
}

// issueDirectory is the part of Issue for a directory login.
func (r *Tokens) issueDirectory(id identity.Identity) (*directoryClaims, error) {
	if _, ok := r.Directories[id.Provider]; !ok {
		return nil, fmt.Errorf("refresh token: no directory %q is configured", id.Provider)
	}
	if id.DirectoryUser == "" {
		return nil, errors.New("refresh token: a directory identity without its login name")
	}
	return &directoryClaims{User: id.DirectoryUser}, nil
}

// redeemDirectory is the part of Redeem for a directory login: the user
// must still be in the directory (found by the user filter, so an account
// the filter now excludes is gone too) with the same subject, and gets the
// groups it has now, not those of its login. A directory that cannot be
// asked is identity.ErrUnavailable: a 503, never the login's old groups.
func (r *Tokens) redeemDirectory(ctx context.Context, c claims, id *identity.Identity) error {
	dc := c.Directory
	if dc == nil || dc.User == "" || c.PasswordBinding != "" || c.Sourcehut != nil || c.OIDC != nil {
		return invalid("malformed")
	}
	dir, ok := r.Directories[id.Provider]
	if !ok {
		return invalid("is for a directory this server no longer uses; log in again")
	}
	now, err := dir.Lookup(ctx, dc.User)
	switch {
	case errors.Is(err, identity.ErrUnavailable):
		return err
	case err != nil:
		return invalid("is no longer valid: the directory no longer has the user; log in again")
	case now.Subject != c.Subject || now.Provider != id.Provider:
		return invalid("is no longer valid: the directory entry of the user changed; log in again")
	}
	id.RefreshedFrom = identity.MethodPassword
	id.DirectoryUser = dc.User
	id.Groups = now.Groups
	return nil
}
