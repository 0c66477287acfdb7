// Package authn turns the credentials a client presented into an
// identity.Identity, or an error wrapping identity.ErrUnauthenticated (the
// credentials are wrong) or identity.ErrUnavailable (they could not be
// checked). One file per method: anonymous access, htpasswd (bcrypt)
// passwords; Chain picks the method from the kind of credentials, and hands
// refresh tokens to a RefreshChecker (refresh.Tokens: the subpackage refresh
// issues and redeems them). Chain also completes every identity with what
// the account model says of its principal: its groups (by
// "<provider>:<subject>"), and the personal namespace it owns (NamespaceOf:
// local htpasswd accounts reserve their names).
package authn
