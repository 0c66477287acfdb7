package refresh

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"git.sr.ht/~zozs/srht-registry/internal/identity"
)

// A refresh token is a JWS, signed like an access token with the signing key
// of the moment, that lets a client get new access tokens (the OAuth2
// refresh_token grant) without its password or Sourcehut token: `docker
// login` keeps it instead of the password. It is self-contained (no server
// state), so it works on every replica that has the key and survives a
// restart; it verifies with any key the key set publishes, so a key rotation
// that keeps the previous key published keeps it valid.
//
// It can never pass for an access token, nor an access token for it: its
// header typ is tokenType (access tokens say "JWT"), its aud is
// "<service>#refresh" (the registry wants "<service>") with a token_use
// claim of "refresh", and it carries no access claim.
//
// Its payload is readable by the client, so it holds nothing secret: for a
// password user, not the htpasswd hash but an HMAC of it under the signing
// key's binding key (a secret derived from the private key, see Keys), which
// changes when the user's line changes (a new password, or the user
// removed): the refresh token then stops working.

// tokenType is the JWS typ header of a refresh token.
const tokenType = "refresh+jwt"

// tokenUse is the token_use claim of a refresh token.
const tokenUse = "refresh"

// Audience is the aud claim of a refresh token for service: never a
// registry's service name, so a registry refuses it as an access token.
func Audience(service string) string { return service + "#refresh" }

// maxTokenLength bounds what is parsed; ours are well under 2 KiB.
const maxTokenLength = 8192

// Keys signs refresh tokens and finds the key that checks one: the signing
// key and the keys published beside it, of the moment. *token.KeyRing is the
// real one; *token.Key stands for one fixed key.
type Keys interface {
	// SignJWS signs a JWS compact serialisation of header typ with the
	// signing key, of the payload that payload makes from that key's
	// binding key.
	SignJWS(typ string, payload func(bindingKey []byte) ([]byte, error)) (string, error)
	// Verifier finds the key named kid. known is false when no key of
	// the set has that kid; verify is nil when alg is not the key's
	// algorithm; bindingKey is nil when only the key's public half is
	// known.
	Verifier(kid, alg string) (verify func(signingInput, signature []byte) bool, bindingKey []byte, known bool)
}

// PasswordHashes gives a password user's current htpasswd hash;
// *authn.Htpasswd is the real one.
type PasswordHashes interface {
	// PasswordHash returns the hash stored for user, and false when there
	// is no such user.
	PasswordHash(user string) ([]byte, bool)
}

// Tokens issues refresh tokens and redeems them for the identity they
// stand for.
type Tokens struct {
	Issuer string
	// TTL is a refresh token's lifetime; one made from a Sourcehut token
	// never outlives that token.
	TTL time.Duration
	// Keys sign new refresh tokens and check presented ones; a key ring
	// makes a reload rotate them without a restart.
	Keys Keys
	// Passwords gives the current htpasswd hashes; nil when there are no
	// password users (then none gets a refresh token).
	Passwords PasswordHashes
	// Recheck, when set, checks the Sourcehut token a refresh token was
	// made from again at every redemption, through the Sourcehut
	// authenticator's cache: a token revoked on meta.sr.ht ends its refresh
	// tokens within authn.sourcehut.max_cache_ttl. It returns an error
	// wrapping identity.ErrUnauthenticated or identity.ErrUnavailable, or
	// the user the token belongs to.
	Recheck func(ctx context.Context, service string, token identity.Secret) (user string, err error)
	// OIDC are the configured OIDC issuers by provider name: the refresh
	// token of a login with one of their ID tokens lives that issuer's
	// session TTL (not TTL), and redeems only while the provider is
	// configured with the same issuer.
	OIDC map[string]OIDCSession
	// Directories are the configured directories (authn.ldap) by provider
	// name: the refresh token of a directory login looks its user up
	// again at every redemption (see redeemDirectory).
	Directories map[string]Directory
	// Now is the clock; tests pass their own.
	Now func() time.Time
}

// OIDCSession is how an OIDC issuer's logins are refreshed.
type OIDCSession struct {
	Issuer string        // the issuer's exact iss
	TTL    time.Duration // a refresh token's lifetime (authn.oidc[].session_ttl)
}

// claims is a refresh token's claim set.
type claims struct {
	Issuer   string `json:"iss"`
	Subject  string `json:"sub"`
	Audience string `json:"aud"`
	Use      string `json:"token_use"`
	Service  string `json:"service"`
	Method   string `json:"method"`
	// Provider names the account system of the login (absent in tokens
	// issued before providers were named: see providerOf).
	Provider   string `json:"provider,omitempty"`
	ClientID   string `json:"client_id"`
	IssuedAt   int64  `json:"iat"`
	Expiration int64  `json:"exp"`
	JWTID      string `json:"jti"`
	// PasswordBinding is, for a password login, the base64url HMAC of the
	// user's htpasswd line under the signing key's binding key.
	PasswordBinding string `json:"htpasswd_binding,omitempty"`
	// Sourcehut is, for a Sourcehut login, what the token said: enough to
	// rebuild identity.sourcehut, never the token itself.
	Sourcehut *sourcehutClaims `json:"sourcehut,omitempty"`
	// OIDC is, for an OIDC login, the ID token's issuer and claims, so that
	// claim rules keep deciding; never the token itself.
	OIDC *oidcClaims `json:"oidc,omitempty"`
	// Directory is, for a directory login, the name the user logged in
	// with (see directoryClaims).
	Directory *directoryClaims `json:"directory,omitempty"`
}

type oidcClaims struct {
	Issuer string         `json:"issuer"`
	Claims map[string]any `json:"claims"`
}

type sourcehutClaims struct {
	// Sealed is the Sourcehut token itself, encrypted (AES-256-GCM) under a
	// key derived from the signing key's binding key, so that a redemption
	// can have meta.sr.ht check it again; only this server can open it.
	Sealed    string       `json:"sealed,omitempty"`
	Username  string       `json:"username"`
	ClientID  string       `json:"client_id"`
	Expires   int64        `json:"expires"` // Unix seconds
	AllGrants bool         `json:"all_grants"`
	Grants    []grantClaim `json:"grants"`
	Access    string       `json:"access"`
}

type grantClaim struct {
	Service string `json:"service"`
	Scope   string `json:"scope"`
	Access  string `json:"access"`
}

// Issue signs a refresh token for an identity that just logged in with a
// password, a Sourcehut token or an OIDC ID token, for the registry named
// service and the client named clientID. It expires after TTL, or with the
// Sourcehut token if that comes first, or after the OIDC issuer's session
// TTL. Any other identity (anonymous, or a refresh token
// itself) gets an error: a refresh token is never made from a refresh token.
func (r *Tokens) Issue(id identity.Identity, service, clientID string, login identity.Secret) (identity.Secret, error) {
	if id.Subject == "" {
		return "", errors.New("refresh token: no subject")
	}
	now := r.Now().Truncate(time.Second)
	exp := now.Add(r.TTL)
	c := claims{
		Issuer:   r.Issuer,
		Subject:  id.Subject,
		Audience: Audience(service),
		Use:      tokenUse,
		Service:  service,
		Method:   string(id.Method),
		Provider: id.Provider,
		ClientID: clientID,
		IssuedAt: now.Unix(),
		JWTID:    rand.Text(),
	}
	// passwordHash is the htpasswd hash a password login binds.
	var passwordHash []byte
	switch id.Method {
	case identity.MethodPassword:
		if id.Provider != identity.ProviderHtpasswd {
			dc, err := r.issueDirectory(id)
			if err != nil {
				return "", err
			}
			c.Directory = dc
			break
		}
		if r.Passwords == nil {
			return "", errors.New("refresh token: no password users are configured")
		}
		hash, ok := r.Passwords.PasswordHash(id.Subject)
		if !ok {
			// The file was reloaded without the user since the login.
			return "", fmt.Errorf("%w: the user's password entry changed during login", identity.ErrUnauthenticated)
		}
		passwordHash = hash
	case identity.MethodSourcehut:
		sh := id.Sourcehut
		if id.Provider != identity.ProviderSourcehut {
			return "", fmt.Errorf("refresh token: a Sourcehut login of provider %q", id.Provider)
		}
		if sh == nil {
			return "", errors.New("refresh token: a Sourcehut identity without its token's details")
		}
		if sh.Expires.Before(exp) {
			exp = sh.Expires.Truncate(time.Second)
		}
		if !exp.After(now) {
			return "", fmt.Errorf("%w: the Sourcehut token has expired", identity.ErrUnauthenticated)
		}
		rs := &sourcehutClaims{Username: sh.Username, ClientID: sh.ClientID, Expires: sh.Expires.Unix(),
			AllGrants: sh.AllGrants, Access: sh.Access, Grants: []grantClaim{}}
		for _, g := range sh.Grants {
			rs.Grants = append(rs.Grants, grantClaim(g))
		}
		if r.Recheck != nil && login == "" {
			return "", errors.New("refresh token: a Sourcehut login without its token, which redemptions check again")
		}
		c.Sourcehut = rs
	case identity.MethodOIDC:
		session, ok := r.OIDC[id.Provider]
		switch {
		case !ok:
			return "", fmt.Errorf("refresh token: no OIDC issuer %q is configured", id.Provider)
		case id.OIDC == nil || id.OIDC.Issuer != session.Issuer:
			return "", errors.New("refresh token: an OIDC identity without its issuer's claims")
		}
		// A session, as cloud STS sessions are: longer than the ID
		// token's minutes, so a long push after login does not fail.
		exp = now.Add(min(r.TTL, session.TTL))
		c.OIDC = &oidcClaims{Issuer: id.OIDC.Issuer, Claims: id.OIDC.Claims}
	default:
		return "", fmt.Errorf("refresh token: not issued for method %q", id.Method)
	}
	c.Expiration = exp.Unix()
	// The binding is made with the binding key of the key that signs, so
	// a key rotation in between cannot part them.
	raw, err := r.Keys.SignJWS(tokenType, func(bindingKey []byte) ([]byte, error) {
		if passwordHash != nil {
			c.PasswordBinding = base64.RawURLEncoding.EncodeToString(passwordBinding(bindingKey, id.Subject, passwordHash))
		}
		if c.Sourcehut != nil && r.Recheck != nil {
			sealed, err := seal(bindingKey, c.JWTID, login.Reveal())
			if err != nil {
				return nil, err
			}
			c.Sourcehut.Sealed = sealed
		}
		return json.Marshal(c)
	})
	if err != nil {
		return "", fmt.Errorf("sign refresh token: %w", err)
	}
	return identity.Secret(raw), nil
}

// recheck has the Sourcehut token a refresh token was made from checked
// again (meta.sr.ht, through the authenticator's cache). A refresh token
// without one, from before tokens were sealed, is refused: it could not be
// revoked.
func (r *Tokens) recheck(ctx context.Context, c claims, bindingKey []byte) error {
	if c.Sourcehut.Sealed == "" {
		return invalid("was made before Sourcehut logins could be revoked; log in again")
	}
	if bindingKey == nil {
		return invalid("was signed by a key whose private half this server no longer has; log in again")
	}
	token, err := unseal(bindingKey, c.JWTID, c.Sourcehut.Sealed)
	if err != nil {
		return invalid("malformed")
	}
	user, err := r.Recheck(ctx, c.Service, identity.Secret(token))
	switch {
	case errors.Is(err, identity.ErrUnavailable):
		return err
	case err != nil:
		return invalid("is no longer valid: the Sourcehut token it was made from was refused (revoked?); log in again")
	case user != c.Subject:
		return invalid("malformed")
	}
	return nil
}

// sealInfo is the HKDF context of the key that seals Sourcehut tokens.
const sealInfo = "srht-registry refresh token sourcehut seal v1"

// sealAEAD is the AES-256-GCM that seals Sourcehut tokens, keyed from a
// binding key.
func sealAEAD(bindingKey []byte) (cipher.AEAD, error) {
	if bindingKey == nil {
		return nil, errors.New("no binding key")
	}
	key, err := hkdf.Key(sha256.New, bindingKey, nil, sealInfo, 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// seal encrypts a Sourcehut token for a refresh token whose jti is jti
// (bound as additional data: a sealed token cannot be moved to another).
func seal(bindingKey []byte, jti, token string) (string, error) {
	aead, err := sealAEAD(bindingKey)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(aead.Seal(nonce, nonce, []byte(token), []byte(jti))), nil
}

// unseal opens what seal made.
func unseal(bindingKey []byte, jti, sealed string) (string, error) {
	aead, err := sealAEAD(bindingKey)
	if err != nil {
		return "", err
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(sealed)
	if err != nil {
		return "", err
	}
	if len(raw) < aead.NonceSize() {
		return "", errors.New("short")
	}
	plain, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], []byte(jti))
	if err != nil {
		return "", err
	}
	return string(plain), nil
}

// passwordBinding is the HMAC of a user's htpasswd line (user name and
// hash) under the binding key.
func passwordBinding(key []byte, user string, hash []byte) []byte {
	m := hmac.New(sha256.New, key)
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(user)))
	m.Write(n[:])
	m.Write([]byte(user))
	m.Write(hash)
	return m.Sum(nil)
}

// header is the part of a refresh token's protected header that is read.
type header struct {
	Alg  string          `json:"alg"`
	Kid  string          `json:"kid"`
	Typ  string          `json:"typ"`
	Crit json.RawMessage `json:"crit"`
}

// invalid is the error of a refresh token that is not good; its text goes
// to the client (never the token), the cause to nobody.
func invalid(why string) error {
	return fmt.Errorf("%w: refresh token %s", identity.ErrUnauthenticated, why)
}

// Redeem checks a refresh token presented with the refresh_token grant
// (cred.Secret) for the registry cred.Service by the client cred.ClientID,
// and returns the identity it stands for: method refresh, with the original
// method in RefreshedFrom and, for a Sourcehut login, the token's details.
// It checks the signature (any key of the current set), the type, issuer,
// audience and expiry, that the service is the one it was issued for, and
// for a password login that the user's htpasswd line is unchanged. The
// client_id it was issued to is recorded, not enforced: `docker login`
// stores the token for every tool that reads docker's config (the docker
// CLI's own manifest commands, crane, oras, regctl, skopeo), and each of
// them refreshes under its own client_id; the compatibility matrix showed
// enforcing it breaks them all, and a client_id proves nothing anyway. Every failure wraps
// identity.ErrUnauthenticated.
func (r *Tokens) Redeem(ctx context.Context, cred identity.Credentials) (identity.Identity, error) {
	raw := cred.Secret.Reveal()
	if raw == "" {
		return identity.Identity{}, invalid("missing")
	}
	if len(raw) > maxTokenLength {
		return identity.Identity{}, invalid("malformed")
	}
	headerB64, rest, ok1 := strings.Cut(raw, ".")
	payloadB64, sigB64, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.Contains(sigB64, ".") {
		return identity.Identity{}, invalid("malformed")
	}
	var h header
	if err := decodeSegment(headerB64, &h); err != nil {
		return identity.Identity{}, invalid("malformed")
	}
	if h.Typ != tokenType || h.Crit != nil {
		// An access token (typ JWT) is not a refresh token.
		return identity.Identity{}, invalid("is not a refresh token")
	}
	verify, bindingKey, known := r.Keys.Verifier(h.Kid, h.Alg)
	if !known {
		return identity.Identity{}, invalid("was signed by a key this server no longer publishes; log in again")
	}
	if verify == nil {
		// The algorithm is the key's, never the header's choice.
		return identity.Identity{}, invalid("has a bad signature")
	}
	sig, err := base64.RawURLEncoding.Strict().DecodeString(sigB64)
	if err != nil {
		return identity.Identity{}, invalid("malformed")
	}
	if !verify([]byte(raw[:len(headerB64)+1+len(payloadB64)]), sig) {
		return identity.Identity{}, invalid("has a bad signature")
	}
	var c claims
	if err := decodeSegment(payloadB64, &c); err != nil {
		return identity.Identity{}, invalid("malformed")
	}
	now := r.Now()
	switch {
	case c.Use != tokenUse || c.Audience != Audience(c.Service):
		return identity.Identity{}, invalid("is not a refresh token")
	case c.Issuer != r.Issuer:
		return identity.Identity{}, invalid("was issued by another issuer")
	case !now.Before(time.Unix(c.Expiration, 0)):
		return identity.Identity{}, invalid("has expired; log in again")
	case c.Service != cred.Service:
		return identity.Identity{}, invalid("was issued for another service")
	case c.Subject == "" || c.JWTID == "":
		return identity.Identity{}, invalid("malformed")
	}
	provider, ok := providerOf(c)
	if !ok {
		return identity.Identity{}, invalid("malformed")
	}
	id := identity.Identity{Method: identity.MethodRefresh, Provider: provider, Subject: c.Subject}
	switch identity.Method(c.Method) {
	case identity.MethodPassword:
		if provider != identity.ProviderHtpasswd {
			if err := r.redeemDirectory(ctx, c, &id); err != nil {
				return identity.Identity{}, err
			}
			break
		}
		if bindingKey == nil {
			// A previous key published from its public half only: its
			// bindings cannot be checked.
			return identity.Identity{}, invalid("was signed by a key whose private half this server no longer has; log in again")
		}
		want, err := base64.RawURLEncoding.Strict().DecodeString(c.PasswordBinding)
		if err != nil || len(want) != sha256.Size || c.Sourcehut != nil || c.Directory != nil {
			return identity.Identity{}, invalid("malformed")
		}
		if r.Passwords == nil {
			return identity.Identity{}, invalid("is for a password user, and password login is not configured")
		}
		hash, ok := r.Passwords.PasswordHash(c.Subject)
		if !ok || !hmac.Equal(want, passwordBinding(bindingKey, c.Subject, hash)) {
			return identity.Identity{}, invalid("is no longer valid: the user's password changed or the user was removed; log in again")
		}
		id.RefreshedFrom = identity.MethodPassword
	case identity.MethodSourcehut:
		sh := c.Sourcehut
		if sh == nil || sh.Username != c.Subject || c.PasswordBinding != "" {
			return identity.Identity{}, invalid("malformed")
		}
		expires := time.Unix(sh.Expires, 0).UTC()
		if !now.Before(expires) {
			return identity.Identity{}, invalid("has expired with its Sourcehut token; log in again")
		}
		if r.Recheck != nil {
			if err := r.recheck(ctx, c, bindingKey); err != nil {
				return identity.Identity{}, err
			}
		}
		grants := make([]identity.Grant, 0, len(sh.Grants))
		for _, g := range sh.Grants {
			grants = append(grants, identity.Grant(g))
		}
		if len(grants) == 0 {
			grants = nil // as the Sourcehut authenticator leaves them
		}
		id.RefreshedFrom = identity.MethodSourcehut
		id.Sourcehut = &identity.Sourcehut{Username: sh.Username, ClientID: sh.ClientID, Expires: expires,
			AllGrants: sh.AllGrants, Grants: grants, Access: sh.Access}
	case identity.MethodOIDC:
		o := c.OIDC
		if o == nil || c.PasswordBinding != "" || c.Sourcehut != nil {
			return identity.Identity{}, invalid("malformed")
		}
		if session, ok := r.OIDC[provider]; !ok || session.Issuer != o.Issuer {
			return identity.Identity{}, invalid("is for an OIDC issuer this server no longer trusts; log in again")
		}
		id.RefreshedFrom = identity.MethodOIDC
		id.OIDC = &identity.OIDC{Issuer: o.Issuer, Claims: o.Claims}
	default:
		return identity.Identity{}, invalid("malformed")
	}
	return id, nil
}

// providerOf is the provider of a refresh token's login: the one it names,
// which must be the one its method implies. A token issued before providers
// were named has none; its method then says which it was, since password
// logins were htpasswd's and token logins Sourcehut's.
func providerOf(c claims) (string, bool) {
	var want string
	switch identity.Method(c.Method) {
	case identity.MethodPassword:
		if c.Directory != nil {
			// A directory's login: named by the operator, as OIDC's.
			return c.Provider, c.Provider != "" && c.Provider != identity.ProviderHtpasswd
		}
		want = identity.ProviderHtpasswd
	case identity.MethodSourcehut:
		want = identity.ProviderSourcehut
	case identity.MethodOIDC:
		// Named since OIDC logins began, and by the operator.
		return c.Provider, c.Provider != ""
	default:
		return "", false
	}
	if c.Provider != "" && c.Provider != want {
		return "", false
	}
	return want, true
}

// decodeSegment decodes one base64url part of a compact JWS as JSON.
func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.Strict().DecodeString(seg)
	if err != nil {
		return err
	}
	// Numbers in an OIDC login's claims stay json.Number, as the OIDC
	// authenticator gives them: exact, and the same input to the policy
	// before and after a refresh.
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data")
	}
	return nil
}
